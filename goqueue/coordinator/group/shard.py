"""One partition of `__consumer_offsets`: its groups and their committed offsets.

The shard is the group coordinator's state machine. Everything here is synchronous and free of
I/O: operations return the records to write (the runtime appends them and answers once they are
durable), timers come from the runtime, and parked requests are answered through waiters.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Collection, Mapping, Sequence

from kio.schema.errors import ErrorCode

from goqueue.coordinator.group.classic import (
    CONSUMER_PROTOCOL_TYPE,
    ClassicGroup,
    ClassicState,
    GroupError,
)
from goqueue.coordinator.group.config import GroupConfig
from goqueue.coordinator.group.consumer import (
    EMPTY_SUBSCRIPTION,
    NO_ASSIGNMENT,
    ConsumerGroup,
    ConsumerGroupDescription,
    ConsumerHeartbeat,
    ConsumerHeartbeatResponse,
    ConsumerMember,
    ConsumerMembership,
    TopicCatalog,
)
from goqueue.coordinator.group.expiry import expired_offsets, expiry_base
from goqueue.coordinator.group.membership import ClassicMembership, join_key
from goqueue.coordinator.group.messages import (
    UNKNOWN_MEMBER_ID,
    CommitRequest,
    DescribedGroup,
    FetchRequest,
    FetchResponse,
    HeartbeatRequest,
    JoinRequest,
    JoinResponse,
    LeaveResponse,
    LeavingMember,
    ListedGroup,
    SyncRequest,
    SyncResponse,
    TopicPartition,
    Waiter,
)
from goqueue.coordinator.group.offsets import NO_OFFSET, OffsetStore
from goqueue.coordinator.group.records import (
    CONSUMER_GROUP_KEY,
    CONSUMER_MEMBER_KEY,
    CURRENT_MEMBER_KEY,
    TARGET_MEMBER_KEY,
    ConsumerGroupKey,
    ConsumerMemberKey,
    GroupEpoch,
    GroupKey,
    MemberAssignment,
    MemberSubscription,
    OffsetKey,
    RecordFormatError,
    decode_consumer_value,
    decode_group,
    decode_key,
    decode_offset,
    group_record,
)
from goqueue.coordinator.runtime import Record, Result, Timer, batch_size_bound

logger = logging.getLogger(__name__)

Group = ClassicGroup | ConsumerGroup
EXPIRY_KEY = "offsets-expiry"


class GroupShard:
    """The groups whose ids hash to one partition of `__consumer_offsets`."""

    def __init__(self, index: int, timer: Timer, config: GroupConfig, topics: TopicCatalog) -> None:
        self.index = index
        self._timer = timer
        self._config = config
        self.groups: dict[str, Group] = {}
        self.offsets = OffsetStore()
        self.classic = ClassicMembership(self, timer, config)
        self.consumer = ConsumerMembership(self, timer, config, topics)

    def find(self, group_id: str) -> Group | None:
        return self.groups.get(group_id)

    def create_classic(self, group_id: str) -> ClassicGroup:
        group = ClassicGroup(group_id, self._timer.now_ms())
        self.groups[group_id] = group
        return group

    def drop(self, group_id: str) -> None:
        self.groups.pop(group_id, None)

    def drop_classic(self, group_id: str) -> list[Record]:
        """Remove an empty classic group that becomes a consumer group (its offsets stay)."""
        group = self.groups.pop(group_id)
        assert isinstance(group, ClassicGroup)
        self.classic.cancel_timers(group)
        return [group_record(group_id, None)]

    # Loading.

    def replay(self, offset: int, record: Record) -> None:
        try:
            key = decode_key(record.key)
            if isinstance(key, OffsetKey):
                value = None if record.value is None else decode_offset(record.value)
                if value is not None and key.group_id not in self.groups:
                    self.create_classic(key.group_id)
                self.offsets.replay(key, value)
            elif isinstance(key, GroupKey):
                self._replay_group(key.group_id, record.value)
            elif isinstance(key, ConsumerGroupKey):
                self._replay_consumer_group(key, record.value)
            else:
                self._replay_consumer_member(key, record.value)
        except RecordFormatError as exc:
            logger.warning("skipping record at offset %d of shard %d: %s", offset, self.index, exc)

    def _replay_group(self, group_id: str, value: bytes | None) -> None:
        if value is None:
            if isinstance(self.groups.get(group_id), ClassicGroup):
                del self.groups[group_id]
            return
        snapshot = decode_group(value)
        self.groups[group_id] = ClassicGroup.from_snapshot(group_id, snapshot, self._timer.now_ms())

    def _consumer_group(self, group_id: str) -> ConsumerGroup:
        """The consumer group its records describe; compaction may have left an offset
        commit (which makes a simple classic group) before its first group record."""
        group = self.groups.get(group_id)
        if not isinstance(group, ConsumerGroup):
            if group is not None and not group.is_empty:
                logger.warning("classic group %s is replaced by a consumer group", group_id)
            group = self.groups[group_id] = ConsumerGroup(group_id)
        return group

    def _replay_consumer_group(self, key: ConsumerGroupKey, value: bytes | None) -> None:
        if value is None:
            if key.record_type == CONSUMER_GROUP_KEY and isinstance(
                self.groups.get(key.group_id), ConsumerGroup
            ):
                del self.groups[key.group_id]
            return
        group = self._consumer_group(key.group_id)
        decoded = decode_consumer_value(key.record_type, value)
        if isinstance(decoded, GroupEpoch):
            group.epoch, group.metadata_hash = decoded.epoch, decoded.metadata_hash
        elif isinstance(decoded, int):
            group.target_epoch = decoded

    def _replay_consumer_member(self, key: ConsumerMemberKey, value: bytes | None) -> None:
        group = self.groups.get(key.group_id)
        if value is None:
            if not isinstance(group, ConsumerGroup):
                return
            member = group.members.get(key.member_id)
            if key.record_type == CURRENT_MEMBER_KEY and member is not None:
                group.set_current(member, NO_ASSIGNMENT)
            elif key.record_type == TARGET_MEMBER_KEY:
                group.targets.pop(key.member_id, None)
            elif key.record_type == CONSUMER_MEMBER_KEY:
                group.members.pop(key.member_id, None)
            return
        group = self._consumer_group(key.group_id)
        decoded = decode_consumer_value(key.record_type, value)
        member = group.members.get(key.member_id)
        if member is None:
            member = group.members[key.member_id] = ConsumerMember(
                key.member_id, EMPTY_SUBSCRIPTION
            )
        if isinstance(decoded, MemberSubscription):
            member.subscription = decoded
        elif isinstance(decoded, MemberAssignment):
            group.set_current(member, decoded)
        elif isinstance(decoded, Mapping):
            group.targets[key.member_id] = decoded

    def on_loaded(self) -> None:
        """Loaded members must heartbeat within their session to keep their place; a group
        above `group.max.size` rebalances so its members can commit and the extra ones go."""
        for group in self.groups.values():
            if isinstance(group, ConsumerGroup):
                self.consumer.schedule_loaded(group)
                continue
            for member in group.members.values():
                self.classic.schedule_session(group, member)
            if len(group.members) > self._config.max_size:
                rebalance = functools.partial(self.classic.prepare_rebalance, group)
                self._timer.schedule(join_key(group.group_id), 0, rebalance)
        if self.groups:
            logger.info("shard %d serves %d groups", self.index, len(self.groups))
        self._timer.schedule(
            EXPIRY_KEY, self._config.offsets_retention_check_interval_ms, self.expire_offsets
        )

    def on_unloaded(self) -> None:
        """Parked requests learn that this broker no longer coordinates their group."""
        for group in self.groups.values():
            if not isinstance(group, ClassicGroup):
                continue
            previous = group.state
            group.state = ClassicState.DEAD
            for member in group.members.values():
                if previous is ClassicState.PREPARING_REBALANCE:
                    group.complete_join(
                        member, JoinResponse(ErrorCode.not_coordinator, member.member_id)
                    )
                else:
                    group.complete_sync(member, SyncResponse(ErrorCode.not_coordinator))

    # The classic protocol.

    def join(self, request: JoinRequest, waiter: Waiter[JoinResponse]) -> Result[None]:
        """An empty consumer group becomes a classic group when a classic member joins."""
        group = self.groups.get(request.group_id)
        if isinstance(group, ConsumerGroup) and group.is_empty:
            self.consumer.cancel_timers(group)
            del self.groups[request.group_id]
            result = self.classic.join(request, waiter)
            return Result(None, [*self.consumer.deletion(group), *result.records], replay=False)
        return self.classic.join(request, waiter)

    def sync(self, request: SyncRequest, waiter: Waiter[SyncResponse]) -> Result[None]:
        return self.classic.sync(request, waiter)

    def heartbeat(self, request: HeartbeatRequest) -> Result[ErrorCode]:
        return Result(self.classic.heartbeat(request))

    def leave(self, group_id: str, members: Sequence[LeavingMember]) -> Result[LeaveResponse]:
        return self.classic.leave(group_id, members)

    # The consumer protocol (KIP-848).

    def consumer_heartbeat(self, request: ConsumerHeartbeat) -> Result[ConsumerHeartbeatResponse]:
        return self.consumer.heartbeat(request)

    def consumer_describe(self, group_id: str) -> ConsumerGroupDescription:
        return self.consumer.describe(group_id)

    # Offsets.

    def commit_offsets(self, request: CommitRequest) -> Result[dict[TopicPartition, ErrorCode]]:
        try:
            self._validate_commit(request)
        except GroupError as exc:
            return Result({tp: exc.error for tp in request.offsets})
        errors, records = self.offsets.commit(
            request.group_id,
            request.offsets,
            self._timer.now_ms(),
            self._config.offset_metadata_max_bytes,
        )
        return Result(errors, records)

    def _validate_commit(self, request: CommitRequest) -> None:
        """Kafka's rules: a generation of -1 from no member commits to a group without
        members (creating a "simple" group if needed); anything else must come from a current
        member of the current generation, outside the sync phase."""
        group = self.groups.get(request.group_id)
        if group is None:
            if request.generation_id >= 0:
                raise GroupError(
                    ErrorCode.group_id_not_found
                    if request.api_version >= 9
                    else ErrorCode.illegal_generation
                )
            self.create_classic(request.group_id)
            return
        if isinstance(group, ConsumerGroup):
            _validate_consumer_member(
                group, request.member_id, request.generation_id, request.api_version
            )
            return
        if group.is_in(ClassicState.DEAD):
            raise GroupError(ErrorCode.coordinator_not_available)
        if request.generation_id < 0 and group.is_empty:
            return
        if (
            request.generation_id >= 0
            or request.member_id != UNKNOWN_MEMBER_ID
            or request.group_instance_id is not None
        ):
            group.validate_member(request.member_id, request.group_instance_id)
            if request.generation_id != group.generation_id:
                raise GroupError(ErrorCode.illegal_generation)
        elif not group.is_empty:
            raise GroupError(ErrorCode.unknown_member_id)
        if group.is_in(ClassicState.COMPLETING_REBALANCE):
            raise GroupError(ErrorCode.rebalance_in_progress)
        self.classic.touch(group, request.member_id)

    def fetch_offsets(self, request: FetchRequest) -> FetchResponse:
        """Offsets of a group that does not exist are simply not committed (-1). A member
        of a consumer group that names itself must be current (OffsetFetch v9+)."""
        group = self._live(request.group_id)
        if group is None:
            return FetchResponse(ErrorCode.none, dict.fromkeys(request.partitions or (), NO_OFFSET))
        if isinstance(group, ConsumerGroup) and request.member_id is not None:
            try:
                _validate_consumer_member(group, request.member_id, request.member_epoch, 9)
            except GroupError as exc:
                return FetchResponse(exc.error)
        return FetchResponse(
            ErrorCode.none, self.offsets.fetch(request.group_id, request.partitions)
        )

    def delete_offsets(
        self, group_id: str, partitions: Collection[TopicPartition]
    ) -> Result[tuple[ErrorCode, dict[TopicPartition, ErrorCode]]]:
        """OffsetDelete: only for groups without members, or for topics a consumer-protocol
        group does not subscribe to."""
        group = self._live(group_id)
        if group is None:
            return Result((ErrorCode.group_id_not_found, {}))
        if (
            isinstance(group, ClassicGroup)
            and not group.is_empty
            and group.protocol_type != CONSUMER_PROTOCOL_TYPE
        ):
            return Result((ErrorCode.non_empty_group, {}))
        subscribed = (
            self.consumer.subscribed_topics(group)
            if isinstance(group, ConsumerGroup)
            else group.subscribed_topics()
        )
        errors: dict[TopicPartition, ErrorCode] = {}
        deletable = []
        for tp in partitions:
            in_use = tp.topic in subscribed if subscribed is not None else not group.is_empty
            if in_use:
                errors[tp] = ErrorCode.group_subscribed_to_topic
            else:
                errors[tp] = ErrorCode.none
                deletable.append(tp)
        return Result((ErrorCode.none, errors), self.offsets.tombstones(group_id, deletable))

    # Administration.

    def describe(self, group_id: str) -> DescribedGroup | None:
        group = self.groups.get(group_id)
        return None if group is None else group.describe()

    def list_groups(self, states: Collection[str], types: Collection[str]) -> list[ListedGroup]:
        """Groups whose state and type are among those asked (case-insensitive; empty: all)."""
        wanted_states = {state.lower() for state in states}
        wanted_types = {group_type.lower() for group_type in types}
        listed = [group.listed() for group in self.groups.values()]
        return [
            g
            for g in listed
            if (not wanted_states or g.state.lower() in wanted_states)
            and (not wanted_types or g.group_type.lower() in wanted_types)
        ]

    def delete_groups(self, group_ids: Sequence[str]) -> Result[dict[str, ErrorCode]]:
        """DeleteGroups: groups without members lose their offsets and metadata."""
        errors: dict[str, ErrorCode] = {}
        records: list[Record] = []
        for group_id in group_ids:
            group = self._live(group_id)
            if group is None:
                errors[group_id] = ErrorCode.group_id_not_found
            elif not group.is_empty:
                errors[group_id] = ErrorCode.non_empty_group
            else:
                errors[group_id] = ErrorCode.none
                records += self.offsets.tombstones(group_id, self.offsets.of(group_id))
                records += self._deletion(group)
        return Result(errors, records)

    def _deletion(self, group: Group) -> list[Record]:
        """The tombstones of a group without members (its offsets apart); its timers stop."""
        if isinstance(group, ConsumerGroup):
            self.consumer.cancel_timers(group)
            return self.consumer.deletion(group)
        self.classic.cancel_timers(group)
        return [group_record(group.group_id, None)]

    def expire_offsets(self) -> Result[None]:
        """Kafka's cleanupGroupMetadata, every `offsets.retention.check.interval.ms`: the
        tombstones of expired offsets, and of the groups without members left without any.
        One run writes at most one batch; if more expired, the next run follows at once."""
        now_ms = self._timer.now_ms()
        records: list[Record] = []
        room = self._config.max_batch_bytes - batch_size_bound(())
        more = False
        for group_id, group in list(self.groups.items()):
            subscribed = (
                self.consumer.subscribed_topics(group)
                if isinstance(group, ConsumerGroup)
                else group.subscribed_topics() or set()
            )
            expired = expired_offsets(
                self.offsets.of(group_id),
                expiry_base(group),
                subscribed,
                now_ms,
                self._config.offsets_retention_ms,
            )
            tombstones = self.offsets.tombstones(group_id, expired.partitions)
            deletable = group.is_empty and (
                isinstance(group, ConsumerGroup) or group.is_in(ClassicState.EMPTY)
            )
            deletion = self._deletion(group) if expired.everything and deletable else []
            sizes = [_record_size(record) for record in (*tombstones, *deletion)]
            if sum(sizes) > room:
                fitting = 0
                while fitting < len(tombstones) and sizes[fitting] <= room:
                    room -= sizes[fitting]
                    fitting += 1
                records += tombstones[:fitting]
                more = True
                break
            room -= sum(sizes)
            records += tombstones + deletion
            if tombstones or deletion:
                logger.info(
                    "group %s: %d committed offsets expired%s",
                    group_id,
                    len(tombstones),
                    ", group deleted" if deletion else "",
                )
        delay = 0 if more else self._config.offsets_retention_check_interval_ms
        self._timer.schedule(EXPIRY_KEY, delay, self.expire_offsets)
        return Result(None, records)

    def _live(self, group_id: str) -> Group | None:
        """The group, unless it does not exist or is dead (its shard is unloading)."""
        group = self.groups.get(group_id)
        if isinstance(group, ClassicGroup) and group.is_in(ClassicState.DEAD):
            return None
        return group

    def committed(self, group_id: str) -> Mapping[TopicPartition, int]:
        """Committed offsets by partition, for lag."""
        return {tp: value.offset for tp, value in self.offsets.of(group_id).items()}


def _record_size(record: Record) -> int:
    """What one record adds to a batch."""
    return batch_size_bound([record]) - batch_size_bound(())


def _validate_consumer_member(
    group: ConsumerGroup, member_id: str, member_epoch: int, api_version: int
) -> None:
    """KIP-848 offset requests: a simple commit (epoch -1, no member) only to a group
    without members; else a current member with its current epoch (STALE_MEMBER_EPOCH; before
    OffsetCommit v9 a client cannot be told that, so UNSUPPORTED_VERSION, as Kafka answers)."""
    if member_epoch < 0 and not member_id and group.is_empty:
        return
    member = group.members.get(member_id)
    if member is None:
        raise GroupError(ErrorCode.unknown_member_id)
    if member_epoch != member.current.member_epoch:
        raise GroupError(
            ErrorCode.stale_member_epoch if api_version >= 9 else ErrorCode.unsupported_version
        )
