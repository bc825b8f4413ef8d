"""Offset expiry on a real broker with a retention of 1.5 s (checked every 200 ms): a
standalone commit expires with its group, a KIP-848 member keeps its group's offsets while it
consumes, and they expire once it has left."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from client_compat import wait_for
from confluent_kafka import Consumer
from group_helpers import GROUP_ENV, create_topic, produce, unique_group

from goqueue.client.admin import Admin
from goqueue.client.metadata import TopicPartition
from goqueue.testing.process import BrokerProcess

RETENTION_S = 1.5
EXPIRY_ENV = {
    **GROUP_ENV,
    "GOQUEUE_OFFSETS_RETENTION_MS": str(int(RETENTION_S * 1000)),
    "GOQUEUE_OFFSETS_RETENTION_CHECK_INTERVAL_MS": "200",
}


@pytest.fixture(scope="module")
def expiring_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    data = tmp_path_factory.mktemp("offset-expiry") / "data"
    with BrokerProcess(data, env=EXPIRY_ENV) as process:
        yield process


async def offsets_and_groups(
    bootstrap: str, group: str
) -> tuple[dict[TopicPartition, int], set[str]]:
    async with Admin(bootstrap) as admin:
        offsets = await admin.list_group_offsets(group)
        listed = await admin.list_groups()
    return {tp: c.offset for tp, c in offsets.items() if c.offset >= 0}, {
        g.group_id for g in listed
    }


async def commit_standalone(bootstrap: str, group: str, tp: TopicPartition) -> None:
    async with Admin(bootstrap) as admin:
        await admin.alter_group_offsets(group, {tp: 5})


def gone(bootstrap: str, group: str) -> bool | None:
    offsets, groups = asyncio.run(offsets_and_groups(bootstrap, group))
    return (not offsets and group not in groups) or None


def test_a_standalone_commit_expires_with_its_group(expiring_broker: BrokerProcess) -> None:
    bootstrap = expiring_broker.bootstrap
    topic = create_topic(bootstrap, "expiry-standalone", partitions=1)
    group = unique_group("expiry-standalone")
    tp = TopicPartition(topic, 0)
    committed_at = time.monotonic()
    asyncio.run(commit_standalone(bootstrap, group, tp))
    offsets, groups = asyncio.run(offsets_and_groups(bootstrap, group))
    assert (offsets, group in groups) == ({tp: 5}, True)
    wait_for(lambda: gone(bootstrap, group), "the offsets and the group to expire", timeout=15)
    assert time.monotonic() - committed_at >= RETENTION_S


def test_a_member_keeps_its_offsets_and_they_expire_after_it_leaves(
    expiring_broker: BrokerProcess,
) -> None:
    bootstrap = expiring_broker.bootstrap
    topic = create_topic(bootstrap, "expiry-member", partitions=1)
    group = unique_group("expiry-member")
    produce(bootstrap, topic, 3, partitions=1)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "group.protocol": "consumer",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.subscribe([topic])
        message = wait_for(lambda: consumer.poll(0.2), "a message")
        consumer.commit(message, asynchronous=False)
        committed_at = time.monotonic()
        # Stay in the group, heartbeating, for twice the retention.
        while time.monotonic() - committed_at < 2 * RETENTION_S:
            consumer.poll(0.2)
        offsets, _groups = asyncio.run(offsets_and_groups(bootstrap, group))
        assert offsets == {TopicPartition(topic, 0): message.offset() + 1}
    finally:
        consumer.close()
    wait_for(lambda: gone(bootstrap, group), "the offsets of the left group to expire", timeout=15)
