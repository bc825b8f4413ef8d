"""The scheduler's shard: near messages in memory, far ones in window files, delivery order,
cancels, and what a reload (broker restart) rebuilds from the schedule log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from coordinator_fakes import Harness, ManualTimer

from goqueue.coordinator.runtime import Record, Result
from goqueue.coordinator.scheduler.buckets import BucketStore
from goqueue.coordinator.scheduler.records import (
    Intent,
    Message,
    encode_message,
    message_key,
)
from goqueue.coordinator.scheduler.shard import CancelOutcome, ProducerExpiration, ScheduleShard

WINDOW_MS = 10_000
START_MS = 1_000_000_000
EXPIRATION = ProducerExpiration(expiration_ms=60_000, check_interval_ms=10_000)


class Driver:
    """The shard on the coordinator fakes' harness (records appended to a list and replayed,
    as the runtime does), with its window files in `directory` and a clock of its own."""

    def __init__(
        self, directory: Path, now_ms: int = START_MS, previous: Driver | None = None
    ) -> None:
        """A fresh shard, or one that loads `previous`'s log (a broker restart)."""
        self.directory = directory
        self.now_ms = now_ms
        if previous is None:
            self.harness = Harness(self._new_shard)
        else:
            self.harness = previous.harness.reload(self._new_shard)

    def _new_shard(self, timer: ManualTimer) -> ScheduleShard:
        self.store = BucketStore(self.directory)
        return ScheduleShard(self.store, WINDOW_MS, self.now_ms, timer, EXPIRATION)

    @property
    def shard(self) -> ScheduleShard:
        return self.harness.shard

    @property
    def log(self) -> list[Record]:
        return self.harness.log

    def run(self, result: Result[Any]) -> Any:
        return self.harness.run(lambda: result)

    def park(self, schedule_id: str, due_ms: int, value: bytes = b"v") -> None:
        message = Message("orders", 0, due_ms, self.now_ms, b"k", value, (("h", b"1"),))
        record = Record(message_key(schedule_id), encode_message(message))
        self.run(self.shard.park([record], len(self.log)))

    def cancel(self, schedule_id: str) -> object:
        self.store.flush()
        found = self.store.find(schedule_id) if self.shard.get(schedule_id) is None else None
        return self.run(self.shard.cancel(schedule_id, None if found is None else found[1]))

    def tick(self, now_ms: int) -> list[str]:
        """Move the clock: admit windows that came near, then deliver everything due."""
        self.now_ms = now_ms
        while (window := self.shard.advance(now_ms)) is not None:
            frames = self.store.read(window)
            self.run(self.shard.admit(window, frames))
            self.store.remove(window)
        due = self.shard.take_due(now_ms, 1000)
        ids = [entry.schedule_id for entry in due]
        if due:
            self.run(self.shard.begin_delivery({("orders", 0): Intent(0, tuple(ids))}))
            self.run(self.shard.finish_delivery({("orders", 0): ids}))
        return ids

    def reload(self, now_ms: int) -> Driver:
        """A new shard loading this one's log at `now_ms`, as after a broker restart."""
        self.shard.on_unloaded()
        return Driver(self.directory, now_ms, self)


@pytest.fixture
def driver(tmp_path: Path) -> Driver:
    return Driver(tmp_path / "buckets")


def test_near_messages_are_held_in_memory_and_far_ones_on_disk(driver: Driver) -> None:
    driver.park("near", START_MS + 1000)
    driver.park("far", START_MS + 10 * WINDOW_MS)
    assert driver.shard.get("near") is not None
    assert driver.shard.get("far") is None
    assert driver.shard.far_count == 1
    assert driver.shard.pending == 2


def test_messages_are_delivered_in_due_order_and_never_early(driver: Driver) -> None:
    dues = {f"m{i}": START_MS + (i * 7919) % 50_000 for i in range(40)}
    for schedule_id, due_ms in dues.items():
        driver.park(schedule_id, due_ms)
    delivered: list[str] = []
    for now_ms in range(START_MS, START_MS + 60_000, 500):
        batch = driver.tick(now_ms)
        assert all(dues[i] <= now_ms for i in batch), "a message was delivered early"
        delivered += batch
    assert delivered == sorted(dues, key=lambda i: (dues[i], i))
    assert driver.shard.pending == 0


