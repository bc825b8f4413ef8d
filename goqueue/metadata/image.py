"""The cluster metadata image: an immutable snapshot that the broker reads without locks.

The Raft thread builds a new image for every change and the event loop swaps it in whole, so
a reader holding an image always sees one consistent state. The `with_*` methods are the only
way to derive a new image and keep `topics` and `topics_by_id` in step.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def _frozen(mapping: Mapping[K, V]) -> Mapping[K, V]:
    """A read-only copy, so no holder of an image can change it under other readers."""
    return mapping if isinstance(mapping, MappingProxyType) else MappingProxyType(dict(mapping))


NO_LEADER = -1


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    """A registered broker and the address clients reach it at.

    `incarnation_id` is new on every start of the process, so the controller can tell a
    restarted broker from a second process claiming a live broker's id; `epoch` is the
    metadata offset of the registration (Kafka's broker epoch). A `fenced` broker stopped
    heartbeating: it leads nothing and is in no ISR until it heartbeats again.
    """

    node_id: int
    host: str
    port: int
    rack: str | None = None
    fenced: bool = False
    incarnation_id: str = ""
    epoch: int = 0


@dataclass(frozen=True, slots=True)
class PartitionState:
    """Who holds one partition, as the controller decided (Kafka's PartitionRegistration).

    `partition_epoch` grows with every change, so a leader's AlterPartition built on a stale
    state is refused; `leader_epoch` grows only when the leader changes, which is what
    followers and clients fence each other with. During a reassignment `replicas` is the
    union of the old and new sets, `adding` and `removing` the difference.
    """

    replicas: tuple[int, ...]
    leader: int
    leader_epoch: int
    isr: tuple[int, ...]
    partition_epoch: int
    adding: tuple[int, ...] = ()
    removing: tuple[int, ...] = ()

    @classmethod
    def initial(cls, replicas: tuple[int, ...]) -> PartitionState:
        """A new partition: its first replica leads, all are in sync (nothing to copy yet)."""
        return cls(replicas, replicas[0] if replicas else NO_LEADER, 0, replicas, 0)

    @property
    def preferred_leader(self) -> int:
        """Kafka's preferred replica: the first of the assignment (ignoring ones being added)."""
        target = self.target_replicas
        return target[0] if target else NO_LEADER

    @property
    def target_replicas(self) -> tuple[int, ...]:
        """The replicas once any reassignment in progress completes."""
        return tuple(node for node in self.replicas if node not in self.removing)


@dataclass(frozen=True, slots=True)
class TopicInfo:
    """A topic; `configs` holds only the values set on the topic (defaults are not stored)."""

    name: str
    topic_id: uuid.UUID
    partitions: int
    replication_factor: int
    configs: Mapping[str, str]
    partition_states: Mapping[int, PartitionState] = field(default_factory=dict)
    """Partition index -> replicas, leader and ISR. Empty only on a TopicInfo built for
    validation (CreateTopics with validate_only); every topic of an image has all."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "configs", _frozen(self.configs))
        object.__setattr__(self, "partition_states", _frozen(self.partition_states))

    def with_partition_states(self, states: Mapping[int, PartitionState]) -> TopicInfo:
        """This topic with `states` replacing (or adding) the states of their partitions."""
        return replace(
            self,
            partitions=max(self.partitions, max(states, default=-1) + 1),
            partition_states={**self.partition_states, **states},
        )


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
    voters: Mapping[int, str] = field(default_factory=dict)
    """Node id -> Raft HOST:PORT of the members of the metadata quorum (the controllers)."""
    share_groups: frozenset[str] = frozenset()
    """Ids of the share groups that exist, so every broker's FindCoordinator names their share
    coordinator (their state is only on the leader of their `__share_group_state` partition)."""

    def __post_init__(self) -> None:
        for name in ("brokers", "topics", "topics_by_id", "producer_id_blocks", "voters"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        object.__setattr__(self, "share_groups", frozenset(self.share_groups))
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

    def live_brokers(self) -> list[BrokerInfo]:
        """Registered brokers that are not fenced, by node id."""
        return sorted((b for b in self.brokers.values() if not b.fenced), key=lambda b: b.node_id)

    def without_broker(self, node_id: int) -> MetadataImage:
        return replace(
            self, brokers={key: value for key, value in self.brokers.items() if key != node_id}
        )

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

    def with_share_groups(
        self, added: Iterable[str] = (), removed: Iterable[str] = ()
    ) -> MetadataImage:
        """`removed` share group ids dropped and `added` ones listed (in that order)."""
        groups = (self.share_groups - frozenset(removed)) | frozenset(added)
        return self if groups == self.share_groups else replace(self, share_groups=groups)

    def without_topic(self, name: str) -> MetadataImage:
        removed = self.topics[name]
        return replace(
            self,
            topics={key: value for key, value in self.topics.items() if key != name},
            topics_by_id={
                key: value for key, value in self.topics_by_id.items() if key != removed.topic_id
            },
        )
