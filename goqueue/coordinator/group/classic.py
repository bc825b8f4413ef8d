"""A classic consumer group (the JoinGroup/SyncGroup protocol): members, state, generation.

The assignment is computed by the leader client; the coordinator only runs the rebalance
protocol: it collects the members' protocols, picks the one all of them support, hands the
leader everyone's metadata and distributes the leader's assignment. This module holds the
group's data and the invariants between its fields, as Kafka's `ClassicGroup` does; the
operations that drive it live in `membership.py`.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable

from kio.schema.errors import ErrorCode

from goqueue.coordinator.group.consumer_protocol import subscribed_topics
from goqueue.coordinator.group.messages import (
    UNKNOWN_MEMBER_ID,
    DescribedGroup,
    DescribedMember,
    GroupProtocol,
    JoinedMember,
    JoinResponse,
    ListedGroup,
    SyncResponse,
    Waiter,
)
from goqueue.coordinator.group.records import GroupSnapshot, MemberSnapshot

CONSUMER_PROTOCOL_TYPE = "consumer"


class GroupError(Exception):
    """A request the group refuses, with the Kafka error code to answer."""

    def __init__(self, error: ErrorCode, message: str | None = None) -> None:
        super().__init__(message or error.name)
        self.error = error


class ClassicState(enum.Enum):
    """Kafka's classic group states, named as Kafka reports them."""

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


_VALID_PREVIOUS = {
    ClassicState.EMPTY: {ClassicState.PREPARING_REBALANCE},
    ClassicState.PREPARING_REBALANCE: {
        ClassicState.STABLE,
        ClassicState.COMPLETING_REBALANCE,
        ClassicState.EMPTY,
    },
    ClassicState.COMPLETING_REBALANCE: {ClassicState.PREPARING_REBALANCE},
    ClassicState.STABLE: {ClassicState.COMPLETING_REBALANCE},
    ClassicState.DEAD: set(ClassicState),
}


class ClassicMember:
    """One member: its protocols, timeouts, assignment and the requests it has parked."""

    def __init__(
        self,
        member_id: str,
        group_instance_id: str | None,
        client_id: str,
        client_host: str,
        rebalance_timeout_ms: int,
        session_timeout_ms: int,
        protocol_type: str,
        protocols: tuple[GroupProtocol, ...],
        assignment: bytes = b"",
    ) -> None:
        self.member_id = member_id
        self.group_instance_id = group_instance_id
        self.client_id = client_id
        self.client_host = client_host
        self.rebalance_timeout_ms = rebalance_timeout_ms
        self.session_timeout_ms = session_timeout_ms
        self.protocol_type = protocol_type
        self.protocols = protocols
        self.assignment = assignment
        self.join_waiter: Waiter[JoinResponse] | None = None
        self.sync_waiter: Waiter[SyncResponse] | None = None
        self.is_new = False

    @property
    def is_static(self) -> bool:
        return self.group_instance_id is not None

    @property
    def awaiting_join(self) -> bool:
        return self.join_waiter is not None

    @property
    def awaiting_sync(self) -> bool:
        return self.sync_waiter is not None

    @property
    def protocol_names(self) -> set[str]:
        return {protocol.name for protocol in self.protocols}

    def has_satisfied_heartbeat(self) -> bool:
        """A member waiting in a rebalance needs no heartbeat, except a new member whose
        JoinGroup may have been abandoned by a client that gave up."""
        if self.is_new:
            return False
        return self.awaiting_join or self.awaiting_sync

    def matches(self, protocols: tuple[GroupProtocol, ...]) -> bool:
        return self.protocols == protocols

    def metadata(self, protocol_name: str | None) -> bytes:
        for protocol in self.protocols:
            if protocol.name == protocol_name:
                return protocol.metadata
        return b""

    def vote(self, candidates: set[str]) -> str:
        """The member's most preferred protocol among those every member supports."""
        for protocol in self.protocols:
            if protocol.name in candidates:
                return protocol.name
        raise ValueError(f"member {self.member_id} supports none of {sorted(candidates)}")

    def snapshot(self, protocol_name: str | None) -> MemberSnapshot:
        return MemberSnapshot(
            member_id=self.member_id,
            group_instance_id=self.group_instance_id,
            client_id=self.client_id,
            client_host=self.client_host,
            rebalance_timeout_ms=self.rebalance_timeout_ms,
            session_timeout_ms=self.session_timeout_ms,
            subscription=self.metadata(protocol_name),
            assignment=self.assignment,
        )


