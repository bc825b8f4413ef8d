"""Produce: records to batches, batches to partition leaders (the seed of the SDK producer)."""

import asyncio
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from goqueue.client.cluster import Cluster
from goqueue.client.metadata import TopicPartition
from goqueue.client.produce_protocol import (
    ACKS_ALL,
    DEFAULT_PRODUCE_TIMEOUT_MS,
    PRODUCE,
    RECORD_OVERHEAD,
    estimated_size,
    partition_responses,
    produce_request,
)
from goqueue.records.batch import HEADER_SIZE
from goqueue.records.builder import NewRecord, build_batch
from goqueue.records.compression import Compression

__all__ = [
    "ACKS_ALL",
    "DEFAULT_MAX_BATCH_BYTES",
    "PRODUCE",
    "RECORD_OVERHEAD",
    "ProduceResult",
    "estimated_size",
    "produce",
    "produce_all",
    "produce_batches",
    "produce_request",
    "split_batches",
]

DEFAULT_MAX_BATCH_BYTES = 1_000_000
"""Below the broker's default `max.message.bytes` (1048588), which bounds each batch."""


@dataclass(frozen=True, slots=True)
class ProduceResult:
    """Where a batch landed; offsets are -1 with acks=0, which gets no answer."""

    topic_partition: TopicPartition
    base_offset: int
    log_start_offset: int


def split_batches(records: Sequence[NewRecord], max_bytes: int) -> Iterator[Sequence[NewRecord]]:
    """Consecutive runs of `records` that each fit in a batch of `max_bytes` (at least one
    record per run, so an oversized record still goes out alone and gets the broker's error)."""
    start, size = 0, HEADER_SIZE
    for index, record in enumerate(records):
        record_size = estimated_size(record)
        if index > start and size + record_size > max_bytes:
            yield records[start:index]
            start, size = index, HEADER_SIZE
        size += record_size
    if start < len(records):
        yield records[start:]


async def produce(
    cluster: Cluster,
    records: Mapping[TopicPartition, Sequence[NewRecord]],
    *,
    compression: Compression = Compression.none,
    acks: int = ACKS_ALL,
    timeout_ms: int = DEFAULT_PRODUCE_TIMEOUT_MS,
) -> dict[TopicPartition, ProduceResult]:
    """Send each partition's records as one batch; raises the first partition error."""
    batches = {
        tp: build_batch(batch, compression=compression) for tp, batch in records.items() if batch
    }
    return await produce_batches(cluster, batches, acks=acks, timeout_ms=timeout_ms)


async def produce_all(
    cluster: Cluster,
    records: Mapping[TopicPartition, Sequence[NewRecord]],
    *,
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
    compression: Compression = Compression.none,
    acks: int = ACKS_ALL,
    timeout_ms: int = DEFAULT_PRODUCE_TIMEOUT_MS,
) -> None:
    """Send any number of records per partition, in order, as batches of at most
    `max_batch_bytes`: each request carries the next batch of every partition."""
    queues = {tp: deque(split_batches(batch, max_batch_bytes)) for tp, batch in records.items()}
    while queues:
        batches = {tp: queue.popleft() for tp, queue in queues.items()}
        await produce(cluster, batches, compression=compression, acks=acks, timeout_ms=timeout_ms)
        queues = {tp: queue for tp, queue in queues.items() if queue}


async def produce_batches(
    cluster: Cluster,
    batches: Mapping[TopicPartition, bytes],
    *,
    acks: int = ACKS_ALL,
    timeout_ms: int = DEFAULT_PRODUCE_TIMEOUT_MS,
) -> dict[TopicPartition, ProduceResult]:
    """Send encoded batches, one request per leader, all leaders at once."""
    by_leader = await cluster.leaders(batches)
    answers = await asyncio.gather(
        *(
            _send(cluster, node_id, {tp: batches[tp] for tp in tps}, acks, timeout_ms)
            for node_id, tps in by_leader.items()
        )
    )
    return {tp: result for answer in answers for tp, result in answer.items()}


async def _send(
    cluster: Cluster,
    node_id: int,
    batches: Mapping[TopicPartition, bytes],
    acks: int,
    timeout_ms: int,
) -> dict[TopicPartition, ProduceResult]:
    topic_ids = {tp.topic: (await cluster.topic(tp.topic)).topic_id for tp in batches}
    request = produce_request(batches, topic_ids, acks, timeout_ms)
    connection = await cluster.connection(node_id)
    if acks == 0:
        await connection.request_no_response(PRODUCE, request)
        return {tp: ProduceResult(tp, -1, -1) for tp in batches}
    response = await connection.request(
        PRODUCE, request, timeout=cluster.request_timeout + timeout_ms / 1000
    )
    results = {}
    for tp, partition in partition_responses(response, topic_ids):
        cluster.check(partition.error_code, tp.topic, tp.partition, partition.error_message)
        results[tp] = ProduceResult(tp, partition.base_offset, partition.log_start_offset)
    return results
