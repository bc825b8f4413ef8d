"""A task that runs beside its owner from `start` until `stop` (the broker's heartbeats, the
controller's loop)."""

from __future__ import annotations

import asyncio
import contextlib


class BackgroundTask:
    """Subclasses implement `_run`; `stop` cancels it and waits until it has ended."""

    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=type(self).__name__)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        raise NotImplementedError
