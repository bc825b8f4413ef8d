"""One segment of a partition log: a ``.log`` file of verbatim batches and its indexes.

The file stays open for the segment's lifetime. Appends and reads look only at batch headers;
the indexes live in memory and reach disk when the segment is sealed.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from goqueue.log.config import LogConfig
from goqueue.log.index import OffsetIndex, TimeIndex
from goqueue.log.layout import INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX, segment_path
from goqueue.records.batch import (
    HEADER_SIZE,
    LENGTH_PREFIX,
    BatchHeader,
    check_batch,
    read_header,
    set_base_offset,
)
from goqueue.records.errors import CorruptRecordError, RecordsError
from goqueue.records.reader import batch_records

MAX_RELATIVE_OFFSET = 2**31 - 1
"""Index entries store offsets relative to the segment base as int32."""
MAX_SEGMENT_BYTES = 2**31 - 1
"""Index entries store positions as int32."""

_READ_CHUNK = 16 * 1024
"""Header walks read this much at once, so small batches do not cost a syscall each."""
_SCAN_CHUNK = 8 * 1024 * 1024
_BASE_AND_LENGTH = struct.Struct(">qi")
_LAST_OFFSET_DELTA = struct.Struct(">i")
_LAST_OFFSET_DELTA_POSITION = 23
_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
_MIN_BATCH_SIZE = HEADER_SIZE

BatchCallback = Callable[[int, BatchHeader, memoryview], None]


@dataclass(frozen=True, slots=True)
class ScanOutcome:
    """How far a segment file holds intact batches with dense offsets."""

    valid_bytes: int
    next_offset: int
    batches: int
    problem: str | None
    """Why the scan stopped before the end of the file, or None if it reached it."""


def scan_file(fd: int, base_offset: int, on_batch: BatchCallback) -> ScanOutcome:
    """Check every batch of a segment file in order (framing, CRC32C, offsets increasing from
    ``base_offset``), calling ``on_batch(position, header, batch)`` for each intact one and
    stopping at the first torn or corrupt batch: everything before it can be trusted.

    Offsets are dense unless the cleaner compacted the segment: it keeps each batch's offsets
    but may drop whole batches, leaving gaps."""
    file_size = os.fstat(fd).st_size
    position = 0
    expected = base_offset
    batches = 0
    buf = memoryview(b"")
    buf_start = 0
    problem = None
    while position < file_size:
        remaining = file_size - position
        if remaining < HEADER_SIZE:
            problem = f"{remaining} bytes at byte {position} are less than a batch header"
            break
        i = position - buf_start
        if i + HEADER_SIZE > len(buf):
            buf, buf_start, i = (
                memoryview(os.pread(fd, min(_SCAN_CHUNK, remaining), position)),
                position,
                0,
            )
        (_, length) = _BASE_AND_LENGTH.unpack_from(buf, i)
        size = length + LENGTH_PREFIX
        if size > remaining:
            problem = f"batch at byte {position} claims {size} bytes but only {remaining} remain"
            break
        if i + size > len(buf):
            chunk = max(min(_SCAN_CHUNK, remaining), size)
            buf, buf_start, i = memoryview(os.pread(fd, chunk, position)), position, 0
        try:
            header = check_batch(buf, i)
        except RecordsError as exc:
            problem = f"batch at byte {position}: {exc}"
            break
        if header.base_offset < expected or header.last_offset_delta < 0:
            problem = (
                f"batch at byte {position} holds offsets {header.base_offset}.."
                f"{header.last_offset}, expected a batch starting at or after {expected}"
            )
            break
        on_batch(position, header, buf[i : i + size])
        expected = header.next_offset
        position += size
        batches += 1
    return ScanOutcome(position, expected, batches, problem)


def iter_headers(fd: int, start: int, end: int, name: object) -> Iterator[tuple[int, bytes, int]]:
    """(position, chunk, index) of each batch of a segment file from byte ``start`` to ``end``:
    the header of the batch at ``position`` is ``chunk[index:index + HEADER_SIZE]``. Only the
    framing is checked; ``name`` identifies the file in errors."""
    position = start
    chunk = b""
    chunk_start = start
    while position < end:
        i = position - chunk_start
        if i + HEADER_SIZE > len(chunk):
            chunk, chunk_start, i = os.pread(fd, _READ_CHUNK, position), position, 0
            if len(chunk) < HEADER_SIZE:
                raise CorruptRecordError(f"{name}: torn header at {position}")
        (_, length) = _BASE_AND_LENGTH.unpack_from(chunk, i)
        size = length + LENGTH_PREFIX
        if size < _MIN_BATCH_SIZE or position + size > end:
            raise CorruptRecordError(f"{name}: bad batch length {length} at byte {position}")
        yield position, chunk, i
        position += size


class Segment:
    """A ``.log`` file with its offset range, in-memory indexes and timestamp bookkeeping."""

    __slots__ = (
        "base_offset",
        "bytes_since_index",
        "created_ms",
        "deleted",
        "directory",
        "fd",
        "first_batch_timestamp",
        "indexes_unsynced",
        "max_timestamp",
        "next_offset",
        "offset_index",
        "offset_of_max_timestamp",
        "size",
        "time_index",
    )

    def __init__(self, directory: Path, base_offset: int, fd: int, created_ms: int) -> None:
        self.directory = directory
        self.base_offset = base_offset
        self.fd = fd
        self.size = os.fstat(fd).st_size
        self.created_ms = created_ms
        self.offset_index = OffsetIndex(base_offset)
        self.time_index = TimeIndex(base_offset)
        self.indexes_unsynced = False
        self.deleted = False
        self._reset()

    @classmethod
    def create(cls, directory: Path, base_offset: int, now_ms: int) -> Segment:
        """A new empty segment (replacing any stray file of the same name)."""
        path = segment_path(directory, base_offset, LOG_SUFFIX)
        return cls(directory, base_offset, os.open(path, _OPEN_FLAGS | os.O_TRUNC, 0o644), now_ms)

    @classmethod
    def open(cls, directory: Path, base_offset: int, now_ms: int) -> Segment:
        """An existing segment; call load(), recover() or rebuild() next."""
        path = segment_path(directory, base_offset, LOG_SUFFIX)
        return cls(directory, base_offset, os.open(path, _OPEN_FLAGS), now_ms)

    def __repr__(self) -> str:
        return str(self.path(LOG_SUFFIX))

    def path(self, suffix: str) -> Path:
        return segment_path(self.directory, self.base_offset, suffix)

    def _reset(self) -> None:
        self.offset_index.clear()
        self.time_index.clear()
        self.next_offset = self.base_offset
        self.max_timestamp = -1
        self.offset_of_max_timestamp = -1
        self.first_batch_timestamp = -1
        self.bytes_since_index = 0

    def _track(
        self,
        position: int,
        base_offset: int,
        size: int,
        last_offset: int,
        max_timestamp: int,
        index_interval: int,
    ) -> None:
        """Account for one batch appended at ``position``: timestamps and sparse index entries
        (one every ``index_interval`` bytes, as Kafka does)."""
        if position == 0:
            self.first_batch_timestamp = max_timestamp
        if max_timestamp > self.max_timestamp:
            self.max_timestamp = max_timestamp
            self.offset_of_max_timestamp = last_offset
        if self.bytes_since_index > index_interval:
            self.offset_index.append(base_offset, position)
            self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
            self.bytes_since_index = 0
        self.bytes_since_index += size

    # Loading and recovery.

    def load(self) -> None:
        """Restore a cleanly closed segment from its index files, reading only the headers
        after the last offset index entry. Raises OSError, IndexFormatError or RecordsError
        when the files disagree; the caller then recovers the segment instead."""
        self._reset()
        self.offset_index.load(self.path(INDEX_SUFFIX), self.size)
        start = self.offset_index.last_position()
        next_offset = self.base_offset
        if self.offset_index:
            next_offset += self.offset_index.relative_offsets[-1]
        for position, chunk, i in self._headers(start):
            header = read_header(chunk, i)
            if header.base_offset < next_offset or (
                position == start and start and header.base_offset != next_offset
            ):
                raise CorruptRecordError(
                    f"batch at byte {position} starts at {header.base_offset}, "
                    f"index says {next_offset}"
                )
            if position == 0:
                self.first_batch_timestamp = header.max_timestamp
            if header.max_timestamp > self.max_timestamp:
                self.max_timestamp = header.max_timestamp
                self.offset_of_max_timestamp = header.last_offset
            next_offset = header.next_offset
        self.next_offset = next_offset
        self.time_index.load(self.path(TIME_INDEX_SUFFIX), next_offset)
        last = self.time_index.last()
        if last is not None and last[0] >= self.max_timestamp:
            self.max_timestamp, self.offset_of_max_timestamp = last
        if self.size and start:
            self.first_batch_timestamp = read_header(
                os.pread(self.fd, HEADER_SIZE, 0)
            ).max_timestamp
        self.bytes_since_index = self.size - start

    def recover(self, index_interval: int) -> str | None:
        """Scan every batch with its CRC, truncate the file at the first torn or corrupt one and
        rebuild the indexes. Returns what was wrong, or None if the whole file was intact."""
        self._reset()
        outcome = scan_file(
            self.fd,
            self.base_offset,
            lambda position, header, _: self._track(
                position,
                header.base_offset,
                header.size,
                header.last_offset,
                header.max_timestamp,
                index_interval,
            ),
        )
        if outcome.valid_bytes < self.size:
            os.ftruncate(self.fd, outcome.valid_bytes)
            self.size = outcome.valid_bytes
        self.next_offset = outcome.next_offset
        return outcome.problem

    def rebuild(self, index_interval: int) -> None:
        """Rebuild the indexes and timestamps from the batch headers alone (data trusted)."""
        self._reset()
        for position, chunk, i in self._headers(0):
            header = read_header(chunk, i)
            self._track(
                position,
                header.base_offset,
                header.size,
                header.last_offset,
                header.max_timestamp,
                index_interval,
            )
            self.next_offset = header.next_offset

    # The hot path.

    def should_roll(
        self, size: int, max_timestamp: int, next_offset: int, now_ms: int, config: LogConfig
    ) -> bool:
        """Whether an append of ``size`` bytes must go to a new segment.

        Like Kafka, segment age is measured between the first batch's max timestamp and the
        new batches' (wall clock only when the first batch has none).
        """
        if self.size == 0:
            return False
        if self.size + size > min(config.segment_bytes, MAX_SEGMENT_BYTES):
            return True
        if next_offset - 1 - self.base_offset > MAX_RELATIVE_OFFSET:
            return True
        if self.first_batch_timestamp >= 0:
            waited = max_timestamp - self.first_batch_timestamp
        else:
            waited = now_ms - self.created_ms
        return waited > config.segment_ms

    def append(
        self,
        records: bytearray,
        batches: Sequence[BatchHeader],
        first_offset: int,
        index_interval: int,
    ) -> tuple[int, int]:
        """Assign offsets from ``first_offset`` by patching base offsets, write the batches with
        one write and index them. Returns (max timestamp, last offset of the batch holding it)."""
        position = 0
        offset = first_offset
        for header in batches:
            set_base_offset(records, position, offset)
            offset += header.last_offset_delta + 1
            position += header.size
        _write_all(self.fd, records, self.size)
        position = self.size
        offset = first_offset
        max_timestamp = offset_of_max = -1
        for header in batches:
            last_offset = offset + header.last_offset_delta
            if header.max_timestamp > max_timestamp:
                max_timestamp, offset_of_max = header.max_timestamp, last_offset
            self._track(
                position, offset, header.size, last_offset, header.max_timestamp, index_interval
            )
            position += header.size
            offset = last_offset + 1
        self.size = position
        self.next_offset = offset
        return max_timestamp, offset_of_max

    def find(self, offset: int) -> int:
        """Position of the batch containing ``offset`` (the segment size if past the end)."""
        for position, chunk, i in self._headers(self.offset_index.floor_position(offset)):
            (base_offset, _) = _BASE_AND_LENGTH.unpack_from(chunk, i)
            (delta,) = _LAST_OFFSET_DELTA.unpack_from(chunk, i + _LAST_OFFSET_DELTA_POSITION)
            if offset <= base_offset + delta:
                return position
        return self.size

    def read_end(self, start: int, max_bytes: int, upper_bound: int | None) -> int:
        """End position of a read from the batch at ``start``: whole batches, at most
        ``max_bytes`` unless the first batch alone is larger (KIP-74), only batches whose base
        offset is below ``upper_bound``. The walk starts at the last index entry that is
        certainly included, so it costs at most about one index interval of headers."""
        limit = start + max_bytes
        if (upper_bound is None or upper_bound >= self.next_offset) and self.size <= limit:
            return self.size
        end = max(start, self.offset_index.floor_entry_before(limit, upper_bound))
        for position, chunk, i in self._headers(end):
            (base_offset, length) = _BASE_AND_LENGTH.unpack_from(chunk, i)
            batch_end = position + length + LENGTH_PREFIX
            if upper_bound is not None and base_offset >= upper_bound:
                break
            if batch_end > limit and position > start:
                break
            end = batch_end
        return end

    def _headers(self, start: int) -> Iterator[tuple[int, bytes, int]]:
        return iter_headers(self.fd, start, self.size, self)

    # Timestamps (these decode one batch).

    def find_timestamp(self, timestamp: int, min_offset: int) -> tuple[int, int] | None:
        """(timestamp, offset) of the first record at or after ``timestamp`` and ``min_offset``.

        The time index narrows the search to batches after the last one known to be older;
        headers then find the batch and decoding it finds the exact record.
        """
        entry = self.time_index.floor_offset(timestamp)
        start = 0 if entry is None else self.find(entry)
        for position, chunk, i in self._headers(start):
            header = read_header(chunk, i)
            if header.max_timestamp >= timestamp and header.last_offset >= min_offset:
                found = self._first_record(position, header, timestamp, min_offset)
                if found is not None:
                    return found
        return None

    def max_timestamp_record(self) -> tuple[int, int]:
        """(max timestamp, offset of the first record carrying it)."""
        position = self.find(self.offset_of_max_timestamp)
        header = read_header(os.pread(self.fd, HEADER_SIZE, position))
        found = self._first_record(position, header, self.max_timestamp, self.base_offset)
        return found or (self.max_timestamp, self.offset_of_max_timestamp)

    def _first_record(
        self, position: int, header: BatchHeader, timestamp: int, min_offset: int
    ) -> tuple[int, int] | None:
        batch = memoryview(os.pread(self.fd, header.size, position))
        for record in batch_records(header, batch):
            if record.timestamp_ms >= timestamp and record.offset >= min_offset:
                return record.timestamp_ms, record.offset
        return None

    def largest_timestamp(self) -> int:
        """What retention.ms compares: the max record timestamp, else the file's mtime."""
        if self.max_timestamp >= 0:
            return self.max_timestamp
        return int(os.fstat(self.fd).st_mtime * 1000)

    # Lifecycle.

    def truncate(self, offset: int, index_interval: int) -> None:
        """Drop the batch containing ``offset`` and everything after it."""
        position = self.find(offset) if offset < self.next_offset else self.size
        os.ftruncate(self.fd, position)
        self.size = position
        self.rebuild(index_interval)

    def seal(self) -> None:
        """Write the index files when the segment stops being active (roll or close), with a
        final time index entry so its max timestamp is known after a restart without a scan."""
        self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
        self.offset_index.write(self.path(INDEX_SUFFIX))
        self.time_index.write(self.path(TIME_INDEX_SUFFIX))
        self.indexes_unsynced = True

    def sync(self) -> None:
        """fsync the data and any index files written since the last sync. Runs in a worker
        thread; a segment deleted meanwhile may have lost its files or its fd, which is fine."""
        try:
            os.fdatasync(self.fd)
            if self.indexes_unsynced:
                self.indexes_unsynced = False
                for suffix in (INDEX_SUFFIX, TIME_INDEX_SUFFIX):
                    fd = os.open(self.path(suffix), os.O_RDONLY | os.O_CLOEXEC)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
        except OSError:
            if not self.deleted:
                raise

    def unlink(self) -> None:
        """Remove the files; the fd stays open until the caller closes it."""
        self.deleted = True
        for suffix in (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX):
            self.path(suffix).unlink(missing_ok=True)


def _write_all(fd: int, data: bytearray, size_before: int) -> None:
    """Write all of ``data`` (one write unless the kernel stops short); on failure cut the
    file back so no partial batch stays behind."""
    view = memoryview(data)
    try:
        written = os.write(fd, view)
        while written < len(view):
            written += os.write(fd, view[written:])
    except OSError:
        os.ftruncate(fd, size_before)
        raise
