"""What the SDK consumer tests share: polling with a deadline inside the event loop, reading
until a count arrives, and consumers each polling in a task of their own (as applications
run them) while the test watches their assignments."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TypeVar

from goqueue.client import Consumer, ConsumerRecord, TopicPartition

T = TypeVar("T")
DEADLINE_S = 30.0
FAST_GROUP = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 200}
"""Member timing for the brokers of group_helpers (short sessions, fast rebalances)."""


async def eventually(check: Callable[[], T | None], what: str, timeout: float = DEADLINE_S) -> T:
    """Await until `check()` returns something other than None; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)


async def read(consumer: Consumer, count: int, timeout: float = DEADLINE_S) -> list[ConsumerRecord]:
    """Exactly `count` records from `getmany` (never asking for more than are missing)."""
    got: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"got {len(got)} of {count} records in {timeout:.0f}s")
        batch = await consumer.getmany(timeout_ms=200, max_records=count - len(got))
        got.extend(r for records in batch.values() for r in records)
    return got


class Polling:
    """Consumers polling in tasks of their own, collecting every record they get."""

    def __init__(self) -> None:
        self.received: list[ConsumerRecord] = []
        self.by_consumer: dict[int, list[ConsumerRecord]] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self.errors: list[BaseException] = []

    def start(self, consumer: Consumer) -> None:
        self.by_consumer.setdefault(id(consumer), [])
        self._tasks[id(consumer)] = asyncio.create_task(self._poll(consumer))

    async def _poll(self, consumer: Consumer) -> None:
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=200)
                records = [r for rs in batch.values() for r in rs]
                self.received.extend(records)
                self.by_consumer[id(consumer)].extend(records)
        except Exception as exc:
            self.errors.append(exc)

    async def stop(self, consumer: Consumer) -> None:
        """Stop polling `consumer` (the test may close it then)."""
        task = self._tasks.pop(id(consumer))
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert not self.errors, self.errors

    async def stop_all(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        assert not self.errors, self.errors


def owned(consumers: list[Consumer]) -> list[set[tuple[str, int]]]:
    """Each consumer's partitions as (topic, partition) pairs."""
    return [{(tp.topic, tp.partition) for tp in c.assignment()} for c in consumers]


def tps(topic: str, partitions: int) -> list[TopicPartition]:
    return [TopicPartition(topic, p) for p in range(partitions)]
