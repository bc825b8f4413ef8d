"""The `goqueue.client` seed (admin, list offsets, produce, fetch) against a real broker."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from kio.schema.errors import ErrorCode

from goqueue.client import Admin, NewTopic, TopicAlreadyExistsError, UnknownTopicOrPartitionError
from goqueue.client.cluster import Cluster
from goqueue.client.errors import OffsetOutOfRangeError
from goqueue.client.fetcher import FetchLimits, fetch
from goqueue.client.metadata import TopicPartition
from goqueue.client.offsets import EARLIEST, LATEST, MAX_TIMESTAMP, list_offsets
from goqueue.client.producer import produce
from goqueue.client.protocol import kio_versions
from goqueue.protocol.kafka.handlers import APIS
from goqueue.records.builder import NewRecord
from goqueue.records.compression import Compression
from goqueue.testing.process import BrokerProcess

pytestmark = pytest.mark.integration

T = TypeVar("T")


def with_admin(broker: BrokerProcess, call: Callable[[Admin], Awaitable[T]]) -> T:
    async def main() -> T:
        async with Admin(broker.bootstrap) as admin:
            return await call(admin)

    return asyncio.run(main())


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_admin_manages_topics_and_describes_the_cluster(shared_broker: BrokerProcess) -> None:
    name = unique("sdk")

    async def scenario(admin: Admin) -> None:
        (created,) = await admin.create_topics([NewTopic(name, 2, 1, {"retention.ms": "60000"})])
        assert (created.num_partitions, created.replication_factor) == (2, 1)
        assert created.configs["retention.ms"] == "60000"
        with pytest.raises(TopicAlreadyExistsError, match=f"topic '{name}' already exists"):
            await admin.create_topics([NewTopic(name)])
        assert name in [t.name for t in await admin.list_topics()]
        (described,) = await admin.describe_topics([name])
        assert [p.partition for p in described.partitions] == [0, 1]
        assert described.topic_id == created.topic_id
        cluster = await admin.describe_cluster()
        assert cluster.cluster_id
        assert [b.port for b in cluster.brokers] == [shared_broker.port]
        await admin.delete_topics([name])
        with pytest.raises(UnknownTopicOrPartitionError, match="does not exist"):
            await admin.describe_topics([name])
        with pytest.raises(UnknownTopicOrPartitionError):
            await admin.delete_topics([name])

    with_admin(shared_broker, scenario)


def test_negotiation_picks_the_newest_version_both_sides_serve(
    shared_broker: BrokerProcess,
) -> None:
    async def scenario() -> None:
        async with Cluster(shared_broker.bootstrap) as cluster:
            connection = await cluster.any_connection()
            assert {api.key: connection.version(api.key) for api in APIS.values()} == {
                api.key: min(api.max_version, kio_versions(api.key).stop - 1)
                for api in APIS.values()
            }

    asyncio.run(scenario())


@pytest.mark.parametrize("codec", list(Compression))
def test_produced_records_come_back_exactly_from_fetch(
    shared_broker: BrokerProcess, codec: Compression
) -> None:
    name = unique(f"sdk-{codec.name}")
    tp = TopicPartition(name, 0)
    base = int(time.time() * 1000) - 60_000
    records = [
        NewRecord(
            key=None if i % 3 == 0 else f"k{i}".encode(),
            value=f"value {i} ".encode() * 20,
            headers=[("i", str(i).encode()), ("null", None)],
            timestamp_ms=base + i,
        )
        for i in range(200)
    ]

    async def scenario() -> None:
        async with Cluster(shared_broker.bootstrap) as cluster:
            await cluster.topic(name, auto_create=True)
            first = await produce(cluster, {tp: records[:120]}, compression=codec)
            second = await produce(cluster, {tp: records[120:]}, compression=codec)
            assert (first[tp].base_offset, second[tp].base_offset) == (0, 120)
            got = []
            position = 0
            while position < len(records):
                fetched = (await fetch(cluster, {tp: position}))[tp]
                got += fetched.records
                position = fetched.next_offset
            assert fetched.high_watermark == len(records)
            assert [r.offset for r in got] == list(range(len(records)))
            assert [(r.key, r.value, list(r.headers), r.timestamp_ms) for r in got] == [
                (r.key, r.value, list(r.headers), r.timestamp_ms) for r in records
            ]
            assert (await list_offsets(cluster, {tp: EARLIEST}))[tp].offset == 0
            assert (await list_offsets(cluster, {tp: LATEST}))[tp].offset == len(records)
            by_time = await list_offsets(cluster, {tp: base + 150})
            assert by_time[tp].offset == 150
            newest = await list_offsets(cluster, {tp: MAX_TIMESTAMP})
            assert (newest[tp].offset, newest[tp].timestamp_ms) == (199, base + 199)

    asyncio.run(scenario())


def test_requests_are_pipelined_on_one_connection_per_broker(shared_broker: BrokerProcess) -> None:
    name = unique("sdk-pipe")
    tps = [TopicPartition(name, p) for p in range(4)]

    async def scenario() -> None:
        async with Admin(shared_broker.bootstrap) as admin:
            await admin.create_topics([NewTopic(name, 4, 1)])
        async with Cluster(shared_broker.bootstrap) as cluster:
            sends = [
                produce(cluster, {tp: [NewRecord(None, f"{tp.partition}-{n}".encode())]})
                for n in range(25)
                for tp in tps
            ]
            results = await asyncio.gather(*sends)
            assert sorted(r[tp].base_offset for r in results for tp in r if tp == tps[0]) == list(
                range(25)
            )
            assert len({id(c) for c in cluster._connections.values()}) == 1

    asyncio.run(scenario())


def test_fetch_waits_at_the_broker_when_there_is_nothing_new(shared_broker: BrokerProcess) -> None:
    name = unique("sdk-wait")
    tp = TopicPartition(name, 0)

    async def scenario() -> None:
        async with Cluster(shared_broker.bootstrap) as cluster:
            await cluster.topic(name, auto_create=True)
            started = time.monotonic()
            fetched = await fetch(cluster, {tp: 0}, FetchLimits(max_wait_ms=300))
            assert fetched[tp].records == ()
            assert time.monotonic() - started >= 0.25
            with pytest.raises(OffsetOutOfRangeError) as error:
                await fetch(cluster, {tp: 5})
            assert error.value.code == ErrorCode.offset_out_of_range

    asyncio.run(scenario())
