"""KIP-848 consumer groups: the broker assigns partitions and each member reconciles by
itself, one heartbeat at a time, without stopping the group.

Every change is a record (member subscriptions, group epoch, target assignment, each member's
current assignment) that the runtime replays into the state, as Kafka does, so a restarted
broker resumes every group exactly where it was. The group epoch moves when membership,
subscriptions or subscribed topics change; the assignor then computes a target assignment
for that epoch, and each member converges to its target: it first releases the partitions it
must give up (UNREVOKED_PARTITIONS), then takes the new epoch and those of its target
partitions that nobody else still owns (UNRELEASED_PARTITIONS until all are free).

A member subscribes by topic names, by a regular expression (SubscribedTopicRegex, matched
against whole topic names as Kafka's RE2/J `matches()` does), or both. The expression is
persisted in the member's record; the topics it matches are resolved from the metadata image
at every heartbeat, so a topic created or deleted later changes the group's metadata hash and
bumps the epoch at the next heartbeat, like any change of a subscribed topic.

Static members (an instance id, KIP-345) follow Kafka's GroupMetadataManager: epoch -2 only
marks the member departed (its current assignment record at epoch -2), so its partitions wait
for it without a rebalance; a new member id joining with the instance id replaces it (the old
member's tombstones, then its records under the new id) without a group epoch bump, and its
session timer removes it if nobody does. One live member per instance id.
"""

from __future__ import annotations

import enum
import logging
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from kio.schema.errors import ErrorCode

from goqueue.coordinator.group.assignors import ASSIGNORS, MemberSpec
from goqueue.coordinator.group.classic import ClassicGroup
from goqueue.coordinator.group.config import GroupConfig
from goqueue.coordinator.group.messages import DescribedGroup, ListedGroup
from goqueue.coordinator.group.records import (
    CONSUMER_GROUP_KEY,
    CONSUMER_MEMBER_KEY,
    CURRENT_MEMBER_KEY,
    TARGET_EPOCH_KEY,
    TARGET_MEMBER_KEY,
    Assignment,
    GroupEpoch,
    MemberAssignment,
    MemberSubscription,
    consumer_group_record,
    consumer_member_record,
    metadata_hash,
)
from goqueue.coordinator.runtime import Record, Result, Timer

logger = logging.getLogger(__name__)

JOIN_EPOCH = 0
LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2
CONSUMER_MEMBER_TYPE = 1
Partition = tuple[uuid.UUID, int]


class MemberState(enum.IntEnum):
    """Kafka's `MemberState` values, as stored in the current assignment records."""

    STABLE = 1
    UNREVOKED_PARTITIONS = 2
    UNRELEASED_PARTITIONS = 3


class TopicLookup(Protocol):
    """The topics the cluster has, by name and by id."""

    def by_name(self, name: str) -> tuple[uuid.UUID, int] | None: ...

    def name_of(self, topic_id: uuid.UUID) -> str | None: ...


class TopicCatalog(TopicLookup, Protocol):
    """The topics the cluster has, which regular expressions are matched against."""

    def names(self) -> Iterable[str]: ...


class Subscribed:
    """What a group's subscriptions name or match, resolved against the cluster's topics."""

    def __init__(self, subscriptions: Iterable[MemberSubscription], topics: TopicCatalog) -> None:
        subscriptions = list(subscriptions)
        patterns = {s.regex for s in subscriptions if s.regex}
        names = list(topics.names()) if patterns else []
        self._matches = {regex: _matching(regex, names) for regex in patterns}
        self.names = {name for s in subscriptions for name in self.of(s)}
        """Every topic named or matched, whether it exists or not."""
        self.topics: dict[str, tuple[uuid.UUID, int]] = {}
        """Every subscribed topic that exists: its id and partition count."""
        for name in self.names:
            found = topics.by_name(name)
            if found is not None:
                self.topics[name] = found

    def of(self, subscription: MemberSubscription) -> set[str]:
        """The topics one member names or matches."""
        matched = self._matches.get(subscription.regex or "", frozenset())
        return {*subscription.topics, *matched}


