"""Event-loop lag: how late the loop runs a callback scheduled for a known time.

Everything a node does shares one event loop, so a handler that blocks it (a synchronous disk
read, a long computation) delays every client. A sleeping task measures the delay between
when it asked to wake and when it ran, which is what any other callback waits too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

INTERVAL_S = 0.25


class LoopLagMonitor:
    """Samples the loop's lateness every `interval` seconds and reports it to `observe`."""

    def __init__(self, observe: Callable[[float], None], interval: float = INTERVAL_S) -> None:
        self._observe = observe
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="goqueue-loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self._interval
            await asyncio.sleep(self._interval)
            self._observe(max(loop.time() - due, 0.0))
