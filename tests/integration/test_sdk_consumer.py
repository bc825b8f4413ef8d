"""The SDK consumer against a real broker, without rebalancing: manual assignment, message
fields, iteration and batch polling, seeks (offset, beginning, end, timestamp), pause and
resume, commits (sync, async, auto) and resuming from them, offset reset policies, the
100,000-message round trip, and records produced by confluent-kafka."""

from __future__ import annotations

import asyncio
import time

import pytest
from client_compat import (
    ROUND_TRIP_COUNT,
    assert_round_trip,
    now_ms,
    round_trip_value,
    samples,
)
from confluent_kafka import Producer as ConfluentProducer
from group_helpers import PARTITIONS, create_topic, group_broker, produce, unique_group
from kafka import KafkaProducer
from sdk_consumer_helpers import read, tps

from goqueue.client import (
    ClientError,
    CommitFailedError,
    Committed,
    Consumer,
    NoOffsetForPartitionError,
    TopicPartition,
)
from goqueue.client.cluster import Cluster
from goqueue.client.producer import produce_all
from goqueue.records.batch import TimestampType
from goqueue.records.builder import NewRecord
from goqueue.testing.process import BrokerProcess

__all__ = ["group_broker"]


def test_manual_assignment_reads_every_field(group_broker: BrokerProcess) -> None:
    bootstrap = group_broker.bootstrap
    topic = create_topic(bootstrap, "sdk-fields", 1)
    producer = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    sent_ts = now_ms() - 5000
    for i in range(3):
        producer.send(
            topic,
            value=b"v%d" % i,
            key=b"k%d" % i,
            headers=[("h", b"x%d" % i)],
            partition=0,
            timestamp_ms=sent_ts + i,
        )
    producer.send(topic, value=None, key=b"tombstone", partition=0, timestamp_ms=sent_ts + 3)
    producer.flush()
    producer.close()

    async def scenario() -> None:
        async with Consumer(bootstrap, auto_offset_reset="earliest") as consumer:
            consumer.assign([(topic, 0)])
            assert consumer.assignment() == {TopicPartition(topic, 0)}
            records = await read(consumer, 4)
            assert [(r.topic, r.partition, r.offset) for r in records] == [
                (topic, 0, i) for i in range(4)
            ]
            assert [r.key for r in records] == [b"k0", b"k1", b"k2", b"tombstone"]
            assert [r.value for r in records] == [b"v0", b"v1", b"v2", None]
            assert [r.headers for r in records[:3]] == [(("h", b"x%d" % i),) for i in range(3)]
            assert [r.timestamp for r in records] == [sent_ts + i for i in range(4)]
            assert {r.timestamp_type for r in records} == {TimestampType.create_time}
            assert {r.leader_epoch for r in records} == {0}
            assert await consumer.position(TopicPartition(topic, 0)) == 4
            assert consumer.highwater(TopicPartition(topic, 0)) == 4
            assert consumer.lag(TopicPartition(topic, 0)) == 0

    asyncio.run(scenario())


def test_async_iteration_and_batches_keep_partition_order(group_broker: BrokerProcess) -> None:
    bootstrap = group_broker.bootstrap
    topic = create_topic(bootstrap, "sdk-iter")
    sent = produce(bootstrap, topic, 60)

    async def scenario() -> None:
        async with Consumer(bootstrap, auto_offset_reset="earliest", max_poll_records=7) as c:
            c.assign(tps(topic, PARTITIONS))
            batch = await c.getmany(timeout_ms=5000)
            assert 0 < sum(len(v) for v in batch.values()) <= 7
            got = {tp: [r.value for r in rs] for tp, rs in batch.items()}
            async for message in c:
                got.setdefault(message.topic_partition, []).append(message.value)
                if sum(len(v) for v in got.values()) == 60:
                    break
            assert {(tp.topic, tp.partition): v for tp, v in got.items()} == sent

    asyncio.run(scenario())


def test_seek_to_offset_beginning_end_and_timestamp(group_broker: BrokerProcess) -> None:
    bootstrap = group_broker.bootstrap
    topic = create_topic(bootstrap, "sdk-seek", 1)
    base = now_ms() - 100_000
    producer = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    for i in range(10):
        producer.send(topic, value=b"%d" % i, partition=0, timestamp_ms=base + i * 1000)
    producer.flush()
    producer.close()
    tp = TopicPartition(topic, 0)

    async def scenario() -> None:
        async with Consumer(bootstrap, auto_offset_reset="latest") as consumer:
            consumer.assign([tp])
            assert await consumer.position(tp) == 10
            consumer.seek(tp, 7)
            assert [r.offset for r in await read(consumer, 3)] == [7, 8, 9]
            consumer.seek_to_beginning(tp)
            assert [r.offset for r in await read(consumer, 2)] == [0, 1]
            consumer.seek_to_timestamp(base + 4500, tp)
            assert (await read(consumer, 1))[0].offset == 5
            found = await consumer.offsets_for_times({tp: base + 4500})
            assert found[tp] is not None and found[tp].offset == 5
            assert (await consumer.offsets_for_times({tp: base + 60_000}))[tp] is None
            consumer.seek_to_end(tp)
            assert await consumer.position(tp) == 10
            assert await consumer.beginning_offsets([tp]) == {tp: 0}
            assert await consumer.end_offsets([tp]) == {tp: 10}
            with pytest.raises(ValueError, match="not assigned"):
                consumer.seek(TopicPartition(topic, 5), 0)

    asyncio.run(scenario())


