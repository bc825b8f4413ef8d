"""The classic group protocol as a pure state machine: joins, syncs, heartbeats, leaves, timers,
static members and the errors Kafka answers, without sockets or an event loop."""

from __future__ import annotations

from collections.abc import Sequence

from coordinator_fakes import NO_TOPICS, Harness, Waiter
from kio.schema.errors import ErrorCode

from goqueue.coordinator.group.config import GroupConfig
from goqueue.coordinator.group.messages import (
    GroupProtocol,
    HeartbeatRequest,
    JoinRequest,
    JoinResponse,
    LeavingMember,
    SyncRequest,
    SyncResponse,
)
from goqueue.coordinator.group.shard import GroupShard

DELAY_MS = 100
INITIAL_REBALANCE_MS = 2 * DELAY_MS
"""The initial delay, extended once because more than one member joined during it."""
SESSION_MS = 10_000
REBALANCE_MS = 30_000
CONFIG = GroupConfig(initial_rebalance_delay_ms=DELAY_MS, max_size=3)
RANGE = (GroupProtocol("range", b"range-meta"),)


def new_harness(config: GroupConfig = CONFIG) -> Harness[GroupShard]:
    return Harness(lambda timer: GroupShard(0, timer, config, NO_TOPICS))


def join_request(
    member_id: str = "",
    *,
    group: str = "g",
    protocols: Sequence[GroupProtocol] = RANGE,
    instance: str | None = None,
    session_ms: int = SESSION_MS,
    require_known_member_id: bool = True,
    protocol_type: str = "consumer",
    client_id: str = "client",
) -> JoinRequest:
    return JoinRequest(
        group_id=group,
        member_id=member_id,
        group_instance_id=instance,
        protocol_type=protocol_type,
        protocols=tuple(protocols),
        session_timeout_ms=session_ms,
        rebalance_timeout_ms=REBALANCE_MS,
        client_id=client_id,
        client_host="/127.0.0.1",
        require_known_member_id=require_known_member_id,
    )


def join(h: Harness[GroupShard], request: JoinRequest) -> Waiter[JoinResponse]:
    waiter: Waiter[JoinResponse] = Waiter()
    h.run(lambda: h.shard.join(request, waiter))
    return waiter


def new_member(h: Harness[GroupShard], **kwargs: object) -> Waiter[JoinResponse]:
    """A dynamic member joining as a v4+ client does: first to get its member id."""
    first = join(h, join_request(**kwargs))  # type: ignore[arg-type]
    assert first.result.error == ErrorCode.member_id_required
    return join(h, join_request(first.result.member_id, **kwargs))  # type: ignore[arg-type]


def sync(
    h: Harness[GroupShard],
    member_id: str,
    generation: int,
    assignments: dict[str, bytes] | None = None,
    *,
    instance: str | None = None,
) -> Waiter[SyncResponse]:
    waiter: Waiter[SyncResponse] = Waiter()
    request = SyncRequest(
        "g", member_id, instance, generation, "consumer", "range", assignments or {}
    )
    h.run(lambda: h.shard.sync(request, waiter))
    return waiter


def heartbeat(
    h: Harness[GroupShard], member_id: str, generation: int, instance: str | None = None
) -> ErrorCode:
    return h.run(lambda: h.shard.heartbeat(HeartbeatRequest("g", member_id, instance, generation)))


def stable_group(h: Harness[GroupShard], count: int = 2) -> list[JoinResponse]:
    """`count` members joined and synced: generation 1, the first member leads."""
    waiters = [new_member(h) for _ in range(count)]
    h.timer.advance(INITIAL_REBALANCE_MS)
    joined = [w.result for w in waiters]
    leader = joined[0]
    syncs = [sync(h, j.member_id, j.generation_id) for j in joined[1:]]
    assignments = {j.member_id: f"assignment-{i}".encode() for i, j in enumerate(joined)}
    syncs.insert(0, sync(h, leader.member_id, leader.generation_id, assignments))
    for i, s in enumerate(syncs):
        assert s.result == SyncResponse(
            ErrorCode.none, "consumer", "range", f"assignment-{i}".encode()
        )
    return joined


def test_a_new_member_first_gets_its_id_then_joins_after_the_initial_delay() -> None:
    h = new_harness()
    first = join(h, join_request())
    assert first.result.error == ErrorCode.member_id_required
    assert first.result.member_id.startswith("client-")
    waiter = join(h, join_request(first.result.member_id))
    assert not waiter.done()
    h.timer.advance(DELAY_MS - 1)
    assert not waiter.done()
    h.timer.advance(1)
    joined = waiter.result
    assert joined.error == ErrorCode.none
    assert joined.generation_id == 1
    assert joined.leader == joined.member_id == first.result.member_id
    assert joined.protocol_name == "range"
    assert [m.metadata for m in joined.members] == [b"range-meta"]


