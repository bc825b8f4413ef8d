"""Fetch: read records from partition leaders, for the CLI (`fetch`, one round) and the SDK
consumer (`fetch_partitions` and `consumer_records`, which keep each record's topic, leader
epoch and transaction state)."""

import asyncio
import datetime
import struct
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from goqueue.client.cluster import Cluster
from goqueue.client.errors import error_for
from goqueue.client.metadata import TopicPartition
from goqueue.client.protocol import Fields
from goqueue.records.batch import BatchHeader, TimestampType, iter_batches
from goqueue.records.errors import RecordsError
from goqueue.records.reader import ConsumedRecord, batch_records, iter_records

FETCH = 1
READ_UNCOMMITTED = 0
READ_COMMITTED = 1
"""Isolation levels: read committed stops at the last stable offset and skips records of
aborted transactions."""
_ABORT_MARKER = 0
"""The control record type (second int16 of a control record's key) of a transaction abort."""
_CONTROL_KEY = struct.Struct(">hh")


@dataclass(frozen=True, slots=True)
class ConsumerRecord:
    """One message as a consumer sees it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    timestamp: int
    """Milliseconds since the epoch: the producer's (create time) or the broker's (log append
    time, when the topic says so)."""
    timestamp_type: TimestampType
    leader_epoch: int
    """The partition leader epoch that wrote the record (-1 when unknown)."""

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


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
    isolation_level: int = READ_UNCOMMITTED,
) -> Fields:
    """A consumer's full Fetch request (no fetch session)."""
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
        "isolation_level": isolation_level,
        "session_id": 0,
        "session_epoch": -1,
        "topics": [
            {"topic": name, "topic_id": topic_ids[name], "partitions": partitions}
            for name, partitions in by_topic.items()
        ],
        "forgotten_topics_data": [],
        "rack_id": "",
    }


async def fetch_partitions(
    cluster: Cluster,
    node_id: int,
    positions: Mapping[TopicPartition, int],
    limits: FetchLimits,
    isolation_level: int = READ_UNCOMMITTED,
) -> dict[TopicPartition, Any]:
    """One Fetch request to one leader: each partition's raw answer (error code, watermarks,
    batches), errors unchecked so that the caller handles each partition on its own."""
    topic_ids = {tp.topic: (await cluster.topic(tp.topic)).topic_id for tp in positions}
    request = fetch_request(positions, topic_ids, limits, isolation_level)
    connection = await cluster.connection(node_id)
    response = await connection.request(
        FETCH, request, timeout=cluster.request_timeout + limits.max_wait_ms / 1000
    )
    names = {topic_id: name for name, topic_id in topic_ids.items()}
    return {
        TopicPartition(getattr(topic, "topic", None) or names[topic.topic_id], p.partition_index): p
        for topic in response.responses
        for p in topic.partitions
    }


async def _fetch_from(
    cluster: Cluster,
    node_id: int,
    positions: Mapping[TopicPartition, int],
    limits: FetchLimits,
) -> dict[TopicPartition, FetchedPartition]:
    fetched = {}
    for tp, partition in (await fetch_partitions(cluster, node_id, positions, limits)).items():
        cluster.check(partition.error_code, tp.topic, tp.partition)
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


def consumer_records(
    tp: TopicPartition, partition: Any, position: int, isolation_level: int
) -> tuple[list[ConsumerRecord], int]:
    """The records at or after `position` of one partition's fetched batches, and the offset
    the next fetch starts at. Control batches are skipped; with read committed, so are the
    batches of transactions the broker lists as aborted, as Kafka's consumer does: a producer
    counts as aborting from its aborted transaction's first offset to its abort marker."""
    aborted = sorted(
        (a.first_offset, a.producer_id)
        for a in (partition.aborted_transactions or ())
        if isolation_level == READ_COMMITTED
    )
    aborting: set[int] = set()
    records: list[ConsumerRecord] = []
    next_offset = position
    try:
        for header, batch in iter_batches(partition.records or b""):
            next_offset = header.next_offset
            while aborted and aborted[0][0] <= header.last_offset:
                aborting.add(aborted.pop(0)[1])
            if header.is_transactional and header.producer_id in aborting:
                if header.is_control and _is_abort(header, batch):
                    aborting.discard(header.producer_id)
                continue
            if header.is_control or header.next_offset <= position:
                continue
            records.extend(_records(tp, header, batch, position))
    except RecordsError as exc:
        raise error_for(exc.error_code, f"{tp.topic!r} partition {tp.partition}: {exc}") from exc
    return records, max(next_offset, position)


def _records(
    tp: TopicPartition, header: BatchHeader, batch: memoryview, position: int
) -> Iterable[ConsumerRecord]:
    for r in batch_records(header, batch):
        if r.offset >= position:
            yield ConsumerRecord(
                tp.topic,
                tp.partition,
                r.offset,
                r.key,
                r.value,
                r.headers,
                r.timestamp_ms,
                r.timestamp_type,
                header.leader_epoch,
            )


def _is_abort(header: BatchHeader, batch: memoryview) -> bool:
    for record in batch_records(header, batch):
        if record.key is not None and len(record.key) >= _CONTROL_KEY.size:
            return bool(_CONTROL_KEY.unpack_from(record.key)[1] == _ABORT_MARKER)
    return False
