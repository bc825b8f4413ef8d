"""KIP-848 consumer groups as a pure state machine: epochs, server-side assignment and the
member-by-member reconciliation, timeouts, offsets and restarts, without sockets."""

from __future__ import annotations

import uuid

from coordinator_fakes import Harness
from kio.schema.errors import ErrorCode

from goqueue.coordinator.group.assignors import MemberSpec, range_assignor, uniform
from goqueue.coordinator.group.config import GroupConfig
from goqueue.coordinator.group.consumer import (
    ConsumerHeartbeat,
    ConsumerHeartbeatResponse,
    MemberState,
)
from goqueue.coordinator.group.messages import CommitRequest, OffsetCommit, TopicPartition
from goqueue.coordinator.group.records import Assignment
from goqueue.coordinator.group.shard import GroupShard

ORDERS = uuid.UUID(int=1)
PAYMENTS = uuid.UUID(int=2)
SESSION_MS = 45_000
CONFIG = GroupConfig(consumer_heartbeat_interval_ms=1000, consumer_max_size=3)


class Topics:
    def __init__(self) -> None:
        self.topics = {"orders": (ORDERS, 4), "payments": (PAYMENTS, 2)}

    def by_name(self, name: str) -> tuple[uuid.UUID, int] | None:
        return self.topics.get(name)

    def name_of(self, topic_id: uuid.UUID) -> str | None:
        return next((n for n, (i, _) in self.topics.items() if i == topic_id), None)

    def names(self) -> list[str]:
        return list(self.topics)


def new_harness(topics: Topics | None = None) -> Harness[GroupShard]:
    lookup = topics or Topics()
    return Harness(lambda timer: GroupShard(0, timer, CONFIG, lookup))


def beat(
    h: Harness[GroupShard],
    member_id: str,
    epoch: int,
    *,
    topics: tuple[str, ...] | None = None,
    owned: Assignment | None = None,
    assignor: str | None = None,
    group: str = "g",
    regex: str | None = "",
    instance: str | None = None,
) -> ConsumerHeartbeatResponse:
    request = ConsumerHeartbeat(
        group_id=group,
        member_id=member_id,
        member_epoch=epoch,
        instance_id=instance,
        rack_id=None,
        rebalance_timeout_ms=30_000 if epoch == 0 else -1,
        subscribed_topics=topics if topics is not None or epoch != 0 else ("orders",),
        subscribed_regex=regex,
        server_assignor=assignor,
        owned=owned if owned is not None or epoch != 0 else {},
        client_id="client",
        client_host="/127.0.0.1",
    )
    return h.run(lambda: h.shard.consumer_heartbeat(request))


def parts(assignment: Assignment | None) -> set[tuple[uuid.UUID, int]]:
    assert assignment is not None
    return {(t, p) for t, ps in assignment.items() for p in ps}


def test_the_first_member_gets_every_partition_at_epoch_one() -> None:
    h = new_harness()
    joined = beat(h, "a", 0)
    assert (joined.error, joined.member_epoch, joined.heartbeat_interval_ms) == (
        ErrorCode.none,
        1,
        1000,
    )
    assert parts(joined.assignment) == {(ORDERS, p) for p in range(4)}
    steady = beat(h, "a", 1)
    assert (steady.member_epoch, steady.assignment) == (1, None)
    described = h.shard.consumer_describe("g")
    assert (described.state, described.epoch, described.assignment_epoch) == ("Stable", 1, 1)