def test_a_window_is_admitted_only_when_it_comes_near(driver: Driver) -> None:
    far_ms = START_MS + 5 * WINDOW_MS
    driver.park("far", far_ms)
    driver.tick(far_ms - 2 * WINDOW_MS)
    assert driver.shard.get("far") is None
    driver.tick(far_ms - WINDOW_MS + 1)
    assert driver.shard.get("far") is not None
    assert driver.tick(far_ms) == ["far"]


def test_a_cancelled_near_message_is_never_delivered(driver: Driver) -> None:
    driver.park("a", START_MS + 1000)
    driver.park("b", START_MS + 2000)
    assert driver.cancel("a") is CancelOutcome.CANCELLED
    assert driver.tick(START_MS + 5000) == ["b"]
    assert Record(message_key("a"), None) in driver.log


def test_a_cancelled_far_message_is_skipped_when_its_window_loads(driver: Driver) -> None:
    due_ms = START_MS + 5 * WINDOW_MS
    driver.park("far", due_ms)
    driver.park("kept", due_ms + 1)
    assert driver.cancel("far") is CancelOutcome.CANCELLED
    assert driver.shard.pending == 1
    assert driver.cancel("far") is CancelOutcome.NOT_FOUND
    assert driver.tick(due_ms + 10) == ["kept"]
    assert Record(message_key("far"), None) in driver.log
    assert driver.shard.pending == 0


def test_cancel_answers_not_found_and_too_late(driver: Driver) -> None:
    assert driver.cancel("nothing") is CancelOutcome.NOT_FOUND
    driver.park("busy", START_MS)
    assert [e.schedule_id for e in driver.shard.take_due(START_MS, 10)] == ["busy"]
    assert driver.cancel("busy") is CancelOutcome.DELIVERING


def test_released_messages_are_delivered_again(driver: Driver) -> None:
    driver.park("a", START_MS)
    taken = driver.shard.take_due(START_MS, 10)
    driver.shard.release(taken)
    assert [e.schedule_id for e in driver.shard.take_due(START_MS, 10)] == ["a"]


def test_a_reload_restores_pending_messages_near_and_far(driver: Driver) -> None:
    driver.park("delivered", START_MS + 100)
    driver.park("near", START_MS + 5000)
    driver.park("far", START_MS + 8 * WINDOW_MS)
    driver.park("far-cancelled", START_MS + 8 * WINDOW_MS + 1)
    driver.park("near-cancelled", START_MS + 6000)
    assert driver.tick(START_MS + 1000) == ["delivered"]
    assert driver.cancel("far-cancelled") is CancelOutcome.CANCELLED
    assert driver.cancel("near-cancelled") is CancelOutcome.CANCELLED
    restarted = driver.reload(START_MS + 2000)
    assert restarted.shard.pending == 2
    assert restarted.shard.closing == set()
    assert restarted.tick(START_MS + 6000) == ["near"]
    assert restarted.tick(START_MS + 9 * WINDOW_MS) == ["far"]


def test_a_reload_long_after_a_far_cancel_writes_its_tombstone(driver: Driver) -> None:
    due_ms = START_MS + 8 * WINDOW_MS
    driver.park("far", due_ms)
    assert driver.cancel("far") is CancelOutcome.CANCELLED
    restarted = driver.reload(due_ms + 1)
    assert restarted.shard.closing == {"far"}
    assert restarted.shard.pending == 0
    assert restarted.tick(due_ms + 2) == []


def test_an_intent_without_its_finish_survives_a_reload(driver: Driver) -> None:
    driver.park("a", START_MS)
    driver.shard.take_due(START_MS, 10)
    driver.run(driver.shard.begin_delivery({("orders", 0): Intent(42, ("a",))}))
    restarted = driver.reload(START_MS + 1)
    assert restarted.shard.intents == {("orders", 0): Intent(42, ("a",))}
    restarted.run(restarted.shard.finish_delivery({("orders", 0): ["a"]}))
    assert restarted.shard.intents == {}
    assert restarted.shard.pending == 0


def test_the_due_count_is_the_backlog(driver: Driver) -> None:
    driver.park("a", START_MS)
    driver.park("b", START_MS + 5000)
    assert driver.shard.due_count(START_MS + 1) == 1
