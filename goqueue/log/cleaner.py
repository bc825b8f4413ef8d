"""One compaction pass over a partition log (Kafka's log cleaner), its steps run in worker
threads by ``goqueue.log.cleaner_manager``.

A compacted log keeps at least the newest record of every key. A pass works on segments that
no longer change; the active segment is never touched:

1. ``plan_pass`` (on the event loop) snapshots the segments and finds the dirty section, from
   the cleaner checkpoint (how far earlier passes cleaned) to the first uncleanable offset: the
   active segment, or the first segment holding records younger than ``min.compaction.lag.ms``.
2. ``build_offset_map`` reads the dirty section and maps each key's hash to the offset of its
   newest record. If the map fills up, the pass covers only what it holds and the next pass
   continues from there.
3. ``clean_group`` copies a group of consecutive segments from the start of the log into one
   new ``.cleaned`` segment, keeping a record unless the map holds a newer offset for its key,
   and fsyncs it; the caller swaps it in (``PartitionLog.replace_segments``).

Retained batches keep their offsets: a batch keeps its base offset and last offset delta, each
record its offset delta, key, value, headers and timestamp, and the batch its codec and
producer fields. A batch with nothing left disappears, leaving an offset gap, unless it is the
last batch of its producer (the producer's sequence numbers live there) or the last batch
before the first uncleanable offset. Control and transactional batches are copied as they are;
records without a key are dropped (a compacted topic refuses them at produce time). A tombstone
(null value) is kept until ``delete.retention.ms`` after the first pass that saw it, recorded
in its batch as the delete horizon (KIP-534), so consumers reading from the start see it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from hashlib import blake2b
from itertools import pairwise

from goqueue.log.config import LogConfig
from goqueue.log.partition_log import PartitionLog
from goqueue.log.segment import (
    MAX_RELATIVE_OFFSET,
    MAX_SEGMENT_BYTES,
    Segment,
    iter_headers,
    scan_file,
)
from goqueue.log.swap import cleaned_path
from goqueue.records.batch import BatchHeader, read_header
from goqueue.records.recompress import RawRecord, delete_horizon_ms, iter_raw_records, rebuild

OFFSET_MAP_ENTRY_BYTES = 24
"""What Kafka counts per offset map entry (a 16-byte key hash and an 8-byte offset) when it
sizes the map from ``log.cleaner.dedupe.buffer.size``."""
_MAP_LOAD_FACTOR = 0.9
_WRITE_CHUNK = 1024 * 1024
_CLEANED_FLAGS = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC

StopCheck = Callable[[], bool]
"""Polled between batches: True when the pass must stop (broker stopping, log closed)."""


class CleaningAborted(Exception):
    """The broker is stopping, or the log was closed, deleted or changed under the pass."""


class CleaningError(Exception):
    """A closed segment cannot be read back intact, so the log cannot be compacted."""


@dataclass(frozen=True, slots=True)
class CleanerConfig:
    """The topic configs of a compacted log that the cleaner obeys."""

    delete_retention_ms: int = 24 * 60 * 60 * 1000
    min_compaction_lag_ms: int = 0
    max_compaction_lag_ms: int = 2**63 - 1
    min_cleanable_ratio: float = 0.5


@dataclass(frozen=True, slots=True)
class SourceSegment:
    """A segment as a pass reads it: through its own duplicate of the segment's fd, so that
    retention or a topic deletion closing the segment cannot pull the file from under it."""

    segment: Segment
    fd: int

    @property
    def base_offset(self) -> int:
        return self.segment.base_offset


@dataclass(frozen=True, slots=True)
class PassPlan:
    """A log's dirty section as the event loop saw it when choosing what to clean."""

    log: PartitionLog
    config: CleanerConfig
    log_config: LogConfig
    generation: int
    segments: tuple[Segment, ...]
    """Every segment, the active one last; sizes are read once, before any thread runs."""
    sizes: tuple[int, ...]
    first_dirty: int
    first_uncleanable: int
    clean_bytes: int
    dirty_bytes: int
    overdue: bool
    """Some dirty record is older than ``max.compaction.lag.ms``."""
    now_ms: int

    @property
    def dirty_ratio(self) -> float:
        total = self.clean_bytes + self.dirty_bytes
        return self.dirty_bytes / total if total else 0.0

    @property
    def needs_cleaning(self) -> bool:
        """Kafka's test: dirty beyond ``min.cleanable.dirty.ratio``, or overdue."""
        return (self.overdue and self.dirty_bytes > 0) or (
            self.dirty_ratio > self.config.min_cleanable_ratio
        )

    def open_sources(self) -> list[SourceSegment]:
        """Duplicate every segment's fd for the pass; the caller closes them."""
        return [SourceSegment(segment, os.dup(segment.fd)) for segment in self.segments]


