"""The poll timer (`max_poll_interval_ms`) and what the group members do when it expires,
against a scripted coordinator (no sockets): the classic member sends LeaveGroup (a static
one does not), the KIP-848 member a heartbeat with epoch -1 (a static one -2); both lose their
partitions and join again at the next poll. And the KIP-848 heartbeat's subscription fields:
a pattern goes as SubscribedTopicRegex with no names, and switching to names drops it ("")."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from kio.schema.errors import ErrorCode
from test_sdk_consumer_group_member import (
    T0,
    T1,
    TOPIC_ID,
    Hooks,
    heartbeat_answer,
    joined,
    new_848_member,
    new_member,
    synced,
)

from goqueue.client.group_member import JOIN_GROUP, LEAVE_GROUP, SYNC_GROUP, PollTimer

INTERVAL_MS = 100
OK = SimpleNamespace(error_code=ErrorCode.none)


async def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 5
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def running(member: Any, scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run `scenario` while the member's background loop runs."""
    task = asyncio.create_task(member._run())
    try:
        await scenario()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_the_poll_timer_expires_without_polls_but_not_during_one() -> None:
    async def scenario() -> None:
        timer = PollTimer(INTERVAL_MS)
        with timer.polling():
            start = time.monotonic()
            await until(lambda: time.monotonic() - start > 2 * INTERVAL_MS / 1000, "a long poll")
            assert not timer.expired()
        assert not timer.expired()
        await until(timer.expired, "the timer to expire")
        left: list[bool] = []

        async def leave() -> None:
            left.append(True)

        stale = asyncio.create_task(timer.go_stale("g", leave))
        await until(lambda: bool(left), "the member to leave")
        assert timer.stale and not stale.done()
        timer.poll()
        await asyncio.wait_for(stale, 1)
        assert not timer.stale

    asyncio.run(scenario())
    with pytest.raises(ValueError):
        PollTimer(0)


@pytest.mark.parametrize("instance_id", [None, "static-1"])
def test_classic_member_leaves_when_polls_stop_and_rejoins_at_the_next(
    instance_id: str | None,
) -> None:
    hooks = Hooks()
    generations = iter(range(1, 10))

    def script(api_key: int, fields: Any) -> Any:
        if api_key == JOIN_GROUP:
            metadata = fields["protocols"][0]["metadata"]
            members = [
                SimpleNamespace(member_id="m1", group_instance_id=instance_id, metadata=metadata)
            ]
            return joined("m1", next(generations), leader="m1", members=members)
        if api_key == SYNC_GROUP:
            return synced([T0, T1])
        return OK

    async def scenario() -> None:
        timer = PollTimer(INTERVAL_MS)
        member = new_member(hooks, script, poll_timer=timer, group_instance_id=instance_id)

        async def steps() -> None:
            await until(lambda: hooks.log[-1:] == [("lost", [T0, T1])], "the partitions lost")
            assert timer.stale and member.identity.generation == -1
            leaves = [f for api, f in member.coordinator.requests if api == LEAVE_GROUP]
            assert len(leaves) == (0 if instance_id else 1)
            timer.poll()
            await until(lambda: hooks.log[-1:] == [("assign", [T0, T1])], "a new assignment")
            assert member.identity.generation == 2

        await running(member, steps)

    asyncio.run(scenario())
    assert [kind for kind, _ in hooks.log] == ["assign", "lost", "assign"]


@pytest.mark.parametrize(("instance_id", "leave_epoch"), [(None, -1), ("static-1", -2)])
def test_kip848_member_leaves_when_polls_stop_and_rejoins_at_the_next(
    instance_id: str | None, leave_epoch: int
) -> None:
    hooks = Hooks()

    def script(api_key: int, fields: Any) -> Any:
        epoch = fields["member_epoch"]
        return heartbeat_answer(epoch if epoch < 0 else 1, [0, 1] if epoch == 0 else None)

    async def scenario() -> None:
        member = new_848_member(hooks, script)
        member.group_instance_id = instance_id
        member._poll_timer = timer = PollTimer(INTERVAL_MS)

        async def steps() -> None:
            await until(lambda: hooks.log[-1:] == [("lost", [T0, T1])], "the partitions lost")
            assert timer.stale
            epochs = [f["member_epoch"] for _, f in member.coordinator.requests]
            assert epochs[0] == 0 and epochs[-1] == leave_epoch
            timer.poll()
            await until(lambda: hooks.log[-1:] == [("assign", [T0, T1])], "a new assignment")
            epochs = [f["member_epoch"] for _, f in member.coordinator.requests]
            assert epochs.count(0) == 2 and epochs.count(leave_epoch) == 1

        await running(member, steps)

    asyncio.run(scenario())
    assert [kind for kind, _ in hooks.log] == ["assign", "lost", "assign"]


class Subscription(Hooks):
    """A consumer subscribed by pattern, or by names once `names` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] | None = None

    def subscribed(self) -> Sequence[str] | None:
        return self.names

    def pattern(self) -> str | None:
        return "t-.*" if self.names is None else None


def test_kip848_pattern_is_sent_as_a_regex_and_names_drop_it() -> None:
    hooks = Subscription()
    answers = iter([heartbeat_answer(1, [0]), heartbeat_answer(1, None), heartbeat_answer(2, None)])
    member = new_848_member(hooks, lambda api, fields: next(answers))

    async def refresh(topics: Any) -> Any:
        return SimpleNamespace(topics={"t": SimpleNamespace(topic_id=TOPIC_ID)})

    member._cluster = SimpleNamespace(request_timeout=1.0, refresh=refresh)  # type: ignore[assignment]
    member._checked_at = 0.0

    async def scenario() -> None:
        assert await member._beat()
        assert not await member._beat()
        hooks.names = ["t"]
        member.rejoin()
        assert not await member._beat()

    asyncio.run(scenario())
    sent = [fields for _, fields in member.coordinator.requests]  # type: ignore[attr-defined]
    fields = [(f["subscribed_topic_names"], f["subscribed_topic_regex"]) for f in sent]
    assert fields == [([], "t-.*"), (None, None), (["t"], "")]
