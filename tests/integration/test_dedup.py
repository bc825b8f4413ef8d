"""Content dedup (`goqueue.dedup.window.ms`) against a real broker: a message sent twice within
the window is stored once and both sends succeed with its offset; after the window it is stored
again; the window survives a SIGKILL; a batch with some repeats leaves holes that every client
reads past."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as AioTopicPartition
from client_compat import DEADLINE_S, read_back, unique_topic
from confluent_kafka import OFFSET_BEGINNING, Consumer
from confluent_kafka import TopicPartition as ConfluentTopicPartition
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from goqueue.broker.dedup import MSG_ID_HEADER
from goqueue.client.cluster import Cluster
from goqueue.client.metadata import TopicPartition as GoqueueTopicPartition
from goqueue.client.producer import produce
from goqueue.records.builder import NewRecord
from goqueue.testing.process import BrokerProcess

pytestmark = pytest.mark.integration

LONG_WINDOW_MS = 600_000
SHORT_WINDOW_MS = 1_000


def create_topic(broker: BrokerProcess, window_ms: int) -> str:
    name = unique_topic("dedup")
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        admin.create_topics(
            [NewTopic(name, 1, 1, topic_configs={"goqueue.dedup.window.ms": str(window_ms)})]
        )
    finally:
        admin.close()
    return name


@pytest.fixture
def producer(shared_broker: BrokerProcess) -> Iterator[KafkaProducer]:
    """kafka-python's default producer, idempotent: its sequence numbers tell a retry from a
    second send, so only content dedup can catch the second send."""
    client = KafkaProducer(bootstrap_servers=shared_broker.bootstrap, linger_ms=0)
    yield client
    client.close()


def send(producer: KafkaProducer, topic: str, value: bytes, **kwargs: Any) -> int:
    return int(producer.send(topic, value=value, partition=0, **kwargs).get(DEADLINE_S).offset)


def stored(bootstrap: str, topic: str) -> list[tuple[int, bytes]]:
    return read_back(bootstrap, topic)[0]


def test_a_message_sent_twice_within_the_window_is_stored_once(
    shared_broker: BrokerProcess, producer: KafkaProducer
) -> None:
    topic = create_topic(shared_broker, LONG_WINDOW_MS)
    first = send(producer, topic, b"order 1 paid")
    assert send(producer, topic, b"order 2 paid") == first + 1
    assert send(producer, topic, b"order 1 paid") == first
    assert send(producer, topic, b"order 1 paid", key=b"other key") == first + 2
    assert stored(shared_broker.bootstrap, topic) == [
        (0, b"order 1 paid"),
        (1, b"order 2 paid"),
        (2, b"order 1 paid"),
    ]


def test_the_msg_id_header_names_the_message(
    shared_broker: BrokerProcess, producer: KafkaProducer
) -> None:
    topic = create_topic(shared_broker, LONG_WINDOW_MS)
    assert send(producer, topic, b"v1", headers=[(MSG_ID_HEADER, b"evt-42")]) == 0
    assert send(producer, topic, b"v2", headers=[(MSG_ID_HEADER, b"evt-42")]) == 0
    assert send(producer, topic, b"v1", headers=[(MSG_ID_HEADER, b"evt-43")]) == 1
    assert [value for _, value in stored(shared_broker.bootstrap, topic)] == [b"v1", b"v1"]


def test_after_the_window_the_message_is_stored_again(
    shared_broker: BrokerProcess, producer: KafkaProducer
) -> None:
    topic = create_topic(shared_broker, SHORT_WINDOW_MS)
    assert send(producer, topic, b"tick") == 0
    assert send(producer, topic, b"tick") == 0
    time.sleep(SHORT_WINDOW_MS / 1000 + 0.1)  # the window passing is the subject of this test
    assert send(producer, topic, b"tick") == 1
    assert [value for _, value in stored(shared_broker.bootstrap, topic)] == [b"tick", b"tick"]


def test_the_window_survives_a_sigkill(broker: BrokerProcess) -> None:
    topic = create_topic(broker, LONG_WINDOW_MS)
    client = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0)
    try:
        assert send(client, topic, b"once") == 0
        assert send(client, topic, b"twice") == 1
    finally:
        client.close()
    broker.kill()
    broker.start()
    client = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0)
    try:
        assert send(client, topic, b"once") == 0
        assert send(client, topic, b"third") == 2
    finally:
        client.close()
    assert [value for _, value in stored(broker.bootstrap, topic)] == [b"once", b"twice", b"third"]
    assert "dedup window loaded with 2 message ids" in broker.log_text()


def test_repeats_inside_a_batch_leave_holes_that_consumers_read_past(
    shared_broker: BrokerProcess,
) -> None:
    """[a, b] then [c, a, d, b] (one batch each): the second is stored as c, d at offsets 2 and
    4, with holes at 3 and 5 where the repeats were, as compaction leaves them. Every client
    reads c, d and then e, sent after the trailing hole."""
    topic = create_topic(shared_broker, LONG_WINDOW_MS)
    tp = GoqueueTopicPartition(topic, 0)

    async def send_batches() -> list[int]:
        async with Cluster(shared_broker.bootstrap) as cluster:
            offsets = []
            for values in ([b"a", b"b"], [b"c", b"a", b"d", b"b"], [b"e"]):
                records = [NewRecord(None, value) for value in values]
                offsets.append((await produce(cluster, {tp: records}))[tp].base_offset)
            return offsets

    assert asyncio.run(send_batches()) == [0, 2, 6]
    expected = [(0, b"a"), (1, b"b"), (2, b"c"), (4, b"d"), (6, b"e")]
    assert stored(shared_broker.bootstrap, topic) == expected
    assert read_with_confluent(shared_broker.bootstrap, topic, len(expected)) == expected
    assert asyncio.run(read_with_aiokafka(shared_broker.bootstrap, topic, len(expected))) == (
        expected
    )


def read_with_confluent(bootstrap: str, topic: str, count: int) -> list[tuple[int, bytes]]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "dedup-holes", "enable.auto.commit": False}
    )
    try:
        consumer.assign([ConfluentTopicPartition(topic, 0, OFFSET_BEGINNING)])
        got: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + DEADLINE_S
        while len(got) < count:
            assert time.monotonic() < deadline, f"confluent-kafka read only {got}"
            for message in consumer.consume(num_messages=count, timeout=0.5):
                assert message.error() is None, message.error()
                got.append((message.offset(), message.value()))
        return got
    finally:
        consumer.close()


async def read_with_aiokafka(bootstrap: str, topic: str, count: int) -> list[tuple[int, bytes]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tp = AioTopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        got: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + DEADLINE_S
        while len(got) < count:
            assert time.monotonic() < deadline, f"aiokafka read only {got}"
            for records in (await consumer.getmany(timeout_ms=500)).values():
                got += [(record.offset, record.value) for record in records]
        return got
    finally:
        await consumer.stop()