class ClassicGroup:
    """A classic group's members and rebalance state."""

    group_type = "classic"

    def __init__(
        self,
        group_id: str,
        now_ms: int,
        state: ClassicState = ClassicState.EMPTY,
        generation_id: int = 0,
        protocol_type: str | None = None,
        protocol_name: str | None = None,
        leader_id: str | None = None,
    ) -> None:
        self.group_id = group_id
        self.state = state
        self.previous_state = ClassicState.DEAD
        self.state_timestamp_ms = now_ms
        self.generation_id = generation_id
        self.protocol_type = protocol_type
        self.protocol_name = protocol_name
        self.leader_id = leader_id
        self.members: dict[str, ClassicMember] = {}
        self.static_members: dict[str, str] = {}
        """Group instance id to the member id currently holding it."""
        self.pending_join_members: set[str] = set()
        """Member ids handed out with MEMBER_ID_REQUIRED that have not joined yet."""
        self.pending_sync_members: set[str] = set()
        self.new_member_added = False
        """Set during the initial rebalance, to extend its delay while members keep arriving."""
        self._awaiting_join = 0
        self._supported: dict[str, int] = {}
        """How many members support each protocol name."""

    @classmethod
    def from_snapshot(cls, group_id: str, snapshot: GroupSnapshot, now_ms: int) -> ClassicGroup:
        """A group as persisted: Stable with its members, or Empty without."""
        group = cls(
            group_id,
            snapshot.state_timestamp_ms if snapshot.state_timestamp_ms >= 0 else now_ms,
            ClassicState.STABLE if snapshot.members else ClassicState.EMPTY,
            snapshot.generation,
            snapshot.protocol_type or None,
            snapshot.protocol,
            snapshot.leader,
        )
        for m in snapshot.members:
            protocols = (GroupProtocol(snapshot.protocol or "", m.subscription),)
            group.add(
                ClassicMember(
                    m.member_id,
                    m.group_instance_id,
                    m.client_id,
                    m.client_host,
                    m.rebalance_timeout_ms,
                    m.session_timeout_ms,
                    snapshot.protocol_type,
                    protocols,
                    m.assignment,
                )
            )
        return group

    def snapshot(self) -> GroupSnapshot:
        return GroupSnapshot(
            protocol_type=self.protocol_type or "",
            generation=self.generation_id,
            protocol=self.protocol_name,
            leader=self.leader_id,
            state_timestamp_ms=self.state_timestamp_ms,
            members=tuple(m.snapshot(self.protocol_name) for m in self.members.values()),
        )

    # Membership.

    def is_in(self, *states: ClassicState) -> bool:
        return self.state in states

    @property
    def is_empty(self) -> bool:
        return self.state is ClassicState.EMPTY

    def has_member(self, member_id: str) -> bool:
        return member_id in self.members

    def is_leader(self, member_id: str) -> bool:
        return self.leader_id == member_id

    @property
    def num_awaiting_join(self) -> int:
        return self._awaiting_join

    def add(self, member: ClassicMember, join_waiter: Waiter[JoinResponse] | None = None) -> None:
        if member.group_instance_id is not None:
            if member.group_instance_id in self.static_members:
                raise ValueError(f"static member {member.group_instance_id} is already a member")
            self.static_members[member.group_instance_id] = member.member_id
        if not self.members:
            self.protocol_type = member.protocol_type
        if self.leader_id is None:
            self.leader_id = member.member_id
        self.members[member.member_id] = member
        self._count_protocols(member, 1)
        member.join_waiter = join_waiter
        if join_waiter is not None:
            self._awaiting_join += 1
        self.pending_join_members.discard(member.member_id)

    def remove(self, member_id: str) -> None:
        member = self.members.pop(member_id, None)
        if member is not None:
            self._count_protocols(member, -1)
            if member.awaiting_join:
                self._awaiting_join -= 1
            if member.group_instance_id is not None:
                self.static_members.pop(member.group_instance_id, None)
        if self.is_leader(member_id):
            self.leader_id = next(iter(self.members), None)
        self.pending_join_members.discard(member_id)
        self.pending_sync_members.discard(member_id)

    def update_member(
        self,
        member: ClassicMember,
        protocols: tuple[GroupProtocol, ...],
        rebalance_timeout_ms: int,
        session_timeout_ms: int,
        join_waiter: Waiter[JoinResponse] | None,
    ) -> None:
        self._count_protocols(member, -1)
        member.protocols = protocols
        self._count_protocols(member, 1)
        member.rebalance_timeout_ms = rebalance_timeout_ms
        member.session_timeout_ms = session_timeout_ms
        if join_waiter is not None and not member.awaiting_join:
            self._awaiting_join += 1
        elif join_waiter is None and member.awaiting_join:
            self._awaiting_join -= 1
        member.join_waiter = join_waiter

    def replace_static_member(
        self, group_instance_id: str, old_member_id: str, new_member_id: str
    ) -> ClassicMember:
        """Give a static member's place to a new member id, fencing requests the old id has
        parked, and keep its protocols, timeouts and assignment."""
        old = self.members.pop(old_member_id)
        self.complete_join(
            old, JoinResponse(ErrorCode.fenced_instance_id, old_member_id, protocol_name=None)
        )
        self.complete_sync(old, SyncResponse(ErrorCode.fenced_instance_id))
        new = ClassicMember(
            new_member_id,
            old.group_instance_id,
            old.client_id,
            old.client_host,
            old.rebalance_timeout_ms,
            old.session_timeout_ms,
            old.protocol_type,
            old.protocols,
            old.assignment,
        )
        self.members[new_member_id] = new
        if self.is_leader(old_member_id):
            self.leader_id = new_member_id
        self.static_members[group_instance_id] = new_member_id
        return new

    def validate_member(self, member_id: str, group_instance_id: str | None) -> ClassicMember:
        """The member a request names, or UNKNOWN_MEMBER_ID, or FENCED_INSTANCE_ID when the
        group instance id now belongs to a newer member id."""
        if group_instance_id is not None:
            holder = self.static_members.get(group_instance_id)
            if holder is None:
                raise GroupError(ErrorCode.unknown_member_id)
            if holder != member_id:
                raise GroupError(
                    ErrorCode.fenced_instance_id,
                    f"instance {group_instance_id} is held by member {holder}, not {member_id}",
                )
        member = self.members.get(member_id)
        if member is None:
            raise GroupError(ErrorCode.unknown_member_id)
        return member

    def new_member_id(self, client_id: str, group_instance_id: str | None) -> str:
        return f"{group_instance_id or client_id}-{uuid.uuid4()}"

    # Rebalance bookkeeping.

    def transition_to(self, state: ClassicState, now_ms: int) -> None:
        if self.state not in _VALID_PREVIOUS[state]:
            raise ValueError(f"group {self.group_id}: invalid transition {self.state} -> {state}")
        self.previous_state = self.state
        self.state = state
        self.state_timestamp_ms = now_ms

    def can_rebalance(self) -> bool:
        return self.state in _VALID_PREVIOUS[ClassicState.PREPARING_REBALANCE]

    def has_all_members_joined(self) -> bool:
        return len(self.members) == self._awaiting_join and not self.pending_join_members

    def not_yet_rejoined(self) -> list[ClassicMember]:
        return [m for m in self.members.values() if not m.awaiting_join]

    @property
    def rebalance_timeout_ms(self) -> int:
        """The longest rebalance timeout of any member: how long a rebalance may wait."""
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def supports_protocols(self, protocol_type: str, names: Iterable[str]) -> bool:
        """Whether a member with these protocols may join: an empty group takes any non-empty
        type and protocols; otherwise the type must match and one protocol be supported by
        every current member."""
        names = set(names)
        if self.state is ClassicState.EMPTY:
            return bool(protocol_type) and bool(names)
        return self.protocol_type == protocol_type and any(
            self._supported.get(name, 0) == len(self.members) for name in names
        )

    def select_protocol(self) -> str:
        """Each member votes for its most preferred protocol that every member supports; the
        most voted wins, ties going to the one the leader prefers."""
        candidates = {name for name, count in self._supported.items() if count == len(self.members)}
        votes: dict[str, int] = {}
        for member in self.members.values():
            choice = member.vote(candidates)
            votes[choice] = votes.get(choice, 0) + 1
        leader = self.members.get(self.leader_id or "")
        preference = [p.name for p in leader.protocols] if leader else sorted(votes)
        return max(votes, key=lambda name: (votes[name], -_rank(preference, name)))

    def maybe_elect_new_joined_leader(self) -> bool:
        """Keep a leader that rejoined, else pick any member that did; False if none did."""
        if self.leader_id is None:
            return False
        if self.members[self.leader_id].awaiting_join:
            return True
        for member in self.members.values():
            if member.awaiting_join:
                self.leader_id = member.member_id
                return True
        return False

    def init_next_generation(self, now_ms: int) -> None:
        self.generation_id += 1
        if self.members:
            self.protocol_name = self.select_protocol()
            self.transition_to(ClassicState.COMPLETING_REBALANCE, now_ms)
        else:
            self.protocol_name = None
            self.transition_to(ClassicState.EMPTY, now_ms)
        self.pending_sync_members.clear()

    def complete_join(self, member: ClassicMember, response: JoinResponse) -> bool:
        waiter = member.join_waiter
        if waiter is None:
            return False
        member.join_waiter = None
        self._awaiting_join -= 1
        if not waiter.done():
            waiter.set_result(response)
        return True

    def complete_sync(self, member: ClassicMember, response: SyncResponse) -> bool:
        waiter = member.sync_waiter
        if waiter is None:
            return False
        member.sync_waiter = None
        if not waiter.done():
            waiter.set_result(response)
        return True

    def joined_members(self) -> tuple[JoinedMember, ...]:
        """Every member's metadata for the chosen protocol, as the leader receives them."""
        return tuple(
            JoinedMember(m.member_id, m.group_instance_id, m.metadata(self.protocol_name))
            for m in self.members.values()
        )

    def join_response(self, member_id: str, *, skip_assignment: bool = False) -> JoinResponse:
        """The successful JoinGroup answer of the current generation; only the leader gets
        the members."""
        is_leader = self.is_leader(member_id)
        return JoinResponse(
            ErrorCode.none,
            member_id,
            self.generation_id,
            self.protocol_type,
            self.protocol_name,
            self.leader_id or "",
            self.joined_members() if is_leader else (),
            skip_assignment,
        )

    def _count_protocols(self, member: ClassicMember, delta: int) -> None:
        for name in member.protocol_names:
            self._supported[name] = self._supported.get(name, 0) + delta

    # Views.

    def subscribed_topics(self) -> set[str] | None:
        """Topics the members subscribe to, when the group uses the consumer protocol and its
        subscriptions parse; None when unknown."""
        if self.protocol_type != CONSUMER_PROTOCOL_TYPE:
            return None
        if not self.members:
            return set()
        if self.protocol_name is None:
            return None
        return subscribed_topics(m.metadata(self.protocol_name) for m in self.members.values())

    def describe(self) -> DescribedGroup:
        """DescribeGroups: member metadata and assignments only once the group is Stable."""
        stable = self.state is ClassicState.STABLE
        return DescribedGroup(
            group_id=self.group_id,
            error=ErrorCode.none,
            state=self.state.value,
            protocol_type=self.protocol_type or "",
            protocol=(self.protocol_name or "") if stable else "",
            members=tuple(
                DescribedMember(
                    member_id=m.member_id,
                    group_instance_id=m.group_instance_id,
                    client_id=m.client_id,
                    client_host=m.client_host,
                    metadata=m.metadata(self.protocol_name) if stable else b"",
                    assignment=m.assignment if stable else b"",
                )
                for m in self.members.values()
            ),
        )

    def listed(self) -> ListedGroup:
        return ListedGroup(
            self.group_id, self.protocol_type or "", self.state.value, self.group_type
        )


def _rank(preference: list[str], name: str) -> int:
    return preference.index(name) if name in preference else len(preference)


__all__ = [
    "CONSUMER_PROTOCOL_TYPE",
    "UNKNOWN_MEMBER_ID",
    "ClassicGroup",
    "ClassicMember",
    "ClassicState",
    "GroupError",
]