def test_a_joining_member_waits_for_the_partitions_the_other_must_revoke() -> None:
    h = new_harness()
    a = beat(h, "a", 0)
    b = beat(h, "b", 0)
    assert (b.member_epoch, parts(b.assignment)) == (2, set())
    a_told = beat(h, "a", 1)
    keeps = parts(a_told.assignment)
    assert a_told.member_epoch == 1 and len(keeps) == 2
    assert h.shard.consumer_describe("g").state == "Reconciling"
    still = beat(h, "a", 1, owned=a.assignment)
    assert still.member_epoch == 1, "no new epoch before the revocation"
    released = beat(h, "a", 1, owned={ORDERS: frozenset(p for _, p in keeps)})
    assert (released.member_epoch, released.assignment) == (2, None)
    b_gets = beat(h, "b", 2)
    assert parts(b_gets.assignment) == {(ORDERS, p) for p in range(4)} - keeps
    assert h.shard.consumer_describe("g").state == "Stable"


def test_a_member_that_stops_heartbeating_is_fenced_and_the_other_takes_over() -> None:
    h = new_harness()
    beat(h, "a", 0)
    b = beat(h, "b", 0)
    h.timer.advance(SESSION_MS - 1)
    beat(h, "b", b.member_epoch)
    h.timer.advance(1)
    assert set(h.shard.groups["g"].members) == {"b"}
    took_over = beat(h, "b", b.member_epoch)
    assert parts(took_over.assignment) == {(ORDERS, p) for p in range(4)}


def test_a_member_that_does_not_revoke_in_time_is_fenced() -> None:
    h = new_harness()
    a = beat(h, "a", 0)
    beat(h, "b", 0)
    beat(h, "a", 1, owned=a.assignment)
    for _ in range(5):
        h.timer.advance(6_000)
        beat(h, "a", 1, owned=a.assignment)
        beat(h, "b", 2)
    assert set(h.shard.groups["g"].members) == {"b"}
    assert beat(h, "a", 1).error == ErrorCode.unknown_member_id


def test_epochs_the_member_does_not_have_are_fenced() -> None:
    h = new_harness()
    beat(h, "a", 0)
    assert beat(h, "a", 5).error == ErrorCode.fenced_member_epoch
    assert beat(h, "nobody", 1).error == ErrorCode.unknown_member_id
    assert beat(h, "a", 1).error == ErrorCode.none


def test_leaving_bumps_the_epoch_and_frees_the_partitions() -> None:
    h = new_harness()
    beat(h, "a", 0)
    b = beat(h, "b", 0)
    left = beat(h, "a", -1)
    assert (left.error, left.member_epoch) == (ErrorCode.none, -1)
    assert parts(beat(h, "b", b.member_epoch).assignment) == {(ORDERS, p) for p in range(4)}


def test_bad_heartbeats_are_refused() -> None:
    h = new_harness()
    assert beat(h, "", 0).error == ErrorCode.invalid_request
    assert beat(h, "a", 0, assignor="nope").error == ErrorCode.unsupported_assignor
    assert beat(h, "a", 0, owned={ORDERS: frozenset({1})}).error == ErrorCode.invalid_request
    assert beat(h, "a", 3, group="unknown").error == ErrorCode.group_id_not_found
    assert beat(h, "a", -1, group="unknown").error == ErrorCode.group_id_not_found
    for member in "abc":
        beat(h, member, 0)
    assert beat(h, "d", 0).error == ErrorCode.group_max_size_reached


def test_a_new_subscription_reassigns_and_a_grown_topic_too() -> None:
    topics = Topics()
    h = new_harness(topics)
    a = beat(h, "a", 0)
    both = beat(h, "a", a.member_epoch, topics=("orders", "payments"))
    assert both.member_epoch == 2 and len(parts(both.assignment)) == 6
    topics.topics["payments"] = (PAYMENTS, 3)
    grown = beat(h, "a", 2)
    assert grown.member_epoch == 3 and (PAYMENTS, 2) in parts(grown.assignment)


def regex_topics() -> Topics:
    topics = Topics()
    topics.topics["orders-eu"] = (uuid.UUID(int=3), 2)
    topics.topics["__consumer_offsets"] = (uuid.UUID(int=4), 1)
    return topics


