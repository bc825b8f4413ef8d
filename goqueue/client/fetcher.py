"""Fetch: read records from partition leaders (the seed of the SDK consumer)."""

import asyncio
import datetime
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from goqueue.client.cluster import Cluster
from goqueue.client.errors import error_for
from goqueue.client.metadata import TopicPartition
from goqueue.client.protocol import Fields
from goqueue.records.batch import iter_batches
from goqueue.records.errors import RecordsError
from goqueue.records.reader import ConsumedRecord, iter_records

FETCH = 1


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """How long the broker may hold a fetch and how much it may return."""

    max_wait_ms: int = 500
    min_bytes: int = 1
    max_bytes: int = 50 * 1024 * 1024
    partition_max_bytes: int = 2 * 1024 * 1024
    """Above the default `max.message.bytes`, so every partition returns whole batches."""


@dataclass(frozen=True, slots=True)
class FetchedPartition:
    """Records at or after the requested position, and where the next fetch should start."""

    topic_partition: TopicPartition
    records: tuple[ConsumedRecord, ...]
    next_offset: int
    high_watermark: int
    log_start_offset: int


async def fetch(
    cluster: Cluster,
    positions: Mapping[TopicPartition, int],
    limits: FetchLimits = FetchLimits(),
) -> dict[TopicPartition, FetchedPartition]:
    """One fetch round from every leader at once; the broker holds each request until
    `min_bytes` are available or `max_wait_ms` passed, so calling this in a loop never spins."""
    by_leader = await cluster.leaders(positions)
    answers = await asyncio.gather(
        *(
            _fetch_from(cluster, node_id, {tp: positions[tp] for tp in tps}, limits)
            for node_id, tps in by_leader.items()
        )
    )
    return {tp: fetched for answer in answers for tp, fetched in answer.items()}


def fetch_request(
    positions: Mapping[TopicPartition, int],
    topic_ids: Mapping[str, uuid.UUID | None],
    limits: FetchLimits,
) -> Fields:
    """A consumer's full Fetch request (no fetch session, read uncommitted)."""
    by_topic: dict[str, list[dict[str, int]]] = {}
    for tp, offset in positions.items():
        by_topic.setdefault(tp.topic, []).append(
            {
                "partition": tp.partition,
                "fetch_offset": offset,
                "partition_max_bytes": limits.partition_max_bytes,
            }
        )
    return {
        "max_wait": datetime.timedelta(milliseconds=limits.max_wait_ms),
        "min_bytes": limits.min_bytes,
        "max_bytes": limits.max_bytes,
        "replica_id": -1,
        "isolation_level": 0,
        "session_id": 0,
        "session_epoch": -1,
        "topics": [
            {"topic": name, "topic_id": topic_ids[name], "partitions": partitions}
            for name, partitions in by_topic.items()
        ],
        "forgotten_topics_data": [],
        "rack_id": "",
    }


async def _fetch_from(
    cluster: Cluster,
    node_id: int,
    positions: Mapping[TopicPartition, int],
    limits: FetchLimits,
) -> dict[TopicPartition, FetchedPartition]:
    topic_ids = {tp.topic: (await cluster.topic(tp.topic)).topic_id for tp in positions}
    request = fetch_request(positions, topic_ids, limits)
    connection = await cluster.connection(node_id)
    response = await connection.request(
        FETCH, request, timeout=cluster.request_timeout + limits.max_wait_ms / 1000
    )
    names = {topic_id: name for name, topic_id in topic_ids.items()}
    fetched = {}
    for topic in response.responses:
        name = getattr(topic, "topic", None) or names[topic.topic_id]
        for partition in topic.partitions:
            cluster.check(partition.error_code, name, partition.partition_index)
            tp = TopicPartition(name, partition.partition_index)
            fetched[tp] = _decode(tp, positions[tp], partition)
    return fetched


def _decode(tp: TopicPartition, position: int, partition: Any) -> FetchedPartition:
    data = partition.records or b""
    try:
        records = tuple(r for r in iter_records(data) if r.offset >= position)
        next_offset = max((h.next_offset for h, _ in iter_batches(data)), default=position)
    except RecordsError as exc:
        raise error_for(exc.error_code, f"{tp.topic!r} partition {tp.partition}: {exc}") from exc
    return FetchedPartition(
        topic_partition=tp,
        records=records,
        next_offset=max(next_offset, position),
        high_watermark=partition.high_watermark,
        log_start_offset=partition.log_start_offset,
    )
