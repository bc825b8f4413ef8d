"""Shared helpers for the storage engine tests: building payloads, reading logs back."""

from __future__ import annotations

import os
from pathlib import Path

from goqueue.log.config import LogConfig
from goqueue.log.partition_log import AppendResult, PartitionLog
from goqueue.records.batch import BatchHeader, iter_batches, scan_batches
from goqueue.records.builder import NewRecord, build_batch


def payload(counts: list[int], *, timestamp: int = 1000, value_size: int = 10) -> bytearray:
    """Concatenated batches holding ``counts[i]`` records each, all stamped ``timestamp``."""
    batches = [
        build_batch(
            [NewRecord(b"k", bytes([i % 256]) * value_size) for i in range(count)],
            now_ms=timestamp,
        )
        for count in counts
    ]
    return bytearray(b"".join(batches))


def append(
    log: PartitionLog, counts: list[int], *, timestamp: int = 1000, value_size: int = 10
) -> tuple[AppendResult, bytes]:
    """Append a payload validated as the broker would; return the result and the stored bytes."""
    data = payload(counts, timestamp=timestamp, value_size=value_size)
    result = log.append(data, scan_batches(data), now_ms=timestamp)
    return result, bytes(data)


def read_bytes(
    log: PartitionLog, offset: int, max_bytes: int, upper_bound: int | None = None
) -> bytes:
    """The bytes of the FileSlice a read returns (empty if None)."""
    file_slice = log.read(offset, max_bytes, upper_bound)
    if file_slice is None:
        return b""
    data = os.pread(file_slice.fd, file_slice.size, file_slice.position)
    assert len(data) == file_slice.size
    return data


def read_headers(
    log: PartitionLog, offset: int, max_bytes: int = 1 << 30, upper_bound: int | None = None
) -> list[BatchHeader]:
    return [header for header, _ in iter_batches(read_bytes(log, offset, max_bytes, upper_bound))]


def read_all(log: PartitionLog) -> bytes:
    """Every stored byte from the log start to its end, fetched as a consumer would."""
    out = bytearray()
    offset = log.log_start_offset
    while offset < log.log_end_offset:
        data = read_bytes(log, offset, 1 << 20)
        headers = [header for header, _ in iter_batches(data)]
        assert headers, f"no progress at offset {offset}"
        out += data
        offset = headers[-1].next_offset
    return bytes(out)


def segment_files(directory: Path, suffix: str = ".log") -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.endswith(suffix))


def crash(log: PartitionLog) -> None:
    """Drop a log as a killed process would: close its files without sealing or flushing."""
    for segment in log._segments:
        os.close(segment.fd)


def config(**overrides: int) -> LogConfig:
    return LogConfig(**{"retention_ms": -1, "file_delete_delay_ms": 0, **overrides})
