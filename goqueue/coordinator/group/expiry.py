"""Offset expiry (Kafka's `offsets.retention.minutes`, KIP-211): which committed offsets a
group no longer needs.

Every `offsets.retention.check.interval.ms` the shard looks at each group, as Kafka's
`cleanupGroupMetadata` does: the offsets of topics the group does not subscribe to expire
once the retention has passed since a base time that depends on the group, and a group
without members whose offsets have all gone is deleted as well.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from goqueue.coordinator.group.classic import CONSUMER_PROTOCOL_TYPE, ClassicGroup, ClassicState
from goqueue.coordinator.group.consumer import ConsumerGroup
from goqueue.coordinator.group.messages import TopicPartition
from goqueue.coordinator.group.records import CommittedOffset

Base = Callable[[CommittedOffset], int]


def _commit_time(offset: CommittedOffset) -> int:
    return offset.commit_timestamp_ms


def expiry_base(group: ClassicGroup | ConsumerGroup) -> Base | None:
    """Kafka's OffsetExpirationCondition: from when an offset's retention counts, or None
    while none of the group's offsets may expire.

    KIP-848 groups and standalone commits (a group without a protocol): from the commit. A
    classic group without members: from when it became Empty. A Stable classic consumer group
    that knows its subscriptions: from the commit (only its unsubscribed topics can expire).
    """
    if isinstance(group, ConsumerGroup) or group.protocol_type is None:
        return _commit_time
    if group.is_in(ClassicState.EMPTY):
        became_empty = group.state_timestamp_ms
        return lambda _offset: became_empty
    if (
        group.protocol_type == CONSUMER_PROTOCOL_TYPE
        and group.is_in(ClassicState.STABLE)
        and group.subscribed_topics() is not None
    ):
        return _commit_time
    return None


@dataclass(frozen=True, slots=True)
class Expired:
    partitions: list[TopicPartition]
    everything: bool
    """Whether no offset of the group is left (Kafka then deletes a group without members)."""


def expired_offsets(
    offsets: Mapping[TopicPartition, CommittedOffset],
    base: Base | None,
    subscribed: Collection[str],
    now_ms: int,
    retention_ms: int,
) -> Expired:
    """The offsets whose retention has passed, outside the topics the group subscribes to."""
    if base is None:
        return Expired([], not offsets)
    expired = [
        tp
        for tp, offset in offsets.items()
        if tp.topic not in subscribed and now_ms - base(offset) >= retention_ms
    ]
    return Expired(expired, len(expired) == len(offsets))
