"""The cluster metadata image: an immutable snapshot that the broker reads without locks.

The Raft thread builds a new image for every change and the event loop swaps it in whole, so
a reader holding an image always sees one consistent state. The `with_*` methods are the only
way to derive a new image and keep `topics` and `topics_by_id` in step.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def _frozen(mapping: Mapping[K, V]) -> Mapping[K, V]:
    """A read-only copy, so no holder of an image can change it under other readers."""
    return mapping if isinstance(mapping, MappingProxyType) else MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    """A registered broker and the address clients reach it at."""

    node_id: int
    host: str
    port: int
    rack: str | None = None


@dataclass(frozen=True, slots=True)
class TopicInfo:
    """A topic; `configs` holds only the values set on the topic (defaults are not stored)."""

    name: str
    topic_id: uuid.UUID
    partitions: int
    replication_factor: int
    configs: Mapping[str, str]

    def __post_init__(self) -> None:
        object.__setattr__(self, "configs", _frozen(self.configs))


@dataclass(frozen=True, slots=True)
class MetadataImage:
    """Everything the quorum agreed on; `offset` counts the records that changed it."""

    cluster_id: str
    controller_id: int
    brokers: Mapping[int, BrokerInfo]
    topics: Mapping[str, TopicInfo]
    topics_by_id: Mapping[uuid.UUID, TopicInfo]
    offset: int
    broker_configs: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Dynamic broker settings by level: "" for the cluster-wide default, else a node id."""
    next_producer_id: int = 0
    """The first producer id no broker has been given yet (Kafka's ProducerIdsImage)."""
    producer_id_blocks: Mapping[int, int] = field(default_factory=dict)
    """Node id -> first id of the block of producer ids it was given last."""

    def __post_init__(self) -> None:
        for name in ("brokers", "topics", "topics_by_id", "producer_id_blocks"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        object.__setattr__(
            self,
            "broker_configs",
            _frozen({level: _frozen(values) for level, values in self.broker_configs.items()}),
        )

    @classmethod
    def empty(cls) -> MetadataImage:
        """The image before the first record: no cluster id yet, no controller (-1)."""
        return cls("", -1, {}, {}, {}, -1)

    def with_cluster_id(self, cluster_id: str) -> MetadataImage:
        return replace(self, cluster_id=cluster_id)

    def with_controller(self, node_id: int) -> MetadataImage:
        return replace(self, controller_id=node_id)

    def with_broker(self, broker: BrokerInfo) -> MetadataImage:
        return replace(self, brokers={**self.brokers, broker.node_id: broker})

    def with_topic(self, topic: TopicInfo) -> MetadataImage:
        return replace(
            self,
            topics={**self.topics, topic.name: topic},
            topics_by_id={**self.topics_by_id, topic.topic_id: topic},
        )

    def with_broker_configs(self, level: str, configs: Mapping[str, str]) -> MetadataImage:
        """Replace one level's dynamic broker settings; an empty level is dropped."""
        levels = {key: value for key, value in self.broker_configs.items() if key != level}
        if configs:
            levels[level] = configs
        return replace(self, broker_configs=levels)

    def with_producer_id_block(self, node_id: int, block_size: int) -> MetadataImage:
        """Give `node_id` the next `block_size` producer ids (KIP-730)."""
        return replace(
            self,
            next_producer_id=self.next_producer_id + block_size,
            producer_id_blocks={**self.producer_id_blocks, node_id: self.next_producer_id},
        )

    def without_topic(self, name: str) -> MetadataImage:
        removed = self.topics[name]
        return replace(
            self,
            topics={key: value for key, value in self.topics.items() if key != name},
            topics_by_id={
                key: value for key, value in self.topics_by_id.items() if key != removed.topic_id
            },
        )