def test_pause_stops_delivery_until_resume(group_broker: BrokerProcess) -> None:
    bootstrap = group_broker.bootstrap
    topic = create_topic(bootstrap, "sdk-pause", 2)
    produce(bootstrap, topic, 20, 2)
    first, second = TopicPartition(topic, 0), TopicPartition(topic, 1)

    async def scenario() -> None:
        async with Consumer(bootstrap, auto_offset_reset="earliest") as consumer:
            consumer.assign([first, second])
            consumer.pause(first)
            assert consumer.paused() == {first}
            got = await read(consumer, 10)
            assert {r.partition for r in got} == {1}
            assert await consumer.getmany(timeout_ms=300) == {}
            consumer.resume(first)
            assert {r.partition for r in await read(consumer, 10)} == {0}

    asyncio.run(scenario())


def test_commits_sync_async_and_resume_from_them(group_broker: BrokerProcess) -> None:
    bootstrap = group_broker.bootstrap
    topic = create_topic(bootstrap, "sdk-commit", 1)
    group = unique_group("sdk-commit")
    produce(bootstrap, topic, 30, 1)
    tp = TopicPartition(topic, 0)

    async def scenario() -> None:
        options = {"group_id": group, "enable_auto_commit": False, "auto_offset_reset": "earliest"}
        async with Consumer(bootstrap, **options) as consumer:
            consumer.assign([tp])
            assert await consumer.committed([tp]) == {tp: None}
            await read(consumer, 10)
            await consumer.commit()
            assert await consumer.committed([tp]) == {tp: Committed(10, 0, "")}
            await consumer.commit({tp: 4})
            assert (await consumer.committed([tp]))[tp] == Committed(4)
            done: list[tuple[object, BaseException | None]] = []
            await read(consumer, 5)
            task = consumer.commit_async(callback=lambda o, e: done.append((o, e)))
            await task
            assert done == [({tp: Committed(15, 0)}, None)]
            assert (await consumer.committed([tp]))[tp] == Committed(15, 0)
        async with Consumer(bootstrap, **options) as again:
            again.assign([tp])
            assert [r.offset for r in await read(again, 15)] == list(range(15, 30))

    asyncio.run(scenario())


def test_auto_commit_resumes_a_restarted_group_member(group_broker: BrokerProcess) -> None:
    bootstrap = group_broker.bootstrap
    topic = create_topic(bootstrap, "sdk-auto")
    group = unique_group("sdk-auto")
    sent = produce(bootstrap, topic, 120)

    async def scenario() -> None:
        options = {
            "group_id": group,
            "topics": [topic],
            "auto_offset_reset": "earliest",
            "auto_commit_interval_ms": 100,
            "session_timeout_ms": 2000,
            "heartbeat_interval_ms": 200,
        }
        async with Consumer(bootstrap, **options) as consumer:
            first = await read(consumer, 50)
            consumer.pause(*consumer.assignment())
            deadline = time.monotonic() + 10
            while True:
                await consumer.getmany(timeout_ms=100)
                committed = await consumer.committed(tps(topic, PARTITIONS))
                if sum(c.offset for c in committed.values() if c) == 50:
                    break
                assert time.monotonic() < deadline, committed
        async with Consumer(bootstrap, **options) as consumer:
            rest = await read(consumer, 70)
            assert await consumer.getmany(timeout_ms=300) == {}
        values = sorted(r.value for r in first + rest)
        assert values == sorted(v for vs in sent.values() for v in vs)

    asyncio.run(scenario())


def test_offset_reset_policies(group_broker: BrokerProcess) -> None:
    bootstrap = group_broker.bootstrap
    topic = create_topic(bootstrap, "sdk-reset", 1)
    produce(bootstrap, topic, 5, 1)
    tp = TopicPartition(topic, 0)

    async def scenario() -> None:
        async with Consumer(bootstrap, group_id=unique_group("r"), auto_offset_reset="none") as c:
            c.assign([tp])
            with pytest.raises(NoOffsetForPartitionError):
                await c.getmany(timeout_ms=5000)
        async with Consumer(bootstrap, auto_offset_reset="latest") as c:
            c.assign([tp])
            assert await c.position(tp) == 5
            c.seek(tp, 1000)
            assert await c.getmany(timeout_ms=300) == {}
            assert await c.position(tp) == 5  # out of range: reset to the latest offset

    asyncio.run(scenario())


