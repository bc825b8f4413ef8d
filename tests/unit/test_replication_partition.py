"""A partition replica's roles: the leader's high watermark, acks=all waits and ISR proposals;
the follower's verbatim appends, epoch cache and truncation with producer state rebuilt."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from kio.schema.errors import ErrorCode
from log_helpers import read_all

from goqueue.broker.errors import BrokerError
from goqueue.broker.partition import Partition
from goqueue.log.config import LogConfig
from goqueue.log.leader_epochs import EpochEntry, LeaderEpochCache
from goqueue.log.partition_log import PartitionLog
from goqueue.records.batch import iter_batches, read_header
from goqueue.records.builder import NewRecord, build_batch

DAY_MS = 24 * 60 * 60 * 1000
REPLICAS = (1, 2, 3)


def run(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test on its own event loop."""

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return wrapper


def open_partition(directory: Path, node_id: int = 1) -> Partition:
    log = PartitionLog(directory, "t", 0, LogConfig())
    return Partition.open("t", 0, log, DAY_MS, node_id)


def leader(directory: Path, epoch: int = 1) -> Partition:
    partition = open_partition(directory)
    partition.become_leader(epoch, epoch, REPLICAS, REPLICAS, now_ms=0)
    return partition


def produce(partition: Partition, count: int = 1, *, pid: int = -1, seq: int = -1) -> int:
    data = build_batch(
        [NewRecord(None, b"v%d" % i) for i in range(count)],
        producer_id=pid,
        producer_epoch=0 if pid >= 0 else -1,
        base_sequence=seq,
    )
    return partition.append(bytearray(data), read_header(data), 1000).last_offset


def refusal(call: object) -> ErrorCode:
    assert callable(call)
    with pytest.raises(BrokerError) as caught:
        call()
    return caught.value.error_code


def test_a_new_partition_is_a_single_replica_leader(tmp_path: Path) -> None:
    partition = open_partition(tmp_path, node_id=0)
    assert partition.is_leader and partition.leader_epoch == 0
    produce(partition, 3)
    assert partition.high_watermark == 3, "a single replica commits every append"


def test_high_watermark_follows_the_slowest_in_sync_follower(tmp_path: Path) -> None:
    partition = leader(tmp_path)
    produce(partition, 4)
    assert partition.high_watermark == 0
    partition.record_follower_fetch(2, 4, now_ms=10)
    partition.record_follower_fetch(3, 2, now_ms=10)
    assert partition.high_watermark == 2
    partition.record_follower_fetch(3, 4, now_ms=11)
    assert partition.high_watermark == 4


@run
async def test_acks_all_waits_for_every_in_sync_replica(tmp_path: Path) -> None:
    partition = leader(tmp_path)
    end = produce(partition, 2) + 1
    waiting = asyncio.create_task(partition.wait_replicated(end, 5, min_insync=2))
    partition.record_follower_fetch(2, end, now_ms=10)
    await asyncio.sleep(0)
    assert not waiting.done()
    partition.record_follower_fetch(3, end, now_ms=10)
    await asyncio.wait_for(waiting, 1)
    with pytest.raises(BrokerError) as caught:
        await partition.wait_replicated(end + 5, 0.01, min_insync=1)
    assert caught.value.error_code == ErrorCode.request_timed_out


@run
async def test_isr_below_min_after_the_append_is_not_enough_replicas_after_append(
    tmp_path: Path,
) -> None:
    partition = leader(tmp_path)
    end = produce(partition) + 1
    waiting = asyncio.create_task(partition.wait_replicated(end, 5, min_insync=3))
    partition.become_leader(1, 2, REPLICAS, (1, 2), now_ms=10)
    partition.record_follower_fetch(2, end, now_ms=10)
    with pytest.raises(BrokerError) as caught:
        await asyncio.wait_for(waiting, 1)
    assert caught.value.error_code == ErrorCode.not_enough_replicas_after_append


@run
async def test_becoming_follower_fails_parked_produces_and_refuses_appends(
    tmp_path: Path,
) -> None:
    partition = leader(tmp_path)
    end = produce(partition) + 1
    waiting = asyncio.create_task(partition.wait_replicated(end, 5, min_insync=1))
    await asyncio.sleep(0)
    partition.become_follower(2, 2, 3, REPLICAS, REPLICAS)
    with pytest.raises(BrokerError) as caught:
        await asyncio.wait_for(waiting, 1)
    assert caught.value.error_code == ErrorCode.not_leader_or_follower
    assert refusal(lambda: produce(partition)) == ErrorCode.not_leader_or_follower
    assert partition.truncation_pending


def test_leader_epoch_fencing(tmp_path: Path) -> None:
    partition = leader(tmp_path, epoch=5)
    partition.check_leader(5)
    partition.check_leader(-1)
    assert refusal(lambda: partition.check_leader(4)) == ErrorCode.fenced_leader_epoch
    assert refusal(lambda: partition.check_leader(6)) == ErrorCode.unknown_leader_epoch


