"""Offline verification of a data directory: what a crash test or an operator runs to prove
the logs are intact. Unlike startup recovery it decodes every record and checks the index
files against the data."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from goqueue.log.index import IndexFormatError, OffsetIndex, TimeIndex
from goqueue.log.layout import (
    INDEX_SUFFIX,
    LOG_SUFFIX,
    TIME_INDEX_SUFFIX,
    partition_dirs,
    segment_bases,
    segment_path,
)
from goqueue.log.segment import ScanOutcome, scan_file
from goqueue.records.batch import BatchHeader
from goqueue.records.errors import RecordsError
from goqueue.records.reader import batch_records

_UNBOUNDED = 2**63


@dataclass(slots=True)
class VerifyStats:
    """What a verification covered."""

    logs: int = 0
    segments: int = 0
    batches: int = 0
    records: int = 0


def data_dir_bytes(path: Path) -> int:
    """Total size of the segment files under ``path``, for progress reporting."""
    return sum(
        segment_path(directory, base, LOG_SUFFIX).stat().st_size
        for directory, _, _ in partition_dirs(path)
        for base in segment_bases(directory)
    )


def verify_data_dir(
    path: Path,
    *,
    stats: VerifyStats | None = None,
    on_segment: Callable[[int], None] | None = None,
) -> list[str]:
    """Check every log under ``path``: batch framing and CRC32C, record encoding, offsets
    increasing across segments (dense except where the cleaner dropped batches), index entries
    pointing at the batches they name.

    Returns the problems found (empty if none). ``on_segment`` receives the byte size of each
    segment once it is checked.
    """
    stats = VerifyStats() if stats is None else stats
    problems: list[str] = []
    for directory, _, _ in partition_dirs(path):
        stats.logs += 1
        expected: int | None = None
        for base in segment_bases(directory):
            stats.segments += 1
            where = f"{directory.name}/{base:020d}{LOG_SUFFIX}"
            if expected is not None and base < expected:
                problems.append(
                    f"{where}: starts at offset {base}, previous segment ends at {expected}"
                )
            checker = _SegmentChecker(where, stats)
            fd = os.open(segment_path(directory, base, LOG_SUFFIX), os.O_RDONLY | os.O_CLOEXEC)
            try:
                outcome = scan_file(fd, base, checker.on_batch)
            finally:
                os.close(fd)
            problems += checker.problems
            if outcome.problem is not None:
                problems.append(f"{where}: {outcome.problem}")
            problems += checker.check_indexes(directory, base, outcome)
            expected = outcome.next_offset
            if on_segment is not None:
                on_segment(outcome.valid_bytes)
    return problems


class _SegmentChecker:
    """Collects per-batch facts during the scan of one segment and checks records and
    indexes against them."""

    def __init__(self, where: str, stats: VerifyStats) -> None:
        self.where = where
        self.stats = stats
        self.problems: list[str] = []
        self.batch_starts: dict[int, int] = {}
        """position -> base offset"""
        self.max_timestamps: dict[int, int] = {}
        """last offset -> batch max timestamp"""

    def on_batch(self, position: int, header: BatchHeader, batch: memoryview) -> None:
        self.stats.batches += 1
        self.batch_starts[position] = header.base_offset
        self.max_timestamps[header.last_offset] = header.max_timestamp
        try:
            offsets = [record.offset for record in batch_records(header, batch)]
        except RecordsError as exc:
            self.problems.append(f"{self.where}: batch at byte {position}: {exc}")
            return
        self.stats.records += len(offsets)
        in_range = all(header.base_offset <= o <= header.last_offset for o in offsets)
        if not in_range or offsets != sorted(set(offsets)):
            self.problems.append(
                f"{self.where}: batch at byte {position}: record offsets {offsets[:5]}... are not "
                f"increasing within {header.base_offset}..{header.last_offset}"
            )

    def check_indexes(self, directory: Path, base: int, outcome: ScanOutcome) -> list[str]:
        """Index files are optional (rebuilt at startup), but if present they must agree with
        the data. Entries past a damaged batch are not checked: the damage is reported."""
        problems = []
        complete = outcome.problem is None
        index_path = segment_path(directory, base, INDEX_SUFFIX)
        if index_path.exists():
            index = OffsetIndex(base)
            try:
                index.load(index_path, outcome.valid_bytes if complete else _UNBOUNDED)
            except IndexFormatError as exc:
                problems.append(f"{self.where}: {exc}")
            for offset, position in index.entries():
                if self.batch_starts.get(position) != offset and position < outcome.valid_bytes:
                    problems.append(
                        f"{self.where}: index entry ({offset}, byte {position}) does not point at "
                        f"the start of the batch holding offset {offset}"
                    )
        time_path = segment_path(directory, base, TIME_INDEX_SUFFIX)
        if time_path.exists():
            time_index = TimeIndex(base)
            try:
                time_index.load(time_path, outcome.next_offset if complete else _UNBOUNDED)
            except IndexFormatError as exc:
                problems.append(f"{self.where}: {exc}")
            for timestamp, offset in time_index.entries():
                if self.max_timestamps.get(offset) != timestamp and offset < outcome.next_offset:
                    problems.append(
                        f"{self.where}: time index entry ({timestamp}, {offset}) does not match "
                        f"the batch ending at offset {offset}"
                    )
        return problems
