"""One partition of `__share_group_state`: the share groups whose ids hash to it, with their
members, configs and share partitions.

The shard is the share coordinator's state machine: synchronous and free of I/O. Operations
change the state and return the records that persist the change (the runtime writes them
before the answer goes out); timers come from the runtime; what the service must do outside
the shard (wake waiting fetches, copy records to a dead-letter topic, forget a member's share
session) it learns through a `ShareListener`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Protocol

from kio.schema.errors import ErrorCode

from goqueue.config.settings import BrokerSettings
from goqueue.coordinator.group.consumer import TopicLookup
from goqueue.coordinator.runtime import Record, Result, Timer
from goqueue.coordinator.share.config import ShareGroupConfig
from goqueue.coordinator.share.group import (
    ShareGroup,
    ShareMember,
    TopicPartition,
    share_assignment,
)
from goqueue.coordinator.share.messages import (
    JOIN_EPOCH,
    LEAVE_EPOCH,
    DescribedMember,
    PartitionStats,
    ShareGroupDescription,
    ShareGroupStats,
    ShareHeartbeat,
    ShareHeartbeatResponse,
)
from goqueue.coordinator.share.partition import (
    AckBatch,
    Acquired,
    Candidate,
    RecordState,
    ShareError,
    SharePartition,
)
from goqueue.coordinator.share.records import (
    CONFIG,
    DELTA,
    DELTAS_PER_SNAPSHOT,
    GROUP,
    MEMBER,
    SNAPSHOT,
    Key,
    MemberValue,
    RecordFormatError,
    apply_state,
    config_record,
    decode_config,
    decode_group,
    decode_key,
    decode_member,
    delta_record,
    delta_tombstones,
    group_record,
    member_record,
    snapshot_record,
)

logger = logging.getLogger(__name__)


class LogOffsets(Protocol):
    """Where a topic partition's log starts and its high watermark, None if not hosted."""

    def __call__(self, topic: str, partition: int) -> tuple[int, int] | None: ...


class ShareListener(Protocol):
    """What the service does when the shard's state calls for I/O."""

    def records_available(self, group_id: str) -> None:
        """Records became available again: waiting fetches of the group retry."""

    def dead_letters_pending(self, group_id: str, tp: TopicPartition) -> None:
        """Records of a share partition wait for their dead-letter copy."""

    def member_removed(self, group_id: str, member_id: str) -> None:
        """A member left or was removed: its share session ends."""

    def shard_loaded(self, index: int) -> None:
        """The shard serves: the cluster metadata learns which of its groups exist."""


