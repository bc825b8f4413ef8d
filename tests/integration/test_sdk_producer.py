"""The SDK producer against a real broker: what it sends is stored exactly as sent (codecs,
headers, timestamps, partitions), acks, delivery futures and callbacks, flush, batches split
under `max.message.bytes`, and what confluent-kafka makes of its records and keys."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest
from client_compat import (
    CODECS,
    DEADLINE_S,
    ROUND_TRIP_COUNT,
    assert_round_trip,
    collect,
    round_trip_value,
    samples,
    unique_topic,
)
from confluent_kafka import Consumer as ConfluentConsumer
from confluent_kafka import Message
from confluent_kafka import Producer as ConfluentProducer
from confluent_kafka import TopicPartition as ConfluentTopicPartition
from sdk_producer_support import StoredBatch, new_topic, run, stored_batches, stored_values

from goqueue.client import Admin, Partitioner, Producer, RecordMetadata
from goqueue.client.errors import MessageTooLargeError, UnknownTopicOrPartitionError
from goqueue.client.partitioner import partition_for_key
from goqueue.records.compression import Compression
from goqueue.testing.process import BrokerProcess

pytestmark = pytest.mark.integration


def confluent_read(bootstrap: str, topic: str, count: int) -> list[Message]:
    """The first `count` messages of partition 0 as confluent-kafka's consumer gets them."""
    consumer = ConfluentConsumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_topic("sdk-producer-reader"),
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.assign([ConfluentTopicPartition(topic, 0, 0)])

        def poll(missing: int) -> list[Message]:
            messages = consumer.consume(min(missing, 10_000), timeout=1)
            assert all(m.error() is None for m in messages)
            return messages

        return collect(poll, count, "messages")
    finally:
        consumer.close()


def test_send_returns_where_each_record_landed(shared_broker: BrokerProcess) -> None:
    async def scenario() -> tuple[str, list[RecordMetadata], list[StoredBatch]]:
        topic = await new_topic(shared_broker.bootstrap)
        async with Producer(shared_broker.bootstrap) as producer:
            sent = [
                await producer.send(topic, b"first", key=b"k1", timestamp=1_700_000_000_000),
                await producer.send(topic, "second", headers={"trace": "abc", "empty": None}),
                await producer.send(topic, None, key="k3", headers=[("h", b"1"), ("h", b"2")]),
            ]
        return topic, sent, await stored_batches(shared_broker.bootstrap, topic)

    before = int(time.time() * 1000)
    topic, sent, batches = run(scenario())
    assert [(m.topic, m.partition, m.offset) for m in sent] == [(topic, 0, i) for i in range(3)]
    assert sent[0].timestamp == 1_700_000_000_000
    assert before <= sent[1].timestamp <= int(time.time() * 1000)
    assert all(m.schedule_id is None for m in sent)
    records = [record for _, rs in batches for record in rs]
    assert [(r.key, r.value, r.headers) for r in records] == [
        (b"k1", b"first", ()),
        (None, b"second", (("trace", b"abc"), ("empty", None))),
        (b"k3", None, (("h", b"1"), ("h", b"2"))),
    ]
    assert [r.timestamp_ms for r in records] == [m.timestamp for m in sent]
    # Idempotent by default: one producer id, sequence numbers counting from 0.
    assert {header.producer_id for header, _ in batches} != {-1}
    assert len({header.producer_id for header, _ in batches}) == 1
    assert [header.base_sequence for header, _ in batches] == [0, 1, 2]


@pytest.mark.parametrize("codec", CODECS)
def test_every_codec_is_stored_as_sent_and_reads_back(
    shared_broker: BrokerProcess, codec: str
) -> None:
    records = samples(500, codec)

    async def scenario() -> tuple[str, list[StoredBatch]]:
        topic = await new_topic(shared_broker.bootstrap)
        compression: Any = None if codec == "none" else codec
        async with Producer(shared_broker.bootstrap, compression=compression) as producer:
            for r in records:
                await producer.enqueue(
                    topic, r.value, r.key, list(r.headers), timestamp=r.timestamp_ms
                )
        return topic, await stored_batches(shared_broker.bootstrap, topic)

    topic, batches = run(scenario())
    assert {header.compression for header, _ in batches} == {Compression[codec]}
    sent = [(r.key, r.value, r.headers, r.timestamp_ms) for r in records]
    assert [(r.key, r.value, r.headers, r.timestamp_ms) for _, rs in batches for r in rs] == sent
    read = confluent_read(shared_broker.bootstrap, topic, len(records))
    assert [(m.key(), m.value(), tuple(m.headers()), m.timestamp()[1]) for m in read] == sent


