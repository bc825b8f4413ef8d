"""The group members' protocol logic against a scripted coordinator (no sockets). Classic:
the member id handshake, the leader's assignment, cooperative revocation followed by a new
join, lost partitions on a fenced generation, a fenced static member stopping. KIP-848: only
changed fields are sent, assignments are reconciled, a fenced member joins again."""

from __future__ import annotations

import asyncio
import datetime
import uuid
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

from kio.schema.errors import ErrorCode

from goqueue.client.assignors import assignor_for
from goqueue.client.consumer_group_848 import ConsumerGroupMember
from goqueue.client.group_member import HEARTBEAT, JOIN_GROUP, SYNC_GROUP, ClassicMember
from goqueue.client.metadata import TopicPartition
from goqueue.coordinator.group.consumer_protocol import (
    assigned_partitions,
    decode_subscription,
    encode_assignment,
)

T0, T1, T2, T3 = (TopicPartition("t", p) for p in range(4))


class Hooks:
    """A consumer owning partitions, logging what the member asked of it."""

    def __init__(self) -> None:
        self.partitions: list[TopicPartition] = []
        self.log: list[tuple[str, list[TopicPartition]]] = []

    def subscribed(self) -> Sequence[str] | None:
        return ["t"]

    async def topic_partitions(self, topics: Sequence[str] | None) -> dict[str, int]:
        return {"t": 4}

    def owned(self) -> list[TopicPartition]:
        return sorted(self.partitions)

    async def assign(self, partitions: Sequence[TopicPartition]) -> None:
        self.partitions += partitions
        self.log.append(("assign", list(partitions)))

    async def revoke(self, partitions: Sequence[TopicPartition]) -> None:
        self.partitions = [tp for tp in self.partitions if tp not in partitions]
        self.log.append(("revoke", list(partitions)))

    async def lose(self, partitions: Sequence[TopicPartition]) -> None:
        self.partitions = [tp for tp in self.partitions if tp not in partitions]
        self.log.append(("lost", list(partitions)))


class ScriptedCoordinator:
    """Answers each request with the next response its API's script gives."""

    def __init__(self, script: Callable[[int, Any], Any]) -> None:
        self.script = script
        self.requests: list[tuple[int, Any]] = []

    async def request(self, api_key: int, fields: Any, timeout: float) -> Any:
        self.requests.append((api_key, fields))
        return self.script(api_key, fields)

    async def close(self) -> None:
        pass

    reset = close


def joined(member_id: str, generation: int, *, leader: str = "", members: Any = ()) -> Any:
    return SimpleNamespace(
        error_code=ErrorCode.none,
        member_id=member_id,
        generation_id=generation,
        leader=leader,
        protocol_name="cooperative-sticky",
        members=list(members),
    )


def synced(partitions: Sequence[TopicPartition]) -> Any:
    assignment = encode_assignment({"t": [tp.partition for tp in partitions]})
    return SimpleNamespace(error_code=ErrorCode.none, assignment=assignment)


def error(code: ErrorCode, member_id: str = "") -> Any:
    return SimpleNamespace(error_code=code, member_id=member_id)


def new_member(hooks: Hooks, script: Callable[[int, Any], Any], **options: Any) -> ClassicMember:
    member = ClassicMember(
        SimpleNamespace(request_timeout=1.0),  # type: ignore[arg-type]
        "g",
        hooks,
        assignors=[assignor_for("cooperative-sticky")],
        session_timeout_ms=1000,
        rebalance_timeout_ms=1000,
        heartbeat_interval_ms=10,
        metadata_max_age_ms=60_000,
        **options,
    )
    member.coordinator = ScriptedCoordinator(script)  # type: ignore[assignment]
    return member


def test_member_id_handshake_then_the_leader_assigns_everything() -> None:
    hooks = Hooks()
    joins = iter([error(ErrorCode.member_id_required, "m1")])

    def script(api_key: int, fields: Any) -> Any:
        if api_key == JOIN_GROUP:
            metadata = fields["protocols"][0]["metadata"]
            members = [SimpleNamespace(member_id="m1", group_instance_id=None, metadata=metadata)]
            return next(joins, joined("m1", 1, leader="m1", members=members))
        assert api_key == SYNC_GROUP
        (assignment,) = fields["assignments"]
        assert assignment["member_id"] == "m1"
        assert assigned_partitions(assignment["assignment"]) == {"t": [0, 1, 2, 3]}
        return synced([T0, T1, T2, T3])

    member = new_member(hooks, script)
    asyncio.run(member._join())
    requests = member.coordinator.requests  # type: ignore[attr-defined]
    assert [fields["member_id"] for api, fields in requests if api == JOIN_GROUP] == ["", "m1"]
    subscription = decode_subscription(requests[0][1]["protocols"][0]["metadata"])
    assert list(subscription.topics) == ["t"] and subscription.generation_id == -1
    assert hooks.log == [("assign", [T0, T1, T2, T3])]
    assert (member.member_id, member.generation, member.stable.is_set()) == ("m1", 1, True)


