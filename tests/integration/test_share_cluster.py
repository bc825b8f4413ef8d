"""Share groups on a 3-node cluster: the data partitions are led by brokers other than the
group's coordinator, so their ShareFetch and ShareAcknowledge are forwarded to it; competing
SDK and librdkafka consumers, release and reject across brokers, and the coordinator killed
mid-consumption."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from client_compat import unique_topic
from confluent_kafka import ShareConsumer as RdKafkaShareConsumer
from share_helpers import SHARE_ENV, send_all, set_group_configs

from goqueue.client import Admin, Cluster, ShareConsumer
from goqueue.coordinator.runtime import partition_for
from goqueue.testing.cluster import ClusterProcess

pytestmark = pytest.mark.integration

PARTITIONS = 4
COUNT = 240
STATE_TOPIC = "__share_group_state"
SHARE_GROUP_DESCRIBE = 77


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    """One cluster for the tests that kill nothing."""
    with ClusterProcess(tmp_path_factory.mktemp("share-cluster"), 3, env=SHARE_ENV) as running:
        yield running


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[ClusterProcess]:
    with ClusterProcess(tmp_path / "cluster", 3, env=SHARE_ENV) as running:
        yield running


def run(main: object, timeout: float = 60.0) -> object:
    return asyncio.run(asyncio.wait_for(main, timeout))  # type: ignore[arg-type]


async def setup(
    bootstrap: str, prefix: str, configs: dict[str, str] | None = None
) -> tuple[str, str, int, dict[int, int]]:
    """A topic of PARTITIONS partitions with RF 3 and a share group reading from the start:
    (topic, group, the group's coordinator, leader by partition)."""
    topic = unique_topic(prefix)
    group = unique_topic(f"share-{prefix}")
    async with Admin(bootstrap) as admin:
        await admin.create_topic(topic, PARTITIONS, 3)
    await asyncio.to_thread(
        set_group_configs,
        bootstrap,
        group,
        {"share.auto.offset.reset": "earliest", **(configs or {})},
    )
    async with Cluster(bootstrap) as cluster:
        state = await cluster.topic(STATE_TOPIC)
        index = partition_for(group, len(state.partitions))
        coordinator = next(p.leader for p in state.partitions if p.partition == index)
        metadata = await cluster.topic(topic)
        leaders = {p.partition: p.leader for p in metadata.partitions}
    return topic, group, coordinator, leaders


async def produce_spread(bootstrap: str, topic: str, tag: str = "") -> set[tuple[int, int]]:
    """COUNT records, as many in each partition: their (partition, offset)."""
    each = COUNT // PARTITIONS
    for partition in range(PARTITIONS):
        values = [b"%s%d-%d" % (tag.encode(), partition, i) for i in range(each)]
        await send_all(bootstrap, topic, values, partition=partition)
    return {(p, o) for p in range(PARTITIONS) for o in range(each)}


async def wait_members(bootstrap: str, coordinator: int, group: str, count: int) -> None:
    """Until the group has `count` members and each partition is assigned to one of them
    (the uniform assignment gives each member some when there are as many partitions)."""
    async with Cluster(bootstrap) as cluster:
        connection = await cluster.connection(coordinator)
        deadline = time.monotonic() + 20
        while True:
            request = {"group_ids": [group], "include_authorized_operations": False}
            [described] = (await connection.request(SHARE_GROUP_DESCRIBE, request)).groups
            assigned = [
                p
                for m in described.members
                for t in m.assignment.topic_partitions
                for p in t.partitions
            ]
            if len(described.members) == count and sorted(assigned) == list(range(PARTITIONS)):
                return
            assert time.monotonic() < deadline, f"assigned: {described.members}"
            await asyncio.sleep(0.1)


def test_competing_sdk_and_librdkafka_consumers_get_every_record_once(
    cluster: ClusterProcess,
) -> None:
    bootstrap = cluster.bootstrap

    async def main() -> tuple[int, dict[int, int], dict[str, list[tuple[int, int]]]]:
        topic, group, coordinator, leaders = await setup(
            bootstrap, "compete", {"share.record.lock.duration.ms": "15000"}
        )
        got: dict[str, list[tuple[int, int]]] = {"sdk-a": [], "sdk-b": [], "rdkafka": []}
        deadline = time.monotonic() + 40

        def total() -> int:
            return sum(len(v) for v in got.values())

        async def sdk(name: str) -> None:
            async with ShareConsumer(bootstrap, group_id=group, topics=[topic]) as consumer:
                while total() < COUNT and time.monotonic() < deadline:
                    for message in await consumer.poll(0.3):
                        got[name].append((message.partition, message.offset))
                        await message.ack()
                await consumer.commit()

        def rdkafka() -> None:
            """librdkafka's share consumer, used from one thread only (it insists)."""
            consumer = RdKafkaShareConsumer(
                {
                    "bootstrap.servers": bootstrap,
                    "group.id": group,
                    "share.acknowledgement.mode": "implicit",
                }
            )
            consumer.subscribe([topic])
            try:
                while total() < COUNT and time.monotonic() < deadline:
                    for message in consumer.poll(0.3) or []:
                        assert not message.error(), message.error()
                        got["rdkafka"].append((message.partition(), message.offset()))
            finally:
                consumer.close()

        consuming = asyncio.gather(sdk("sdk-a"), sdk("sdk-b"), asyncio.to_thread(rdkafka))
        await wait_members(bootstrap, coordinator, group, 3)
        await produce_spread(bootstrap, topic)
        await consuming
        return coordinator, leaders, got

    coordinator, leaders, got = run(main())  # type: ignore[misc]
    assert set(leaders.values()) - {coordinator}, "some partitions are led elsewhere"
    everything = [record for records in got.values() for record in records]
    assert sorted(everything) == sorted(set(everything)), "no record delivered twice"
    assert len(everything) == COUNT
    assert all(got.values()), {name: len(records) for name, records in got.items()}
