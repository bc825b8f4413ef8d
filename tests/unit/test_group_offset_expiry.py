"""Offset expiry (`offsets.retention.minutes`, KIP-211) in the group shard: standalone commits
expire from their commit, a classic group's offsets from when it became empty, a KIP-848
group's unsubscribed topics from their commit; empty groups left without offsets go too."""

from __future__ import annotations

from coordinator_fakes import NO_TOPICS, Harness
from kio.schema.errors import ErrorCode
from test_group_consumer import Topics, beat
from test_group_offsets import TP0, commit, fetch, one_member_group

from goqueue.coordinator.group.config import GroupConfig
from goqueue.coordinator.group.messages import LeavingMember, OffsetCommit, TopicPartition
from goqueue.coordinator.group.shard import GroupShard
from goqueue.coordinator.runtime import Result, batch_size_bound

RETENTION_MS = 5_000
CHECK_MS = 1_000
CONFIG = GroupConfig(
    initial_rebalance_delay_ms=0,
    offsets_retention_ms=RETENTION_MS,
    offsets_retention_check_interval_ms=CHECK_MS,
)
PAYMENTS = TopicPartition("payments", 0)


def new_harness(config: GroupConfig = CONFIG) -> Harness[GroupShard]:
    h = Harness(lambda timer: GroupShard(0, timer, config, NO_TOPICS))
    h.shard.on_loaded()
    return h


def committed(h: Harness[GroupShard], group: str = "g") -> set[TopicPartition]:
    return set(h.shard.committed(group))


def test_a_standalone_commit_expires_after_the_retention_and_its_group_goes() -> None:
    h = new_harness()
    commit(h, {TP0: OffsetCommit(7)})
    h.timer.advance(RETENTION_MS - 1)
    assert committed(h) == {TP0}
    h.timer.advance(CHECK_MS)
    assert committed(h) == set()
    assert h.shard.list_groups((), ()) == []
    restarted = h.reload(lambda timer: GroupShard(0, timer, CONFIG, NO_TOPICS))
    assert restarted.shard.list_groups((), ()) == []
    assert fetch(restarted)[TP0].offset == -1


def test_a_classic_group_keeps_its_offsets_until_it_has_been_empty_for_the_retention() -> None:
    h = new_harness()
    member_id = one_member_group(h, ("orders",))
    offsets = {TP0: OffsetCommit(3), PAYMENTS: OffsetCommit(4)}
    assert commit(h, offsets, member_id=member_id, generation=1) == dict.fromkeys(
        offsets, ErrorCode.none
    )
    h.timer.advance(RETENTION_MS)
    assert committed(h) == {TP0}, "a Stable group loses the offsets of topics it left"
    h.run(lambda: h.shard.leave("g", [LeavingMember(member_id)]))
    h.timer.advance(0)
    assert h.shard.list_groups((), ())[0].state == "Empty"
    h.timer.advance(RETENTION_MS - CHECK_MS)
    assert committed(h) == {TP0}, "retention counts from when the group became empty"
    h.timer.advance(2 * CHECK_MS)
    assert committed(h) == set()
    assert h.shard.list_groups((), ()) == []


def test_a_consumer_group_expires_the_offsets_of_topics_nobody_subscribes_to() -> None:
    h = Harness(lambda timer: GroupShard(0, timer, CONFIG, Topics()))
    h.shard.on_loaded()
    joined = beat(h, "a", 0)
    offsets = {TP0: OffsetCommit(1), PAYMENTS: OffsetCommit(2)}
    commit(h, offsets, member_id="a", generation=joined.member_epoch)
    h.timer.advance(RETENTION_MS)
    assert committed(h) == {TP0}
    beat(h, "a", -1)
    h.timer.advance(CHECK_MS)
    assert committed(h) == set()
    assert "g" not in h.shard.groups


def test_an_empty_group_without_offsets_is_deleted_and_one_with_members_is_not() -> None:
    h = new_harness()
    member_id = one_member_group(h, ("orders",))
    commit(h, {TP0: OffsetCommit(1)}, group="other")
    h.timer.advance(CHECK_MS)
    assert set(h.shard.groups) == {"g", "other"}
    assert h.shard.groups["g"].members.keys() == {member_id}


def test_many_expired_offsets_are_deleted_in_batches_that_fit() -> None:
    config = GroupConfig(
        offsets_retention_ms=RETENTION_MS,
        offsets_retention_check_interval_ms=CHECK_MS,
        max_batch_bytes=1_000,
    )
    h = Harness(lambda timer: GroupShard(0, timer, config, NO_TOPICS))
    batches: list[int] = []
    expire = h.shard.expire_offsets

    def recorded() -> Result[None]:
        result = expire()
        if result.records:
            batches.append(batch_size_bound(result.records))
        return result

    h.shard.expire_offsets = recorded  # type: ignore[method-assign]
    h.shard.on_loaded()
    commit(h, {TopicPartition("orders", p): OffsetCommit(p) for p in range(100)})
    logged = len(h.log)
    h.timer.advance(RETENTION_MS)
    assert committed(h) == set()
    assert h.shard.list_groups((), ()) == []
    tombstones = h.log[logged:]
    assert len(tombstones) == 101 and all(r.value is None for r in tombstones)
    assert len(batches) > 1 and max(batches) <= 1_000
