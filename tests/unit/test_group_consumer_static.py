"""Static membership (KIP-345) in KIP-848 consumer groups, as Kafka's GroupMetadataManager
does it: a static member that leaves with epoch -2 keeps its partitions until a new instance
with its instance id replaces it or its session expires."""

from __future__ import annotations

from coordinator_fakes import Harness
from kio.schema.errors import ErrorCode
from test_group_consumer import CONFIG, ORDERS, SESSION_MS, Topics, beat, new_harness, parts

from goqueue.coordinator.group.records import (
    CONSUMER_MEMBER_KEY,
    CURRENT_MEMBER_KEY,
    TARGET_MEMBER_KEY,
    ConsumerMemberKey,
    decode_key,
)
from goqueue.coordinator.group.shard import GroupShard

ALL = {(ORDERS, p) for p in range(4)}


def stable_pair(h: Harness[GroupShard]) -> tuple[int, set[tuple[object, int]]]:
    """Static member `a` (instance `ia`) and dynamic `b` split `orders`; the group epoch
    and a's partitions."""
    a = beat(h, "a", 0, instance="ia")
    beat(h, "b", 0)
    told = beat(h, "a", a.member_epoch, instance="ia")
    done = beat(h, "a", a.member_epoch, owned=told.assignment, instance="ia")
    epoch = done.member_epoch
    b = beat(h, "b", epoch)
    assert parts(b.assignment) == ALL - parts(told.assignment)
    assert h.shard.consumer_describe("g").state == "Stable"
    return epoch, parts(told.assignment)


def member_records(h: Harness[GroupShard], since: int) -> list[tuple[int, str, bool]]:
    """(record type, member id, is a tombstone) of the records written since `since`."""
    keys = [(decode_key(r.key), r.value is None) for r in h.log[since:]]
    return [
        (k.record_type, k.member_id, dead) for k, dead in keys if isinstance(k, ConsumerMemberKey)
    ]


def test_a_static_member_that_leaves_with_epoch_minus_two_keeps_its_partitions() -> None:
    h = new_harness()
    epoch, held = stable_pair(h)
    written = len(h.log)
    left = beat(h, "a", -2, instance="ia")
    assert (left.error, left.member_id, left.member_epoch) == (ErrorCode.none, "a", -2)
    assert member_records(h, written) == [(CURRENT_MEMBER_KEY, "a", False)]
    described = h.shard.consumer_describe("g")
    assert described.epoch == epoch, "no rebalance"
    gone = next(m for m in described.members if m.member_id == "a")
    assert (gone.instance_id, gone.member_epoch) == ("ia", -2)
    assert parts(gone.assignment) == held
    assert described.state == "Reconciling", "Kafka: a member at -2 is not at the assignment epoch"
    b = beat(h, "b", epoch)
    assert (b.member_epoch, b.assignment) == (epoch, None)


def test_a_new_instance_takes_the_departed_members_place_and_partitions() -> None:
    h = new_harness()
    epoch, held = stable_pair(h)
    beat(h, "a", -2, instance="ia")
    written = len(h.log)
    rejoined = beat(h, "a2", 0, instance="ia")
    assert (rejoined.error, rejoined.member_id, rejoined.member_epoch) == (
        ErrorCode.none,
        "a2",
        epoch,
    )
    assert parts(rejoined.assignment) == held
    assert member_records(h, written) == [
        (CURRENT_MEMBER_KEY, "a", True),
        (TARGET_MEMBER_KEY, "a", True),
        (CONSUMER_MEMBER_KEY, "a", True),
        (CONSUMER_MEMBER_KEY, "a2", False),
        (TARGET_MEMBER_KEY, "a2", False),
        (CURRENT_MEMBER_KEY, "a2", False),
        (CURRENT_MEMBER_KEY, "a2", False),
    ]
    group = h.shard.groups["g"]
    assert set(group.members) == {"a2", "b"}
    assert group.epoch == epoch, "the group epoch does not move"
    current = group.members["a2"].current
    assert (current.member_epoch, current.previous_member_epoch) == (epoch, 0)
    assert h.shard.consumer_describe("g").state == "Stable"
    assert beat(h, "b", epoch).assignment is None, "the other member is not disturbed"
    fenced = beat(h, "a", epoch, instance="ia")
    assert fenced.error == ErrorCode.fenced_instance_id
    assert fenced.message == "Static member a with instance id ia was fenced by member a2."


