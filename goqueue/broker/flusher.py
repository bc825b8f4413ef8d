"""Group commit: producers waiting for durability share fsyncs instead of queueing for them."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from goqueue.log.partition_log import PartitionLog


class Flusher:
    """Runs fsyncs in worker threads so the event loop never blocks on the disk.

    While one fsync of a log runs, every producer that needs a later offset waits for it and
    then for a single follow-up fsync covering all of them: concurrent producers share fsyncs.
    """

    def __init__(self, workers: int = 4, on_fsync: Callable[[float], None] | None = None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="goqueue-fsync")
        self._running: dict[PartitionLog, asyncio.Future[None]] = {}
        self._on_fsync = on_fsync
        """Called from the worker thread with each fsync's duration in seconds."""

    async def flush(self, log: PartitionLog, upto_offset: int) -> None:
        """Return once every offset below `upto_offset` is on disk."""
        while log.flushed_offset < upto_offset:
            await asyncio.shield(self._start(log))

    def flush_soon(self, log: PartitionLog) -> None:
        """Start an fsync of the log unless one is already running."""
        self._start(log)

    def _start(self, log: PartitionLog) -> asyncio.Future[None]:
        """The running fsync of the log, or a new one. A finished fsync whose done callback
        has not run yet does not count: a waiter needing a later offset would await it again
        and again without ever yielding to the loop that runs that callback."""
        running = self._running.get(log)
        if running is None or running.done():
            running = asyncio.get_running_loop().run_in_executor(self._pool, self._flush, log)
            self._running[log] = running
            running.add_done_callback(functools.partial(self._finished, log))
        return running

    def _finished(self, log: PartitionLog, future: asyncio.Future[None]) -> None:
        if self._running.get(log) is future:
            del self._running[log]

    def _flush(self, log: PartitionLog) -> None:
        started = time.perf_counter()
        log.flush()
        if self._on_fsync is not None:
            self._on_fsync(time.perf_counter() - started)

    def flush_due(self, logs: list[PartitionLog]) -> None:
        """Start fsyncs for logs whose unsynced data is older than their `flush.ms`."""
        now = time.monotonic()
        for log in logs:
            overdue = (now - log.last_flush_monotonic) * 1000 >= log.config.flush_ms
            if log.unflushed_messages and overdue:
                self.flush_soon(log)

    async def close(self) -> None:
        pending = list(self._running.values())
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        self._pool.shutdown(wait=True)