def test_cooperative_revocation_joins_again_keeping_the_rest() -> None:
    hooks = Hooks()
    hooks.partitions = [T0, T1, T2, T3]

    def script(api_key: int, fields: Any) -> Any:
        if api_key == JOIN_GROUP:
            return joined("m1", 2, leader="other")
        return synced([T0, T1])

    member = new_member(hooks, script)
    member.generation = 1
    asyncio.run(member._join())
    (join,) = [f for api, f in member.coordinator.requests if api == JOIN_GROUP]  # type: ignore[attr-defined]
    owned = decode_subscription(join["protocols"][0]["metadata"]).owned_partitions
    assert [list(t.partitions) for t in owned] == [[0, 1, 2, 3]]
    assert hooks.log == [("revoke", [T2, T3])]
    assert hooks.owned() == [T0, T1]
    assert member._rejoin, "revoking partitions calls for another join"


def test_a_fenced_generation_loses_the_partitions_and_rejoins() -> None:
    hooks = Hooks()
    hooks.partitions = [T0, T1]

    def script(api_key: int, fields: Any) -> Any:
        assert api_key == HEARTBEAT
        return error(ErrorCode.illegal_generation)

    member = new_member(hooks, script)
    member.member_id, member.generation, member._rejoin = "m1", 3, False
    member._checked_at = float("inf")
    asyncio.run(member._heartbeat())
    assert hooks.log == [("lost", [T0, T1])]
    assert (member.member_id, member.generation, member._rejoin) == ("", -1, True)


def test_a_fenced_static_member_stops_with_the_error() -> None:
    hooks = Hooks()

    def script(api_key: int, fields: Any) -> Any:
        assert fields["group_instance_id"] == "static-1"
        return error(ErrorCode.fenced_instance_id)

    member = new_member(hooks, script, group_instance_id="static-1")
    asyncio.run(asyncio.wait_for(member._run(), 5))
    assert member.error is not None and member.error.code == ErrorCode.fenced_instance_id  # type: ignore[attr-defined]


TOPIC_ID = uuid.uuid4()


def heartbeat_answer(epoch: int, partitions: Sequence[int] | None) -> Any:
    assignment = (
        None
        if partitions is None
        else SimpleNamespace(
            topic_partitions=[SimpleNamespace(topic_id=TOPIC_ID, partitions=list(partitions))]
        )
    )
    return SimpleNamespace(
        error_code=ErrorCode.none,
        error_message=None,
        member_id="",
        member_epoch=epoch,
        heartbeat_interval=datetime.timedelta(milliseconds=50),
        assignment=assignment,
    )


def new_848_member(hooks: Hooks, script: Callable[[int, Any], Any]) -> ConsumerGroupMember:
    member = ConsumerGroupMember(
        SimpleNamespace(request_timeout=1.0),  # type: ignore[arg-type]
        "g",
        hooks,
        rebalance_timeout_ms=1000,
        metadata_max_age_ms=60_000,
    )
    member.coordinator = ScriptedCoordinator(script)  # type: ignore[assignment]
    member.member_id = "m1"
    member._topics, member._ids, member._checked_at = ["t"], {"t": TOPIC_ID}, float("inf")
    return member


def test_kip848_member_sends_only_what_changed_and_reconciles() -> None:
    hooks = Hooks()
    answers = iter(
        [heartbeat_answer(1, [0, 1, 2]), heartbeat_answer(2, [0, 3]), heartbeat_answer(2, None)]
    )
    member = new_848_member(hooks, lambda api, fields: next(answers))

    async def scenario() -> list[bool]:
        return [await member._beat() for _ in range(3)]

    assert asyncio.run(scenario()) == [True, True, False]
    sent = [fields for _, fields in member.coordinator.requests]  # type: ignore[attr-defined]
    assert sent[0]["member_epoch"] == 0 and sent[0]["subscribed_topic_names"] == ["t"]
    assert sent[0]["topic_partitions"] == [] and sent[0]["rebalance_timeout"].total_seconds() == 1
    assert sent[1]["subscribed_topic_names"] is None
    assert sent[1]["rebalance_timeout"].total_seconds() < 0
    assert sent[1]["topic_partitions"] == [{"topic_id": TOPIC_ID, "partitions": [0, 1, 2]}]
    assert sent[2]["topic_partitions"] == [{"topic_id": TOPIC_ID, "partitions": [0, 3]}]
    assert hooks.log == [("assign", [T0, T1, T2]), ("revoke", [T1, T2]), ("assign", [T3])]
    assert member.identity.generation == 2


def test_kip848_fenced_member_loses_its_partitions_and_joins_again() -> None:
    hooks = Hooks()
    hooks.partitions = [T0]
    answers = iter([error(ErrorCode.fenced_member_epoch), heartbeat_answer(5, [1])])
    member = new_848_member(hooks, lambda api, fields: next(answers))
    member.member_epoch = 4

    async def scenario() -> None:
        assert await member._beat()
        assert await member._beat()

    asyncio.run(scenario())
    sent = [fields for _, fields in member.coordinator.requests]  # type: ignore[attr-defined]
    assert [f["member_epoch"] for f in sent] == [4, 0]
    assert hooks.log == [("lost", [T0]), ("assign", [T1])]