def test_commit_of_a_member_of_an_older_generation_fails(group_broker: BrokerProcess) -> None:
    bootstrap = group_broker.bootstrap
    topic = create_topic(bootstrap, "sdk-stale", 1)
    group = unique_group("sdk-stale")

    async def scenario() -> None:
        options = {"group_id": group, "topics": [topic], "session_timeout_ms": 2000}
        async with Consumer(bootstrap, heartbeat_interval_ms=200, **options) as consumer:
            member = consumer._member
            assert member is not None
            await asyncio.wait_for(member.stable.wait(), 10)
            member.generation += 5
            with pytest.raises(CommitFailedError):
                await consumer.commit({TopicPartition(topic, 0): 0})
            member.generation -= 5

    asyncio.run(scenario())


def test_read_committed_reads_up_to_the_last_stable_offset(group_broker: BrokerProcess) -> None:
    bootstrap = group_broker.bootstrap
    topic = create_topic(bootstrap, "sdk-rc", 1)
    produce(bootstrap, topic, 8, 1)
    tp = TopicPartition(topic, 0)

    async def scenario() -> None:
        options = {"auto_offset_reset": "earliest", "isolation_level": "read_committed"}
        async with Consumer(bootstrap, **options) as consumer:
            consumer.assign([tp])
            assert [r.offset for r in await read(consumer, 8)] == list(range(8))
            assert consumer.last_stable_offset(tp) == 8
            assert await consumer.end_offsets([tp]) == {tp: 8}

    asyncio.run(scenario())


def test_round_trip_of_100000_messages(group_broker: BrokerProcess) -> None:
    bootstrap = group_broker.bootstrap
    topic = create_topic(bootstrap, "sdk-100k", 1)
    tp = TopicPartition(topic, 0)

    async def scenario() -> None:
        async with Cluster(bootstrap) as cluster:
            records = [NewRecord(None, round_trip_value(i)) for i in range(ROUND_TRIP_COUNT)]
            await produce_all(cluster, {tp: records})
        options = {"group_id": unique_group("100k"), "topics": [topic]}
        async with Consumer(bootstrap, auto_offset_reset="earliest", **options) as consumer:
            started = time.monotonic()
            values = [r.value for r in await read(consumer, ROUND_TRIP_COUNT, timeout=120)]
            elapsed = time.monotonic() - started
            assert_round_trip(values)
            await consumer.commit()
            assert (await consumer.committed([tp]))[tp] == Committed(ROUND_TRIP_COUNT, 0)
        print(f"SDK consumer: {ROUND_TRIP_COUNT / elapsed:,.0f} messages/s")

    asyncio.run(scenario())


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_consumes_what_confluent_kafka_produced(group_broker: BrokerProcess, codec: str) -> None:
    bootstrap = group_broker.bootstrap
    topic = create_topic(bootstrap, f"sdk-interop-{codec}", 1)
    wanted = samples(200, codec)
    producer = ConfluentProducer(
        {"bootstrap.servers": bootstrap, "compression.codec": codec, "linger.ms": 5}
    )
    for s in wanted:
        producer.produce(
            topic,
            value=s.value,
            key=s.key,
            headers=list(s.headers),
            timestamp=s.timestamp_ms,
            partition=0,
        )
    assert producer.flush(30) == 0

    async def scenario() -> None:
        async with Consumer(bootstrap, auto_offset_reset="earliest") as consumer:
            consumer.assign([(topic, 0)])
            got = await read(consumer, len(wanted))
        assert [(r.key, r.value, r.headers, r.timestamp) for r in got] == [
            (s.key, s.value, s.headers, s.timestamp_ms) for s in wanted
        ]

    asyncio.run(scenario())


def test_closing_ends_an_iteration_waiting_for_records(group_broker: BrokerProcess) -> None:
    bootstrap = group_broker.bootstrap
    topic = create_topic(bootstrap, "sdk-close", 1)

    async def scenario() -> None:
        consumer = Consumer(bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        consumer.assign([(topic, 0)])

        async def iterate() -> list[object]:
            return [message async for message in consumer]

        waiting = asyncio.create_task(iterate())
        assert await consumer.getmany(timeout_ms=200) == {}
        await consumer.close()
        assert await asyncio.wait_for(waiting, 5) == []
        with pytest.raises(ClientError, match="closed"):
            await consumer.getmany()

    asyncio.run(scenario())