def _matching(regex: str, names: Iterable[str]) -> frozenset[str]:
    """The names the whole of which match `regex`; an expression this coordinator cannot
    compile (only from records another implementation wrote) matches nothing, as in Kafka."""
    try:
        pattern = re.compile(regex)
    except re.error as exc:
        logger.error("ignoring regular expression %r that does not compile: %s", regex, exc)
        return frozenset()
    return frozenset(name for name in names if pattern.fullmatch(name))


NO_ASSIGNMENT = MemberAssignment(JOIN_EPOCH, LEAVE_EPOCH, MemberState.STABLE, {}, {})
EMPTY_SUBSCRIPTION = MemberSubscription(None, None, "", "", (), -1, None)


@dataclass
class ConsumerMember:
    member_id: str
    subscription: MemberSubscription
    current: MemberAssignment = NO_ASSIGNMENT


@dataclass
class ConsumerGroup:
    """A consumer group as its records describe it."""

    group_id: str
    epoch: int = 0
    metadata_hash: int = 0
    target_epoch: int = 0
    members: dict[str, ConsumerMember] = field(default_factory=dict)
    targets: dict[str, Assignment] = field(default_factory=dict)
    owners: dict[Partition, str] = field(default_factory=dict)
    """Who holds each partition (assigned, or still to be revoked)."""

    group_type = "consumer"

    @property
    def is_empty(self) -> bool:
        return not self.members

    @property
    def state(self) -> str:
        """Kafka's names: Empty, Assigning (a new epoch has no target yet), Reconciling
        (members still converging to the target) or Stable."""
        if not self.members:
            return "Empty"
        if self.epoch > self.target_epoch:
            return "Assigning"
        for member in self.members.values():
            current = member.current
            if current.member_epoch != self.target_epoch or current.state != MemberState.STABLE:
                return "Reconciling"
        return "Stable"

    def set_current(self, member: ConsumerMember, current: MemberAssignment) -> None:
        """A member's new assignment, keeping `owners` in step."""
        for partition in _partitions(member.current.assigned, member.current.pending_revocation):
            if self.owners.get(partition) == member.member_id:
                del self.owners[partition]
        member.current = current
        for partition in _partitions(current.assigned, current.pending_revocation):
            self.owners[partition] = member.member_id

    def static_member(self, instance_id: str) -> ConsumerMember | None:
        """The member that holds `instance_id` (KIP-345: at most one at a time)."""
        return next(
            (m for m in self.members.values() if m.subscription.instance_id == instance_id), None
        )

    def replacing(self, old: ConsumerMember, new: ConsumerMember) -> ConsumerGroup:
        """This group as it is once `new` replaces the static member `old`, taking over its
        target and the partitions it holds; the replacement's records are replayed only
        after the heartbeat, which meanwhile reconciles against this view."""
        view = replace(self, members=dict(self.members), targets=dict(self.targets))
        del view.members[old.member_id]
        view.members[new.member_id] = new
        target = view.targets.pop(old.member_id, None)
        if target is not None:
            view.targets[new.member_id] = target
        view.owners = {
            partition: new.member_id if owner == old.member_id else owner
            for partition, owner in self.owners.items()
        }
        return view

    def preferred_assignor(self, default: str) -> str:
        return preferred_assignor([m.subscription for m in self.members.values()], default)

    def listed(self) -> ListedGroup:
        return ListedGroup(self.group_id, "consumer", self.state, self.group_type)

    def describe(self) -> DescribedGroup:
        return DescribedGroup(
            self.group_id, ErrorCode.none, self.state, "consumer", "", group_type=self.group_type
        )


@dataclass(frozen=True, slots=True)
class ConsumerHeartbeat:
    group_id: str
    member_id: str
    member_epoch: int
    instance_id: str | None
    rack_id: str | None
    rebalance_timeout_ms: int
    """-1: unchanged since the last heartbeat."""
    subscribed_topics: tuple[str, ...] | None
    """None: unchanged."""
    subscribed_regex: str | None
    """None: unchanged; empty: none (librdkafka sends one when it subscribes by names)."""
    server_assignor: str | None
    owned: Assignment | None
    """The partitions the member owns; None: unchanged."""
    client_id: str
    client_host: str
    member_id_from_client: bool = True
    """ConsumerGroupHeartbeat v1+: the client generates its member id."""


