"""aiokafka against a real broker: admin, every codec, offsets and auto-creation.

Every test runs its own event loop with `asyncio.run`, so each one opens its own clients
(aiokafka clients are bound to the loop that started them). Consumers use manual assignment
without a group: the broker has no group coordinator yet.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from client_compat import CODECS, DEADLINE_S, Sample, samples, unique_topic
from kio.schema.errors import ErrorCode

from goqueue.testing.process import BrokerProcess

T = TypeVar("T")


def run(test: Callable[[str], Awaitable[T]], broker: BrokerProcess) -> T:
    return asyncio.run(asyncio.wait_for(test(broker.bootstrap), 2 * DEADLINE_S))


@asynccontextmanager
async def admin_client(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


@asynccontextmanager
async def consumer(bootstrap: str) -> AsyncIterator[AIOKafkaConsumer]:
    client = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


def topic_errors(response: Any) -> list[tuple[str, int]]:
    """(topic, error code) of each topic in a CreateTopics response (v1-v3 layout)."""
    return [(topic, code) for topic, code, _message in response.topic_errors]


async def create_topic(bootstrap: str, partitions: int = 1) -> str:
    name = unique_topic("aiokafka")
    async with admin_client(bootstrap) as admin:
        response = await admin.create_topics([NewTopic(name, partitions, 1)])
    assert topic_errors(response) == [(name, ErrorCode.none)]
    return name


async def produce(bootstrap: str, topic: str, records: list[Sample], **config: Any) -> list[int]:
    """Send `records` to partition 0 and return the offsets the broker acknowledged."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, **config)
    await producer.start()
    try:
        futures = [
            await producer.send(
                topic,
                value=r.value,
                key=r.key,
                partition=0,
                timestamp_ms=r.timestamp_ms,
                headers=list(r.headers),
            )
            for r in records
        ]
        return [(await future).offset for future in futures]
    finally:
        await producer.stop()


async def consume(client: AIOKafkaConsumer, count: int) -> list[Any]:
    """getmany until `count` records arrived (or fail at the deadline)."""
    got: list[Any] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(got) < count:
        assert time.monotonic() < deadline, f"timed out: {len(got)}/{count} records"
        batches = await client.getmany(timeout_ms=500)
        got.extend(record for records in batches.values() for record in records)
    return got


async def consume_all(bootstrap: str, topic: str, count: int) -> list[Any]:
    tp = TopicPartition(topic, 0)
    async with consumer(bootstrap) as client:
        client.assign([tp])
        await client.seek_to_beginning(tp)
        return await consume(client, count)


def as_sample(record: Any) -> Sample:
    return Sample(record.key, record.value, tuple(record.headers), record.timestamp)


def test_create_list_delete_topics(shared_broker: BrokerProcess) -> None:
    async def scenario(bootstrap: str) -> None:
        name = unique_topic("aiokafka-admin")
        async with admin_client(bootstrap) as admin:
            created = await admin.create_topics(
                [NewTopic(name, 2, 1, topic_configs={"retention.ms": "600000"})]
            )
            assert topic_errors(created) == [(name, ErrorCode.none)]
            assert name in await admin.list_topics()
            (described,) = await admin.describe_topics([name])
            assert len(described["partitions"]) == 2

            again = await admin.create_topics([NewTopic(name, 1, 1)])
            assert topic_errors(again) == [(name, ErrorCode.topic_already_exists)]

            deleted = await admin.delete_topics([name])
            assert list(deleted.topic_error_codes) == [(name, ErrorCode.none)]
            assert name not in await admin.list_topics()

    run(scenario, shared_broker)


def test_create_topics_validate_only_creates_nothing(shared_broker: BrokerProcess) -> None:
    async def scenario(bootstrap: str) -> None:
        name = unique_topic("aiokafka-validate")
        async with admin_client(bootstrap) as admin:
            checked = await admin.create_topics([NewTopic(name, 3, 1)], validate_only=True)
            assert topic_errors(checked) == [(name, ErrorCode.none)]
            assert name not in await admin.list_topics()

    run(scenario, shared_broker)


@pytest.mark.parametrize("codec", CODECS)
def test_codec_round_trip_keeps_keys_headers_timestamps(
    shared_broker: BrokerProcess, codec: str
) -> None:
    async def scenario(bootstrap: str) -> None:
        topic = await create_topic(bootstrap)
        sent = samples(50, codec)
        compression = None if codec == "none" else codec
        offsets = await produce(bootstrap, topic, sent, compression_type=compression)
        assert offsets == list(range(len(sent)))

        records = await consume_all(bootstrap, topic, len(sent))
        assert [r.offset for r in records] == offsets
        assert [r.timestamp_type for r in records] == [0] * len(sent)
        assert [as_sample(r) for r in records] == sent

    run(scenario, shared_broker)


def test_list_offsets_earliest_and_latest(shared_broker: BrokerProcess) -> None:
    async def scenario(bootstrap: str) -> None:
        topic = await create_topic(bootstrap, partitions=2)
        tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        async with consumer(bootstrap) as client:
            assert await client.beginning_offsets(tps) == {tps[0]: 0, tps[1]: 0}
            assert await client.end_offsets(tps) == {tps[0]: 0, tps[1]: 0}
            await produce(bootstrap, topic, samples(6, "offsets"))
            assert await client.beginning_offsets(tps) == {tps[0]: 0, tps[1]: 0}
            assert await client.end_offsets(tps) == {tps[0]: 6, tps[1]: 0}

    run(scenario, shared_broker)


def test_consume_from_timestamp(shared_broker: BrokerProcess) -> None:
    async def scenario(bootstrap: str) -> None:
        topic = await create_topic(bootstrap)
        sent = samples(10, "by-time", step_ms=1000)
        await produce(bootstrap, topic, sent)
        tp = TopicPartition(topic, 0)
        async with consumer(bootstrap) as client:
            found = (await client.offsets_for_times({tp: sent[3].timestamp_ms - 400}))[tp]
            assert (found.offset, found.timestamp) == (3, sent[3].timestamp_ms)
            exact = (await client.offsets_for_times({tp: sent[8].timestamp_ms}))[tp]
            assert (exact.offset, exact.timestamp) == (8, sent[8].timestamp_ms)
            assert (await client.offsets_for_times({tp: sent[-1].timestamp_ms + 1}))[tp] is None

            client.assign([tp])
            client.seek(tp, found.offset)
            records = await consume(client, len(sent) - 3)
        assert [r.offset for r in records] == list(range(3, len(sent)))
        assert [as_sample(r) for r in records] == sent[3:]

    run(scenario, shared_broker)


def test_produce_to_unknown_topic_creates_it(shared_broker: BrokerProcess) -> None:
    async def scenario(bootstrap: str) -> None:
        topic = unique_topic("aiokafka-auto")
        async with admin_client(bootstrap) as admin:
            assert topic not in await admin.list_topics()
            sent = samples(3, "auto")
            assert await produce(bootstrap, topic, sent) == [0, 1, 2]
            assert topic in await admin.list_topics()
        assert [as_sample(r) for r in await consume_all(bootstrap, topic, 3)] == sent

    run(scenario, shared_broker)
