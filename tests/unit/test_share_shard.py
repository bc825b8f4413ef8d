"""The share coordinator shard: membership and assignment (ShareGroupHeartbeat), share
partitions driven through it, timers (sessions, acquisition locks, backoffs) and recovery of
everything from the records it writes, on the in-memory runtime harness."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest
from coordinator_fakes import Harness, ManualTimer
from kio.schema.errors import ErrorCode

from goqueue.config.settings import BrokerSettings
from goqueue.coordinator.runtime import Result
from goqueue.coordinator.share.config import default_dlq_topic
from goqueue.coordinator.share.group import TopicPartition
from goqueue.coordinator.share.messages import ShareHeartbeat, ShareHeartbeatResponse
from goqueue.coordinator.share.partition import (
    AckBatch,
    Acquired,
    Candidate,
    RecordState,
    ShareError,
)
from goqueue.coordinator.share.records import DELTAS_PER_SNAPSHOT, SNAPSHOT, decode_key
from goqueue.coordinator.share.shard import ShareShard

TOPIC = "jobs"
TOPIC_ID = uuid.UUID(int=7)
TP: TopicPartition = (TOPIC_ID, 0)
GROUP = "workers"


class Topics:
    partitions = 2
    deleted = False

    def by_name(self, name: str) -> tuple[uuid.UUID, int] | None:
        return (TOPIC_ID, self.partitions) if name == TOPIC and not self.deleted else None

    def name_of(self, topic_id: uuid.UUID) -> str | None:
        return TOPIC if topic_id == TOPIC_ID and not self.deleted else None


@dataclass
class Listener:
    available: int = 0
    pending: list[TopicPartition] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    loaded: list[int] = field(default_factory=list)

    def records_available(self, group_id: str) -> None:
        self.available += 1

    def dead_letters_pending(self, group_id: str, tp: TopicPartition) -> None:
        self.pending.append(tp)

    def member_removed(self, group_id: str, member_id: str) -> None:
        self.removed.append(member_id)

    def shard_loaded(self, index: int) -> None:
        self.loaded.append(index)


SETTINGS = BrokerSettings(
    group_share_record_lock_duration_ms=1000,
    group_share_session_timeout_ms=5000,
    group_share_delivery_count_limit=3,
)


class World:
    def __init__(self) -> None:
        self.listener = Listener()
        self.topics = Topics()
        self.log_end = 100
        self.harness = Harness(self.factory)

    def factory(self, timer: ManualTimer) -> ShareShard:
        return ShareShard(
            0, timer, lambda: SETTINGS, self.topics, lambda t, p: (0, self.log_end), self.listener
        )

    @property
    def shard(self) -> ShareShard:
        return self.harness.shard

    def beat(
        self, member: str, epoch: int, topics: tuple[str, ...] | None = (TOPIC,)
    ) -> ShareHeartbeatResponse:
        request = ShareHeartbeat(GROUP, member, epoch, topics, client_id="c", client_host="/h")
        return self.harness.run(lambda: self.shard.heartbeat(request))

    def acquire(
        self, member: str, first: int, last: int, tp: TopicPartition = TP
    ) -> list[Acquired]:
        now = self.harness.timer.now
        candidates = [Candidate(o, now) for o in range(first, last + 1)]
        return self.harness.run(lambda: self.shard.acquire(GROUP, member, tp, candidates, 500, 0))

    def ack(self, member: str, first: int, last: int, kind: int) -> ErrorCode:
        batches = {TP: [AckBatch(first, last, (kind,))]}
        result = self.harness.run(lambda: self.shard.acknowledge(GROUP, member, batches))
        return result[TP][0]

    def restart(self) -> None:
        self.harness = self.harness.reload(self.factory)


def test_members_join_and_share_the_partitions() -> None:
    world = World()
    a = world.beat("a", 0)
    assert a.error == ErrorCode.none and a.member_epoch == 1
    assert a.assignment == {TOPIC_ID: frozenset({0, 1})}
    b = world.beat("b", 0)
    assert b.assignment is not None and len(b.assignment[TOPIC_ID]) == 1
    a2 = world.beat("a", 1, None)
    assert a2.assignment is not None and a2.assignment[TOPIC_ID] == {0, 1} - b.assignment[TOPIC_ID]
    c = world.beat("c", 0)
    assert c.assignment is not None and len(c.assignment[TOPIC_ID]) == 1, (
        "more members than partitions: the third shares one"
    )
    assert world.beat("b", b.member_epoch, None).assignment is None


def test_a_loaded_shard_asks_for_its_groups_to_be_listed_in_the_cluster_metadata() -> None:
    world = World()
    world.beat("a", 0)
    loads = len(world.listener.loaded)
    world.restart()
    assert world.listener.loaded[loads:] == [0]


def test_share_partitions_start_at_the_log_end_by_default() -> None:
    world = World()
    world.beat("a", 0)
    partition = world.shard.partition(GROUP, TP)
    assert partition is not None and partition.start_offset == 100


def test_bad_heartbeats_get_kafka_errors_and_change_nothing() -> None:
    world = World()
    world.beat("a", 0)
    epoch = world.shard.groups[GROUP].epoch
    assert world.beat("a", 7, None).error == ErrorCode.fenced_member_epoch
    assert world.beat("zz", 3, None).error == ErrorCode.unknown_member_id
    assert world.beat("zz", -1, None).error == ErrorCode.unknown_member_id
    assert world.beat("b", 0, None).error == ErrorCode.invalid_request
    assert world.beat("", 0).error == ErrorCode.invalid_request
    assert world.shard.groups[GROUP].epoch == epoch
    assert set(world.shard.groups[GROUP].members) == {"a"}


def test_a_member_that_stops_heartbeating_is_removed_and_its_records_released() -> None:
    world = World()
    world.beat("a", 0)
    world.log_end = 100
    assert world.acquire("a", 100, 101) == [Acquired(100, 101, 1)]
    world.harness.timer.advance(999)
    world.beat("b", 0)
    world.harness.timer.advance(4001)
    assert set(world.shard.groups[GROUP].members) == {"b"}
    assert world.listener.removed == ["a"]
    assert world.acquire("b", 100, 101) == [Acquired(100, 101, 2)]


def test_lock_expiry_runs_on_the_timer() -> None:
    world = World()
    world.beat("a", 0)
    world.acquire("a", 100, 100)
    world.harness.timer.advance(1000)
    partition = world.shard.partition(GROUP, TP)
    assert partition is not None
    assert partition.entries[100].state is RecordState.AVAILABLE
    assert partition.entries[100].ready_at_ms > world.harness.timer.now, "default backoff applies"


def test_acknowledgements_are_checked_against_the_holder() -> None:
    world = World()
    world.beat("a", 0)
    world.beat("b", 0)
    world.acquire("a", 100, 101)
    assert world.ack("b", 100, 100, 1) == ErrorCode.invalid_record_state
    assert world.ack("a", 100, 100, 9) == ErrorCode.invalid_request
    assert world.ack("a", 100, 101, 1) == ErrorCode.none
    assert world.ack("a", 100, 100, 1) == ErrorCode.invalid_record_state


def test_state_survives_a_restart() -> None:
    world = World()
    world.beat("a", 0)
    world.acquire("a", 100, 104)
    assert world.ack("a", 100, 101, 1) == ErrorCode.none
    assert world.ack("a", 102, 102, 3) == ErrorCode.none
    world.restart()
    group = world.shard.groups[GROUP]
    assert set(group.members) == {"a"}
    partition = group.partitions[TP]
    assert partition.start_offset == 102
    assert partition.entries[102].state is RecordState.DEAD_LETTERING
    assert world.listener.pending[-1] == TP, "dead-lettering resumes after the restart"
    assert partition.entries[103].state is RecordState.AVAILABLE, "locks do not survive"
    assert partition.entries[103].delivery_count == 1
    assert partition.totals.acknowledged == 2
    assert world.acquire("a", 100, 104) == [Acquired(103, 104, 2)]


def test_deltas_give_way_to_a_snapshot_and_recovery_still_holds() -> None:
    world = World()
    world.log_end = 10_000
    world.beat("a", 0)
    for offset in range(10_000, 10_000 + 2 * DELTAS_PER_SNAPSHOT):
        world.acquire("a", offset, offset)
        world.ack("a", offset, offset, 1)
    snapshots = [r for r in world.harness.log if decode_key(r.key).record_type == SNAPSHOT]
    assert len(snapshots) >= 3
    world.restart()
    partition = world.shard.groups[GROUP].partitions[TP]
    assert partition.start_offset == 10_000 + 2 * DELTAS_PER_SNAPSHOT
    assert partition.totals.acknowledged == 2 * DELTAS_PER_SNAPSHOT


def test_group_configs_apply_and_persist() -> None:
    world = World()
    world.harness.run(
        lambda: world.shard.alter_configs(
            GROUP, {"share.auto.offset.reset": "earliest", "goqueue.share.fifo": "true"}
        )
    )
    world.restart()
    config = world.shard.config(GROUP)
    assert config.auto_offset_reset == "earliest" and config.limits.fifo
    assert config.dlq_topic == "workers.dlq"
    world.beat("a", 0)
    partition = world.shard.partition(GROUP, TP)
    assert partition is not None and partition.start_offset == 0


def test_describe_list_stats_and_delete() -> None:
    world = World()
    world.beat("a", 0)
    world.acquire("a", 100, 102)
    described = world.shard.describe(GROUP)
    assert described.state == "Stable" and described.members[0].client_id == "c"
    assert world.shard.list_groups() == [(GROUP, "Stable")]
    stats = world.shard.stats(GROUP)
    assert stats is not None
    assert stats.total("acquired") == 3
    assert world.harness.run(lambda: world.shard.delete_group(GROUP)) == ErrorCode.non_empty_group
    world.beat("a", world.shard.groups[GROUP].members["a"].member_epoch, None)
    world.beat("a", -1)
    assert world.harness.run(lambda: world.shard.delete_group(GROUP)) == ErrorCode.none
    world.restart()
    assert GROUP not in world.shard.groups
    assert world.shard.describe(GROUP).error == ErrorCode.group_id_not_found


def test_operations_on_unknown_groups_do_nothing() -> None:
    world = World()
    result: Result[list[Acquired]] = world.shard.acquire(GROUP, "a", TP, [], 10, 0)
    assert result.response == [] and not result.records
    assert world.shard.next_candidate(GROUP, TP, 10) is None
    assert world.shard.stats(GROUP) is None


def test_the_share_session_of_a_member_that_left_is_forgotten_after_the_lock_duration() -> None:
    world = World()
    joined = world.beat("a", 0)
    world.beat("a", -1)
    assert world.listener.removed == [], "it may still close its session and acknowledge"
    world.harness.timer.advance(1000)
    assert world.listener.removed == ["a"]
    assert joined.member_epoch == 1


def test_the_state_of_a_deleted_topic_goes_at_the_next_heartbeat() -> None:
    world = World()
    joined = world.beat("a", 0)
    assert world.shard.start_offsets(GROUP) == {(TOPIC_ID, 0): (100, 0), (TOPIC_ID, 1): (100, 0)}
    world.topics.deleted = True
    world.beat("a", joined.member_epoch, None)
    assert world.shard.groups[GROUP].partitions == {}
    world.topics.deleted = False
    world.restart()
    assert world.shard.groups[GROUP].partitions == {}, "tombstones were written"


def test_the_default_dead_letter_topic_is_a_legal_topic_name() -> None:
    assert default_dlq_topic("workers") == "workers.dlq"
    assert default_dlq_topic("billing/eu west") == "billing_eu_west.dlq"
    assert len(default_dlq_topic("g" * 400)) == 249


def test_offsets_change_only_while_the_group_is_empty_and_survive_a_restart() -> None:
    world = World()
    world.beat("a", 0)
    world.acquire("a", 100, 101)
    with pytest.raises(ShareError) as refused:
        world.harness.run(lambda: world.shard.alter_offsets(GROUP, {TP: 50}))
    assert refused.value.error == ErrorCode.non_empty_group
    world.beat("a", -1)
    world.harness.run(lambda: world.shard.alter_offsets(GROUP, {TP: 50}))
    world.restart()
    partition = world.shard.partition(GROUP, TP)
    assert partition is not None
    assert (partition.start_offset, partition.entries) == (50, {})
    world.harness.run(lambda: world.shard.delete_offsets(GROUP, {TOPIC_ID}))
    world.restart()
    assert world.shard.groups[GROUP].partitions == {}