def plan_pass(
    log: PartitionLog, config: CleanerConfig, checkpoint: int, now_ms: int
) -> PassPlan | None:
    """Snapshot ``log`` for a pass (on the event loop); None if it has no closed segment.

    The dirty section starts at ``checkpoint``, reset to the log start when it lies outside
    the log (after truncation or record deletion), and ends at the active segment or at the
    first segment with a record younger than ``min.compaction.lag.ms``.
    """
    segments = log.segments
    if len(segments) < 2:
        return None
    active = segments[-1]
    first_dirty = checkpoint
    if not segments[0].base_offset <= first_dirty <= active.base_offset:
        first_dirty = segments[0].base_offset
    closed = segments[:-1]
    clean = [s for s, after in pairwise(segments) if after.base_offset <= first_dirty]
    dirty = closed[len(clean) :]
    first_uncleanable = active.base_offset
    if config.min_compaction_lag_ms > 0:
        for segment in dirty:
            if segment.largest_timestamp() > now_ms - config.min_compaction_lag_ms:
                first_uncleanable = max(segment.base_offset, first_dirty)
                break
    cleanable = [s for s in dirty if s.base_offset < first_uncleanable]
    if first_uncleanable <= first_dirty:
        cleanable = []
    first_timestamps = [s.first_batch_timestamp for s in cleanable if s.first_batch_timestamp >= 0]
    return PassPlan(
        log=log,
        config=config,
        log_config=log.config,
        generation=log.generation,
        segments=segments,
        sizes=tuple(segment.size for segment in segments),
        first_dirty=first_dirty,
        first_uncleanable=first_uncleanable,
        clean_bytes=sum(segment.size for segment in clean),
        dirty_bytes=sum(segment.size for segment in cleanable),
        overdue=bool(first_timestamps)
        and min(first_timestamps) < now_ms - config.max_compaction_lag_ms,
        now_ms=now_ms,
    )


class OffsetMap:
    """Key hash -> offset of the key's newest record in the dirty section, with a capacity.

    Keys are hashed to 16 bytes (BLAKE2b), so long keys cost no more than short ones; like
    Kafka's MD5 map, a collision (odds about 2**-128 per pair of keys) could drop a record.
    """

    def __init__(self, capacity: int, first_dirty: int) -> None:
        self.capacity = max(capacity, 1)
        self._offsets: dict[bytes, int] = {}
        self.latest_offset = first_dirty - 1
        """Offsets up to here are mapped; records above it are kept whatever their key."""

    def __len__(self) -> int:
        return len(self._offsets)

    def put(self, key: bytes, offset: int) -> bool:
        """Record ``offset`` as ``key``'s newest; False (and nothing recorded) when full."""
        digest = blake2b(key, digest_size=16).digest()
        if len(self._offsets) >= self.capacity and digest not in self._offsets:
            return False
        self._offsets[digest] = offset
        return True

    def get(self, key: bytes) -> int:
        """The newest offset of ``key``, or -1."""
        return self._offsets.get(blake2b(key, digest_size=16).digest(), -1)


