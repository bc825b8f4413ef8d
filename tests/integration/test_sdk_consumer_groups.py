"""SDK consumers in groups against a real broker: every client-side assignor splitting the
partitions across three members (and taking over from one that leaves), cooperative-sticky
keeping the partitions it does not hand over, eager rebalances revoking everything, rebalance
listeners, KIP-848 groups, pattern subscriptions picking up new topics, static membership,
and a confluent-kafka consumer sharing a classic group with SDK consumers."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from confluent_kafka import Consumer as ConfluentConsumer
from group_helpers import (
    HEARTBEAT_MS,
    PARTITIONS,
    SESSION_MS,
    TP,
    all_partitions,
    create_topic,
    group_broker,
    own_group_broker,
    produce,
    shared_fairly,
    unique_group,
)
from kafka.admin import KafkaAdminClient, NewTopic
from sdk_consumer_helpers import FAST_GROUP, Polling, eventually, owned

from goqueue.client import Admin, Consumer, TopicPartition
from goqueue.client.group_member import ClassicMember
from goqueue.testing.process import BrokerProcess

__all__ = ["group_broker", "own_group_broker"]


class Events:
    """A rebalance listener (async methods) logging what it was told."""

    def __init__(self) -> None:
        self.log: list[tuple[str, set[TP]]] = []

    async def on_assign(self, partitions: list[TopicPartition]) -> None:
        self.log.append(("assign", {(tp.topic, tp.partition) for tp in partitions}))

    async def on_revoke(self, partitions: list[TopicPartition]) -> None:
        self.log.append(("revoke", {(tp.topic, tp.partition) for tp in partitions}))

    def on_lost(self, partitions: list[TopicPartition]) -> None:
        self.log.append(("lost", {(tp.topic, tp.partition) for tp in partitions}))


def member(bootstrap: str, group: str, topic: str, **options: Any) -> Consumer:
    settings: dict[str, Any] = {"auto_offset_reset": "earliest", **FAST_GROUP, **options}
    return Consumer(bootstrap, group_id=group, topics=[topic], **settings)


async def split(consumers: list[Consumer], topic: str, what: str) -> list[set[TP]]:
    """Wait until the members own every partition once, evenly (the final split: a KIP-848
    group passes through uneven ones while partitions move one member at a time)."""
    expected = all_partitions(topic)
    even = [len(expected) // len(consumers)] * len(consumers)

    def check() -> list[set[TP]] | None:
        shares = owned(consumers)
        fair = shared_fairly(shares, expected) and sorted(map(len, shares)) == even
        return shares if fair else None

    return await eventually(check, what)


async def protocol_of(bootstrap: str, group: str) -> str:
    async with Admin(bootstrap) as admin:
        return (await admin.describe_group(group)).protocol


@pytest.mark.parametrize("strategy", ["range", "roundrobin", "sticky", "cooperative-sticky"])
def test_each_assignor_splits_partitions_across_three_members(
    group_broker: BrokerProcess, strategy: str
) -> None:
    bootstrap = group_broker.bootstrap
    topic = create_topic(bootstrap, f"sdk-{strategy}")
    group = unique_group(f"sdk-{strategy}")

    async def scenario() -> None:
        polling = Polling()
        consumers = [
            member(bootstrap, group, topic, partition_assignment_strategy=[strategy])
            for _ in range(3)
        ]
        for consumer in consumers:
            await consumer.start()
            polling.start(consumer)
        try:
            await split(consumers, topic, f"three {strategy} members to split")
            assert await protocol_of(bootstrap, group) == strategy
            sent = produce(bootstrap, topic, 60)
            await eventually(lambda: len(polling.received) >= 60 or None, "60 messages")
            assert sorted(r.value for r in polling.received) == sorted(
                v for vs in sent.values() for v in vs
            )
            for consumer in consumers:
                got = {r.topic_partition for r in polling.by_consumer[id(consumer)]}
                assert got == consumer.assignment()
            await polling.stop(consumers[0])
            await consumers[0].close()
            await split(consumers[1:], topic, "two members to take over")
        finally:
            await polling.stop_all()
            for consumer in consumers:
                await consumer.close()

    asyncio.run(scenario())


def test_cooperative_sticky_keeps_the_partitions_it_does_not_hand_over(
    group_broker: BrokerProcess,
) -> None:
    bootstrap = group_broker.bootstrap
    topic = create_topic(bootstrap, "sdk-coop")
    group = unique_group("sdk-coop")

    async def scenario() -> None:
        polling = Polling()
        events = [Events(), Events()]
        first, second = (
            member(
                bootstrap,
                group,
                topic,
                partition_assignment_strategy=["cooperative-sticky"],
                listener=e,
            )
            for e in events
        )
        try:
            await first.start()
            polling.start(first)
            everything = all_partitions(topic)
            await eventually(lambda: owned([first])[0] == everything or None, "first owns all")
            await second.start()
            polling.start(second)
            shares = await split([first, second], topic, "two members to split")
            revoked = set().union(*(p for kind, p in events[0].log if kind == "revoke"))
            assert revoked == shares[1]
            assert not shares[0] & revoked, "a cooperative rebalance revokes only what moves"
            assert [kind for kind, _ in events[0].log] == ["assign", "revoke"]
            assert [kind for kind, _ in events[1].log] == ["assign"]
        finally:
            await polling.stop_all()
            await first.close()
            await second.close()
        assert events[0].log[-1] == ("revoke", shares[0])

    asyncio.run(scenario())


def test_eager_rebalance_revokes_everything_then_assigns(group_broker: BrokerProcess) -> None:
    bootstrap = group_broker.bootstrap
    topic = create_topic(bootstrap, "sdk-eager")
    group = unique_group("sdk-eager")

    async def scenario() -> None:
        polling = Polling()
        assigned: list[list[TopicPartition]] = []
        revoked: list[list[TopicPartition]] = []
        first = member(bootstrap, group, topic, on_assign=assigned.append, on_revoke=revoked.append)
        second = member(bootstrap, group, topic)
        try:
            await first.start()
            polling.start(first)
            await eventually(lambda: len(first.assignment()) == PARTITIONS or None, "all owned")
            await second.start()
            polling.start(second)
            shares = await split([first, second], topic, "two members to split")
            assert [len(a) for a in assigned] == [PARTITIONS, PARTITIONS // 2]
            assert [len(r) for r in revoked] == [PARTITIONS]
            assert {(tp.topic, tp.partition) for tp in assigned[-1]} == shares[0]
        finally:
            await polling.stop_all()
            await first.close()
            await second.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("assignor", ["uniform", "range"])
def test_kip848_group_shares_partitions(group_broker: BrokerProcess, assignor: str) -> None:
    bootstrap = group_broker.bootstrap
    topic = create_topic(bootstrap, f"sdk-848-{assignor}")
    group = unique_group(f"sdk-848-{assignor}")

    async def scenario() -> None:
        polling = Polling()
        events = [Events() for _ in range(3)]
        consumers = [
            member(
                bootstrap,
                group,
                topic,
                group_protocol="consumer",
                group_remote_assignor=assignor,
                listener=e,
            )
            for e in events
        ]
        try:
            for consumer in consumers:
                await consumer.start()
                polling.start(consumer)
            await split(consumers, topic, "three KIP-848 members to split")
            assert await protocol_of(bootstrap, group) == assignor
            sent = produce(bootstrap, topic, 60)
            await eventually(lambda: len(polling.received) >= 60 or None, "60 messages")
            assert sorted(r.value for r in polling.received) == sorted(
                v for vs in sent.values() for v in vs
            )
            await consumers[0].commit()
            await polling.stop(consumers[2])
            await consumers[2].close()
            await split(consumers[:2], topic, "two members to take over")
            assert all(kind == "assign" for e in events[:2] for kind, _ in e.log[:1])
            assert events[2].log[-1][0] == "revoke"
        finally:
            await polling.stop_all()
            for consumer in consumers:
                await consumer.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_pattern_subscription_picks_up_a_new_topic(
    group_broker: BrokerProcess, protocol: str
) -> None:
    bootstrap = group_broker.bootstrap
    prefix = unique_group(f"sdk-pattern-{protocol}")
    first = create_topic(bootstrap, prefix, 2)

    async def scenario() -> None:
        polling = Polling()
        consumer = Consumer(
            bootstrap,
            group_id=prefix,
            pattern=rf"{prefix}-.*",
            group_protocol=protocol,
            metadata_max_age_ms=300,
            auto_offset_reset="earliest",
            **FAST_GROUP,
        )
        try:
            await consumer.start()
            polling.start(consumer)
            await eventually(
                lambda: {tp.topic for tp in consumer.assignment()} == {first} or None,
                "the first topic's partitions",
            )
            second = create_topic(bootstrap, prefix, 3)
            await eventually(
                lambda: {tp.topic for tp in consumer.assignment()} == {first, second} or None,
                "the new topic's partitions too",
            )
            produce(bootstrap, second, 9, 3)
            await eventually(
                lambda: sum(r.topic == second for r in polling.received) == 9 or None,
                "the new topic's messages",
            )
        finally:
            await polling.stop_all()
            await consumer.close()

    asyncio.run(scenario())


def test_subscription_to_a_topic_created_later(group_broker: BrokerProcess) -> None:
    bootstrap = group_broker.bootstrap
    prefix = unique_group("sdk-later")

    async def scenario() -> None:
        polling = Polling()
        consumer = Consumer(
            bootstrap,
            group_id=prefix,
            topics=[f"{prefix}-topic"],
            metadata_max_age_ms=300,
            auto_offset_reset="earliest",
            **FAST_GROUP,
        )
        try:
            await consumer.start()
            polling.start(consumer)
            assert await consumer.getmany(timeout_ms=500) == {}
            assert consumer.assignment() == set()
            admin = KafkaAdminClient(bootstrap_servers=bootstrap)
            admin.create_topics([NewTopic(f"{prefix}-topic", 2, 1)])
            admin.close()
            await eventually(lambda: len(consumer.assignment()) == 2 or None, "both partitions")
            produce(bootstrap, f"{prefix}-topic", 4, 2)
            await eventually(lambda: len(polling.received) == 4 or None, "the 4 messages")
        finally:
            await polling.stop_all()
            await consumer.close()

    asyncio.run(scenario())


def test_static_member_restarts_without_a_rebalance(group_broker: BrokerProcess) -> None:
    bootstrap = group_broker.bootstrap
    topic = create_topic(bootstrap, "sdk-static")
    group = unique_group("sdk-static")

    def generation(consumer: Consumer) -> int:
        assert isinstance(consumer._member, ClassicMember)
        return consumer._member.generation

    async def scenario() -> None:
        polling = Polling()
        steady = member(bootstrap, group, topic, group_instance_id="steady")
        static = member(bootstrap, group, topic, group_instance_id="restarts")
        try:
            for consumer in (steady, static):
                await consumer.start()
                polling.start(consumer)
            shares = await split([steady, static], topic, "two static members to split")
            before = generation(steady)
            await polling.stop(static)
            await static.close()
            static = member(bootstrap, group, topic, group_instance_id="restarts")
            await static.start()
            polling.start(static)
            await eventually(lambda: owned([static])[0] == shares[1] or None, "the same share")
            assert generation(steady) == before
            assert owned([steady])[0] == shares[0]
        finally:
            await polling.stop_all()
            await steady.close()
            await static.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_members_reconnect_after_a_broker_restart(
    own_group_broker: BrokerProcess, protocol: str
) -> None:
    bootstrap = own_group_broker.bootstrap
    topic = create_topic(bootstrap, "sdk-restart")
    group = unique_group("sdk-restart")

    async def scenario() -> None:
        polling = Polling()
        consumer = member(bootstrap, group, topic, group_protocol=protocol)
        try:
            await consumer.start()
            polling.start(consumer)
            sent = produce(bootstrap, topic, 30)
            await eventually(lambda: len(polling.received) >= 30 or None, "the first 30")
            await asyncio.to_thread(own_group_broker.restart)
            sent_after = produce(bootstrap, topic, 30, start=30)
            for values in sent_after.values():
                sent[next(iter(sent))].extend(values)
            expected = {v for vs in sent.values() for v in vs}
            await eventually(
                lambda: expected <= {r.value for r in polling.received} or None,
                "every message, including those produced after the restart",
            )
            assert len(consumer.assignment()) == PARTITIONS
        finally:
            await polling.stop_all()
            await consumer.close()

    asyncio.run(scenario())


class ConfluentMember:
    """A confluent-kafka consumer polling in a thread, following its partitions through its
    rebalance callbacks (asking librdkafka while the thread polls would deadlock)."""

    def __init__(self, bootstrap: str, group: str, topic: str, strategy: str) -> None:
        self.partitions: set[TP] = set()
        self.values: list[bytes] = []
        self._stop = threading.Event()
        self.consumer = ConfluentConsumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "auto.offset.reset": "earliest",
                "partition.assignment.strategy": strategy,
                "session.timeout.ms": SESSION_MS,
                "heartbeat.interval.ms": HEARTBEAT_MS,
            }
        )
        self.consumer.subscribe([topic], on_assign=self._assign, on_revoke=self._revoke)
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _assign(self, _consumer: Any, partitions: list[Any]) -> None:
        self.partitions |= {(p.topic, p.partition) for p in partitions}

    def _revoke(self, _consumer: Any, partitions: list[Any]) -> None:
        self.partitions -= {(p.topic, p.partition) for p in partitions}

    def _poll(self) -> None:
        while not self._stop.is_set():
            message = self.consumer.poll(0.2)
            if message is not None and not message.error():
                self.values.append(message.value())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.consumer.close()


@pytest.mark.parametrize("leader", ["sdk", "confluent"])
@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_confluent_kafka_consumer_shares_a_group_with_sdk_consumers(
    group_broker: BrokerProcess, strategy: str, leader: str
) -> None:
    """Whichever client leads the group (the first member runs the assignor), both read the
    other's subscription and assignment bytes."""
    bootstrap = group_broker.bootstrap
    topic = create_topic(bootstrap, "sdk-mixed")
    group = unique_group("sdk-mixed")
    expected = all_partitions(topic)

    async def scenario() -> None:
        polling = Polling()
        consumers = [
            member(bootstrap, group, topic, partition_assignment_strategy=[strategy])
            for _ in range(2)
        ]
        other: ConfluentMember | None = None
        try:
            if leader == "confluent":
                other = ConfluentMember(bootstrap, group, topic, strategy)
                await eventually(lambda: other.partitions == expected or None, "a leader")
            for consumer in consumers:
                await consumer.start()
                polling.start(consumer)
            if other is None:
                await eventually(lambda: set().union(*owned(consumers)) == expected or None, "")
                other = ConfluentMember(bootstrap, group, topic, strategy)

            def split() -> bool | None:
                assert other is not None
                shares = [*owned(consumers), set(other.partitions)]
                even = sorted(map(len, shares)) == [2, 2, 2]
                return (shared_fairly(shares, expected) and even) or None

            await eventually(split, "SDK and confluent-kafka members to split the partitions")
            assert await protocol_of(bootstrap, group) == strategy
            sent = produce(bootstrap, topic, 60)
            await eventually(
                lambda: len(polling.received) + len(other.values) >= 60 or None, "60 messages"
            )
            everything = [r.value for r in polling.received] + other.values
            assert sorted(everything) == sorted(v for vs in sent.values() for v in vs)
            assert other.values, "the confluent-kafka member consumed its share"
        finally:
            await polling.stop_all()
            for consumer in consumers:
                await consumer.close()
            if other is not None:
                await asyncio.to_thread(other.close)

    asyncio.run(scenario())
