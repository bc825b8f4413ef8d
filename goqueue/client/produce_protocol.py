"""The Produce request and response as the client's producers use them (one batch per partition)."""

import datetime
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from goqueue.client.metadata import TopicPartition
from goqueue.client.protocol import Fields
from goqueue.records.builder import NewRecord

PRODUCE = 0
ACKS_ALL = -1
DEFAULT_PRODUCE_TIMEOUT_MS = 30_000
RECORD_OVERHEAD = 21
"""Upper bound of a record's encoded size beyond its key, value and header bytes: length,
attributes, timestamp and offset deltas, key and value lengths, header count (all varints)."""
HEADER_OVERHEAD = 10
"""Upper bound of a header's encoded size beyond its name and value: their two lengths."""


def estimated_size(record: NewRecord) -> int:
    """An upper bound of the record's size inside an uncompressed batch."""
    size = len(record.key or b"") + len(record.value or b"") + RECORD_OVERHEAD
    if record.headers:  # on every send: skip the generator for the common headerless record
        size += sum(
            len(name.encode()) + len(value or b"") + HEADER_OVERHEAD
            for name, value in record.headers
        )
    return size


def produce_request(
    batches: Mapping[TopicPartition, bytes],
    topic_ids: Mapping[str, uuid.UUID | None],
    acks: int,
    timeout_ms: int,
) -> Fields:
    """A non-transactional Produce request of one batch per partition."""
    by_topic: dict[str, list[dict[str, object]]] = {}
    for tp, batch in batches.items():
        by_topic.setdefault(tp.topic, []).append({"index": tp.partition, "records": batch})
    return {
        "transactional_id": None,
        "acks": acks,
        "timeout": datetime.timedelta(milliseconds=timeout_ms),
        "topic_data": [
            {"name": name, "topic_id": topic_ids[name], "partition_data": partitions}
            for name, partitions in by_topic.items()
        ],
    }


def partition_responses(
    response: Any, topic_ids: Mapping[str, uuid.UUID | None]
) -> Iterator[tuple[TopicPartition, Any]]:
    """Each partition's answer in a Produce response, named by topic whatever the version
    (v13+ answers with topic ids instead of names)."""
    names = {topic_id: name for name, topic_id in topic_ids.items()}
    for topic in response.responses:
        name = getattr(topic, "name", None) or names[topic.topic_id]
        for partition in topic.partition_responses:
            yield TopicPartition(name, partition.index), partition
