"""confluent-kafka (librdkafka) against a real broker: AdminClient, every codec, offsets,
auto-creation and a 100,000-message round trip with every message checked.

librdkafka refuses a consumer without `group.id`, so consumers name one but only ever use
manual assignment and never commit: the broker has no group coordinator yet.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from client_compat import (
    CODECS,
    ROUND_TRIP_COUNT,
    Sample,
    assert_round_trip,
    collect,
    round_trip_value,
    samples,
    unique_topic,
    wait_for,
)
from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from goqueue.testing.process import BrokerProcess

TIMEOUT_S = 15.0


@pytest.fixture(scope="module")
def admin(shared_broker: BrokerProcess) -> AdminClient:
    return AdminClient({"bootstrap.servers": shared_broker.bootstrap})


def topic_names(admin: AdminClient) -> set[str]:
    return set(admin.list_topics(timeout=TIMEOUT_S).topics)


def create_topic(admin: AdminClient, partitions: int = 1) -> str:
    name = unique_topic("confluent")
    (future,) = admin.create_topics([NewTopic(name, partitions, 1)]).values()
    future.result(TIMEOUT_S)
    return name


def creation_error(admin: AdminClient, topic: NewTopic) -> int:
    """The KafkaError code with which the broker refuses to create `topic`."""
    (future,) = admin.create_topics([topic], request_timeout=TIMEOUT_S).values()
    with pytest.raises(KafkaException) as refused:
        future.result(TIMEOUT_S)
    code: int = refused.value.args[0].code()
    return code


def produce(bootstrap: str, topic: str, records: list[Sample], **config: Any) -> list[int]:
    """Send `records` to partition 0 and return the offsets the broker acknowledged."""
    reports: list[Message] = []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, **config})
    for r in records:
        producer.produce(
            topic,
            value=r.value,
            key=r.key,
            partition=0,
            timestamp=r.timestamp_ms,
            headers=list(r.headers),
            on_delivery=lambda err, msg: reports.append(msg),
        )
    assert producer.flush(TIMEOUT_S) == 0
    assert [m.error() for m in reports] == [None] * len(records)
    return [m.offset() for m in reports]


@pytest.fixture
def consumer(shared_broker: BrokerProcess) -> Iterator[Consumer]:
    client = Consumer(
        {
            "bootstrap.servers": shared_broker.bootstrap,
            "group.id": "compat-never-joined",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
        }
    )
    yield client
    client.close()


def consume(consumer: Consumer, count: int, batch: int = 1000) -> list[Message]:
    """consume() until `count` messages arrived; any error message fails the test."""

    def fetch(missing: int) -> list[Message]:
        messages = consumer.consume(num_messages=min(batch, missing), timeout=0.5)
        assert [m.error() for m in messages] == [None] * len(messages)
        return messages

    return collect(fetch, count, "messages")


def as_sample(message: Message) -> Sample:
    timestamp_type, timestamp = message.timestamp()
    assert timestamp_type == TIMESTAMP_CREATE_TIME
    return Sample(message.key(), message.value(), tuple(message.headers() or ()), timestamp)


def test_create_list_delete_topics(admin: AdminClient) -> None:
    name = unique_topic("confluent-admin")
    topic = NewTopic(name, 3, 1, config={"retention.ms": "600000", "cleanup.policy": "delete"})
    (created,) = admin.create_topics([topic], request_timeout=TIMEOUT_S).values()
    assert created.result(TIMEOUT_S) is None
    listed = admin.list_topics(topic=name, timeout=TIMEOUT_S).topics[name]
    assert listed.error is None
    assert sorted(listed.partitions) == [0, 1, 2]
    assert name in topic_names(admin)

    assert creation_error(admin, NewTopic(name, 1, 1)) == KafkaError.TOPIC_ALREADY_EXISTS

    (deleted,) = admin.delete_topics([name], request_timeout=TIMEOUT_S).values()
    assert deleted.result(TIMEOUT_S) is None
    assert name not in topic_names(admin)


def test_create_topics_validate_only_creates_nothing(admin: AdminClient) -> None:
    name = unique_topic("confluent-validate")
    futures = admin.create_topics([NewTopic(name, 2, 1)], validate_only=True)
    assert futures[name].result(TIMEOUT_S) is None
    assert name not in topic_names(admin)

    bad_config = NewTopic(name, 1, 1, config={"retention.ms": "forever"})
    assert creation_error(admin, bad_config) == KafkaError.INVALID_CONFIG
    assert creation_error(admin, NewTopic("bad/name", 1, 1)) == KafkaError.TOPIC_EXCEPTION
    assert name not in topic_names(admin)


def test_describe_cluster_names_this_broker(admin: AdminClient) -> None:
    cluster = admin.describe_cluster(request_timeout=TIMEOUT_S).result(TIMEOUT_S)
    assert cluster.cluster_id
    assert [(node.id, node.host) for node in cluster.nodes] == [(0, "127.0.0.1")]
    assert cluster.controller.id == 0


@pytest.mark.parametrize("codec", CODECS)
def test_codec_round_trip_keeps_keys_headers_timestamps(
    shared_broker: BrokerProcess, admin: AdminClient, consumer: Consumer, codec: str
) -> None:
    topic = create_topic(admin)
    sent = samples(50, codec)
    offsets = produce(shared_broker.bootstrap, topic, sent, **{"compression.type": codec})
    assert offsets == list(range(len(sent)))

    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    messages = consume(consumer, len(sent))
    assert [m.offset() for m in messages] == offsets
    assert [as_sample(m) for m in messages] == sent


def test_list_offsets_earliest_latest_and_max_timestamp(
    shared_broker: BrokerProcess, admin: AdminClient, consumer: Consumer
) -> None:
    topic = create_topic(admin, partitions=2)
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    assert consumer.get_watermark_offsets(tp0, timeout=TIMEOUT_S, cached=False) == (0, 0)

    sent = samples(8, "offsets", step_ms=10)
    newest = Sample(b"newest", b"v", (), sent[-1].timestamp_ms + 5_000)
    produce(shared_broker.bootstrap, topic, [*sent[:3], newest, *sent[3:]])
    assert consumer.get_watermark_offsets(tp0, timeout=TIMEOUT_S, cached=False) == (0, 9)
    assert consumer.get_watermark_offsets(tp1, timeout=TIMEOUT_S, cached=False) == (0, 0)

    specs = {tp0: OffsetSpec.earliest(), tp1: OffsetSpec.latest()}
    answers = {tp: f.result(TIMEOUT_S) for tp, f in admin.list_offsets(specs).items()}
    assert (answers[tp0].offset, answers[tp1].offset) == (0, 0)
    latest = admin.list_offsets({tp0: OffsetSpec.latest()})[tp0].result(TIMEOUT_S)
    assert latest.offset == 9
    newest_info = admin.list_offsets({tp0: OffsetSpec.max_timestamp()})[tp0].result(TIMEOUT_S)
    assert (newest_info.offset, newest_info.timestamp) == (3, newest.timestamp_ms)


def test_consume_from_timestamp(
    shared_broker: BrokerProcess, admin: AdminClient, consumer: Consumer
) -> None:
    topic = create_topic(admin)
    sent = samples(10, "by-time", step_ms=1000)
    produce(shared_broker.bootstrap, topic, sent)

    def offset_for(timestamp_ms: int) -> int:
        (found,) = consumer.offsets_for_times(
            [TopicPartition(topic, 0, timestamp_ms)], timeout=TIMEOUT_S
        )
        assert found.error is None
        offset: int = found.offset
        return offset

    assert offset_for(sent[5].timestamp_ms - 300) == 5
    assert offset_for(sent[2].timestamp_ms) == 2
    assert offset_for(sent[-1].timestamp_ms + 1) == -1

    consumer.assign([TopicPartition(topic, 0, offset_for(sent[5].timestamp_ms - 300))])
    messages = consume(consumer, len(sent) - 5)
    assert [m.offset() for m in messages] == list(range(5, len(sent)))
    assert [as_sample(m) for m in messages] == sent[5:]


def test_produce_to_unknown_topic_creates_it(
    shared_broker: BrokerProcess, admin: AdminClient
) -> None:
    topic = unique_topic("confluent-auto")
    assert topic not in topic_names(admin)
    assert produce(shared_broker.bootstrap, topic, samples(2, "auto")) == [0, 1]
    wait_for(lambda: True if topic in topic_names(admin) else None, f"{topic} listed")


def test_100k_messages_round_trip_in_order(
    shared_broker: BrokerProcess, admin: AdminClient, consumer: Consumer
) -> None:
    topic = create_topic(admin)
    failures: list[KafkaError] = []
    producer = Producer(
        {
            "bootstrap.servers": shared_broker.bootstrap,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 2 * ROUND_TRIP_COUNT,
        }
    )
    for i in range(ROUND_TRIP_COUNT):
        producer.produce(
            topic,
            round_trip_value(i),
            partition=0,
            on_delivery=lambda err, _msg: err is not None and failures.append(err),
        )
    assert producer.flush(60) == 0
    assert failures == []
    tp = TopicPartition(topic, 0)
    assert consumer.get_watermark_offsets(tp, timeout=TIMEOUT_S) == (0, ROUND_TRIP_COUNT)

    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    messages = consume(consumer, ROUND_TRIP_COUNT, batch=10_000)
    assert_round_trip([m.value() for m in messages])
    assert [m.offset() for m in messages] == list(range(ROUND_TRIP_COUNT))