class ShareShard:
    """The share groups of one partition of `__share_group_state`."""

    def __init__(
        self,
        index: int,
        timer: Timer,
        settings: Callable[[], BrokerSettings],
        topics: TopicLookup,
        log_offsets: LogOffsets,
        listener: ShareListener,
    ) -> None:
        self.index = index
        self._timer = timer
        self._settings = settings
        self._topics = topics
        self._log_offsets = log_offsets
        self._listener = listener
        self.groups: dict[str, ShareGroup] = {}
        self.configs: dict[str, dict[str, str]] = {}

    def config(self, group_id: str) -> ShareGroupConfig:
        return ShareGroupConfig.resolve(group_id, self.configs.get(group_id, {}), self._settings())

    # Loading.

    def replay(self, offset: int, record: Record) -> None:
        try:
            key = decode_key(record.key)
            value = record.value
            if key.record_type == CONFIG:
                if value is None:
                    self.configs.pop(key.group_id, None)
                else:
                    self.configs[key.group_id] = decode_config(value)
                return
            if value is None:
                self._replay_tombstone(key)
                return
            group = self.groups.setdefault(key.group_id, ShareGroup(key.group_id))
            if key.record_type == GROUP:
                group.epoch = decode_group(value)
            elif key.record_type == MEMBER:
                self._replay_member(group, key.member_id, value)
            elif key.record_type in (SNAPSHOT, DELTA):
                assert key.topic_id is not None
                tp = (key.topic_id, key.partition)
                snapshot = key.record_type == SNAPSHOT
                group.partitions[tp] = apply_state(
                    group.partitions.get(tp), value, snapshot=snapshot
                )
                group.deltas[tp] = 0 if snapshot else key.sequence + 1
        except RecordFormatError as exc:
            logger.warning(
                "skipping record at offset %d of share shard %d: %s", offset, self.index, exc
            )

    def _replay_tombstone(self, key: Key) -> None:
        group = self.groups.get(key.group_id)
        if key.record_type == GROUP:
            self.groups.pop(key.group_id, None)
        elif group is not None and key.record_type == MEMBER:
            group.members.pop(key.member_id, None)
        elif group is not None and key.record_type == SNAPSHOT and key.topic_id is not None:
            group.partitions.pop((key.topic_id, key.partition), None)

    @staticmethod
    def _replay_member(group: ShareGroup, member_id: str, value: bytes) -> None:
        decoded = decode_member(value)
        group.members[member_id] = ShareMember(
            member_id,
            decoded.member_epoch,
            decoded.subscribed_topics,
            decoded.assignment,
            decoded.client_id,
            decoded.client_host,
            decoded.rack_id,
        )

    def on_loaded(self) -> None:
        """Loaded members must heartbeat within their session to stay; records that were
        being dead-lettered when the broker stopped are copied again."""
        for group in self.groups.values():
            config = self.config(group.group_id)
            for member_id in group.members:
                self._schedule_session(group.group_id, member_id, config.session_timeout_ms)
            for tp, partition in group.partitions.items():
                self._schedule_partition(group.group_id, tp, partition)
                if partition.dead_lettering():
                    self._listener.dead_letters_pending(group.group_id, tp)
        if self.groups:
            logger.info("share shard %d serves %d share groups", self.index, len(self.groups))
        self._listener.shard_loaded(self.index)

    def on_unloaded(self) -> None:
        """Nothing waits on the shard itself: fetches wait in the service."""

    # Membership (ShareGroupHeartbeat).

    def heartbeat(self, request: ShareHeartbeat) -> Result[ShareHeartbeatResponse]:
        config = self.config(request.group_id)
        try:
            return self._heartbeat(request, config)
        except ShareError as exc:
            logger.info(
                "share heartbeat of %s in %s refused: %s %s",
                request.member_id,
                request.group_id,
                exc.error.name,
                exc.message,
            )
            return Result(ShareHeartbeatResponse(exc.error, exc.message, request.member_id))

    def _heartbeat(
        self, request: ShareHeartbeat, config: ShareGroupConfig
    ) -> Result[ShareHeartbeatResponse]:
        group_id, member_id = request.group_id, request.member_id
        if not group_id:
            raise ShareError(ErrorCode.invalid_request, "GroupId can't be empty.")
        if not member_id:
            raise ShareError(ErrorCode.invalid_request, "MemberId can't be empty.")
        group = self.groups.get(group_id)
        member = None if group is None else group.members.get(member_id)
        if request.member_epoch == LEAVE_EPOCH:
            if group is None or member is None:
                raise ShareError(ErrorCode.unknown_member_id, f"Member {member_id} is unknown.")
            return Result(
                ShareHeartbeatResponse(ErrorCode.none, None, member_id, LEAVE_EPOCH),
                self._remove_member(group, member_id, timed_out=False),
                replay=False,
            )
        records: list[Record] = []
        if request.member_epoch == JOIN_EPOCH:
            if not request.subscribed_topics:
                raise ShareError(
                    ErrorCode.invalid_request, "SubscribedTopicNames must be set in first request."
                )
            if group is None:
                group = self.groups[group_id] = ShareGroup(group_id)
            if member is None and len(group.members) >= config.max_size:
                raise ShareError(
                    ErrorCode.group_max_size_reached,
                    f"The share group has reached its maximum size of {config.max_size}.",
                )
            if member is None:
                member = group.members[member_id] = ShareMember(member_id, 0, (), {})
            member.assignment = {}
            member.member_epoch = JOIN_EPOCH
        elif group is None or member is None:
            raise ShareError(ErrorCode.unknown_member_id, f"Member {member_id} is unknown.")
        elif request.member_epoch != member.member_epoch:
            raise ShareError(
                ErrorCode.fenced_member_epoch,
                f"Member epoch {request.member_epoch} is not the current {member.member_epoch}.",
            )
        changed = request.member_epoch == JOIN_EPOCH
        if request.subscribed_topics is not None and (
            tuple(sorted(request.subscribed_topics)) != member.subscribed_topics
        ):
            member.subscribed_topics = tuple(sorted(request.subscribed_topics))
            changed = True
        if request.rack_id is not None and request.rack_id != member.rack_id:
            member.rack_id = request.rack_id
            changed = True
        if (request.client_id, request.client_host) != (member.client_id, member.client_host):
            member.client_id, member.client_host = request.client_id, request.client_host
            changed = True
        records += self._drop_deleted_topics(group)
        target = self._targets(group).get(member_id, {})
        assignment = None
        if target != member.assignment or member.member_epoch == JOIN_EPOCH:
            group.epoch += 1
            member.member_epoch = group.epoch
            member.assignment = target
            assignment = target
            records.append(group_record(group_id, group.epoch))
            records += self._initialize_partitions(group, target, config)
            changed = True
        if changed:
            records.append(self._member_record(group_id, member))
        self._schedule_session(group_id, member_id, config.session_timeout_ms)
        return Result(
            ShareHeartbeatResponse(
                ErrorCode.none,
                None,
                member_id,
                member.member_epoch,
                config.heartbeat_interval_ms,
                assignment,
            ),
            records,
            replay=False,
        )

    def _drop_deleted_topics(self, group: ShareGroup) -> list[Record]:
        """The state of share partitions whose topic was deleted goes (topic ids are never
        reused, so a topic created again under the same name starts afresh)."""
        records = []
        for tp in [tp for tp in group.partitions if self._topics.name_of(tp[0]) is None]:
            records += self._forget_partition(group, tp)
        return records

    def _forget_partition(self, group: ShareGroup, tp: TopicPartition) -> list[Record]:
        for kind in ("lock", "ready"):
            self._timer.cancel(_partition_key(kind, group.group_id, tp))
        group.partitions.pop(tp, None)
        group.deltas.pop(tp, None)
        topic_id, index = tp
        return [
            snapshot_record(group.group_id, topic_id, index, None),
            *delta_tombstones(group.group_id, topic_id, index),
        ]

    def _targets(self, group: ShareGroup) -> dict[str, Mapping[uuid.UUID, frozenset[int]]]:
        topic_ids: dict[str, uuid.UUID] = {}
        partitions: dict[uuid.UUID, int] = {}
        for topic in group.subscribed_topics():
            found = self._topics.by_name(topic)
            if found is not None:
                topic_ids[topic], partitions[found[0]] = found
        return dict(share_assignment(group.members, partitions, topic_ids))

    def _initialize_partitions(
        self,
        group: ShareGroup,
        assignment: Mapping[uuid.UUID, frozenset[int]],
        config: ShareGroupConfig,
    ) -> list[Record]:
        """A share partition assigned for the first time starts at the log's end (`latest`)
        or start (`earliest`), as Kafka's InitializeShareGroupState does."""
        records = []
        for topic_id, parts in assignment.items():
            name = self._topics.name_of(topic_id)
            for p in sorted(parts):
                tp = (topic_id, p)
                offsets = None if name is None else self._log_offsets(name, p)
                if tp in group.partitions or offsets is None:
                    continue
                log_start, high_watermark = offsets
                start = log_start if config.auto_offset_reset == "earliest" else high_watermark
                partition = group.partitions[tp] = SharePartition.starting_at(start)
                group.deltas[tp] = 0
                records.append(snapshot_record(group.group_id, topic_id, p, partition))
        return records

    def _member_record(self, group_id: str, member: ShareMember) -> Record:
        return member_record(
            group_id,
            member.member_id,
            MemberValue(
                member.member_epoch,
                member.subscribed_topics,
                member.assignment,
                member.client_id,
                member.client_host,
                member.rack_id,
            ),
        )

    def _remove_member(self, group: ShareGroup, member_id: str, *, timed_out: bool) -> list[Record]:
        """A member leaves and the group epoch moves on. A member that left on its own still
        acknowledges what it holds as it closes its share session (which releases the rest);
        the records of a member that timed out are released at once."""
        del group.members[member_id]
        self._timer.cancel(_session_key(group.group_id, member_id))
        group.epoch += 1
        records = [member_record(group.group_id, member_id, None)]
        records.append(group_record(group.group_id, group.epoch))
        if timed_out:
            self._listener.member_removed(group.group_id, member_id)
            records += self._release_member(group, member_id, group.partitions)
        else:
            delay = self.config(group.group_id).limits.lock_duration_ms
            self._timer.schedule(
                _session_key(group.group_id, member_id),
                delay,
                lambda: self._forget(group.group_id, member_id),
            )
        return records

    def _forget(self, group_id: str, member_id: str) -> Result[None]:
        """A member that left has not closed its share session: its locks have run out by
        now, so the session goes (a member that comes back replaces this timer)."""
        self._listener.member_removed(group_id, member_id)
        return Result(None)

    def _schedule_session(self, group_id: str, member_id: str, timeout_ms: int) -> None:
        def expire() -> Result[None]:
            group = self.groups.get(group_id)
            if group is None or member_id not in group.members:
                return Result(None)
            logger.info("share group %s: member %s timed out", group_id, member_id)
            return Result(None, self._remove_member(group, member_id, timed_out=True), replay=False)

        self._timer.schedule(_session_key(group_id, member_id), timeout_ms, expire)

    # Share partitions (ShareFetch, ShareAcknowledge).

    def member_error(self, group_id: str, member_id: str) -> ErrorCode:
        group = self.groups.get(group_id)
        if group is None or member_id not in group.members:
            return ErrorCode.unknown_member_id
        return ErrorCode.none

    def partition(self, group_id: str, tp: TopicPartition) -> SharePartition | None:
        group = self.groups.get(group_id)
        return None if group is None else group.partitions.get(tp)

    def next_candidate(self, group_id: str, tp: TopicPartition, high_watermark: int) -> int | None:
        """Where an acquisition for this share partition should read the log from, None if
        nothing can be acquired now."""
        partition = self.partition(group_id, tp)
        if partition is None:
            return None
        config = self.config(group_id)
        lowest = partition.next_candidate(self._timer.now_ms(), config.limits.fifo)
        if lowest is not None:
            return lowest
        if partition.end_offset < high_watermark and not partition.window_full(
            config.limits.max_record_locks
        ):
            return partition.end_offset
        return None

    def ensure_partition(self, group_id: str, tp: TopicPartition) -> Result[None]:
        """A member fetches a partition the group has no state for yet (assigned before the
        topic existed here, or fetched without assignment): initialize it."""
        group = self.groups.get(group_id)
        if group is None or tp in group.partitions:
            return Result(None)
        records = self._initialize_partitions(
            group, {tp[0]: frozenset({tp[1]})}, self.config(group_id)
        )
        return Result(None, records, replay=False)

    def acquire(
        self,
        group_id: str,
        member_id: str,
        tp: TopicPartition,
        candidates: Iterable[Candidate],
        max_records: int,
        log_start_offset: int,
    ) -> Result[list[Acquired]]:
        group = self.groups.get(group_id)
        partition = None if group is None else group.partitions.get(tp)
        if group is None or partition is None or member_id not in group.members:
            return Result([])
        limits = self.config(group_id).limits
        acquired = partition.acquire(
            member_id, candidates, self._timer.now_ms(), limits, max_records, log_start_offset
        )
        return Result(acquired, self._persist(group, tp, partition), replay=False)

    def acknowledge(
        self,
        group_id: str,
        member_id: str,
        acks: Mapping[TopicPartition, Sequence[AckBatch]],
    ) -> Result[dict[TopicPartition, tuple[ErrorCode, str | None]]]:
        """Each partition's acknowledgements apply all or nothing, to records the member
        holds (it may have left the group and be closing its share session)."""
        group = self.groups.get(group_id)
        results: dict[TopicPartition, tuple[ErrorCode, str | None]] = {}
        records: list[Record] = []
        if group is None:
            return Result(dict.fromkeys(acks, (ErrorCode.invalid_record_state, None)))
        limits = self.config(group_id).limits
        now_ms = self._timer.now_ms()
        for tp, batches in acks.items():
            partition = group.partitions.get(tp)
            if partition is None:
                results[tp] = (ErrorCode.invalid_record_state, "No records were acquired.")
                continue
            try:
                partition.acknowledge(member_id, batches, now_ms, limits)
            except ShareError as exc:
                logger.info(
                    "share group %s: acknowledgement of %s by %s refused: %s %s",
                    group_id,
                    tp,
                    member_id,
                    exc.error.name,
                    exc.message,
                )
                results[tp] = (exc.error, exc.message)
                continue
            results[tp] = (ErrorCode.none, None)
            records += self._persist(group, tp, partition)
        return Result(results, records, replay=False)

    def release_member(
        self, group_id: str, member_id: str, tps: Collection[TopicPartition]
    ) -> Result[None]:
        """The member closed its share session: the records it holds there are released."""
        group = self.groups.get(group_id)
        if group is None:
            return Result(None)
        return Result(None, self._release_member(group, member_id, tps), replay=False)

    def _release_member(
        self, group: ShareGroup, member_id: str, tps: Iterable[TopicPartition]
    ) -> list[Record]:
        limits = self.config(group.group_id).limits
        now_ms = self._timer.now_ms()
        records = []
        for tp in list(tps):
            partition = group.partitions.get(tp)
            if partition is not None and partition.release_member(member_id, now_ms, limits):
                records += self._persist(group, tp, partition)
        return records

    def archive_dead_letters(
        self, group_id: str, tp: TopicPartition, offsets: Collection[int]
    ) -> Result[None]:
        group = self.groups.get(group_id)
        partition = None if group is None else group.partitions.get(tp)
        if group is None or partition is None:
            return Result(None)
        partition.archive_dead_letters(offsets)
        return Result(None, self._persist(group, tp, partition), replay=False)

    def _persist(
        self, group: ShareGroup, tp: TopicPartition, partition: SharePartition
    ) -> list[Record]:
        """The records of a share partition's changes (a delta, or a snapshot every
        DELTAS_PER_SNAPSHOT writes), after which its timers and listeners are brought up to
        date."""
        changes = partition.take_changes()
        self._schedule_partition(group.group_id, tp, partition)
        if not changes:
            return []
        if any(entry is None or entry.state is RecordState.AVAILABLE for _, entry in changes):
            self._listener.records_available(group.group_id)
        if any(
            entry is not None and entry.state is RecordState.DEAD_LETTERING for _, entry in changes
        ):
            self._listener.dead_letters_pending(group.group_id, tp)
        topic_id, index = tp
        sequence = group.deltas.get(tp, 0)
        if sequence >= DELTAS_PER_SNAPSHOT:
            group.deltas[tp] = 0
            return [snapshot_record(group.group_id, topic_id, index, partition)]
        group.deltas[tp] = sequence + 1
        return [delta_record(group.group_id, topic_id, index, sequence, partition, changes)]

    def _schedule_partition(
        self, group_id: str, tp: TopicPartition, partition: SharePartition
    ) -> None:
        """Timers of a share partition: the next lock expiry and the next end of a backoff."""
        now_ms = self._timer.now_ms()
        lock_key = _partition_key("lock", group_id, tp)
        expiry = partition.next_lock_expiry_ms()
        if expiry is None:
            self._timer.cancel(lock_key)
        else:
            self._timer.schedule(lock_key, expiry - now_ms, lambda: self._expire(group_id, tp))
        ready_key = _partition_key("ready", group_id, tp)
        ready = partition.next_ready_ms()
        if ready is None or ready <= now_ms:
            self._timer.cancel(ready_key)
        else:
            self._timer.schedule(ready_key, ready - now_ms, lambda: self._ready(group_id, tp))

    def _expire(self, group_id: str, tp: TopicPartition) -> Result[None]:
        group = self.groups.get(group_id)
        partition = None if group is None else group.partitions.get(tp)
        if group is None or partition is None:
            return Result(None)
        expired = partition.expire_locks(self._timer.now_ms(), self.config(group_id).limits)
        if expired:
            logger.info("share group %s: %d acquisition locks of %s expired", group_id, expired, tp)
        return Result(None, self._persist(group, tp, partition), replay=False)

    def _ready(self, group_id: str, tp: TopicPartition) -> Result[None]:
        partition = self.partition(group_id, tp)
        if partition is not None:
            self._listener.records_available(group_id)
            self._schedule_partition(group_id, tp, partition)
        return Result(None)

    # Administration.

    def alter_configs(self, group_id: str, configs: Mapping[str, str]) -> Result[None]:
        if configs:
            self.configs[group_id] = dict(configs)
        else:
            self.configs.pop(group_id, None)
        return Result(None, [config_record(group_id, configs)], replay=False)

    def describe(self, group_id: str) -> ShareGroupDescription:
        group = self.groups.get(group_id)
        if group is None:
            return ShareGroupDescription(group_id, ErrorCode.group_id_not_found)
        members = tuple(
            DescribedMember(
                m.member_id,
                m.member_epoch,
                m.client_id,
                m.client_host,
                m.rack_id,
                m.subscribed_topics,
                {
                    topic_id: (self._topics.name_of(topic_id) or "", tuple(sorted(parts)))
                    for topic_id, parts in sorted(m.assignment.items())
                },
            )
            for m in group.members.values()
        )
        return ShareGroupDescription(group_id, ErrorCode.none, group.state, group.epoch, members)

    def start_offsets(self, group_id: str) -> dict[TopicPartition, tuple[int, int]] | None:
        """DescribeShareGroupOffsets: each share partition's start offset and lag (records
        not yet finished: in flight, or past the end offset up to the high watermark); None
        for a group that does not exist."""
        group = self.groups.get(group_id)
        if group is None:
            return None
        offsets = {}
        for tp, partition in group.partitions.items():
            name = self._topics.name_of(tp[0])
            log = None if name is None else self._log_offsets(name, tp[1])
            backlog = 0 if log is None else max(log[1] - partition.end_offset, 0)
            offsets[tp] = (partition.start_offset, backlog + len(partition.entries))
        return offsets

    def list_groups(self) -> list[tuple[str, str]]:
        """(group id, state) of every share group."""
        return [(group.group_id, group.state) for group in self.groups.values()]

    def stats(self, group_id: str) -> ShareGroupStats | None:
        group = self.groups.get(group_id)
        if group is None:
            return None
        now_ms = self._timer.now_ms()
        partitions = []
        for (topic_id, index), partition in sorted(group.partitions.items()):
            name = self._topics.name_of(topic_id)
            offsets = None if name is None else self._log_offsets(name, index)
            backlog = 0 if offsets is None else max(offsets[1] - partition.end_offset, 0)
            totals = partition.totals
            partitions.append(
                PartitionStats(
                    topic=name or str(topic_id),
                    partition=index,
                    start_offset=partition.start_offset,
                    end_offset=partition.end_offset,
                    available=partition.count(RecordState.AVAILABLE, now_ms) + backlog,
                    acquired=partition.count(RecordState.ACQUIRED),
                    backing_off=partition.count(RecordState.AVAILABLE)
                    - partition.count(RecordState.AVAILABLE, now_ms),
                    dead_lettering=partition.count(RecordState.DEAD_LETTERING),
                    acknowledged=totals.acknowledged,
                    archived=totals.archived,
                    dead_lettered=totals.dead_lettered,
                )
            )
        oldest = min(
            (t for p in group.partitions.values() if (t := p.oldest_timestamp_ms()) is not None),
            default=None,
        )
        return ShareGroupStats(
            group_id,
            group.state,
            len(group.members),
            tuple(partitions),
            None if oldest is None else max(now_ms - oldest, 0),
            self.config(group_id).dlq_topic,
        )

    def all_stats(self) -> list[ShareGroupStats]:
        return [s for group_id in self.groups if (s := self.stats(group_id)) is not None]

    def _empty_group(self, group_id: str) -> ShareGroup:
        """The group, which must exist and have no members (offsets and state can only be
        changed while nobody consumes)."""
        group = self.groups.get(group_id)
        if group is None:
            raise ShareError(ErrorCode.group_id_not_found, f"Group {group_id} does not exist.")
        if group.members:
            raise ShareError(ErrorCode.non_empty_group, f"Share group {group_id} has members.")
        return group

    def alter_offsets(self, group_id: str, offsets: Mapping[TopicPartition, int]) -> Result[None]:
        """AlterShareGroupOffsets: each share partition starts afresh at the given offset
        (records before it are finished; what it had in flight is forgotten)."""
        group = self._empty_group(group_id)
        records = []
        for tp, offset in offsets.items():
            partition = SharePartition.starting_at(offset)
            old = group.partitions.get(tp)
            if old is not None:
                partition.totals = old.totals
            for kind in ("lock", "ready"):
                self._timer.cancel(_partition_key(kind, group_id, tp))
            group.partitions[tp] = partition
            group.deltas[tp] = 0
            records.append(snapshot_record(group_id, tp[0], tp[1], partition))
        return Result(None, records, replay=False)

    def delete_offsets(self, group_id: str, topic_ids: Collection[uuid.UUID]) -> Result[None]:
        """DeleteShareGroupOffsets: the state of the topics' share partitions goes; the
        group starts them again by `share.auto.offset.reset` when next assigned."""
        group = self._empty_group(group_id)
        records = []
        for tp in [tp for tp in group.partitions if tp[0] in topic_ids]:
            records += self._forget_partition(group, tp)
        return Result(None, records, replay=False)

    def delete_group(self, group_id: str) -> Result[ErrorCode]:
        """DeleteGroups: a share group without members loses its state."""
        try:
            group = self._empty_group(group_id)
        except ShareError as exc:
            return Result(exc.error)
        records = [group_record(group_id, None)]
        for tp in list(group.partitions):
            records += self._forget_partition(group, tp)
        del self.groups[group_id]
        return Result(ErrorCode.none, records, replay=False)


def _session_key(group_id: str, member_id: str) -> str:
    return f"share-session:{group_id}:{member_id}"


def _partition_key(kind: str, group_id: str, tp: TopicPartition) -> str:
    return f"share-{kind}:{group_id}:{tp[0]}:{tp[1]}"
