"""Scheduling of log compaction: which compacted log to clean next, the cleaner checkpoint, and
a pass whose reading, rewriting and fsyncing run in worker threads while the swaps of cleaned
segments happen on the event loop (``goqueue.log.cleaner`` has the pass itself).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from weakref import WeakKeyDictionary

from goqueue.log.cleaner import (
    CleanerConfig,
    CleaningAborted,
    CleaningError,
    CleanStats,
    PassPlan,
    SourceSegment,
    build_offset_map,
    clean_group,
    discard,
    group_sources,
    offset_map_capacity,
    plan_pass,
    producer_last_offsets,
)
from goqueue.log.layout import fsync_dir, write_durably
from goqueue.log.partition_log import PartitionLog
from goqueue.log.segment import Segment
from goqueue.records.errors import RecordsError

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "cleaner-offset-checkpoint"
"""Per partition: the offset below which the log is clean (Kafka keeps one such file per data
directory; one per partition is deleted with its partition)."""


def read_checkpoint(directory: Path) -> int:
    """The first dirty offset recorded by the last pass; 0 if none."""
    try:
        return int((directory / CHECKPOINT_FILE).read_text().strip())
    except (OSError, ValueError):
        return 0


@dataclass(slots=True)
class _LogState:
    first_dirty: int
    tombstone_horizon: int | None = None
    """When the tombstones the last pass kept may go: a pass is due then even if nothing is
    dirty (in memory only, as in Kafka: after a restart the next dirty pass drops them)."""
    failed: bool = False
    """A segment could not be read back intact: the log is left alone until restart."""


@dataclass(frozen=True, slots=True)
class PassResult:
    topic: str
    partition: int
    first_dirty: int
    end_offset: int
    """The new checkpoint: every offset below it is clean."""
    stats: CleanStats
    seconds: float


class LogCleaner:
    """Cleans one compacted log at a time, the dirtiest first, as Kafka's cleaner thread does.

    ``clean_dirtiest`` is awaited by the broker's housekeeping; ``stop`` makes a running pass
    give up at its next batch, deleting its unfinished output.
    """

    def __init__(self, dedupe_buffer_bytes: int) -> None:
        self.capacity = offset_map_capacity(dedupe_buffer_bytes)
        self._states: WeakKeyDictionary[PartitionLog, _LogState] = WeakKeyDictionary()
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    def checkpoint(self, log: PartitionLog) -> int:
        return self._state(log).first_dirty

    def _state(self, log: PartitionLog) -> _LogState:
        state = self._states.get(log)
        if state is None:
            state = self._states[log] = _LogState(read_checkpoint(log.directory))
        return state

    def choose(
        self, logs: Sequence[tuple[PartitionLog, CleanerConfig]], now_ms: int
    ) -> PassPlan | None:
        """The log most in need of a pass: the highest dirty ratio among those beyond their
        ``min.cleanable.dirty.ratio`` or overdue by ``max.compaction.lag.ms``; failing that,
        one whose kept tombstones have reached their delete horizon."""
        dirtiest: PassPlan | None = None
        tombstones_due: PassPlan | None = None
        for log, config in logs:
            state = self._state(log)
            if log.closed or state.failed:
                continue
            plan = plan_pass(log, config, state.first_dirty, now_ms)
            if plan is None:
                continue
            if plan.needs_cleaning:
                if dirtiest is None or plan.dirty_ratio > dirtiest.dirty_ratio:
                    dirtiest = plan
            elif state.tombstone_horizon is not None and state.tombstone_horizon <= now_ms:
                tombstones_due = tombstones_due or plan
        return dirtiest or tombstones_due

    async def clean_dirtiest(
        self, logs: Sequence[tuple[PartitionLog, CleanerConfig]], now_ms: int
    ) -> PassResult | None:
        """Run one pass over the log ``choose`` picks; None if there was nothing to do or the
        pass did not complete (stopping, or the log changed under it)."""
        plan = self.choose(logs, now_ms)
        if plan is None:
            return None
        log = plan.log
        try:
            return await self._run(plan)
        except CleaningAborted:
            logger.info("cleaning of %s stopped before it finished", log)
        except (OSError, RecordsError, CleaningError) as exc:
            if log.closed or self._stopping.is_set():
                logger.info("cleaning of %s stopped: %s", log, exc)
            else:
                self._state(log).failed = True
                logger.error("cannot clean %s; leaving it uncompacted: %s", log, exc)
        return None

    async def _run(self, plan: PassPlan) -> PassResult:
        log = plan.log
        started = time.monotonic()

        def stop() -> bool:
            return self._stopping.is_set() or log.closed

        sources = plan.open_sources()
        try:
            offset_map = await asyncio.to_thread(
                build_offset_map, plan, sources, self.capacity, stop
            )
            producers = await asyncio.to_thread(producer_last_offsets, sources, plan.sizes)
            end_offset = offset_map.latest_offset + 1
            stats = CleanStats()
            for group in group_sources(plan, sources, end_offset):
                segment, group_stats = await asyncio.to_thread(
                    clean_group, plan, group, offset_map, producers, stop
                )
                await self._swap(plan, group, segment)
                stats.add(group_stats)
            await asyncio.to_thread(_write_checkpoint, log, end_offset)
        finally:
            for source in sources:
                os.close(source.fd)
        state = self._state(log)
        result = PassResult(
            log.topic,
            log.partition,
            plan.first_dirty,
            end_offset,
            stats,
            time.monotonic() - started,
        )
        state.first_dirty = end_offset
        state.tombstone_horizon = stats.tombstone_horizon
        _log_result(result)
        return result

    async def _swap(self, plan: PassPlan, group: list[SourceSegment], segment: Segment) -> None:
        """Swap the cleaned segment in on the event loop, then make the swap durable."""
        if not plan.log.replace_segments([s.segment for s in group], segment, plan.generation):
            await asyncio.to_thread(discard, segment)
            raise CleaningAborted()
        await asyncio.to_thread(_sync_swapped, plan.log, segment)


def _sync_swapped(log: PartitionLog, segment: Segment) -> None:
    """fsync the new segment's index files and the renames (its data already is)."""
    try:
        segment.sync()
        fsync_dir(log.directory)
    except OSError:
        if not log.closed:
            raise


def _write_checkpoint(log: PartitionLog, offset: int) -> None:
    try:
        write_durably(log.directory / CHECKPOINT_FILE, f"{offset}\n".encode())
    except OSError:
        if not log.closed:
            raise
        raise CleaningAborted() from None


def _log_result(result: PassResult) -> None:
    stats = result.stats
    logger.info(
        "cleaned %s-%d up to offset %d: %d segment(s) of %d bytes into %d of %d bytes, "
        "%d of %d records kept, in %.3f s",
        result.topic,
        result.partition,
        result.end_offset,
        stats.segments_read,
        stats.bytes_read,
        stats.segments_written,
        stats.bytes_written,
        stats.records_kept,
        stats.records_read,
        result.seconds,
    )
