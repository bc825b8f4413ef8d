"""Share groups on a 3-node cluster: the data partitions are led by brokers other than the
group's coordinator, so their ShareFetch and ShareAcknowledge are forwarded to it; competing
SDK and librdkafka consumers, release and reject across brokers, and the coordinator killed
mid-consumption."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from client_compat import unique_topic
from confluent_kafka import ShareConsumer as RdKafkaShareConsumer
from share_helpers import SHARE_ENV, send_all, set_group_configs, take, wait_records

from goqueue.client import (
    AcknowledgementError,
    Admin,
    Cluster,
    Connection,
    KafkaError,
    ShareConsumer,
    ShareMessage,
)
from goqueue.client.dead_letters import DeadLetter
from goqueue.client.metadata import TopicPartition
from goqueue.coordinator.runtime import partition_for
from goqueue.testing.cluster import ClusterProcess

pytestmark = pytest.mark.integration

PARTITIONS = 4
COUNT = 240
ROUNDS = 4
STATE_TOPIC = "__share_group_state"
SHARE_GROUP_DESCRIBE = 77
DESCRIBE_OFFSETS = 90
T = TypeVar("T")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    """One cluster for the tests that kill nothing."""
    with ClusterProcess(tmp_path_factory.mktemp("share-cluster"), 3, env=SHARE_ENV) as running:
        yield running


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[ClusterProcess]:
    with ClusterProcess(tmp_path / "cluster", 3, env=SHARE_ENV) as running:
        yield running


def run(main: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    return asyncio.run(asyncio.wait_for(main, timeout))


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


async def produce_spread(
    bootstrap: str, topic: str, start: int = 0, count: int = COUNT
) -> set[tuple[int, int]]:
    """`count` records, as many in each partition, the first at offset `start / PARTITIONS`
    of each: their (partition, offset)."""
    each, first = count // PARTITIONS, start // PARTITIONS
    for partition in range(PARTITIONS):
        values = [b"%d-%d" % (partition, i) for i in range(first, first + each)]
        await send_all(bootstrap, topic, values, partition=partition)
    return {(p, o) for p in range(PARTITIONS) for o in range(first, first + each)}


async def describe(connection: Connection, group: str) -> Any:
    request = {"group_ids": [group], "include_authorized_operations": False}
    [described] = (await connection.request(SHARE_GROUP_DESCRIBE, request)).groups
    return described


async def wait_assigned(
    bootstrap: str, coordinator: int, group: str, count: int, sdk: Sequence[ShareConsumer]
) -> None:
    """Until the group has `count` members, each partition is assigned to one of them (the
    uniform assignment gives each member some when there are as many partitions), and the
    SDK consumers know their partitions: so the others' are fetched by the others only."""
    async with Cluster(bootstrap) as cluster:
        connection = await cluster.connection(coordinator)
        deadline = time.monotonic() + 20
        while True:
            described = await describe(connection, group)
            assigned = {
                m.member_id: {p for t in m.assignment.topic_partitions for p in t.partitions}
                for m in described.members
            }
            spread = sorted(p for parts in assigned.values() for p in parts)
            known = all(
                {tp.partition for tp in c.assignment} == assigned.get(c.member_id) for c in sdk
            )
            if len(assigned) == count and spread == list(range(PARTITIONS)) and known:
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

        async def sdk(name: str, consumer: ShareConsumer) -> None:
            async with consumer:
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
                consumer.commit_sync()  # the last poll's records are accepted implicitly
            finally:
                consumer.close()

        a, b = (ShareConsumer(bootstrap, group_id=group, topics=[topic]) for _ in range(2))
        consuming = asyncio.gather(sdk("sdk-a", a), sdk("sdk-b", b), asyncio.to_thread(rdkafka))
        await wait_assigned(bootstrap, coordinator, group, 3, [a, b])
        # In rounds: fetches in flight when the assignment settled may take the first one.
        for start in range(0, COUNT, COUNT // ROUNDS):
            await produce_spread(bootstrap, topic, start, COUNT // ROUNDS)
            while total() < start + COUNT // ROUNDS:
                assert time.monotonic() < deadline, f"{total()} of {start + COUNT // ROUNDS}"
                await asyncio.sleep(0.05)
        await consuming
        for _, node in cluster.running():  # every broker answers for the group
            async with Cluster(node.bootstrap) as one:
                connection = await one.any_connection()
                described = await describe(connection, group)
                request = {"groups": [{"group_id": group, "topics": None}]}
                [offsets] = (await connection.request(DESCRIBE_OFFSETS, request)).groups
            assert (described.error_code, described.group_state) == (0, "Empty")
            assert offsets.error_code == 0
            starts = {
                p.partition_index: p.start_offset for t in offsets.topics for p in t.partitions
            }
            assert starts == dict.fromkeys(range(PARTITIONS), COUNT // PARTITIONS)
        return coordinator, leaders, got

    coordinator, leaders, got = run(main())
    assert set(leaders.values()) - {coordinator}, "some partitions are led elsewhere"
    everything = [record for records in got.values() for record in records]
    assert sorted(everything) == sorted(set(everything)), "no record delivered twice"
    assert len(everything) == COUNT
    assert all(got.values()), {name: len(records) for name, records in got.items()}


def test_release_redelivers_and_reject_dead_letters_across_brokers(
    cluster: ClusterProcess,
) -> None:
    bootstrap = cluster.bootstrap

    async def main() -> tuple[str, str, int, list[ShareMessage], ShareMessage]:
        topic, group, coordinator, leaders = await setup(
            bootstrap, "release", {"goqueue.retry.backoff.ms": "500"}
        )
        dlq = f"{group}.dlq"
        async with Admin(bootstrap) as admin:
            await admin.create_topic(dlq, PARTITIONS, 1)
        async with Cluster(bootstrap) as metadata:
            dlq_leaders = {p.partition: p.leader for p in (await metadata.topic(dlq)).partitions}
        # A partition led elsewhere whose dead letters go to a partition led elsewhere too.
        partition = next(
            p
            for p in range(PARTITIONS)
            if leaders[p] != coordinator and dlq_leaders[p % len(dlq_leaders)] != coordinator
        )
        await send_all(bootstrap, topic, [b"again", b"bad"], partition=partition)
        async with ShareConsumer(bootstrap, group_id=group, topics=[topic]) as consumer:
            first = await take(consumer, 2, ack=False)
            again, bad = first
            await again.release()
            await bad.reject(reason="schema mismatch")
            (redelivered,) = await take(consumer, 1)
            await consumer.commit()
        return topic, group, partition, first, redelivered

    topic, group, partition, first, redelivered = run(main())
    assert [(m.partition, m.offset, m.delivery_count) for m in first] == [
        (partition, 0, 1),
        (partition, 1, 1),
    ]
    assert (redelivered.value, redelivered.delivery_count) == (b"again", 2)
    dlq = f"{group}.dlq"
    [(dlq_partition, record)] = wait_records(bootstrap, dlq, 1)
    letter = DeadLetter.of(TopicPartition(dlq, dlq_partition), record)
    assert (letter.value, letter.reason, letter.delivery_count) == (b"bad", "rejected", 1)
    assert (letter.original_topic, letter.original_partition, letter.original_offset) == (
        topic,
        partition,
        1,
    )
    assert letter.group == group


def test_killing_the_coordinator_mid_consumption_loses_nothing(
    own_cluster: ClusterProcess,
) -> None:
    bootstrap = own_cluster.bootstrap

    async def main() -> tuple[set[tuple[int, int]], list[tuple[int, int]], set[tuple[int, int]]]:
        topic, group, coordinator, leaders = await setup(bootstrap, "failover")
        assert set(leaders.values()) - {coordinator}, "some partitions are led elsewhere"
        produced = await produce_spread(bootstrap, topic)
        delivered: list[tuple[int, int]] = []
        confirmed: set[tuple[int, int]] = set()
        """Records whose acknowledgement `commit()` confirmed before the kill."""
        killed = asyncio.Event()
        before_kill: list[tuple[int, int]] = []
        deadline = time.monotonic() + 50

        async def consume() -> None:
            async with ShareConsumer(
                bootstrap, group_id=group, topics=[topic], max_records=5
            ) as consumer:
                while not produced <= set(delivered) and time.monotonic() < deadline:
                    try:
                        batch = await consumer.poll(0.3)
                        for message in batch:
                            delivered.append((message.partition, message.offset))
                            await message.ack()
                        await consumer.commit()
                    except (KafkaError, AcknowledgementError) as exc:  # cut off by the kill
                        logging.getLogger(__name__).info("during failover: %s", exc)
                        continue
                    if not killed.is_set():
                        confirmed.update((m.partition, m.offset) for m in batch)

        async def kill_when_a_third_is_acknowledged() -> None:
            while len(confirmed) < COUNT // 3:
                assert time.monotonic() < deadline, "no progress before the kill"
                await asyncio.sleep(0.05)
            killed.set()
            before_kill.extend(delivered)
            await asyncio.to_thread(own_cluster.nodes[coordinator].kill)

        await asyncio.gather(consume(), consume(), kill_when_a_third_is_acknowledged())
        assert produced - set(before_kill), "records were left to consume after the kill"
        return produced, delivered, confirmed

    produced, delivered, confirmed = run(main(), timeout=80)
    assert set(delivered) == produced, f"{len(produced - set(delivered))} records never delivered"
    redelivered = {record for record in delivered if delivered.count(record) > 1}
    assert not redelivered & confirmed, "acknowledged records were delivered again"


def test_the_dead_letter_topic_is_created_on_first_use(cluster: ClusterProcess) -> None:
    bootstrap = cluster.bootstrap

    async def main() -> tuple[str, str]:
        topic, group, coordinator, leaders = await setup(bootstrap, "first-dlq")
        partition = next(p for p in range(PARTITIONS) if leaders[p] != coordinator)
        await send_all(bootstrap, topic, [b"bad"], partition=partition)
        async with ShareConsumer(bootstrap, group_id=group, topics=[topic]) as consumer:
            (bad,) = await take(consumer, 1, ack=False)
            await bad.reject(reason="unreadable")
            await consumer.commit()
        return topic, group

    topic, group = run(main())
    dlq = f"{group}.dlq"
    [(dlq_partition, record)] = wait_records(bootstrap, dlq, 1)
    letter = DeadLetter.of(TopicPartition(dlq, dlq_partition), record)
    assert (letter.value, letter.original_topic, letter.reason) == (b"bad", topic, "rejected")
