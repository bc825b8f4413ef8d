"""The log of one topic partition: an ordered list of segments in ``<data_dir>/<topic>-<n>/``.

Everything but ``flush`` runs on the event loop and never waits for the disk: appends are one
``write`` into the page cache, reads hand out file slices for ``sendfile``. ``flush`` runs in a
worker thread while the loop keeps appending.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
from bisect import bisect_right
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

from goqueue.log.config import LogConfig
from goqueue.log.errors import OffsetOutOfRangeError
from goqueue.log.index import IndexFormatError
from goqueue.log.layout import (
    DELETE_SUFFIX,
    INDEX_SUFFIX,
    LOG_START_OFFSET_FILE,
    LOG_SUFFIX,
    RECOVERY_POINT_FILE,
    TIME_INDEX_SUFFIX,
    fsync_dir,
    segment_bases,
    segment_path,
    write_durably,
)
from goqueue.log.reaper import FdReaper
from goqueue.log.segment import Segment
from goqueue.log.swap import begin_swap, finish_interrupted_swaps, finish_swap
from goqueue.records.batch import BatchHeader
from goqueue.records.errors import RecordsError

logger = logging.getLogger(__name__)

_SEGMENT_SUFFIXES = (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX)


class AppendResult(NamedTuple):
    base_offset: int
    last_offset: int
    max_timestamp: int
    """Largest batch max timestamp of the append, -1 if none."""
    offset_of_max_timestamp: int
    """Last offset of the batch holding ``max_timestamp`` (batches are not decoded)."""


class FileSlice(NamedTuple):
    """Whole batches of a segment file, ready for ``sendfile``."""

    fd: int
    position: int
    size: int


class PartitionLog:
    """Append, read, flush, retention and truncation of one partition's segments.

    ``recover`` is for opening after an unclean shutdown: every segment at or after the
    recovery point is scanned with CRCs and cut at the first torn or corrupt batch. Otherwise
    segments are restored from their index files without reading their batches.
    """

    def __init__(
        self,
        directory: Path,
        topic: str,
        partition: int,
        config: LogConfig,
        *,
        recover: bool = False,
        reaper: FdReaper | None = None,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.directory = directory
        self.config = config
        self.on_roll: Callable[[int], None] | None = None
        """Called with the new segment's base offset whenever a segment rolls, before the append
        that caused it: the partition snapshots its producer state there, as Kafka does."""
        self._owns_reaper = reaper is None
        self._reaper = FdReaper() if reaper is None else reaper
        self._flush_lock = threading.Lock()
        self._checkpoint_lock = threading.Lock()
        self._generation = 0
        """Bumped by truncation, so a flush that started before it does not claim new data."""
        self._closed = False
        """Set by close and delete: a flush still running in a worker thread then stops
        quietly instead of failing on removed files."""
        self._dir_unsynced = False
        directory.mkdir(parents=True, exist_ok=True)
        self._recovery_point = self._read_offset(RECOVERY_POINT_FILE)
        self._log_start_offset = self._read_offset(LOG_START_OFFSET_FILE)
        """Set by DeleteRecords; the first segment's base offset takes over once it is higher."""
        self._segments = self._open_segments(recover)
        self._bases = [segment.base_offset for segment in self._segments]
        self._log_end_offset = self._segments[-1].next_offset
        if self._log_start_offset > self._log_end_offset:
            logger.warning(
                "%s: log end %d is below the recorded log start %d; restarting the log there",
                self,
                self._log_end_offset,
                self._log_start_offset,
            )
            self._restart_at(self._log_start_offset)
        self._flushed_offset = self._log_end_offset
        self._last_flush = time.monotonic()

    def __repr__(self) -> str:
        return f"PartitionLog({self.topic}-{self.partition})"

    # Properties.

    @property
    def log_start_offset(self) -> int:
        return max(self._segments[0].base_offset, self._log_start_offset)

    @property
    def log_end_offset(self) -> int:
        """The offset the next appended record gets."""
        return self._log_end_offset

    @property
    def flushed_offset(self) -> int:
        """Every offset below this is fsynced."""
        return self._flushed_offset

    @property
    def unflushed_messages(self) -> int:
        return self._log_end_offset - self._flushed_offset

    @property
    def last_flush_monotonic(self) -> float:
        return self._last_flush

    @property
    def size_bytes(self) -> int:
        return sum(segment.size for segment in self._segments)

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    @property
    def segments(self) -> tuple[Segment, ...]:
        """The segments, oldest first; the last is the active one."""
        return tuple(self._segments)

    @property
    def generation(self) -> int:
        """Changes whenever truncation rewrites existing segments."""
        return self._generation

    @property
    def closed(self) -> bool:
        return self._closed

    def update_config(self, config: LogConfig) -> None:
        """Apply changed topic configs; they take effect from the next append or check."""
        self.config = config

    # Opening.

    def _open_segments(self, recover: bool) -> list[Segment]:
        """Open the segments in order. Offsets increase across them; gaps are where the cleaner
        dropped batches."""
        now_ms = _now_ms()
        finish_interrupted_swaps(self.directory)
        bases = segment_bases(self.directory)
        self._remove_stray_files(set(bases))
        if not bases:
            self._dir_unsynced = True
            return [Segment.create(self.directory, 0, now_ms)]
        interval = self.config.index_interval_bytes
        segments: list[Segment] = []
        scanned: list[Segment] = []
        for k, base in enumerate(bases):
            if segments and base < segments[-1].next_offset:
                logger.warning(
                    "%s: segment %d overlaps offsets up to %d; dropping it and later segments",
                    self,
                    base,
                    segments[-1].next_offset,
                )
                self._discard_files(bases[k:])
                break
            segment = Segment.open(self.directory, base, now_ms)
            segments.append(segment)
            is_last = k == len(bases) - 1
            if recover and (is_last or bases[k + 1] >= self._recovery_point):
                problem = segment.recover(interval)
                scanned.append(segment)
            else:
                problem = self._load_or_recover(segment)
            if problem is not None:
                logger.warning("%s: truncated segment %d: %s", self, base, problem)
                self._discard_files(bases[k + 1 :])
                break
        for segment in segments[:-1]:
            if segment.indexes_unsynced or segment in scanned:
                segment.seal()
        if scanned:
            self._sync_recovered(scanned, segments[-1].next_offset)
        return segments

    def _load_or_recover(self, segment: Segment) -> str | None:
        """Trust a cleanly closed segment's index files, falling back to a scan if they are
        missing or disagree with the data."""
        try:
            segment.load()
        except (OSError, IndexFormatError, RecordsError) as exc:
            logger.warning("%s: rebuilding segment %d: %s", self, segment.base_offset, exc)
            segment.indexes_unsynced = True
            return segment.recover(self.config.index_interval_bytes)
        return None

    def _sync_recovered(self, scanned: Sequence[Segment], log_end_offset: int) -> None:
        """Recovery read the data back from the page cache; make it durable before claiming
        it flushed, and record that no scan is needed below the new end."""
        for segment in scanned:
            segment.sync()
        fsync_dir(self.directory)
        self._write_recovery_point(log_end_offset)

    def _remove_stray_files(self, bases: set[int]) -> None:
        """Index files without a segment and temporary files left by a crash."""
        for name in os.listdir(self.directory):
            stem, dot, suffix = name.partition(".")
            orphan_index = f".{suffix}" in (INDEX_SUFFIX, TIME_INDEX_SUFFIX) and (
                not stem.isdigit() or int(stem) not in bases
            )
            if orphan_index or (dot and name.endswith(".tmp")):
                (self.directory / name).unlink()

    def _discard_files(self, bases: Sequence[int]) -> None:
        for base in bases:
            for suffix in _SEGMENT_SUFFIXES:
                segment_path(self.directory, base, suffix).unlink(missing_ok=True)

    def _read_offset(self, name: str) -> int:
        try:
            return int((self.directory / name).read_text().strip())
        except (OSError, ValueError):
            return 0

    def _write_recovery_point(self, offset: int) -> None:
        write_durably(self.directory / RECOVERY_POINT_FILE, f"{offset}\n".encode())
        self._recovery_point = offset

    # The hot path.

    def append(self, records: bytearray, batches: list[BatchHeader], now_ms: int) -> AppendResult:
        """Append batches validated by scan_batches, assigning their offsets in place."""
        if not batches:
            raise ValueError("nothing to append")
        return self._append_at(records, batches, self._log_end_offset, now_ms)

    def _append_at(
        self, records: bytearray, batches: list[BatchHeader], first_offset: int, now_ms: int
    ) -> AppendResult:
        """Write batches from `first_offset` (the log end, or past it after a cleaned gap)."""
        segment = self._segments[-1]
        next_offset = first_offset + sum(header.last_offset_delta + 1 for header in batches)
        max_timestamp = max(header.max_timestamp for header in batches)
        if segment.should_roll(len(records), max_timestamp, next_offset, now_ms, self.config):
            segment = self._roll(now_ms, first_offset)
        max_timestamp, offset_of_max = segment.append(
            records, batches, first_offset, self.config.index_interval_bytes
        )
        self._log_end_offset = segment.next_offset
        return AppendResult(first_offset, segment.next_offset - 1, max_timestamp, offset_of_max)

    def append_replicated(
        self, records: bytearray, batches: list[BatchHeader], now_ms: int
    ) -> None:
        """Append a leader's batches with the offsets the leader gave them (a follower's append).
        Offsets may skip ahead where the leader's cleaner removed batches, never go back."""
        run_start = position = run_position = 0
        for k, header in enumerate(batches):
            position += header.size
            if k + 1 < len(batches) and batches[k + 1].base_offset == header.next_offset:
                continue
            first = batches[run_start].base_offset
            if first < self._log_end_offset:
                raise OffsetOutOfRangeError(
                    f"replicated batch at {first} is below the log end {self._log_end_offset} "
                    f"of {self.topic}-{self.partition}"
                )
            run = batches[run_start : k + 1]
            self._append_at(records[run_position:position], run, first, now_ms)
            run_start, run_position = k + 1, position

    def read(self, offset: int, max_bytes: int, upper_bound: int | None = None) -> FileSlice | None:
        """Whole batches from the one containing ``offset``, within a single segment: at most
        ``max_bytes`` but at least one batch, only batches whose base offset is below
        ``upper_bound``. None when there is nothing to read yet. An offset the cleaner removed
        reads from the next batch after it, in a later segment if need be."""
        if offset < self.log_start_offset or offset > self._log_end_offset:
            raise OffsetOutOfRangeError(
                f"offset {offset} is outside {self.log_start_offset}..{self._log_end_offset} "
                f"of {self.topic}-{self.partition}"
            )
        if offset == self._log_end_offset or (upper_bound is not None and offset >= upper_bound):
            return None
        index = bisect_right(self._bases, offset) - 1
        segment = self._segments[index]
        start = segment.find(offset)
        while start == segment.size and index + 1 < len(self._segments):
            index += 1
            segment, start = self._segments[index], 0
        end = segment.read_end(start, max_bytes, upper_bound)
        return FileSlice(segment.fd, start, end - start) if end > start else None

    def _roll(self, now_ms: int, base_offset: int | None = None) -> Segment:
        self._segments[-1].seal()
        base = self._log_end_offset if base_offset is None else base_offset
        segment = Segment.create(self.directory, base, now_ms)
        if self.on_roll is not None:
            self.on_roll(base)
        self._segments.append(segment)
        self._bases.append(segment.base_offset)
        self._dir_unsynced = True
        self._reaper.close_due()
        return segment

    # Timestamps.

    def offset_for_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        """(timestamp, offset) of the first record whose timestamp is at least ``timestamp``."""
        start = self.log_start_offset
        for segment in list(self._segments):
            if segment.max_timestamp >= timestamp:
                found = segment.find_timestamp(timestamp, start)
                if found is not None:
                    return found
        return None

    def max_timestamp(self) -> tuple[int, int]:
        """(largest timestamp, offset of its first record), or (-1, -1) with no timestamps."""
        best: Segment | None = None
        for segment in self._segments:
            if segment.max_timestamp > (-1 if best is None else best.max_timestamp):
                best = segment
        return (-1, -1) if best is None else best.max_timestamp_record()

    # Durability.

    def flush(self) -> None:
        """fsync everything appended before the call; runs in a worker thread.

        The end offset is captured before the segment list, so every offset below it lies in a
        captured segment. The recovery point is rewritten only after a roll, when whole
        segments become safe to skip on recovery.
        """
        with self._flush_lock:
            if self._closed:
                return
            generation = self._generation
            log_end_offset = self._log_end_offset
            segments = list(self._segments)
            for segment in segments:
                if segment.next_offset > self._flushed_offset or segment.indexes_unsynced:
                    segment.sync()
            if self._dir_unsynced:
                self._dir_unsynced = False
                try:
                    fsync_dir(self.directory)
                except OSError:
                    if not self._closed:
                        raise
            with self._checkpoint_lock:
                if generation == self._generation and not self._closed:
                    self._flushed_offset = max(self._flushed_offset, log_end_offset)
                    if segments[-1].base_offset > self._recovery_point:
                        self._write_recovery_point(log_end_offset)
            self._last_flush = time.monotonic()

    # Retention and truncation.

    def delete_expired_segments(self, now_ms: int) -> int:
        """Delete whole segments past retention.ms (by their largest timestamp) or beyond
        retention.bytes, oldest first; the active segment only after rolling a new one, as
        Kafka does. Empty segments the cleaner left at the front hold nothing and go too.
        Advances the log start offset; returns the number deleted."""
        self._reaper.close_due()
        config = self.config
        excess = self.size_bytes - config.retention_bytes
        count = 0
        for segment in self._segments:
            if segment.size == 0:
                if segment is self._segments[-1]:
                    break
                count += 1
                continue
            by_time = (
                config.retention_ms >= 0
                and now_ms - segment.largest_timestamp() > config.retention_ms
            )
            by_size = config.retention_bytes >= 0 and excess >= segment.size
            below_start = segment.next_offset <= self._log_start_offset
            if not (by_time or by_size or below_start):
                break
            excess -= segment.size
            count += 1
        if count == len(self._segments):
            self._roll(now_ms)
        self._drop(self._segments[:count])
        del self._segments[:count]
        del self._bases[:count]
        return count

    def delete_records_before(self, offset: int) -> int:
        """Make ``offset`` the log start offset, as DeleteRecords does: reads below it fail from
        now on and segments wholly below it are deleted (the active one only once it rolls).
        Returns the number of segments deleted; ``checkpoint_log_start_offset`` persists it."""
        if offset > self._log_end_offset:
            raise OffsetOutOfRangeError(
                f"cannot delete records before {offset}: the log of {self.topic}-{self.partition} "
                f"ends at {self._log_end_offset}"
            )
        if offset <= self.log_start_offset:
            return 0
        self._log_start_offset = offset
        count = bisect_right(self._bases, offset) - 1
        self._drop(self._segments[:count])
        del self._segments[:count]
        del self._bases[:count]
        return count

    def checkpoint_log_start_offset(self) -> None:
        """Write the log start offset durably; it fsyncs, so run it in a worker thread."""
        with self._checkpoint_lock:
            if not self._closed:
                self._write_log_start_offset()

    def _write_log_start_offset(self) -> None:
        write_durably(
            self.directory / LOG_START_OFFSET_FILE, f"{self._log_start_offset}\n".encode()
        )

    def truncate_to(self, offset: int) -> None:
        """Remove offsets from ``offset`` on (from the start of the batch holding it), as a
        follower does to match its leader; below the log start, restart the log empty there."""
        if offset >= self._log_end_offset:
            return
        if offset < 0:
            raise ValueError(f"cannot truncate to negative offset {offset}")
        with self._checkpoint_lock:
            self._generation += 1
            if offset < self.log_start_offset:
                self._restart_at(offset)
            else:
                keep = bisect_right(self._bases, offset)
                self._drop(self._segments[keep:])
                del self._segments[keep:]
                self._segments[-1].truncate(offset, self.config.index_interval_bytes)
            self._bases = [segment.base_offset for segment in self._segments]
            self._log_end_offset = self._segments[-1].next_offset
            self._flushed_offset = min(self._flushed_offset, self._log_end_offset)
            if self._recovery_point > self._log_end_offset:
                self._write_recovery_point(self._log_end_offset)

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Drop every segment and continue empty at ``offset``: a follower whose log ends
        below (or lies past) what its leader still has."""
        with self._checkpoint_lock:
            self._generation += 1
            self._restart_at(offset)
            self._flushed_offset = offset
            self._write_recovery_point(offset)

    def _restart_at(self, offset: int) -> None:
        """Replace every segment with one empty segment starting at ``offset``."""
        self._drop(self._segments)
        self._segments = [Segment.create(self.directory, offset, _now_ms())]
        self._bases = [offset]
        self._log_end_offset = offset
        self._dir_unsynced = True
        if self._log_start_offset != offset:
            self._log_start_offset = offset
            self._write_log_start_offset()

    # Compaction.

    def replace_segments(self, old: Sequence[Segment], new: Segment, generation: int) -> bool:
        """Swap the cleaner's ``new`` segment, fsynced as ``<base>.log.cleaned``, in for the
        consecutive closed segments ``old`` it was built from (see ``goqueue.log.swap``).

        Runs on the event loop, so appends, reads and retention see either the old segments or
        the new one. Returns False and changes nothing if the log was closed, truncated
        (``generation`` is from before the cleaner read ``old``) or lost any of ``old``
        meanwhile; the caller then deletes the cleaned file.
        """
        if self._closed or generation != self._generation or not old:
            return False
        first = next((k for k, s in enumerate(self._segments) if s is old[0]), None)
        if first is None or first + len(old) >= len(self._segments):
            return False
        if any(a is not b for a, b in zip(self._segments[first:], old, strict=False)):
            return False
        begin_swap(self.directory, new.base_offset)
        self._drop(old)
        finish_swap(self.directory, new.base_offset)
        self._segments[first : first + len(old)] = [new]
        self._bases = [segment.base_offset for segment in self._segments]
        new.seal()
        self._dir_unsynced = True
        return True

    def _drop(self, segments: Sequence[Segment]) -> None:
        """Unlink segments now, close their fds after file.delete.delay.ms."""
        for segment in segments:
            segment.unlink()
            self._reaper.defer(segment.fd, self.config.file_delete_delay_ms)

    # Lifecycle.

    def close(self) -> None:
        """Flush, write the active segment's indexes and the recovery point, close files."""
        self._segments[-1].seal()
        self.flush()
        self._write_recovery_point(self._log_end_offset)
        self._closed = True
        for segment in self._segments:
            os.close(segment.fd)
        if self._owns_reaper:
            self._reaper.close_all()

    def delete(self) -> None:
        """Remove the partition directory. It is renamed first so a crash midway cannot leave
        a partial log behind; open fds are closed after file.delete.delay.ms."""
        with self._checkpoint_lock:
            self._closed = True
        for segment in self._segments:
            segment.deleted = True
            self._reaper.defer(segment.fd, self.config.file_delete_delay_ms)
        doomed = self.directory.with_name(
            f"{self.directory.name}.{uuid.uuid4().hex}{DELETE_SUFFIX}"
        )
        os.rename(self.directory, doomed)
        shutil.rmtree(doomed)
        if self._owns_reaper:
            self._reaper.close_all()


def _now_ms() -> int:
    return int(time.time() * 1000)