@dataclass(frozen=True, slots=True)
class ConsumerHeartbeatResponse:
    error: ErrorCode
    message: str | None = None
    member_id: str | None = None
    member_epoch: int = 0
    heartbeat_interval_ms: int = 0
    assignment: Assignment | None = None


@dataclass(frozen=True, slots=True)
class ConsumerMemberDescription:
    member_id: str
    instance_id: str | None
    rack_id: str | None
    member_epoch: int
    client_id: str
    client_host: str
    subscribed_topics: tuple[str, ...]
    subscribed_regex: str | None
    assignment: Assignment
    target: Assignment


@dataclass(frozen=True, slots=True)
class ConsumerGroupDescription:
    group_id: str
    error: ErrorCode
    state: str = "Dead"
    epoch: int = 0
    assignment_epoch: int = 0
    assignor: str = ""
    members: tuple[ConsumerMemberDescription, ...] = ()


class GroupDirectory(Protocol):
    def find(self, group_id: str) -> object | None: ...

    def drop_classic(self, group_id: str) -> list[Record]: ...


class HeartbeatError(Exception):
    def __init__(self, error: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message


class ConsumerMembership:
    """The consumer protocol's operations over the shard's groups."""

    def __init__(
        self, groups: GroupDirectory, timer: Timer, config: GroupConfig, topics: TopicCatalog
    ) -> None:
        self._groups = groups
        self._timer = timer
        self._config = config
        self._topics = topics

    def group(self, group_id: str) -> ConsumerGroup | None:
        group = self._groups.find(group_id)
        return group if isinstance(group, ConsumerGroup) else None

    def heartbeat(self, request: ConsumerHeartbeat) -> Result[ConsumerHeartbeatResponse]:
        try:
            return self._heartbeat(request)
        except HeartbeatError as exc:
            logger.info(
                "ConsumerGroupHeartbeat of %s in group %s refused: %s %s",
                request.member_id,
                request.group_id,
                exc.error.name,
                exc.message,
            )
            return Result(ConsumerHeartbeatResponse(exc.error, exc.message))

    def _heartbeat(self, request: ConsumerHeartbeat) -> Result[ConsumerHeartbeatResponse]:
        self._validate(request)
        records: list[Record] = []
        existing = self._groups.find(request.group_id)
        if isinstance(existing, ClassicGroup):
            if not existing.is_empty:
                raise HeartbeatError(
                    ErrorCode.group_id_not_found,
                    f"Group {request.group_id} is not a consumer group.",
                )
            records += self._groups.drop_classic(request.group_id)
            existing = None
        group = existing if isinstance(existing, ConsumerGroup) else None
        if request.member_epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
            return self._leave(request, group)
        if group is None and request.member_epoch != JOIN_EPOCH:
            raise HeartbeatError(
                ErrorCode.group_id_not_found, f"Consumer group {request.group_id} not found."
            )
        member_id = request.member_id or str(uuid.uuid4())
        if (
            group is not None
            and member_id not in group.members
            and len(group.members) >= self._config.consumer_max_size
        ):
            raise HeartbeatError(
                ErrorCode.group_max_size_reached,
                f"The consumer group has reached its maximum size of "
                f"{self._config.consumer_max_size}.",
            )
        replaced = None
        member: ConsumerMember | None
        if group is not None and request.instance_id is not None:
            replaced = _static_member(group, member_id, request.instance_id, request.member_epoch)
        if group is not None and replaced is not None:
            group, member = self._replace(group, replaced, member_id, records)
            current = member.current
        else:
            member = None if group is None else group.members.get(member_id)
            if member is None and request.member_epoch != JOIN_EPOCH:
                raise HeartbeatError(
                    ErrorCode.unknown_member_id, f"Member {member_id} is not in the group."
                )
            current = NO_ASSIGNMENT
            if member is not None and request.member_epoch != JOIN_EPOCH:
                _check_epoch(member, request)
                current = member.current
        subscription = _updated_subscription(request, member)
        return Result(
            self._reconcile(request, group, member_id, subscription, current, records), records
        )

    def _validate(self, request: ConsumerHeartbeat) -> None:
        if not request.group_id:
            raise HeartbeatError(ErrorCode.invalid_request, "GroupId can't be empty.")
        if request.member_id_from_client and not request.member_id:
            raise HeartbeatError(ErrorCode.invalid_request, "MemberId can't be empty.")
        if request.member_epoch < STATIC_LEAVE_EPOCH:
            raise HeartbeatError(ErrorCode.invalid_request, "MemberEpoch is invalid.")
        if request.member_epoch == JOIN_EPOCH:
            if request.rebalance_timeout_ms == -1:
                raise HeartbeatError(
                    ErrorCode.invalid_request,
                    "RebalanceTimeoutMs must be provided in first request.",
                )
            if request.owned:
                raise HeartbeatError(
                    ErrorCode.invalid_request, "TopicPartitions must be empty when (re-)joining."
                )
            if request.subscribed_topics is None and request.subscribed_regex is None:
                raise HeartbeatError(
                    ErrorCode.invalid_request,
                    "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
                )
        if request.subscribed_regex:
            _check_regex(request.subscribed_regex)
        assignor = request.server_assignor
        if assignor is not None and assignor not in ASSIGNORS:
            raise HeartbeatError(
                ErrorCode.unsupported_assignor,
                f"ServerAssignor {assignor} is not supported. Supported assignors: "
                f"{', '.join(ASSIGNORS)}.",
            )

    def _reconcile(
        self,
        request: ConsumerHeartbeat,
        group: ConsumerGroup | None,
        member_id: str,
        subscription: MemberSubscription,
        current: MemberAssignment,
        records: list[Record],
    ) -> ConsumerHeartbeatResponse:
        group_id = request.group_id
        members = dict(group.members) if group else {}
        old_subscription = members[member_id].subscription if member_id in members else None
        if subscription != old_subscription:
            records.append(
                consumer_member_record(group_id, member_id, CONSUMER_MEMBER_KEY, subscription)
            )
        subscriptions = {mid: m.subscription for mid, m in members.items()}
        subscriptions[member_id] = subscription
        subscribed = Subscribed(subscriptions.values(), self._topics)
        topics = subscribed.topics
        digest = metadata_hash(topics)
        bump = (
            group is None
            or old_subscription is None
            or old_subscription.topics != subscription.topics
            or (old_subscription.regex or None) != (subscription.regex or None)
            or old_subscription.server_assignor != subscription.server_assignor
            or digest != group.metadata_hash
        )
        epoch = (group.epoch if group else 0) + (1 if bump else 0)
        if bump:
            records.append(
                consumer_group_record(group_id, CONSUMER_GROUP_KEY, GroupEpoch(epoch, digest))
            )
        target_epoch = group.target_epoch if group else 0
        targets = dict(group.targets) if group else {}
        if epoch > target_epoch:
            name = preferred_assignor(subscriptions.values(), self._config.consumer_assignors[0])
            specs = {
                mid: MemberSpec(
                    frozenset(topics[t][0] for t in subscribed.of(sub) if t in topics),
                    targets.get(mid, {}),
                )
                for mid, sub in subscriptions.items()
            }
            counts = {topic_id: count for topic_id, count in topics.values()}
            new_targets = ASSIGNORS[name](specs, counts)
            for mid, target in new_targets.items():
                if _normal(target) != _normal(targets.get(mid, {})):
                    records.append(consumer_member_record(group_id, mid, TARGET_MEMBER_KEY, target))
            records.append(consumer_group_record(group_id, TARGET_EPOCH_KEY, epoch))
            targets, target_epoch = new_targets, epoch
        others = {
            partition: owner
            for partition, owner in (group.owners.items() if group else ())
            if owner != member_id
        }
        updated = reconcile(
            current, target_epoch, targets.get(member_id, {}), others, request.owned
        )
        previous = members[member_id].current if member_id in members else NO_ASSIGNMENT
        self._schedule_session(group_id, member_id)
        if updated != previous:
            records.append(consumer_member_record(group_id, member_id, CURRENT_MEMBER_KEY, updated))
            self._schedule_revocation(group_id, member_id, updated, subscription)
        full_request = request.member_epoch == JOIN_EPOCH or (
            request.rebalance_timeout_ms != -1
            and (request.subscribed_topics is not None or request.subscribed_regex is not None)
            and request.owned is not None
        )
        send = full_request or _normal(updated.assigned) != _normal(previous.assigned)
        return ConsumerHeartbeatResponse(
            ErrorCode.none,
            None,
            member_id,
            updated.member_epoch,
            self._config.consumer_heartbeat_interval_ms,
            updated.assigned if send else None,
        )

    def subscribed_topics(self, group: ConsumerGroup) -> set[str]:
        """The topics the group's members name or match, as Kafka's `isSubscribedToTopic`
        sees them: OffsetDelete and offset expiry keep their offsets."""
        subscriptions = (m.subscription for m in group.members.values())
        return Subscribed(subscriptions, self._topics).names

    def _leave(
        self, request: ConsumerHeartbeat, group: ConsumerGroup | None
    ) -> Result[ConsumerHeartbeatResponse]:
        """Epoch -1 removes the member at once. Epoch -2 from a static member (KIP-345) only
        marks it departed: it keeps its partitions, so nothing rebalances, until a new
        instance with its instance id replaces it or its session expires."""
        member = None if group is None else group.members.get(request.member_id)
        if group is not None and request.instance_id is not None:
            member = _instance_owner(group, request.member_id, request.instance_id)
        if group is None:
            raise HeartbeatError(
                ErrorCode.group_id_not_found, f"Consumer group {request.group_id} not found."
            )
        if member is None:
            raise HeartbeatError(
                ErrorCode.unknown_member_id, f"Member {request.member_id} is not in the group."
            )
        if request.instance_id is not None and request.member_epoch == STATIC_LEAVE_EPOCH:
            logger.info(
                "static member %s (instance id %s) temporarily left consumer group %s",
                member.member_id,
                request.instance_id,
                group.group_id,
            )
            departed = replace(
                member.current, member_epoch=STATIC_LEAVE_EPOCH, pending_revocation={}
            )
            record = consumer_member_record(
                group.group_id, member.member_id, CURRENT_MEMBER_KEY, departed
            )
            response = ConsumerHeartbeatResponse(
                ErrorCode.none, None, member.member_id, STATIC_LEAVE_EPOCH
            )
            return Result(response, [record])
        logger.info("member %s left consumer group %s", member.member_id, group.group_id)
        self._cancel_timers(group.group_id, member.member_id)
        return Result(
            ConsumerHeartbeatResponse(
                ErrorCode.none, None, request.member_id, request.member_epoch
            ),
            self._removal(group, member.member_id),
        )

    def _replace(
        self, group: ConsumerGroup, old: ConsumerMember, member_id: str, records: list[Record]
    ) -> tuple[ConsumerGroup, ConsumerMember]:
        """A new instance of a departed static member takes its place (Kafka's records: the
        old member's tombstones, then the new member id with the old one's subscription,
        target and current assignment at epoch 0), so the group epoch does not move. The old
        member's timers stay: they find no member by that id when they fire, and still
        guard it if these records are never written."""
        group_id = group.group_id
        new = ConsumerMember(
            member_id,
            old.subscription,
            replace(old.current, member_epoch=JOIN_EPOCH, previous_member_epoch=JOIN_EPOCH),
        )
        logger.info(
            "static member %s of consumer group %s (instance id %s) is replaced by %s",
            old.member_id,
            group_id,
            old.subscription.instance_id,
            member_id,
        )
        target = group.targets.get(old.member_id, {})
        records += [
            *_tombstones(group_id, old.member_id),
            consumer_member_record(group_id, member_id, CONSUMER_MEMBER_KEY, new.subscription),
            consumer_member_record(group_id, member_id, TARGET_MEMBER_KEY, target),
            consumer_member_record(group_id, member_id, CURRENT_MEMBER_KEY, new.current),
        ]
        return group.replacing(old, new), new

    def _removal(self, group: ConsumerGroup, member_id: str) -> list[Record]:
        """Tombstones of a member's records and the group epoch bump its departure causes."""
        group_id = group.group_id
        remaining = [m.subscription for mid, m in group.members.items() if mid != member_id]
        digest = metadata_hash(Subscribed(remaining, self._topics).topics)
        return [
            *_tombstones(group_id, member_id),
            consumer_group_record(
                group_id, CONSUMER_GROUP_KEY, GroupEpoch(group.epoch + 1, digest)
            ),
        ]

    def _schedule_session(self, group_id: str, member_id: str) -> None:
        """Every heartbeat restarts the member's session."""
        self._timer.schedule(
            _session_key(group_id, member_id),
            self._config.consumer_session_timeout_ms,
            lambda: self._fence(group_id, member_id, None),
        )

    def _schedule_revocation(
        self,
        group_id: str,
        member_id: str,
        current: MemberAssignment,
        subscription: MemberSubscription,
    ) -> None:
        """A member entering UNREVOKED_PARTITIONS has its rebalance timeout to revoke; its
        heartbeats meanwhile do not extend it."""
        key = _rebalance_key(group_id, member_id)
        if current.state == MemberState.UNREVOKED_PARTITIONS:
            epoch = current.member_epoch
            self._timer.schedule(
                key,
                subscription.rebalance_timeout_ms,
                lambda: self._fence(group_id, member_id, epoch),
            )
        else:
            self._timer.cancel(key)

    def schedule_loaded(self, group: ConsumerGroup) -> None:
        """After loading, every member must heartbeat within its session again."""
        for member in group.members.values():
            self._schedule_session(group.group_id, member.member_id)
            self._schedule_revocation(
                group.group_id, member.member_id, member.current, member.subscription
            )

    def _fence(self, group_id: str, member_id: str, revoking_epoch: int | None) -> Result[None]:
        """Remove a member whose session expired, or that did not revoke its partitions of
        `revoking_epoch` within its rebalance timeout."""
        group = self.group(group_id)
        member = None if group is None else group.members.get(member_id)
        if group is None or member is None:
            return Result(None)
        if revoking_epoch is not None and (
            member.current.state != MemberState.UNREVOKED_PARTITIONS
            or member.current.member_epoch != revoking_epoch
        ):
            return Result(None)
        why = "session expired" if revoking_epoch is None else "did not revoke in time"
        logger.info("fencing member %s of consumer group %s: %s", member_id, group_id, why)
        self._cancel_timers(group_id, member_id)
        return Result(None, self._removal(group, member_id))

    def _cancel_timers(self, group_id: str, member_id: str) -> None:
        self._timer.cancel(_session_key(group_id, member_id))
        self._timer.cancel(_rebalance_key(group_id, member_id))

    def cancel_timers(self, group: ConsumerGroup) -> None:
        for member_id in group.members:
            self._cancel_timers(group.group_id, member_id)

    def describe(self, group_id: str) -> ConsumerGroupDescription:
        group = self.group(group_id)
        if group is None:
            return ConsumerGroupDescription(group_id, ErrorCode.group_id_not_found)
        return ConsumerGroupDescription(
            group_id,
            ErrorCode.none,
            group.state,
            group.epoch,
            group.target_epoch,
            group.preferred_assignor(self._config.consumer_assignors[0]),
            tuple(
                ConsumerMemberDescription(
                    m.member_id,
                    m.subscription.instance_id,
                    m.subscription.rack_id,
                    m.current.member_epoch,
                    m.subscription.client_id,
                    m.subscription.client_host,
                    m.subscription.topics,
                    m.subscription.regex,
                    m.current.assigned,
                    group.targets.get(m.member_id, {}),
                )
                for m in group.members.values()
            ),
        )

    def deletion(self, group: ConsumerGroup) -> list[Record]:
        """The tombstones that delete an empty consumer group."""
        return [
            consumer_group_record(group.group_id, TARGET_EPOCH_KEY, None),
            consumer_group_record(group.group_id, CONSUMER_GROUP_KEY, None),
        ]


def reconcile(
    current: MemberAssignment,
    target_epoch: int,
    target: Assignment,
    held_by_others: Mapping[Partition, str],
    owned: Assignment | None,
) -> MemberAssignment:
    """One step of a member towards its target assignment (Kafka's CurrentAssignmentBuilder).

    A member that owns partitions outside its target keeps its epoch and must revoke them
    first; once it reports that it no longer owns them, it takes the target epoch and the
    target partitions nobody else holds, waiting (UNRELEASED_PARTITIONS) for the others.
    """
    if current.state == MemberState.UNREVOKED_PARTITIONS:
        if owned is None or _intersects(owned, current.pending_revocation):
            return MemberAssignment(
                current.member_epoch,
                current.previous_member_epoch,
                MemberState.UNREVOKED_PARTITIONS,
                _intersection(current.assigned, target),
                _union(current.pending_revocation, _minus(current.assigned, target)),
            )
        current = MemberAssignment(
            current.member_epoch,
            current.previous_member_epoch,
            MemberState.STABLE,
            current.assigned,
            {},
        )
    if current.member_epoch == target_epoch and current.state == MemberState.STABLE:
        return current
    keep = _intersection(current.assigned, target)
    revoke = _minus(current.assigned, target)
    if revoke:
        return MemberAssignment(
            current.member_epoch,
            current.previous_member_epoch,
            MemberState.UNREVOKED_PARTITIONS,
            keep,
            revoke,
        )
    wanted = _minus(target, keep)
    free = {
        topic_id: frozenset(p for p in parts if (topic_id, p) not in held_by_others)
        for topic_id, parts in wanted.items()
    }
    waiting = _minus(wanted, free)
    previous = (
        current.member_epoch
        if current.member_epoch != target_epoch
        else current.previous_member_epoch
    )
    state = MemberState.UNRELEASED_PARTITIONS if waiting else MemberState.STABLE
    return MemberAssignment(target_epoch, previous, state, _normal(_union(keep, free)), {})


def _tombstones(group_id: str, member_id: str) -> list[Record]:
    """A member's records deleted, in Kafka's order."""
    return [
        consumer_member_record(group_id, member_id, CURRENT_MEMBER_KEY, None),
        consumer_member_record(group_id, member_id, TARGET_MEMBER_KEY, None),
        consumer_member_record(group_id, member_id, CONSUMER_MEMBER_KEY, None),
    ]


def _static_member(
    group: ConsumerGroup, member_id: str, instance_id: str, member_epoch: int
) -> ConsumerMember | None:
    """The static member a joining instance replaces, if any, as Kafka decides: only one
    that left with epoch -2 (else UNRELEASED_INSTANCE_ID); later heartbeats must come from
    the member that holds the instance id (else UNKNOWN_MEMBER_ID or FENCED_INSTANCE_ID)."""
    if member_epoch != JOIN_EPOCH:
        _instance_owner(group, member_id, instance_id)
        return None
    holder = group.static_member(instance_id)
    if holder is None:
        return None
    if holder.current.member_epoch != STATIC_LEAVE_EPOCH:
        raise HeartbeatError(
            ErrorCode.unreleased_instance_id,
            f"Static member {member_id} with instance id {instance_id} cannot join the group "
            f"because the instance id is owned by {holder.member_id} member.",
        )
    return holder


def _instance_owner(group: ConsumerGroup, member_id: str, instance_id: str) -> ConsumerMember:
    """The static member that holds `instance_id`, which must be `member_id`."""
    holder = group.static_member(instance_id)
    if holder is None:
        raise HeartbeatError(ErrorCode.unknown_member_id, f"Instance id {instance_id} is unknown.")
    if holder.member_id != member_id:
        raise HeartbeatError(
            ErrorCode.fenced_instance_id,
            f"Static member {member_id} with instance id {instance_id} was fenced by member "
            f"{holder.member_id}.",
        )
    return holder


def _check_epoch(member: ConsumerMember, request: ConsumerHeartbeat) -> None:
    """A heartbeat of an epoch the member does not have is fenced, except the previous one
    from a member whose last answer got lost, as long as it owns only partitions it still
    has (Kafka's `throwIfConsumerGroupMemberEpochIsInvalid`)."""
    epoch = member.current.member_epoch
    received = request.member_epoch
    if received > epoch:
        relation = "greater"
    elif received < epoch and (
        received != member.current.previous_member_epoch
        or not _is_subset(request.owned, member.current.assigned)
    ):
        relation = "smaller"
    else:
        return
    raise HeartbeatError(
        ErrorCode.fenced_member_epoch,
        f"The consumer group member has a {relation} member epoch ({received}) than the one "
        f"known by the group coordinator ({epoch}). The member must abandon all its "
        f"partitions and rejoin.",
    )


def _is_subset(owned: Assignment | None, assigned: Assignment) -> bool:
    """Unknown owned partitions (None) are not a subset, as in Kafka."""
    return owned is not None and all(
        topic_id in assigned and frozenset(parts) <= assigned[topic_id]
        for topic_id, parts in owned.items()
    )


def _updated_subscription(
    request: ConsumerHeartbeat, member: ConsumerMember | None
) -> MemberSubscription:
    """The member's subscription with what the heartbeat changed (null fields: unchanged)."""
    old = EMPTY_SUBSCRIPTION if member is None else member.subscription
    topics = request.subscribed_topics
    return MemberSubscription(
        instance_id=_or(request.instance_id, old.instance_id),
        rack_id=_or(request.rack_id, old.rack_id),
        client_id=request.client_id,
        client_host=request.client_host,
        topics=old.topics if topics is None else tuple(sorted(set(topics))),
        rebalance_timeout_ms=(
            old.rebalance_timeout_ms
            if request.rebalance_timeout_ms == -1
            else request.rebalance_timeout_ms
        ),
        server_assignor=_or(request.server_assignor, old.server_assignor),
        regex=_or(request.subscribed_regex, old.regex),
    )


def _check_regex(regex: str) -> None:
    """Kafka compiles a new SubscribedTopicRegex with RE2/J and refuses it with
    INVALID_REGULAR_EXPRESSION if it does not compile; here Python's `re` compiles it."""
    try:
        re.compile(regex)
    except re.error as exc:
        raise HeartbeatError(
            ErrorCode.invalid_regular_expression,
            f"SubscribedTopicRegex `{regex}` is not a valid regular expression: {exc}.",
        ) from exc


def _or(value: str | None, unchanged: str | None) -> str | None:
    return unchanged if value is None else value


def preferred_assignor(subscriptions: Iterable[MemberSubscription], default: str) -> str:
    """The server assignor most members ask for (ties: alphabetical), else the default."""
    votes: dict[str, int] = {}
    for subscription in subscriptions:
        if subscription.server_assignor:
            votes[subscription.server_assignor] = votes.get(subscription.server_assignor, 0) + 1
    if not votes:
        return default
    return max(sorted(votes), key=lambda name: votes[name])


def _session_key(group_id: str, member_id: str) -> str:
    return f"consumer-session-{group_id}-{member_id}"


def _rebalance_key(group_id: str, member_id: str) -> str:
    return f"consumer-rebalance-{group_id}-{member_id}"


def _partitions(*assignments: Assignment) -> set[Partition]:
    return {(t, p) for a in assignments for t, parts in a.items() for p in parts}


def _normal(assignment: Assignment) -> dict[uuid.UUID, frozenset[int]]:
    """Without empty topics, so equal assignments compare equal."""
    return {t: frozenset(parts) for t, parts in assignment.items() if parts}


def _intersection(a: Assignment, b: Assignment) -> dict[uuid.UUID, frozenset[int]]:
    return _normal({t: frozenset(parts) & b.get(t, frozenset()) for t, parts in a.items()})


def _minus(a: Assignment, b: Assignment) -> dict[uuid.UUID, frozenset[int]]:
    return _normal({t: frozenset(parts) - b.get(t, frozenset()) for t, parts in a.items()})


def _union(a: Assignment, b: Assignment) -> dict[uuid.UUID, frozenset[int]]:
    merged: dict[uuid.UUID, frozenset[int]] = {}
    for assignment in (a, b):
        for t, parts in assignment.items():
            merged[t] = merged.get(t, frozenset()) | frozenset(parts)
    return _normal(merged)


def _intersects(a: Assignment, b: Assignment) -> bool:
    return any(frozenset(parts) & b.get(t, frozenset()) for t, parts in a.items())
