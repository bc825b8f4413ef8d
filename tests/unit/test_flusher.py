"""The group-commit flusher: a waiter that needs more than a finished fsync covered gets a new
fsync, even before the finished one's bookkeeping callback has run."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from goqueue.broker.flusher import Flusher


class FakeLog:
    """What the flusher uses of a log: its end, what is fsynced and `flush`."""

    def __init__(self) -> None:
        self.log_end_offset = 0
        self.flushed_offset = 0
        self.flushes = 0

    def flush(self) -> None:
        self.flushed_offset = self.log_end_offset
        self.flushes += 1


def test_a_finished_fsync_not_yet_forgotten_is_not_awaited_again() -> None:
    """Reproduces the moment between an fsync finishing and its done callback running: the
    waiter must start another fsync instead of spinning on the finished one forever."""
    outcome: dict[str, Any] = {}

    async def scenario() -> None:
        flusher = Flusher(workers=1)
        log: Any = FakeLog()
        log.log_end_offset = 1
        await flusher.flush(log, 1)
        finished = asyncio.get_running_loop().create_future()
        finished.set_result(None)
        flusher._running[log] = finished
        log.log_end_offset = 2
        await flusher.flush(log, 2)
        outcome["flushes"] = log.flushes
        await flusher.close()

    thread = threading.Thread(target=lambda: asyncio.run(scenario()), daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), "the waiter spins on a finished fsync"
    assert outcome == {"flushes": 2}
