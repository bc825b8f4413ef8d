"""The group coordinator's requests and responses, independent of any wire protocol.

The Kafka handlers translate kio messages to and from these; the coordinator's state machines
and their unit tests use only these. Error codes are Kafka's, since the group protocol is
Kafka's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from kio.schema.errors import ErrorCode

T_contra = TypeVar("T_contra", contravariant=True)
UNKNOWN_MEMBER_ID = ""
NO_GENERATION = -1


class Waiter(Protocol[T_contra]):
    """Where a parked request's response goes (an asyncio future on the broker)."""

    def done(self) -> bool: ...

    def set_result(self, result: T_contra, /) -> None: ...


@dataclass(frozen=True, slots=True)
class GroupProtocol:
    """One protocol (assignor) a member supports, with its subscription metadata."""

    name: str
    metadata: bytes


@dataclass(frozen=True, slots=True)
class JoinRequest:
    group_id: str
    member_id: str
    group_instance_id: str | None
    protocol_type: str
    protocols: tuple[GroupProtocol, ...]
    session_timeout_ms: int
    rebalance_timeout_ms: int
    client_id: str
    client_host: str
    require_known_member_id: bool
    """JoinGroup v4+ (KIP-394): a new dynamic member first gets MEMBER_ID_REQUIRED."""
    supports_skip_assignment: bool = False
    """JoinGroup v9+: a static leader that rejoins a stable group may skip the assignment."""
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class JoinedMember:
    member_id: str
    group_instance_id: str | None
    metadata: bytes


@dataclass(frozen=True, slots=True)
class JoinResponse:
    error: ErrorCode
    member_id: str
    generation_id: int = NO_GENERATION
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    members: tuple[JoinedMember, ...] = ()
    skip_assignment: bool = False


@dataclass(frozen=True, slots=True)
class SyncRequest:
    group_id: str
    member_id: str
    group_instance_id: str | None
    generation_id: int
    protocol_type: str | None
    protocol_name: str | None
    assignments: Mapping[str, bytes]


@dataclass(frozen=True, slots=True)
class SyncResponse:
    error: ErrorCode
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignment: bytes = b""


@dataclass(frozen=True, slots=True)
class HeartbeatRequest:
    group_id: str
    member_id: str
    group_instance_id: str | None
    generation_id: int


@dataclass(frozen=True, slots=True)
class LeavingMember:
    member_id: str
    group_instance_id: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class LeftMember:
    member_id: str
    group_instance_id: str | None
    error: ErrorCode


@dataclass(frozen=True, slots=True)
class LeaveResponse:
    error: ErrorCode
    members: tuple[LeftMember, ...] = ()


@dataclass(frozen=True, slots=True)
class TopicPartition:
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class OffsetCommit:
    """One partition's offset to commit; `metadata` None is stored as "" as Kafka does."""

    offset: int
    leader_epoch: int = -1
    metadata: str | None = ""


@dataclass(frozen=True, slots=True)
class CommitRequest:
    group_id: str
    member_id: str
    group_instance_id: str | None
    generation_id: int
    """The classic generation, the member epoch of a KIP-848 member, or -1 (simple commit)."""
    offsets: Mapping[TopicPartition, OffsetCommit]
    api_version: int = 9
    """OffsetCommit v9+ reports a missing group as GROUP_ID_NOT_FOUND, older versions as
    ILLEGAL_GENERATION."""


@dataclass(frozen=True, slots=True)
class FetchedOffset:
    offset: int
    leader_epoch: int
    metadata: str
    error: ErrorCode = ErrorCode.none


@dataclass(frozen=True, slots=True)
class FetchRequest:
    group_id: str
    partitions: tuple[TopicPartition, ...] | None
    """None fetches every committed offset of the group."""
    member_id: str | None = None
    member_epoch: int = -1


@dataclass(frozen=True, slots=True)
class FetchResponse:
    error: ErrorCode
    offsets: Mapping[TopicPartition, FetchedOffset] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DescribedMember:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class DescribedGroup:
    group_id: str
    error: ErrorCode
    state: str
    protocol_type: str
    protocol: str
    members: tuple[DescribedMember, ...] = ()
    group_type: str = "classic"


@dataclass(frozen=True, slots=True)
class ListedGroup:
    group_id: str
    protocol_type: str
    state: str
    group_type: str