def test_members_arriving_during_the_initial_delay_extend_it_into_one_rebalance() -> None:
    h = new_harness()
    a = new_member(h)
    h.timer.advance(DELAY_MS - 10)
    b = new_member(h)
    h.timer.advance(DELAY_MS - 10)
    assert not a.done() and not b.done()
    h.timer.advance(DELAY_MS)
    assert a.result.generation_id == b.result.generation_id == 1
    assert len(a.result.members) == 2
    assert b.result.members == ()


def test_the_leader_assignment_reaches_every_member_and_the_group_is_persisted() -> None:
    h = new_harness()
    joined = stable_group(h, 3)
    described = h.shard.describe("g")
    assert described is not None and described.state == "Stable"
    assert {m.member_id: m.assignment for m in described.members} == {
        j.member_id: f"assignment-{i}".encode() for i, j in enumerate(joined)
    }
    assert len(h.log) == 1


def test_the_protocol_is_the_one_most_members_prefer_and_ties_follow_the_leader() -> None:
    h = new_harness()
    both = (GroupProtocol("roundrobin", b"rr"), GroupProtocol("range", b"r"))
    a = new_member(h, protocols=both)
    b = new_member(h, protocols=tuple(reversed(both)))
    h.timer.advance(INITIAL_REBALANCE_MS)
    assert a.result.protocol_name == b.result.protocol_name == "roundrobin"
    assert {m.metadata for m in a.result.members} == {b"rr"}


def test_a_member_without_a_common_protocol_is_refused_and_the_group_goes_on() -> None:
    h = new_harness()
    a, _b = stable_group(h)
    refused = join(h, join_request(protocols=(GroupProtocol("sticky", b"s"),)))
    assert refused.result.error == ErrorCode.inconsistent_group_protocol
    assert join(h, join_request(protocol_type="connect")).result.error == (
        ErrorCode.inconsistent_group_protocol
    )
    assert heartbeat(h, a.member_id, a.generation_id) == ErrorCode.none


def test_heartbeats_check_member_and_generation() -> None:
    h = new_harness()
    a, b = stable_group(h)
    assert heartbeat(h, a.member_id, 1) == ErrorCode.none
    assert heartbeat(h, "nobody", 1) == ErrorCode.unknown_member_id
    assert heartbeat(h, b.member_id, 0) == ErrorCode.illegal_generation
    unknown_group = h.run(lambda: h.shard.heartbeat(HeartbeatRequest("other", "m", None, 1)))
    assert unknown_group == ErrorCode.unknown_member_id


