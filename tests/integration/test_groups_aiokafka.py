"""Consumer groups with aiokafka: its assignors split the partitions, and committed offsets
survive a broker restart with consumption resuming right after them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from aiokafka.structs import OffsetAndMetadata
from client_compat import DEADLINE_S
from group_helpers import (
    HEARTBEAT_MS,
    PARTITIONS,
    SESSION_MS,
    TP,
    all_partitions,
    create_topic,
    describe_group,
    group_broker,
    own_group_broker,
    produce,
    shared_fairly,
    unique_group,
)

from goqueue.testing.process import BrokerProcess

__all__ = ["group_broker", "own_group_broker"]


def consumer(bootstrap: str, group: str, topic: str, **config: object) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=SESSION_MS,
        heartbeat_interval_ms=HEARTBEAT_MS,
        **config,
    )


def owned(c: AIOKafkaConsumer) -> set[TP]:
    return {(tp.topic, tp.partition) for tp in c.assignment()}


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize(
    "assignor",
    [RangePartitionAssignor, RoundRobinPartitionAssignor, StickyPartitionAssignor],
    ids=["range", "roundrobin", "sticky"],
)
def test_members_split_the_partitions_with_each_assignor(
    group_broker: BrokerProcess, assignor: type
) -> None:
    topic = create_topic(group_broker.bootstrap, "aio-assign")
    group = unique_group("aio-assign")

    async def scenario() -> list[set[TP]]:
        members = [
            consumer(
                group_broker.bootstrap, group, topic, partition_assignment_strategy=(assignor,)
            )
            for _ in range(3)
        ]
        for c in members:
            await c.start()
        try:

            async def split() -> bool:
                await asyncio.gather(*(c.getmany(timeout_ms=100) for c in members))
                return shared_fairly([owned(c) for c in members], all_partitions(topic))

            await until(split, f"three members to split {PARTITIONS} partitions")
            return [owned(c) for c in members]
        finally:
            for c in members:
                await c.stop()

    split = asyncio.run(scenario())
    assert sorted(len(s) for s in split) == [2, 2, 2]
    assert describe_group(group_broker.bootstrap, group).state == "Empty"


def test_committed_offsets_survive_a_restart_and_consumption_resumes_after_them(
    own_group_broker: BrokerProcess,
) -> None:
    broker = own_group_broker
    topic = create_topic(broker.bootstrap, "aio-restart", partitions=1)
    group = unique_group("aio-restart")
    sent = produce(broker.bootstrap, topic, 20, partitions=1)[(topic, 0)]
    tp = TopicPartition(topic, 0)

    async def consume(count: int, commit_at: int | None) -> tuple[list[bytes], object]:
        c = consumer(broker.bootstrap, group, topic)
        await c.start()
        try:
            committed = await c.committed(tp)
            got: list[bytes] = []

            async def enough() -> bool:
                batches = await c.getmany(timeout_ms=200, max_records=count - len(got))
                got.extend(r.value for records in batches.values() for r in records)
                return len(got) >= count

            await until(enough, f"{count} messages")
            if commit_at is not None:
                await c.commit({tp: OffsetAndMetadata(commit_at, "resume here")})
            return got, committed
        finally:
            await c.stop()

    first, before = asyncio.run(consume(7, commit_at=7))
    broker.restart()
    rest, committed = asyncio.run(consume(13, commit_at=None))
    assert before is None
    assert committed == 7
    assert first + rest == sent
