"""An in-memory stand-in for the coordinator runtime: a manual clock and timers, a list for a
log, and waiters that just hold their result. Shards run on it without sockets or an event
loop, exactly as the runtime drives them: an operation's records are "appended" to the list,
then replayed into the shard when the operation asks for it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from goqueue.coordinator.runtime import Record, Result, Shard

T = TypeVar("T")
S = TypeVar("S", bound=Shard)


class Waiter(Generic[T]):
    """What a parked request gets answered through."""

    def __init__(self) -> None:
        self._result: T | None = None
        self._done = False

    def done(self) -> bool:
        return self._done

    def set_result(self, result: T, /) -> None:
        assert not self._done, "a waiter is answered once"
        self._result = result
        self._done = True

    @property
    def result(self) -> T:
        assert self._done, "the request is still parked"
        assert self._result is not None
        return self._result


@dataclass
class _Scheduled:
    due_ms: int
    operation: Callable[[], Result[None]]


@dataclass
class ManualTimer:
    """The runtime's Timer on a clock that moves only when a test advances it."""

    now: int = 1_000_000
    scheduled: dict[str, _Scheduled] = field(default_factory=dict)
    run: Callable[[Callable[[], Result[Any]]], Any] | None = None

    def now_ms(self) -> int:
        return self.now

    def schedule(self, key: str, delay_ms: int, operation: Callable[[], Result[None]]) -> None:
        self.scheduled[key] = _Scheduled(self.now + delay_ms, operation)

    def cancel(self, key: str) -> None:
        self.scheduled.pop(key, None)

    def advance(self, ms: int) -> None:
        """Move the clock, running every timer that falls due, in deadline order."""
        target = self.now + ms
        while True:
            due = [(s.due_ms, k) for k, s in self.scheduled.items() if s.due_ms <= target]
            if not due:
                break
            due_ms, key = min(due)
            self.now = max(self.now, due_ms)
            operation = self.scheduled.pop(key).operation
            assert self.run is not None
            self.run(operation)
        self.now = target


class Harness(Generic[S]):
    """A shard with its timer and log, driven the way the runtime drives it."""

    def __init__(self, factory: Callable[[ManualTimer], S]) -> None:
        self.timer = ManualTimer()
        self.timer.run = self.run
        self.shard = factory(self.timer)
        self.log: list[Record] = []

    def run(self, operation: Callable[[], Result[T]]) -> T:
        result = operation()
        base = len(self.log)
        self.log.extend(result.records)
        if result.replay:
            for delta, record in enumerate(result.records):
                self.shard.replay(base + delta, record)
        return result.response

    def reload(self, factory: Callable[[ManualTimer], S]) -> Harness[S]:
        """A new shard that loads this one's log, as after a broker restart."""
        restarted: Harness[S] = Harness(factory)
        restarted.timer.now = self.timer.now
        restarted.log = list(self.log)
        for offset, record in enumerate(self.log):
            restarted.shard.replay(offset, record)
        restarted.shard.on_loaded()
        return restarted


class NoTopics:
    """A cluster without topics, for shards whose tests need none."""

    def by_name(self, name: str) -> tuple[uuid.UUID, int] | None:
        return None

    def name_of(self, topic_id: uuid.UUID) -> str | None:
        return None


NO_TOPICS = NoTopics()