def test_a_member_that_stops_heartbeating_is_evicted_and_the_others_rebalance() -> None:
    h = new_harness()
    a, b = stable_group(h)
    for _ in range(2):
        h.timer.advance(SESSION_MS * 4 // 10)
        assert heartbeat(h, a.member_id, 1) == ErrorCode.none
    h.timer.advance(SESSION_MS * 2 // 10)
    assert heartbeat(h, a.member_id, 1) == ErrorCode.rebalance_in_progress
    rejoined = join(h, join_request(a.member_id))
    assert rejoined.result.generation_id == 2
    assert [m.member_id for m in rejoined.result.members] == [a.member_id]
    assert heartbeat(h, b.member_id, 1) == ErrorCode.unknown_member_id


def test_a_member_that_never_syncs_is_removed_after_the_rebalance_timeout() -> None:
    h = new_harness()
    long_session = 2 * REBALANCE_MS
    a_wait, b_wait = new_member(h, session_ms=long_session), new_member(h, session_ms=long_session)
    h.timer.advance(INITIAL_REBALANCE_MS)
    a, b = a_wait.result, b_wait.result
    leader_sync = sync(h, a.member_id, 1, {a.member_id: b"x", b.member_id: b"y"})
    assert leader_sync.result.error == ErrorCode.none
    h.timer.advance(REBALANCE_MS)
    assert heartbeat(h, a.member_id, 1) == ErrorCode.rebalance_in_progress
    assert heartbeat(h, b.member_id, 1) == ErrorCode.unknown_member_id


def test_syncs_of_a_stale_generation_or_during_a_rebalance_are_refused() -> None:
    h = new_harness()
    a, b = stable_group(h)
    assert sync(h, b.member_id, 0).result.error == ErrorCode.illegal_generation
    assert sync(h, "nobody", 1).result.error == ErrorCode.unknown_member_id
    rejoin = join(h, join_request(a.member_id))
    assert sync(h, b.member_id, 1).result.error == ErrorCode.rebalance_in_progress
    assert not rejoin.done()


def test_a_follower_waiting_for_the_assignment_is_told_when_a_rebalance_starts() -> None:
    h = new_harness()
    a_wait, b_wait = new_member(h), new_member(h)
    h.timer.advance(INITIAL_REBALANCE_MS)
    follower_sync = sync(h, b_wait.result.member_id, 1)
    assert not follower_sync.done()
    join(h, join_request(a_wait.result.member_id, protocols=(GroupProtocol("range", b"new"),)))
    assert follower_sync.result.error == ErrorCode.rebalance_in_progress


def test_leaving_members_trigger_a_rebalance_and_unknown_ones_are_reported() -> None:
    h = new_harness()
    a, b = stable_group(h)
    left = h.run(lambda: h.shard.leave("g", [LeavingMember(b.member_id), LeavingMember("nobody")]))
    assert [m.error for m in left.members] == [ErrorCode.none, ErrorCode.unknown_member_id]
    assert heartbeat(h, a.member_id, 1) == ErrorCode.rebalance_in_progress
    assert join(h, join_request(a.member_id)).result.generation_id == 2


def test_the_last_member_leaving_empties_the_group_and_persists_it() -> None:
    h = new_harness()
    (a,) = stable_group(h, 1)
    h.run(lambda: h.shard.leave("g", [LeavingMember(a.member_id)]))
    described = h.shard.describe("g")
    assert described is not None and described.state == "Empty"
    assert len(h.log) == 2
    restarted = h.reload(lambda timer: GroupShard(0, timer, CONFIG, NO_TOPICS))
    assert restarted.shard.describe("g") == described


def test_group_max_size_refuses_one_member_too_many() -> None:
    h = new_harness()
    joined = stable_group(h, 3)
    fourth = join(h, join_request())
    assert fourth.result.error == ErrorCode.group_max_size_reached
    assert heartbeat(h, joined[2].member_id, 1) == ErrorCode.none


def test_a_group_of_size_one_is_an_exclusive_subscription() -> None:
    h = new_harness(GroupConfig(initial_rebalance_delay_ms=DELAY_MS, max_size=1))
    stable_group(h, 1)
    second = join(h, join_request(require_known_member_id=False))
    assert second.result.error == ErrorCode.group_max_size_reached


def test_session_timeouts_outside_the_broker_bounds_are_refused() -> None:
    h = new_harness()
    assert join(h, join_request(session_ms=5)).result.error == ErrorCode.invalid_session_timeout
    too_long = join_request(session_ms=CONFIG.max_session_timeout_ms + 1)
    assert join(h, too_long).result.error == ErrorCode.invalid_session_timeout
    assert h.shard.describe("g") is None


def test_a_static_member_restarting_takes_its_place_back_without_a_rebalance() -> None:
    h = new_harness()
    first = join(h, join_request(instance="host-1"))
    h.timer.advance(DELAY_MS)
    old = first.result
    sync(h, old.member_id, 1, {old.member_id: b"mine"}, instance="host-1")
    again = join(h, join_request(instance="host-1"))
    restarted = again.result
    assert restarted.error == ErrorCode.none
    assert restarted.generation_id == 1
    assert restarted.member_id != old.member_id
    resynced = sync(h, restarted.member_id, 1, instance="host-1")
    assert resynced.result.assignment == b"mine"
    assert heartbeat(h, old.member_id, 1, "host-1") == ErrorCode.fenced_instance_id
    assert heartbeat(h, restarted.member_id, 1, "host-1") == ErrorCode.none


def test_a_static_member_survives_missing_a_rebalance_that_drops_dynamic_ones() -> None:
    h = new_harness()
    static_wait = join(h, join_request(instance="host-1", session_ms=2 * REBALANCE_MS))
    dynamic_wait = new_member(h)
    h.timer.advance(INITIAL_REBALANCE_MS)
    static, dynamic = static_wait.result, dynamic_wait.result
    assignments = {static.member_id: b"s", dynamic.member_id: b"d"}
    sync(h, static.member_id, 1, assignments, instance="host-1")
    sync(h, dynamic.member_id, 1)
    third = new_member(h)
    h.timer.advance(REBALANCE_MS)
    assert third.result.generation_id == 2
    described = h.shard.describe("g")
    assert described is not None
    assert {m.member_id for m in described.members} == {static.member_id, third.result.member_id}


def test_parked_joins_of_a_shard_that_unloads_are_told_to_find_the_coordinator() -> None:
    h = new_harness()
    waiter = new_member(h)
    h.shard.on_unloaded()
    assert waiter.result.error == ErrorCode.not_coordinator


def test_a_loaded_group_resumes_where_it_was() -> None:
    h = new_harness()
    a, b = stable_group(h)
    restarted = h.reload(lambda timer: GroupShard(0, timer, CONFIG, NO_TOPICS))
    restarted.timer.advance(SESSION_MS - 1)
    assert heartbeat(restarted, a.member_id, 1) == ErrorCode.none
    restarted.timer.advance(1)
    assert heartbeat(restarted, a.member_id, 1) == ErrorCode.rebalance_in_progress
    assert heartbeat(restarted, b.member_id, 1) == ErrorCode.unknown_member_id


def test_loading_ignores_records_it_cannot_read() -> None:
    h = new_harness()
    stable_group(h, 1)
    h.log.insert(0, h.log[0]._replace(key=b"\x00\x63junk"))
    restarted = h.reload(lambda timer: GroupShard(0, timer, CONFIG, NO_TOPICS))
    described = restarted.shard.describe("g")
    assert described is not None and described.state == "Stable"