def test_isr_changes_are_proposed_one_at_a_time(tmp_path: Path) -> None:
    partition = open_partition(tmp_path)
    partition.become_leader(1, 1, REPLICAS, (1,), now_ms=0)
    proposals: list[tuple[int, ...]] = []
    partition.on_isr_change = lambda _p, isr: proposals.append(isr)
    produce(partition, 2)
    partition.record_follower_fetch(2, 2, now_ms=5)
    partition.record_follower_fetch(3, 2, now_ms=5)
    assert proposals == [(1, 2)], "3 waits for the pending change"
    partition.isr_change_failed((1, 2))
    partition.record_follower_fetch(3, 2, now_ms=6)
    assert proposals == [(1, 2), (1, 3)]
    partition.become_leader(1, 2, REPLICAS, (1, 3), now_ms=7)
    produce(partition)
    partition.maybe_shrink_isr(now_ms=7 + 100, max_lag_ms=50)
    assert proposals[-1] == (1,), "3 has not fetched offset 2 since it was caught up"


@run
async def test_a_follower_appends_the_leaders_batches_verbatim(tmp_path: Path) -> None:
    source = leader(tmp_path / "leader", epoch=3)
    produce(source, 2)
    produce(source, 1, pid=7, seq=0)
    data = read_all(source.log)
    follower = open_partition(tmp_path / "follower", node_id=2)
    follower.become_follower(1, 3, 3, REPLICAS, REPLICAS)
    assert await follower.append_from_leader(data, 3, now_ms=1000)
    assert read_all(follower.log) == data
    assert follower.epochs.entries == (EpochEntry(3, 0),)
    entry = follower.producers.entry(7)
    assert entry is not None and entry.last_seq == 0
    follower.follow_high_watermark(2)
    assert follower.high_watermark == 2
    assert LeaderEpochCache.load(follower.log.directory, 0, 3).latest_epoch == 3, "durable"


@run
async def test_a_follower_drops_data_fetched_for_an_older_epoch(tmp_path: Path) -> None:
    source = leader(tmp_path / "leader", epoch=3)
    produce(source, 2)
    follower = open_partition(tmp_path / "follower", node_id=2)
    follower.become_follower(1, 4, 4, REPLICAS, REPLICAS)
    assert not await follower.append_from_leader(read_all(source.log), 3, now_ms=1000)
    assert follower.log.log_end_offset == 0


@run
async def test_truncation_rebuilds_producer_state_and_epochs(tmp_path: Path) -> None:
    partition = leader(tmp_path, epoch=1)
    produce(partition, 1, pid=7, seq=0)
    partition.become_leader(2, 2, REPLICAS, REPLICAS, now_ms=0)
    produce(partition, 1, pid=7, seq=1)
    assert [e.epoch for e in partition.epochs.entries][-2:] == [1, 2]
    partition.become_follower(3, 3, 3, REPLICAS, REPLICAS)
    partition.truncate(1)
    assert partition.log.log_end_offset == 1
    assert [e.epoch for e in partition.epochs.entries][-1] == 1
    entry = partition.producers.entry(7)
    assert entry is not None and entry.last_seq == 0, "the truncated batch is forgotten"
    headers = [header for header, _ in iter_batches(read_all(partition.log))]
    assert [h.leader_epoch for h in headers] == [1]


@run
async def test_a_follower_follows_the_leaders_log_start_up_to_its_high_watermark(
    tmp_path: Path,
) -> None:
    source = leader(tmp_path / "leader", epoch=1)
    for _ in range(4):
        produce(source)
    follower = open_partition(tmp_path / "follower", node_id=2)
    follower.become_follower(1, 1, 1, REPLICAS, REPLICAS)
    assert await follower.append_from_leader(read_all(source.log), 1, now_ms=1000)
    follower.follow_high_watermark(3)
    assert follower.follow_log_start(2)
    assert follower.log.log_start_offset == 2
    assert follower.follow_log_start(10)
    assert follower.log.log_start_offset == 3, "never past the high watermark"
    assert not follower.follow_log_start(1)


def test_a_reopened_replica_relearns_its_high_watermark_unless_alone(tmp_path: Path) -> None:
    single = open_partition(tmp_path / "single")
    produce(single, 3)
    single.log.close()
    reopened = open_partition(tmp_path / "single")
    reopened.confirm((1,))
    assert reopened.high_watermark == 3, "a single replica commits its whole log"
    reopened.confirm((1, 2, 3))
    assert reopened.high_watermark == 3, "only the first state from metadata counts"
    replicated = open_partition(tmp_path / "replicated")
    produce(replicated, 3)
    replicated.log.close()
    restarted = open_partition(tmp_path / "replicated")
    restarted.confirm(REPLICAS)
    restarted.become_leader(2, 2, REPLICAS, REPLICAS, now_ms=0)
    assert restarted.high_watermark == 0, "the ISR must show what is committed"
    restarted.record_follower_fetch(2, 3, now_ms=1)
    restarted.record_follower_fetch(3, 3, now_ms=1)
    assert restarted.high_watermark == 3


def test_a_cleanly_stopped_replica_resumes_its_high_watermark(tmp_path: Path) -> None:
    partition = leader(tmp_path, epoch=1)
    produce(partition, 4)
    partition.record_follower_fetch(2, 3, now_ms=1)
    partition.record_follower_fetch(3, 3, now_ms=1)
    partition.save_producer_state()
    partition.log.close()
    restarted = open_partition(tmp_path)
    restarted.confirm(REPLICAS)
    assert restarted.high_watermark == 3
