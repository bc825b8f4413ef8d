"""A partition's producer state and dedup window over a real log on disk: duplicates answered
with their original offsets, snapshots at roll and shutdown, rebuilds after crashes, retention."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from kio.schema.errors import ErrorCode
from log_helpers import read_all

from goqueue.broker.errors import BrokerError
from goqueue.broker.partition import Partition
from goqueue.log.config import LogConfig
from goqueue.log.partition_log import PartitionLog
from goqueue.log.snapshots import SnapshotFiles
from goqueue.records.batch import BatchHeader, read_header
from goqueue.records.builder import NewRecord, build_batch
from goqueue.records.reader import iter_records

DAY_MS = 24 * 60 * 60 * 1000


def later() -> int:
    """A clock past the timestamps of every record written so far, for retention.ms=1."""
    return time.time_ns() // 1_000_000 + 60_000


SMALL_SEGMENTS = LogConfig(segment_bytes=400)
"""A couple of small batches per segment, so appends roll segments and snapshot."""


def batch(seq: int, count: int = 1, *, pid: int = 1, epoch: int = 0, value: bytes = b"") -> bytes:
    records = [NewRecord(None, value or b"%d-%d" % (pid, seq + i)) for i in range(count)]
    return build_batch(records, producer_id=pid, producer_epoch=epoch, base_sequence=seq)


def open_partition(directory: Path, *, recover: bool = False) -> Partition:
    log = PartitionLog(directory, "t", 0, SMALL_SEGMENTS, recover=recover)
    return Partition.open("t", 0, log, DAY_MS)


def produce(partition: Partition, data: bytes, now_ms: int = 1000) -> int:
    return partition.append(bytearray(data), read_header(data), now_ms).base_offset


def values(partition: Partition) -> list[bytes | None]:
    return [record.value for record in iter_records(read_all(partition.log))]


def refused(partition: Partition, data: bytes) -> ErrorCode:
    with pytest.raises(BrokerError) as caught:
        produce(partition, data)
    return caught.value.error_code


def test_a_retried_batch_is_answered_with_its_offsets_and_not_written(tmp_path: Path) -> None:
    partition = open_partition(tmp_path)
    assert produce(partition, batch(0, 3)) == 0
    assert produce(partition, batch(0, 1, pid=2)) == 3
    assert produce(partition, batch(0, 3)) == 0
    assert partition.log.log_end_offset == 4
    assert refused(partition, batch(5)) is ErrorCode.out_of_order_sequence_number


def test_segment_rolls_and_shutdown_leave_snapshots(tmp_path: Path) -> None:
    partition = open_partition(tmp_path)
    for seq in range(10):
        produce(partition, batch(seq))
    rolls = [segment.base_offset for segment in partition.log.segments[1:]]
    assert rolls and SnapshotFiles(tmp_path).offsets() == rolls
    partition.save_producer_state()
    assert SnapshotFiles(tmp_path).offsets() == [*rolls, 10]


@pytest.mark.parametrize("clean", [True, False])
def test_state_survives_a_restart(tmp_path: Path, clean: bool) -> None:
    """Clean: read from the shutdown snapshot. Crash: the last roll's snapshot plus a replay
    of the batch headers after it."""
    partition = open_partition(tmp_path)
    for seq in range(10):
        produce(partition, batch(seq))
    produce(partition, batch(0, pid=2))
    if clean:
        partition.save_producer_state()
        partition.log.close()
    reopened = open_partition(tmp_path, recover=not clean)
    assert produce(reopened, batch(9)) == 9
    assert produce(reopened, batch(6)) == 6
    assert produce(reopened, batch(0, pid=2)) == 10
    assert refused(reopened, batch(11)) is ErrorCode.out_of_order_sequence_number
    assert produce(reopened, batch(10)) == 11


def test_a_damaged_snapshot_is_passed_over_for_an_older_one(tmp_path: Path) -> None:
    partition = open_partition(tmp_path)
    for seq in range(10):
        produce(partition, batch(seq))
    partition.save_producer_state()
    snapshots = SnapshotFiles(tmp_path)
    newest = snapshots.offsets()[-1]
    snapshots.write(newest, b"torn", durable=False)
    reopened = open_partition(tmp_path, recover=True)
    assert newest not in snapshots.offsets()
    assert produce(reopened, batch(9)) == 9
    assert produce(reopened, batch(10)) == 10


def test_snapshots_beyond_a_truncated_log_end_are_dropped(tmp_path: Path) -> None:
    partition = open_partition(tmp_path)
    for seq in range(10):
        produce(partition, batch(seq))
    partition.save_producer_state()
    partition.log.truncate_to(5)
    reopened = open_partition(tmp_path, recover=True)
    assert max(SnapshotFiles(tmp_path).offsets()) <= 5
    assert refused(reopened, batch(6)) is ErrorCode.out_of_order_sequence_number
    assert produce(reopened, batch(5)) == 5


def test_retention_keeps_producer_state_and_prunes_old_snapshots(tmp_path: Path) -> None:
    partition = open_partition(tmp_path)
    for seq in range(10):
        produce(partition, batch(seq), now_ms=1000)
    partition.log.update_config(LogConfig(segment_bytes=400, retention_ms=1))
    assert partition.log.delete_expired_segments(later()) > 0
    start = partition.log.log_start_offset
    produce(partition, batch(10), now_ms=10_000)
    partition.save_producer_state()
    assert min(SnapshotFiles(tmp_path).offsets()) == start
    partition.log.close()
    reopened = open_partition(tmp_path)
    assert produce(reopened, batch(10)) == 10
    assert produce(reopened, batch(11)) == 11


def test_a_snapshot_at_the_log_start_covers_producers_whose_data_retention_deleted(
    tmp_path: Path,
) -> None:
    partition = open_partition(tmp_path)
    for seq in range(10):
        produce(partition, batch(seq), now_ms=1000)
    partition.log.update_config(LogConfig(segment_bytes=400, retention_ms=1))
    partition.log.delete_expired_segments(later())
    assert partition.log.log_start_offset == 10
    reopened = open_partition(tmp_path, recover=True)
    assert refused(reopened, batch(11)) is ErrorCode.out_of_order_sequence_number
    assert produce(reopened, batch(10)) == 10


def test_delete_records_inside_a_segment_keeps_producer_state_through_a_crash(
    tmp_path: Path,
) -> None:
    partition = open_partition(tmp_path)
    for seq in range(10):
        produce(partition, batch(seq))
    produce(partition, batch(0, pid=2))
    partition.log.delete_records_before(partition.log.log_end_offset - 1)
    partition.log.checkpoint_log_start_offset()
    reopened = open_partition(tmp_path, recover=True)
    assert reopened.log.log_start_offset == 10
    assert produce(reopened, batch(10)) == 11
    assert produce(reopened, batch(1, pid=2)) == 12
    assert refused(reopened, batch(12)) is ErrorCode.out_of_order_sequence_number


def test_expired_producers_are_not_reloaded(tmp_path: Path) -> None:
    partition = open_partition(tmp_path)
    produce(partition, batch(0))
    partition.save_producer_state()
    partition.log.close()
    log = PartitionLog(tmp_path, "t", 0, SMALL_SEGMENTS)
    reopened = Partition.open("t", 0, log, expiration_ms=1)
    assert reopened.producers.entry(1) is None
    assert produce(reopened, batch(7)) == 1


# Content dedup.

WINDOW_MS = 60_000


def dedup(partition: Partition, data: bytes, now_ms: int) -> int:
    return asyncio.run(
        partition.append_deduplicated(data, read_header(data), now_ms, WINDOW_MS)
    ).base_offset


def plain(*payloads: bytes, ts: int) -> bytes:
    return build_batch([NewRecord(b"k", value, timestamp_ms=ts) for value in payloads])


def test_a_repeat_within_the_window_is_stored_once_and_answered_with_the_original(
    tmp_path: Path,
) -> None:
    partition = open_partition(tmp_path)
    now = 1_000_000
    assert dedup(partition, plain(b"a", b"b", ts=now), now) == 0
    assert dedup(partition, plain(b"b", ts=now), now + 10) == 1
    assert dedup(partition, plain(b"c", b"a", b"d", ts=now), now + 20) == 2
    assert values(partition) == [b"a", b"b", b"c", b"d"]
    assert [record.offset for record in iter_records(read_all(partition.log))] == [0, 1, 2, 4]
    assert dedup(partition, plain(b"a", ts=now), now + WINDOW_MS + 1) == 5
    assert values(partition)[-1] == b"a"


def test_the_window_is_rebuilt_from_the_log_after_a_crash(tmp_path: Path) -> None:
    partition = open_partition(tmp_path)
    now = 1_000_000
    dedup(partition, plain(b"old", ts=now - WINDOW_MS - 5), now - WINDOW_MS - 5)
    dedup(partition, plain(b"a", ts=now), now)
    reopened = open_partition(tmp_path, recover=True)
    assert dedup(reopened, plain(b"a", ts=now + 1), now + 1) == 1
    assert dedup(reopened, plain(b"old", ts=now + 1), now + 1) == 2
    assert values(reopened) == [b"old", b"a", b"old"]


def test_an_idempotent_batch_of_repeats_still_advances_the_sequence(tmp_path: Path) -> None:
    """Nothing reaches the log, so the producer state is snapshotted at once: a crash right
    after must not make the producer's next batch look out of order."""
    partition = open_partition(tmp_path)
    now = 1_000_000
    dedup(partition, batch(0, value=b"same"), now)
    assert dedup(partition, batch(1, value=b"same"), now) == 0
    assert partition.log.log_end_offset == 1
    reopened = open_partition(tmp_path, recover=True)
    assert dedup(reopened, batch(1, value=b"same"), now) == 0
    assert dedup(reopened, batch(2, value=b"new"), now) == 1


def test_an_idempotent_retry_on_a_dedup_topic_gets_its_own_offsets(tmp_path: Path) -> None:
    partition = open_partition(tmp_path)
    now = 1_000_000
    first = batch(0, 2)
    assert dedup(partition, first, now) == 0
    header: BatchHeader = read_header(first)
    assert partition.producers.check(header) is not None
    assert dedup(partition, first, now) == 0
    assert partition.log.log_end_offset == 2
