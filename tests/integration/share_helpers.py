"""What the share group tests share: a broker with short share timings, topics, producing and
reading with the SDK, and share group configs.

The broker's share group defaults are cut through the environment so that lock expiry and
member eviction take about a second, not 30 or 45; tests that need other timings set group
configs on their own group (`set_group_configs`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from client_compat import unique_topic, wait_for

from goqueue.client.admin import Admin
from goqueue.client.cluster import Cluster
from goqueue.client.errors import KafkaError, UnknownTopicOrPartitionError, raise_for
from goqueue.client.fetcher import FetchLimits, fetch
from goqueue.client.metadata import TopicPartition
from goqueue.client.offsets import EARLIEST, LATEST, list_offsets
from goqueue.client.producer import Producer
from goqueue.client.share_consumer import ShareConsumer, ShareMessage
from goqueue.records.reader import ConsumedRecord
from goqueue.testing.process import BrokerProcess

LOCK_MS = 1500
SHARE_ENV = {
    "GOQUEUE_GROUP_SHARE_RECORD_LOCK_DURATION_MS": str(LOCK_MS),
    "GOQUEUE_GROUP_SHARE_SESSION_TIMEOUT_MS": "3000",
    "GOQUEUE_GROUP_SHARE_HEARTBEAT_INTERVAL_MS": "200",
}
GROUP_RESOURCE = 32
"""Kafka's config resource type of groups (KIP-848 group configs)."""
INCREMENTAL_ALTER_CONFIGS = 44
SET = 0


def share_broker_process(data_dir: Path) -> BrokerProcess:
    return BrokerProcess(data_dir, env=SHARE_ENV)


@pytest.fixture(scope="module")
def share_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One broker for a module of share group tests that neither restart nor kill it."""
    with share_broker_process(tmp_path_factory.mktemp("share") / "data") as process:
        yield process


def new_topic(
    bootstrap: str, prefix: str, partitions: int = 1, configs: Mapping[str, str] | None = None
) -> str:
    name = unique_topic(prefix)

    async def create() -> None:
        async with Admin(bootstrap) as admin:
            await admin.create_topic(name, partitions, 1, configs)

    asyncio.run(create())
    return name


def share_group(bootstrap: str, prefix: str, configs: Mapping[str, str] | None = None) -> str:
    """A new share group that reads its topics from the start (`share.auto.offset.reset`
    earliest), with `configs` as its group configs."""
    group = unique_topic(f"share-{prefix}")
    set_group_configs(bootstrap, group, {"share.auto.offset.reset": "earliest", **(configs or {})})
    return group


def wait_records(bootstrap: str, topic: str, count: int) -> list[tuple[int, ConsumedRecord]]:
    """Poll a topic until it holds at least `count` records; returns them."""

    def poll() -> list[tuple[int, ConsumedRecord]] | None:
        try:
            found = read_topic(bootstrap, topic)
        except UnknownTopicOrPartitionError:  # a dead-letter topic is created on first use
            return None
        return found if len(found) >= count else None

    return wait_for(poll, f"{count} records in {topic}")


async def take(
    consumer: ShareConsumer, count: int, *, ack: bool = True, timeout: float = 20.0
) -> list[ShareMessage]:
    """The next `count` messages (each accepted unless `ack` is false)."""

    async def run() -> list[ShareMessage]:
        taken = []
        async for message in consumer:
            taken.append(message)
            if ack:
                await message.ack()
            if len(taken) == count:
                break
        return taken

    return await asyncio.wait_for(run(), timeout)


async def send_all(
    bootstrap: str,
    topic: str,
    values: Sequence[bytes],
    *,
    keys: Sequence[bytes | None] | None = None,
    headers: Sequence[tuple[str, bytes]] = (),
    partition: int | None = None,
    timestamp: int | None = None,
) -> None:
    """Send every value (with its key) and wait until all are acknowledged."""
    async with Producer(bootstrap, linger_ms=1) as producer:
        futures = [
            await producer.enqueue(
                topic,
                value,
                key=None if keys is None else keys[index],
                headers=list(headers),
                partition=partition,
                timestamp=timestamp,
            )
            for index, value in enumerate(values)
        ]
        await asyncio.gather(*futures)


def produce(bootstrap: str, topic: str, values: Sequence[bytes], **options: object) -> None:
    asyncio.run(send_all(bootstrap, topic, values, **options))  # type: ignore[arg-type]


def read_topic(bootstrap: str, topic: str) -> list[tuple[int, ConsumedRecord]]:
    """Every record of every partition, as (partition, record), up to the current end."""

    async def read() -> list[tuple[int, ConsumedRecord]]:
        async with Cluster(bootstrap) as cluster:
            metadata = await cluster.topic(topic)
            tps = [TopicPartition(topic, p.partition) for p in metadata.partitions]
            starts = await list_offsets(cluster, dict.fromkeys(tps, EARLIEST))
            ends = await list_offsets(cluster, dict.fromkeys(tps, LATEST))
            found = []
            for tp in tps:
                position = starts[tp].offset
                while position < ends[tp].offset:
                    fetched = (await fetch(cluster, {tp: position}, FetchLimits(max_wait_ms=0)))[tp]
                    found.extend((tp.partition, r) for r in fetched.records)
                    position = fetched.next_offset
            return found

    return asyncio.run(read())


def set_group_configs(bootstrap: str, group: str, configs: Mapping[str, str]) -> None:
    """Set share group configs: IncrementalAlterConfigs on the group's config resource."""

    async def alter() -> None:
        async with Cluster(bootstrap) as cluster:
            connection = await cluster.any_connection()
            request = {
                "resources": [
                    {
                        "resource_type": GROUP_RESOURCE,
                        "resource_name": group,
                        "configs": [
                            {"name": name, "config_operation": SET, "value": value}
                            for name, value in configs.items()
                        ],
                    }
                ],
                "validate_only": False,
            }
            response = await connection.request(INCREMENTAL_ALTER_CONFIGS, request)
            for result in response.responses:
                raise_for(result.error_code, result.error_message)

    def attempt() -> bool | None:
        try:
            asyncio.run(alter())
        except KafkaError as exc:  # a fresh broker is still loading its coordinators
            if exc.retriable:
                return None
            raise
        return True

    wait_for(attempt, f"group configs of {group}")
