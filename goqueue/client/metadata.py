"""Cluster metadata as the client sees it: brokers, topics and partition leaders.

These are the client's own immutable types, decoded from whichever Metadata version the broker
answered, so nothing above this module depends on a kio version.
"""

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from kio.schema.errors import ErrorCode

from goqueue.client.protocol import Fields

METADATA = 3


class TopicPartition(NamedTuple):
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    node_id: int
    host: str
    port: int
    rack: str | None = None


@dataclass(frozen=True, slots=True)
class PartitionMetadata:
    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    offline_replicas: tuple[int, ...]
    error: ErrorCode = ErrorCode.none


@dataclass(frozen=True, slots=True)
class TopicMetadata:
    name: str
    topic_id: uuid.UUID | None
    partitions: tuple[PartitionMetadata, ...]
    is_internal: bool = False
    error: ErrorCode = ErrorCode.none

    @property
    def replication_factor(self) -> int:
        return len(self.partitions[0].replicas) if self.partitions else 0

    @property
    def ready(self) -> bool:
        """Whether the topic exists and every partition has a leader to send requests to."""
        return self.error == ErrorCode.none and all(
            p.error == ErrorCode.none and p.leader >= 0 for p in self.partitions
        )


@dataclass(frozen=True, slots=True)
class ClusterMetadata:
    cluster_id: str | None
    controller_id: int
    brokers: Mapping[int, BrokerAddress]
    topics: Mapping[str, TopicMetadata]


def metadata_request(topics: Sequence[str] | None, *, auto_create: bool = False) -> Fields:
    """A Metadata request for `topics` (None: every topic)."""
    return {
        "topics": None if topics is None else [{"name": name, "topic_id": None} for name in topics],
        "allow_auto_topic_creation": auto_create,
        "include_cluster_authorized_operations": False,
        "include_topic_authorized_operations": False,
    }


def parse_metadata(response: Any) -> ClusterMetadata:
    """Decode a Metadata response of any version."""
    brokers = {
        b.node_id: BrokerAddress(b.node_id, b.host, b.port, getattr(b, "rack", None))
        for b in response.brokers
    }
    topics = {t.name: _topic(t) for t in response.topics if t.name is not None}
    return ClusterMetadata(
        cluster_id=getattr(response, "cluster_id", None),
        controller_id=getattr(response, "controller_id", -1),
        brokers=brokers,
        topics=topics,
    )


def _topic(topic: Any) -> TopicMetadata:
    topic_id = getattr(topic, "topic_id", None)
    return TopicMetadata(
        name=topic.name,
        topic_id=None if topic_id is None or topic_id.int == 0 else topic_id,
        partitions=tuple(
            sorted((_partition(p) for p in topic.partitions), key=lambda p: p.partition)
        ),
        is_internal=getattr(topic, "is_internal", False),
        error=topic.error_code,
    )


def _partition(partition: Any) -> PartitionMetadata:
    return PartitionMetadata(
        partition=partition.partition_index,
        leader=partition.leader_id,
        replicas=tuple(partition.replica_nodes),
        isr=tuple(partition.isr_nodes),
        offline_replicas=tuple(getattr(partition, "offline_replicas", ())),
        error=partition.error_code,
    )
