"""Delayed messages with the SDK: `send(delay=...)` and `send(deliver_at=...)` with the
idempotent producer, arrival in due order and never early, the schedule id in the metadata,
`Admin.cancel_delayed`, and a retried batch parked once."""

from __future__ import annotations

import asyncio
import datetime

import pytest
from delayed_helpers import Arrival, Reader, create_delayed_topic, delayed_broker

from goqueue.client import Producer
from goqueue.client.admin import Admin
from goqueue.client.cluster import Cluster
from goqueue.client.errors import KafkaError
from goqueue.client.metadata import TopicPartition
from goqueue.client.producer import produce_batches
from goqueue.records.builder import NewRecord, build_batch
from goqueue.testing.process import BrokerProcess

__all__ = ["delayed_broker"]


def consume(bootstrap: str, topic: str, count: int, linger_s: float = 0.0) -> list[Arrival]:
    """`count` records from the topic's start, and whatever else arrives within `linger_s`.
    (Read with confluent-kafka: the SDK consumer misses records appended after it caught up
    with an empty partition, a bug of its own.)"""
    reader = Reader(bootstrap, topic)
    try:
        got = reader.read(count)
        return got + (reader.poll(linger_s) if linger_s else [])
    finally:
        reader.close()


def test_sdk_sends_with_delays_arrive_in_due_order_and_never_early(
    delayed_broker: BrokerProcess,
) -> None:
    topic = create_delayed_topic(delayed_broker.bootstrap, "delayed-sdk")

    async def scenario() -> None:
        async with Producer(delayed_broker.bootstrap) as producer:
            start = datetime.datetime.now(datetime.UTC)
            sends = []
            for i in range(30):
                delay = datetime.timedelta(milliseconds=200 + (i * 3571) % 4000)
                if i % 2:
                    sends.append(producer.send(topic, b"s%d" % i, partition=0, delay=delay))
                else:
                    sends.append(
                        producer.send(topic, b"s%d" % i, partition=0, deliver_at=start + delay)
                    )
            results = await asyncio.gather(*sends)
        ids = [r.schedule_id for r in results]
        assert all(i is not None and i.startswith(f"{topic}/") for i in ids)
        assert len(set(ids)) == 30
        got = consume(delayed_broker.bootstrap, topic, 30)
        scheduled = [a.scheduled_ms for a in got]
        assert scheduled == sorted(scheduled)
        assert sorted(a.value for a in got) == sorted(b"s%d" % i for i in range(30))
        assert {a.headers["goqueue.schedule-id"].decode() for a in got} == set(ids)
        for arrival in got:
            assert arrival.received_ms >= arrival.scheduled_ms
            assert arrival.received_ms - arrival.scheduled_ms < 1000

    asyncio.run(scenario())


def test_admin_cancel_delayed_keeps_a_message_from_ever_arriving(
    delayed_broker: BrokerProcess,
) -> None:
    topic = create_delayed_topic(delayed_broker.bootstrap, "delayed-sdk-cancel")

    async def scenario() -> None:
        async with Producer(delayed_broker.bootstrap) as producer:
            doomed = await producer.send(
                topic, b"doomed", partition=0, delay=datetime.timedelta(seconds=2)
            )
            kept = await producer.send(
                topic, b"kept", partition=0, delay=datetime.timedelta(seconds=3)
            )
        assert doomed.schedule_id is not None and kept.schedule_id is not None
        async with Admin(delayed_broker.bootstrap) as admin:
            await admin.cancel_delayed(doomed.schedule_id)
            with pytest.raises(KafkaError, match="no message with this id is pending"):
                await admin.cancel_delayed(doomed.schedule_id)
        got = consume(delayed_broker.bootstrap, topic, 1, linger_s=1.0)
        assert [a.value for a in got] == [b"kept"]

    asyncio.run(scenario())


def test_an_idempotent_producer_parks_and_appends_in_one_sequence(
    delayed_broker: BrokerProcess,
) -> None:
    """The broker keeps the producer's sequence for parked batches in the topic partition's
    producer state, so the producer's next plain batch is in sequence."""
    topic = create_delayed_topic(delayed_broker.bootstrap, "delayed-sdk-idem")

    async def scenario() -> None:
        async with Producer(delayed_broker.bootstrap) as producer:
            parked = await producer.send(
                topic, b"later", partition=0, delay=datetime.timedelta(milliseconds=500)
            )
            plain = await producer.send(topic, b"now", partition=0)
        assert parked.offset >= 0
        assert plain.offset == 0

    asyncio.run(scenario())
    assert [a.value for a in consume(delayed_broker.bootstrap, topic, 2)] == [b"now", b"later"]


def test_a_retried_parked_batch_is_answered_with_its_first_offset_and_parked_once(
    delayed_broker: BrokerProcess,
) -> None:
    topic = create_delayed_topic(delayed_broker.bootstrap, "delayed-retry")
    record = NewRecord(None, b"once", [("goqueue.delay-ms", b"300")])
    batch = build_batch([record], producer_id=424242, producer_epoch=0, base_sequence=0)
    tp = TopicPartition(topic, 0)

    async def send_twice() -> list[int]:
        async with Cluster(delayed_broker.bootstrap) as cluster:
            first = await produce_batches(cluster, {tp: batch})
            again = await produce_batches(cluster, {tp: batch})
        return [first[tp].base_offset, again[tp].base_offset]

    first, again = asyncio.run(send_twice())
    assert first == again
    got = consume(delayed_broker.bootstrap, topic, 1, linger_s=1.0)
    assert [a.value for a in got] == [b"once"]
