"""Protocol-neutral requests and answers of the share coordinator."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kio.schema.errors import ErrorCode

from goqueue.coordinator.group.consumer import ConsumerHeartbeatResponse
from goqueue.coordinator.share.group import TopicPartition
from goqueue.coordinator.share.partition import AckBatch, Acquired

JOIN_EPOCH = 0
LEAVE_EPOCH = -1


@dataclass(frozen=True, slots=True)
class ShareHeartbeat:
    group_id: str
    member_id: str
    member_epoch: int
    subscribed_topics: tuple[str, ...] | None
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""


ShareHeartbeatResponse = ConsumerHeartbeatResponse
"""A ShareGroupHeartbeat answer has the fields of a KIP-848 one."""


@dataclass(frozen=True, slots=True)
class DescribedMember:
    member_id: str
    member_epoch: int
    client_id: str
    client_host: str
    rack_id: str | None
    subscribed_topics: tuple[str, ...]
    assignment: dict[uuid.UUID, tuple[str, tuple[int, ...]]]
    """Partitions by topic id, with the topic's name."""


@dataclass(frozen=True, slots=True)
class ShareGroupDescription:
    group_id: str
    error: ErrorCode
    state: str = "Dead"
    epoch: int = 0
    members: tuple[DescribedMember, ...] = ()


@dataclass(frozen=True, slots=True)
class PartitionStats:
    """One share partition as `goqueue group describe`, the HTTP API and metrics show it."""

    topic: str
    partition: int
    start_offset: int
    end_offset: int
    available: int
    """Records that may be delivered now or after their backoff, including the backlog of
    records past the end offset not yet read by the group."""
    acquired: int
    backing_off: int
    dead_lettering: int
    acknowledged: int
    archived: int
    dead_lettered: int

    @property
    def in_flight(self) -> int:
        """Records delivered or waiting to be delivered again: acquired, backing off,
        being dead-lettered."""
        return self.acquired + self.backing_off + self.dead_lettering


@dataclass(frozen=True, slots=True)
class ShareGroupStats:
    group_id: str
    state: str
    members: int
    partitions: tuple[PartitionStats, ...] = ()
    oldest_unacknowledged_age_ms: int | None = None
    """Age of the oldest record not yet acknowledged: read from the log by
    `ShareCoordinator.stats` (so it covers records the group has not read yet); from the
    records in flight only in the shard's in-memory view that metrics use."""
    dlq_topic: str = ""

    def total(self, name: str) -> int:
        """A count (a PartitionStats field or `in_flight`) summed over the partitions."""
        return sum(int(getattr(p, name)) for p in self.partitions)


@dataclass(frozen=True, slots=True)
class ShareParams:
    group_id: str
    member_id: str
    session_epoch: int
    max_wait_ms: int
    max_bytes: int
    max_records: int
    fetch: Sequence[TopicPartition]
    forget: Sequence[TopicPartition]
    acks: Mapping[TopicPartition, Sequence[AckBatch]]
    allow_renew: bool = False
    origin: int | None = None
    """The peer broker that forwarded the request (its share session is that broker's),
    None for a client's own request."""


@dataclass(slots=True)
class SharePartitionResult:
    error: ErrorCode = ErrorCode.none
    ack_error: ErrorCode = ErrorCode.none
    ack_message: str | None = None
    records: bytes = b""
    acquired: list[Acquired] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ShareResult:
    error: ErrorCode
    message: str | None = None
    lock_timeout_ms: int = 0
    partitions: Mapping[TopicPartition, SharePartitionResult] = field(default_factory=dict)