@pytest.mark.parametrize("acks", [0, 1, "all"])
def test_acks(shared_broker: BrokerProcess, acks: Any) -> None:
    async def scenario() -> tuple[bool, list[RecordMetadata], list[StoredBatch]]:
        topic = await new_topic(shared_broker.bootstrap)
        async with Producer(shared_broker.bootstrap, acks=acks) as producer:
            futures = [await producer.enqueue(topic, b"%d" % i) for i in range(200)]
            await producer.flush()
            delivered = [f.result() for f in futures]
        stored = await stored_batches(shared_broker.bootstrap, topic, at_least=200)
        return producer.idempotent, delivered, stored

    idempotent, delivered, batches = run(scenario())
    assert idempotent == (acks == "all")
    expected_offsets = [-1] * 200 if acks == 0 else list(range(200))
    assert [m.offset for m in delivered] == expected_offsets
    assert stored_values(batches) == [b"%d" % i for i in range(200)]


def test_explicit_partitions_and_a_partition_that_does_not_exist(
    shared_broker: BrokerProcess,
) -> None:
    async def scenario() -> list[RecordMetadata]:
        topic = await new_topic(shared_broker.bootstrap, partitions=3)
        async with Producer(shared_broker.bootstrap) as producer:
            sent = [await producer.send(topic, b"v", key=b"same", partition=p) for p in (2, 0, 1)]
            with pytest.raises(UnknownTopicOrPartitionError, match="no partition 3"):
                await producer.send(topic, b"v", partition=3)
        return sent

    assert [(m.partition, m.offset) for m in run(scenario())] == [(2, 0), (0, 0), (1, 0)]


def test_partitions_added_later_are_used_once_metadata_is_refreshed(
    shared_broker: BrokerProcess,
) -> None:
    key = next(k for k in (b"key-%d" % i for i in range(100)) if partition_for_key(k, 4) == 3)

    async def scenario() -> tuple[int, int]:
        topic = await new_topic(shared_broker.bootstrap)
        async with Producer(shared_broker.bootstrap, metadata_max_age_ms=100) as producer:
            before = (await producer.send(topic, b"v", key)).partition
            async with Admin(shared_broker.bootstrap) as admin:
                await admin.create_partitions(topic, 4)
            deadline = time.monotonic() + DEADLINE_S
            while (after := (await producer.send(topic, b"v", key)).partition) == before:
                assert time.monotonic() < deadline, "the producer never saw the new partitions"
                await asyncio.sleep(0.05)
        return before, after

    assert run(scenario()) == (0, 3)


def test_delivery_futures_and_callbacks_report_success_and_failure(
    shared_broker: BrokerProcess,
) -> None:
    reports: list[RecordMetadata | BaseException] = []

    async def scenario() -> tuple[list[RecordMetadata], BaseException | None]:
        topic = await new_topic(shared_broker.bootstrap, **{"max.message.bytes": "2000"})
        async with Producer(shared_broker.bootstrap, linger_ms=50) as producer:
            futures = [
                await producer.enqueue(topic, b"small %d" % i, on_delivery=reports.append)
                for i in range(5)
            ]
            too_big = await producer.enqueue(topic, b"x" * 5000, on_delivery=reports.append)
            await producer.flush()
            return [f.result() for f in futures], too_big.exception()

    delivered, error = run(scenario())
    assert [m.offset for m in delivered] == list(range(5))
    assert isinstance(error, MessageTooLargeError)
    assert reports[:5] == delivered
    assert reports[5] is error


def test_flush_sends_lingering_records_at_once(shared_broker: BrokerProcess) -> None:
    async def scenario() -> tuple[float, list[bool], list[bool]]:
        topic = await new_topic(shared_broker.bootstrap)
        async with Producer(shared_broker.bootstrap, linger_ms=60_000) as producer:
            await producer.enqueue(topic, b"warm up")
            await producer.flush()  # metadata and producer id are in place
            futures = [await producer.enqueue(topic, b"%d" % i) for i in range(10)]
            await asyncio.sleep(0)
            lingering = [f.done() for f in futures]
            start = time.monotonic()
            await producer.flush()
            return time.monotonic() - start, lingering, [f.done() for f in futures]

    elapsed, lingering, flushed = run(scenario())
    assert not any(lingering)
    assert all(flushed)
    assert elapsed < 5, "flush waited for the linger time"


