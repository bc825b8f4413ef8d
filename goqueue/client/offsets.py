"""ListOffsets: where a partition starts and ends, and which offset a timestamp falls on."""

import asyncio
import datetime
from collections.abc import Mapping
from dataclasses import dataclass

from goqueue.client.cluster import Cluster
from goqueue.client.metadata import TopicPartition
from goqueue.client.protocol import Fields

LIST_OFFSETS = 2

LATEST = -1
"""The offset the next message will get (the high watermark)."""
EARLIEST = -2
"""The first offset still in the log (the log start offset)."""
MAX_TIMESTAMP = -3
"""The offset of the message with the largest timestamp (ListOffsets v7+)."""


@dataclass(frozen=True, slots=True)
class OffsetAndTimestamp:
    """A ListOffsets answer; offset -1 when no message has a timestamp at or after the query."""

    offset: int
    timestamp_ms: int


async def list_offsets(
    cluster: Cluster, queries: Mapping[TopicPartition, int], isolation_level: int = 0
) -> dict[TopicPartition, OffsetAndTimestamp]:
    """Resolve each partition's query (a timestamp in ms, or LATEST/EARLIEST/MAX_TIMESTAMP);
    with isolation level 1 (read committed) LATEST is the last stable offset."""
    by_leader = await cluster.leaders(queries)
    answers = await asyncio.gather(
        *(
            _ask(cluster, node, {tp: queries[tp] for tp in tps}, isolation_level)
            for node, tps in by_leader.items()
        )
    )
    return {tp: found for answer in answers for tp, found in answer.items()}


def list_offsets_request(
    queries: Mapping[TopicPartition, int], timeout: float, isolation_level: int = 0
) -> Fields:
    """A ListOffsets request, as a consumer (not a replica) sends it."""
    topics: dict[str, list[dict[str, int]]] = {}
    for tp, timestamp in queries.items():
        topics.setdefault(tp.topic, []).append(
            {"partition_index": tp.partition, "timestamp": timestamp}
        )
    return {
        "replica_id": -1,
        "isolation_level": isolation_level,
        "topics": [{"name": name, "partitions": parts} for name, parts in topics.items()],
        "timeout": datetime.timedelta(seconds=timeout),
    }


async def _ask(
    cluster: Cluster, node_id: int, queries: Mapping[TopicPartition, int], isolation_level: int
) -> dict[TopicPartition, OffsetAndTimestamp]:
    request = list_offsets_request(queries, cluster.request_timeout, isolation_level)
    connection = await cluster.connection(node_id)
    response = await connection.request(LIST_OFFSETS, request, timeout=cluster.request_timeout)
    answers = {}
    for topic in response.topics:
        for partition in topic.partitions:
            cluster.check(partition.error_code, topic.name, partition.partition_index)
            answers[TopicPartition(topic.name, partition.partition_index)] = OffsetAndTimestamp(
                offset=partition.offset, timestamp_ms=partition.timestamp
            )
    return answers