def test_a_regex_subscribes_to_the_topics_whose_whole_name_matches() -> None:
    topics = regex_topics()
    h = new_harness(topics)
    joined = beat(h, "a", 0, topics=(), regex="orders.*")
    assert joined.error == ErrorCode.none
    assert {t for t, _ in parts(joined.assignment)} == {ORDERS, uuid.UUID(int=3)}
    partial = beat(h, "b", 0, topics=(), regex="rders", group="other")
    assert (partial.error, parts(partial.assignment)) == (ErrorCode.none, set())
    described = h.shard.consumer_describe("g").members[0]
    assert (described.subscribed_topics, described.subscribed_regex) == ((), "orders.*")


def test_names_and_regexes_of_the_members_make_the_group_subscription() -> None:
    h = new_harness(regex_topics())
    beat(h, "a", 0, topics=("payments",), regex="orders-.*")
    beat(h, "b", 0, topics=(), regex="orders")
    target = h.shard.groups["g"].targets
    assert {t for t, _ in parts(target["a"])} <= {PAYMENTS, uuid.UUID(int=3)}
    assert {t for t, _ in parts(target["b"])} == {ORDERS}
    assigned = parts(target["a"]) | parts(target["b"])
    assert len(assigned) == 4 + 2 + 2


def test_a_regex_that_does_not_compile_is_refused() -> None:
    h = new_harness()
    refused = beat(h, "a", 0, topics=(), regex="orders(")
    assert refused.error == ErrorCode.invalid_regular_expression
    assert refused.message is not None and "orders(" in refused.message
    joined = beat(h, "a", 0, topics=("orders",))
    changed = beat(h, "a", joined.member_epoch, regex="[")
    assert changed.error == ErrorCode.invalid_regular_expression
    assert h.shard.groups["g"].members["a"].subscription.regex == ""


def test_the_first_heartbeat_needs_names_or_a_regex() -> None:
    h = new_harness()
    request = ConsumerHeartbeat("g", "a", 0, None, None, 30_000, None, None, None, {}, "c", "h")
    refused = h.run(lambda: h.shard.consumer_heartbeat(request))
    assert (refused.error, refused.message) == (
        ErrorCode.invalid_request,
        "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
    )


def test_an_empty_regex_is_none() -> None:
    h = new_harness(regex_topics())
    joined = beat(h, "a", 0, topics=("payments",), regex="")
    assert {t for t, _ in parts(joined.assignment)} == {PAYMENTS}


def test_topics_created_or_deleted_later_change_a_regex_subscription() -> None:
    topics = Topics()
    h = new_harness(topics)
    joined = beat(h, "a", 0, topics=(), regex="orders.*")
    assert joined.member_epoch == 1
    steady = beat(h, "a", 1, regex=None)
    assert (steady.member_epoch, steady.assignment) == (1, None)
    topics.topics["orders-eu"] = (uuid.UUID(int=3), 2)
    grown = beat(h, "a", 1, regex=None)
    assert grown.member_epoch == 2
    assert (uuid.UUID(int=3), 1) in parts(grown.assignment)
    del topics.topics["orders"]
    shrunk = beat(h, "a", 2, regex=None)
    assert shrunk.member_epoch == 2, "the member revokes the deleted topic's partitions first"
    assert {t for t, _ in parts(shrunk.assignment)} == {uuid.UUID(int=3)}
    assert h.shard.groups["g"].epoch == 3


def test_a_regex_survives_a_restart_and_keeps_its_topics_offsets() -> None:
    topics = regex_topics()
    h = new_harness(topics)
    joined = beat(h, "a", 0, topics=(), regex="orders-.*")
    restarted = h.reload(lambda timer: GroupShard(0, timer, CONFIG, topics))
    member = restarted.shard.groups["g"].members["a"]
    assert member.subscription.regex == "orders-.*"
    assert beat(restarted, "a", joined.member_epoch, regex=None).member_epoch == 1
    eu = TopicPartition("orders-eu", 0)
    request = CommitRequest("g", "a", None, 1, {eu: OffsetCommit(5)}, 9)
    restarted.run(lambda: restarted.shard.commit_offsets(request))
    deleted = restarted.run(lambda: restarted.shard.delete_offsets("g", [eu]))
    assert deleted == (ErrorCode.none, {eu: ErrorCode.group_subscribed_to_topic})


