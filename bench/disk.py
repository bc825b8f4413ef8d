"""The physical limit the broker's produce path is compared against: sequential file writes."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

CHUNK_BYTES = 1024 * 1024
SYNCS_PER_PERIODIC_RUN = 5
MAX_BYTES = 8 * 1024 * 1024 * 1024
"""Cap on a run kept going by `min_seconds`, so a fast disk is not filled."""


@dataclass(frozen=True, slots=True)
class DiskMode:
    """How a raw write run syncs: never, once at the end, or periodically from another thread.

    The periodic mode is the broker's own pattern (appends on the loop, an fdatasync every
    `flush.ms` in a worker thread), which on some disks is far slower than either extreme.
    """

    name: str
    final_fsync: bool = False
    sync_interval_s: float | None = None
    min_seconds: float = 0.0
    """Keep writing past the requested bytes until this long has passed (periodic syncs)."""


def standard_modes(flush_s: float) -> tuple[DiskMode, ...]:
    """No fsync, one at the end, and one every `flush_s` (the broker's flush.ms) from a thread."""
    return (
        DiskMode("buffered write"),
        DiskMode("write + final fdatasync", final_fsync=True),
        DiskMode(
            f"buffered write + fdatasync every {flush_s:g} s",
            sync_interval_s=flush_s,
            min_seconds=SYNCS_PER_PERIODIC_RUN * flush_s,
        ),
    )


@dataclass(frozen=True, slots=True)
class DiskRun:
    """One timed write of `total_bytes` in 1 MiB chunks."""

    total_bytes: int
    seconds: float

    @property
    def bytes_per_s(self) -> float:
        return self.total_bytes / self.seconds


def write_speed(directory: Path, total_bytes: int, mode: DiskMode) -> DiskRun:
    """Write a fresh temp file in 1 MiB `os.write` calls and time it as `mode` says.

    An untimed fdatasync after the run keeps its dirty pages from slowing the next run.
    """
    chunk = os.urandom(CHUNK_BYTES)
    path = directory / f"disk-bench-{os.getpid()}.tmp"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    done = threading.Event()
    syncer = None
    if mode.sync_interval_s is not None:
        syncer = threading.Thread(target=_sync_every, args=(fd, mode.sync_interval_s, done))
    try:
        written = 0
        start = time.perf_counter()
        if syncer is not None:
            syncer.start()
        while written < total_bytes or (
            time.perf_counter() - start < mode.min_seconds and written < MAX_BYTES
        ):
            written += os.write(fd, chunk)
        if mode.final_fsync:
            os.fdatasync(fd)
        seconds = time.perf_counter() - start
    finally:
        done.set()
        if syncer is not None:
            syncer.join()
        os.fdatasync(fd)
        os.close(fd)
        path.unlink()
    return DiskRun(written, seconds)


def _sync_every(fd: int, interval_s: float, done: threading.Event) -> None:
    """fdatasync `fd` every `interval_s` until `done` is set."""
    while not done.wait(interval_s):
        os.fdatasync(fd)