def offset_map_capacity(dedupe_buffer_bytes: int) -> int:
    """Keys a pass may map, sized from Kafka's ``log.cleaner.dedupe.buffer.size``."""
    return int(dedupe_buffer_bytes // OFFSET_MAP_ENTRY_BYTES * _MAP_LOAD_FACTOR)


class _MapFull(Exception):
    pass


def _scan(
    source: SourceSegment, stop: StopCheck, on_batch: Callable[[BatchHeader, memoryview], None]
) -> None:
    """Call ``on_batch`` for every batch of a closed segment, CRC-checked."""

    def checked(_: int, header: BatchHeader, batch: memoryview) -> None:
        if stop():
            raise CleaningAborted()
        on_batch(header, batch)

    outcome = scan_file(source.fd, source.base_offset, checked)
    if outcome.problem is not None:
        raise CleaningError(f"{source.segment}: {outcome.problem}")


def build_offset_map(
    plan: PassPlan, sources: Sequence[SourceSegment], capacity: int, stop: StopCheck
) -> OffsetMap:
    """Map the keys of the dirty section to their newest offsets (in a worker thread).

    Control and transactional batches are not mapped: the cleaner leaves them as they are, so
    an aborted transaction can never remove the value it tried to overwrite.
    """
    offset_map = OffsetMap(capacity, plan.first_dirty)

    def on_batch(header: BatchHeader, batch: memoryview) -> None:
        if header.last_offset < plan.first_dirty or header.base_offset >= plan.first_uncleanable:
            return
        if not (header.is_control or header.is_transactional):
            for record in iter_raw_records(header, batch):
                offset = header.base_offset + record.offset_delta
                key = record.key
                if key is None or not plan.first_dirty <= offset < plan.first_uncleanable:
                    continue
                if not offset_map.put(key, offset):
                    raise _MapFull()
        latest = min(header.last_offset, plan.first_uncleanable - 1)
        offset_map.latest_offset = max(offset_map.latest_offset, latest)

    for source, after in pairwise(sources):
        if source.base_offset >= plan.first_uncleanable:
            break
        if after.base_offset <= plan.first_dirty:
            continue
        try:
            _scan(source, stop, on_batch)
        except _MapFull:
            break
        end = min(after.base_offset, plan.first_uncleanable)
        offset_map.latest_offset = max(offset_map.latest_offset, end - 1)
    return offset_map


def producer_last_offsets(sources: Sequence[SourceSegment], sizes: Sequence[int]) -> dict[int, int]:
    """Last offset of each producer's last data batch, from the batch headers of the whole log
    (in a worker thread): the cleaner keeps those batches even when it empties them."""
    last: dict[int, int] = {}
    for source, size in zip(sources, sizes, strict=True):
        for _, chunk, i in iter_headers(source.fd, 0, size, source.segment):
            header = read_header(chunk, i)
            if header.producer_id >= 0 and not header.is_control:
                last[header.producer_id] = header.last_offset
    return last


def group_sources(
    plan: PassPlan, sources: Sequence[SourceSegment], end_offset: int
) -> list[list[SourceSegment]]:
    """The closed segments below ``end_offset`` in consecutive groups, each to be cleaned into
    one segment: at most ``segment.bytes`` together, offsets within an index's reach."""
    max_bytes = min(plan.log_config.segment_bytes, MAX_SEGMENT_BYTES)
    groups: list[list[SourceSegment]] = []
    group_bytes = 0
    for k, source in enumerate(sources[:-1]):
        if source.base_offset >= end_offset:
            break
        size = plan.sizes[k]
        last_offset = sources[k + 1].base_offset - 1
        if (
            groups
            and group_bytes + size <= max_bytes
            and (size == 0 or last_offset - groups[-1][0].base_offset <= MAX_RELATIVE_OFFSET)
        ):
            groups[-1].append(source)
            group_bytes += size
        else:
            groups.append([source])
            group_bytes = size
    return groups


@dataclass(slots=True)
class CleanStats:
    """What cleaning did, for the log line and for scheduling the next pass."""

    segments_read: int = 0
    segments_written: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    records_read: int = 0
    records_kept: int = 0
    tombstone_horizon: int | None = None
    """The latest delete horizon among the kept batches that still hold tombstones: when a
    pass could next drop them."""

    def note_horizon(self, horizon: int) -> None:
        self.tombstone_horizon = max(self.tombstone_horizon or horizon, horizon)

    def add(self, other: CleanStats) -> None:
        self.segments_read += other.segments_read
        self.segments_written += other.segments_written
        self.bytes_read += other.bytes_read
        self.bytes_written += other.bytes_written
        self.records_read += other.records_read
        self.records_kept += other.records_kept
        if other.tombstone_horizon is not None:
            self.note_horizon(other.tombstone_horizon)


class _Filter:
    """Decides, batch by batch, what a group's cleaned segment keeps."""

    def __init__(
        self, plan: PassPlan, offset_map: OffsetMap, producers: dict[int, int], stats: CleanStats
    ) -> None:
        self.plan = plan
        self.map = offset_map
        self.producers = producers
        self.stats = stats

    def apply(self, header: BatchHeader, batch: memoryview) -> memoryview | bytes | None:
        """The batch to write for ``batch``: itself, a rebuilt copy, or None to drop it."""
        self.stats.bytes_read += header.size
        self.stats.records_read += header.record_count
        if header.is_control or header.is_transactional:
            self.stats.records_kept += header.record_count
            return batch
        records = list(iter_raw_records(header, batch))
        horizon = delete_horizon_ms(header)
        expired = horizon is not None and self.plan.now_ms >= horizon
        kept = [r for r in records if self._keeps(header.base_offset + r.offset_delta, r, expired)]
        self.stats.records_kept += len(kept)
        tombstones = any(record.is_tombstone for record in kept)
        if tombstones:
            if horizon is None:
                horizon = self.plan.now_ms + self.plan.config.delete_retention_ms
            self.stats.note_horizon(horizon)
        if len(kept) == len(records) and horizon == delete_horizon_ms(header):
            return batch
        if not kept and not self._keeps_empty(header):
            return None
        return rebuild(header, kept, delete_horizon=horizon if tombstones else None)

    def _keeps(self, offset: int, record: RawRecord, tombstones_expired: bool) -> bool:
        if offset > self.map.latest_offset:
            return True
        if record.key is None or offset < self.map.get(record.key):
            return False
        return not (record.is_tombstone and tombstones_expired)

    def _keeps_empty(self, header: BatchHeader) -> bool:
        last_of_producer = self.producers.get(header.producer_id) == header.last_offset
        return (header.producer_id >= 0 and last_of_producer) or (
            header.next_offset == self.plan.first_uncleanable
        )


def clean_group(
    plan: PassPlan,
    group: Sequence[SourceSegment],
    offset_map: OffsetMap,
    producers: dict[int, int],
    stop: StopCheck,
) -> tuple[Segment, CleanStats]:
    """Write the cleaned copy of ``group`` as ``<base>.log.cleaned``, fsynced, with its indexes
    built in memory (in a worker thread). It keeps the newest source's modification time, which
    retention falls back on for segments without timestamps."""
    directory = plan.log.directory
    base = group[0].base_offset
    path = cleaned_path(directory, base)
    fd = os.open(path, _CLEANED_FLAGS, 0o644)
    try:
        stats = CleanStats(segments_read=len(group), segments_written=1)
        keep = _Filter(plan, offset_map, producers, stats)
        out = bytearray()

        def on_batch(header: BatchHeader, batch: memoryview) -> None:
            kept = keep.apply(header, batch)
            if kept is not None:
                out.extend(kept)
                if len(out) >= _WRITE_CHUNK:
                    _write(fd, out)

        for source in group:
            _scan(source, stop, on_batch)
        _write(fd, out)
        os.fsync(fd)
        newest = max(os.fstat(source.fd).st_mtime_ns for source in group)
        os.utime(fd, ns=(newest, newest))
        segment = Segment(directory, base, fd, plan.now_ms)
        segment.rebuild(plan.log_config.index_interval_bytes)
        stats.bytes_written = segment.size
        return segment, stats
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise


def discard(segment: Segment) -> None:
    """Close and delete a cleaned segment that will not be swapped in."""
    os.close(segment.fd)
    cleaned_path(segment.directory, segment.base_offset).unlink(missing_ok=True)


def _write(fd: int, out: bytearray) -> None:
    view = memoryview(out)
    written = 0
    while written < len(view):
        written += os.write(fd, view[written:])
    view.release()
    out.clear()