def test_batches_over_max_message_bytes_are_split_until_they_fit(
    shared_broker: BrokerProcess,
) -> None:
    values = [b"record %05d " % i + b"x" * 100 for i in range(3000)]

    async def scenario() -> tuple[list[RecordMetadata], list[StoredBatch]]:
        topic = await new_topic(shared_broker.bootstrap, **{"max.message.bytes": "16384"})
        async with Producer(
            shared_broker.bootstrap, batch_size=1_000_000, linger_ms=60_000
        ) as producer:
            futures = [await producer.enqueue(topic, value) for value in values]
            await producer.flush()
            delivered = [f.result() for f in futures]
        return delivered, await stored_batches(shared_broker.bootstrap, topic)

    delivered, batches = run(scenario())
    assert [m.offset for m in delivered] == list(range(len(values)))
    assert stored_values(batches) == values
    assert len(batches) > 1
    assert max(header.batch_length + 12 for header, _ in batches) <= 16384


def test_keyless_records_stick_to_a_partition_until_its_batch_is_sent(
    shared_broker: BrokerProcess,
) -> None:
    async def scenario() -> tuple[list[int], list[int], list[int]]:
        topic = await new_topic(shared_broker.bootstrap, partitions=4)
        async with Producer(shared_broker.bootstrap, linger_ms=60_000) as producer:
            batched = [await producer.enqueue(topic, b"v") for _ in range(100)]
            await producer.flush()
        async with Producer(shared_broker.bootstrap) as producer:
            one_by_one = [(await producer.send(topic, b"v")).partition for _ in range(20)]
        async with Producer(shared_broker.bootstrap, partitioner=Partitioner("round_robin")) as p:
            round_robin = [(await p.send(topic, b"v")).partition for _ in range(8)]
        return [f.result().partition for f in batched], one_by_one, round_robin

    batched, one_by_one, round_robin = run(scenario())
    assert len(set(batched)) == 1
    # Every send waits for its batch to go out, so every record opens a new batch elsewhere.
    assert all(a != b for a, b in itertools.pairwise(one_by_one))
    assert round_robin == [0, 1, 2, 3, 0, 1, 2, 3]


def test_keys_land_on_the_partitions_confluent_kafka_chooses(shared_broker: BrokerProcess) -> None:
    keys = [f"customer-{i}".encode() for i in range(300)] + [b"", b"a", "ключ".encode()]
    counts = (1, 2, 3, 7, 12, 32)

    def confluent_partitions(topic: str) -> list[int]:
        chosen: dict[bytes, int] = {}
        producer = ConfluentProducer(
            {"bootstrap.servers": shared_broker.bootstrap, "partitioner": "murmur2_random"}
        )
        for key in keys:
            producer.produce(
                topic,
                b"v",
                key,
                on_delivery=lambda err, msg: chosen.__setitem__(msg.key(), msg.partition()),
            )
        assert producer.flush(30) == 0
        return [chosen[key] for key in keys]

    async def scenario() -> dict[int, tuple[str, str, list[int]]]:
        results = {}
        async with Producer(shared_broker.bootstrap) as producer:
            for count in counts:
                ours = await new_topic(shared_broker.bootstrap, partitions=count)
                theirs = await new_topic(shared_broker.bootstrap, partitions=count)
                futures = [await producer.enqueue(ours, b"v", key) for key in keys]
                await producer.flush()
                results[count] = (ours, theirs, [f.result().partition for f in futures])
        return results

    for count, (_, theirs, ours) in run(scenario()).items():
        assert ours == confluent_partitions(theirs), f"{count} partitions"
        assert ours == [partition_for_key(key, count) for key in keys]


def test_confluent_kafka_reads_the_100000_message_round_trip(shared_broker: BrokerProcess) -> None:
    async def produce() -> tuple[str, float]:
        topic = await new_topic(shared_broker.bootstrap)
        start = time.monotonic()
        async with Producer(shared_broker.bootstrap, compression="lz4") as producer:
            futures = [
                await producer.enqueue(topic, round_trip_value(i), key=b"%d" % i)
                for i in range(ROUND_TRIP_COUNT)
            ]
            await producer.flush()
            assert [f.result().offset for f in futures] == list(range(ROUND_TRIP_COUNT))
        return topic, time.monotonic() - start

    topic, elapsed = run(produce())
    read = confluent_read(shared_broker.bootstrap, topic, ROUND_TRIP_COUNT)
    assert_round_trip([m.value() for m in read])
    assert elapsed < 60, f"producing {ROUND_TRIP_COUNT} messages took {elapsed:.1f}s"
