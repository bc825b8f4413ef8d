"""The physical limit the broker's produce path is compared against: sequential file writes."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class DiskRun:
    """One timed write of `total_bytes` in 1 MiB chunks, optionally ending with an fsync."""

    total_bytes: int
    seconds: float

    @property
    def bytes_per_s(self) -> float:
        return self.total_bytes / self.seconds


def write_speed(directory: Path, total_bytes: int, *, fsync: bool) -> DiskRun:
    """Write a fresh temp file; without `fsync` this measures the page cache path the broker uses.

    The untimed fsync after a buffered run keeps its dirty pages from slowing the next run.
    """
    chunk = os.urandom(CHUNK_BYTES)
    path = directory / f"disk-bench-{os.getpid()}.tmp"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        written = 0
        start = time.perf_counter()
        while written < total_bytes:
            written += os.write(fd, chunk)
        if fsync:
            os.fsync(fd)
        seconds = time.perf_counter() - start
        if not fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
        path.unlink()
    return DiskRun(written, seconds)