def test_offsets_need_the_current_member_epoch() -> None:
    h = new_harness()
    joined = beat(h, "a", 0)
    tp = TopicPartition("orders", 0)

    def commit(member: str, epoch: int, version: int = 9) -> ErrorCode:
        request = CommitRequest("g", member, None, epoch, {tp: OffsetCommit(5)}, version)
        return h.run(lambda: h.shard.commit_offsets(request))[tp]

    assert commit("a", joined.member_epoch) == ErrorCode.none
    assert commit("a", 0) == ErrorCode.stale_member_epoch
    assert commit("a", 0, version=8) == ErrorCode.unsupported_version
    assert commit("x", 1) == ErrorCode.unknown_member_id
    assert commit("", -1) == ErrorCode.unknown_member_id


def test_a_restarted_shard_resumes_the_group_and_its_epochs() -> None:
    h = new_harness()
    beat(h, "a", 0)
    beat(h, "b", 0)
    told = beat(h, "a", 1)
    beat(h, "a", 1, owned=told.assignment)
    beat(h, "b", 2)
    before = h.shard.consumer_describe("g")
    assert before.state == "Stable"
    restarted = h.reload(lambda timer: GroupShard(0, timer, CONFIG, Topics()))
    assert restarted.shard.consumer_describe("g") == before
    assert beat(restarted, "b", 2).error == ErrorCode.none
    assert restarted.shard.groups["g"].members["b"].current.state == MemberState.STABLE


def test_an_empty_group_can_change_protocol_and_back() -> None:
    h = new_harness()
    beat(h, "a", 0)
    beat(h, "a", -1)
    assert h.shard.list_groups([], ["consumer"])[0].state == "Empty"
    assert h.run(lambda: h.shard.delete_groups(["g"])) == {"g": ErrorCode.none}
    assert h.shard.list_groups([], []) == []
    restarted = h.reload(lambda timer: GroupShard(0, timer, CONFIG, Topics()))
    assert restarted.shard.list_groups([], []) == []


def test_uniform_is_balanced_and_sticky() -> None:
    members = {
        "a": MemberSpec(frozenset({ORDERS}), {ORDERS: frozenset({0, 1, 2, 3})}),
        "b": MemberSpec(frozenset({ORDERS}), {}),
    }
    first = uniform(members, {ORDERS: 4})
    assert first["a"][ORDERS] <= members["a"].current[ORDERS] and len(first["a"][ORDERS]) == 2
    again = uniform({m: MemberSpec(frozenset({ORDERS}), first[m]) for m in ("a", "b")}, {ORDERS: 4})
    assert again == first


def test_uniform_respects_subscriptions() -> None:
    members = {
        "a": MemberSpec(frozenset({ORDERS, PAYMENTS}), {}),
        "b": MemberSpec(frozenset({ORDERS}), {}),
    }
    result = uniform(members, {ORDERS: 2, PAYMENTS: 2})
    assert result["b"] == {ORDERS: frozenset({0, 1})} or len(result["b"][ORDERS]) >= 1
    assert PAYMENTS not in result["b"]
    assert sum(len(ps) for a in result.values() for ps in a.values()) == 4


def test_range_gives_contiguous_ranges_in_member_order() -> None:
    members = {m: MemberSpec(frozenset({ORDERS}), {}) for m in ("b", "a", "c")}
    result = range_assignor(members, {ORDERS: 7})
    assert [sorted(result[m][ORDERS]) for m in "abc"] == [[0, 1, 2], [3, 4], [5, 6]]