def test_a_departed_static_member_goes_when_its_session_expires() -> None:
    h = new_harness()
    epoch, _ = stable_pair(h)
    h.timer.advance(SESSION_MS - 1_000)
    beat(h, "b", epoch)
    beat(h, "a", -2, instance="ia")
    h.timer.advance(999)
    assert set(h.shard.groups["g"].members) == {"a", "b"}
    h.timer.advance(1)
    assert set(h.shard.groups["g"].members) == {"b"}, "the session runs from a's last beat"
    assert h.shard.groups["g"].epoch == epoch + 1
    assert parts(beat(h, "b", epoch).assignment) == ALL
    late = beat(h, "a2", 0, instance="ia")
    assert (late.error, late.member_epoch) == (ErrorCode.none, epoch + 2), "a plain new member"


def test_an_instance_id_held_by_a_live_member_is_refused() -> None:
    h = new_harness()
    epoch, _ = stable_pair(h)
    twin = beat(h, "x", 0, instance="ia")
    assert twin.error == ErrorCode.unreleased_instance_id
    assert twin.message == (
        "Static member x with instance id ia cannot join the group because the instance id "
        "is owned by a member."
    )
    assert beat(h, "a", 0, instance="ia").error == ErrorCode.unreleased_instance_id
    unknown = beat(h, "b", epoch, instance="ib")
    assert (unknown.error, unknown.message) == (
        ErrorCode.unknown_member_id,
        "Instance id ib is unknown.",
    )
    assert beat(h, "x", -2, instance="ia").error == ErrorCode.fenced_instance_id
    assert set(h.shard.groups["g"].members) == {"a", "b"}
    assert beat(h, "a", epoch, instance="ia").error == ErrorCode.none


def test_epoch_minus_one_removes_a_static_member_at_once() -> None:
    h = new_harness()
    epoch, _ = stable_pair(h)
    left = beat(h, "a", -1, instance="ia")
    assert (left.error, left.member_epoch) == (ErrorCode.none, -1)
    assert set(h.shard.groups["g"].members) == {"b"}
    assert h.shard.groups["g"].epoch == epoch + 1


def test_a_departed_member_heartbeating_again_is_fenced() -> None:
    h = new_harness()
    epoch, held = stable_pair(h)
    beat(h, "a", -2, instance="ia")
    owned = {ORDERS: frozenset(p for _, p in held)}
    again = beat(h, "a", epoch, owned=owned, instance="ia")
    assert again.error == ErrorCode.fenced_member_epoch
    assert again.message is not None and "greater member epoch" in again.message


def test_the_departed_member_and_its_replacement_survive_a_restart() -> None:
    h = new_harness()
    epoch, held = stable_pair(h)
    beat(h, "a", -2, instance="ia")
    restarted = h.reload(lambda timer: GroupShard(0, timer, CONFIG, Topics()))
    assert restarted.shard.consumer_describe("g") == h.shard.consumer_describe("g")
    rejoined = beat(restarted, "a2", 0, instance="ia")
    assert (rejoined.member_epoch, parts(rejoined.assignment)) == (epoch, held)
    again = restarted.reload(lambda timer: GroupShard(0, timer, CONFIG, Topics()))
    assert again.shard.consumer_describe("g") == restarted.shard.consumer_describe("g")
    assert beat(again, "a2", epoch, instance="ia").error == ErrorCode.none


def test_a_reloaded_departed_member_expires_after_a_session() -> None:
    h = new_harness()
    epoch, _ = stable_pair(h)
    beat(h, "a", -2, instance="ia")
    restarted = h.reload(lambda timer: GroupShard(0, timer, CONFIG, Topics()))
    restarted.timer.advance(SESSION_MS - 1)
    beat(restarted, "b", epoch)
    restarted.timer.advance(1)
    assert set(restarted.shard.groups["g"].members) == {"b"}


def test_the_same_member_id_may_come_back_after_epoch_minus_two() -> None:
    h = new_harness()
    epoch, held = stable_pair(h)
    beat(h, "a", -2, instance="ia")
    back = beat(h, "a", 0, instance="ia")
    assert (back.error, back.member_epoch, parts(back.assignment)) == (ErrorCode.none, epoch, held)
    assert h.shard.groups["g"].epoch == epoch
