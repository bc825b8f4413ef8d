"""A partition this node leads: its log, its high watermark, the fetches waiting on it, and what
produce keeps beside the log: idempotent producer state and the content dedup window."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterator

from goqueue.broker.dedup import DedupWindow, plan_batch
from goqueue.broker.errors import BrokerError
from goqueue.broker.producer_state import (
    NO_PRODUCER_ID,
    BatchMetadata,
    ProducerStateManager,
    SnapshotError,
)
from goqueue.log.partition_log import AppendResult, PartitionLog
from goqueue.log.snapshots import SnapshotFiles
from goqueue.records.batch import BatchHeader, iter_batches, read_header, set_leader_epoch
from goqueue.records.errors import RecordsError

logger = logging.getLogger(__name__)

READ_CHUNK_BYTES = 1024 * 1024
"""How much of the log one step of a replay reads."""


class Partition:
    """Wraps a PartitionLog with what the request path needs beyond storage.

    Fetches that found too little data park a future here; every append resolves them, so a
    waiting consumer is answered as soon as data arrives instead of when its wait expires.

    Producer state is snapshotted whenever the log rolls a segment and at shutdown, and
    rebuilt on open from the newest snapshot plus the batch headers logged after it.
    """

    def __init__(
        self,
        topic: str,
        index: int,
        log: PartitionLog,
        producers: ProducerStateManager,
        leader_epoch: int = 0,
    ) -> None:
        self.topic = topic
        self.index = index
        self.log = log
        self.leader_epoch = leader_epoch
        self.producers = producers
        self.dedup: DedupWindow | None = None
        """The content dedup window; built from the log when a produce first needs it."""
        self.dedup_lock = asyncio.Lock()
        """Held by appends to a topic with a dedup window: they await record decoding, and the
        window must not change between their lookups and their append."""
        self._snapshots = SnapshotFiles(log.directory)
        self._waiters: set[asyncio.Future[None]] = set()
        log.on_roll = self._write_snapshot

    @classmethod
    def open(cls, topic: str, index: int, log: PartitionLog, expiration_ms: int) -> Partition:
        """A partition with its producer state loaded from snapshot and log."""
        return cls(topic, index, log, load_producer_state(log, expiration_ms))

    @property
    def high_watermark(self) -> int:
        """On a single replica everything appended is committed."""
        return self.log.log_end_offset

    def append(self, records: bytearray, batch: BatchHeader, now_ms: int) -> AppendResult:
        """Append a producer's batch. An idempotent producer's batch is checked against its
        state first (Kafka's rules); a retry of a batch already written is answered with the
        offsets it got then, and not written again."""
        if batch.producer_id == NO_PRODUCER_ID:
            return self._append(records, batch, now_ms)
        duplicate = self.producers.check(batch)
        if duplicate is not None:
            return self._answer(duplicate)
        result = self._append(records, batch, now_ms)
        self.producers.record(batch, result.base_offset, result.last_offset)
        return result

    async def append_deduplicated(
        self, records: bytes, batch: BatchHeader, now_ms: int, window_ms: int
    ) -> AppendResult:
        """Append a batch to a topic with a content dedup window of `window_ms`, dropping the
        records that repeat one written within it (see `goqueue.broker.dedup`).

        A batch that only repeats is answered with the offset of the earlier copy of its first
        record. From an idempotent producer, such a batch still advances the producer's
        sequence: nothing reaches the log, so the producer state is snapshotted at once.
        """
        async with self.dedup_lock:
            cutoff_ms = now_ms - window_ms
            window = self.dedup
            if window is None:
                window = self.dedup = await self._load_dedup_window(cutoff_ms, now_ms)
            window.expire(cutoff_ms)
            idempotent = batch.producer_id != NO_PRODUCER_ID
            if idempotent:
                duplicate = self.producers.check(batch)
                if duplicate is not None:
                    return self._answer(duplicate)
            try:
                plan = await asyncio.to_thread(plan_batch, records, batch, window, cutoff_ms)
            except RecordsError as exc:
                raise BrokerError(exc.error_code, str(exc)) from exc
            if plan.records is None:
                last = max(plan.originals)
                answer = AppendResult(plan.originals[0], last, batch.max_timestamp, last)
                if idempotent:
                    self.producers.record(batch, answer.base_offset, answer.last_offset)
                    await self._save_producer_state_durably()
                return answer
            data = bytearray(plan.records)
            header = batch if plan.records is records else read_header(data)
            result = self._append(data, header, now_ms)
            if idempotent:
                self.producers.record(batch, result.base_offset, result.last_offset)
            for msg_id, offset_delta in plan.kept:
                window.add(msg_id, result.base_offset + offset_delta, now_ms)
            return result

    def _answer(self, duplicate: BatchMetadata) -> AppendResult:
        """What a retried batch is answered: where it went the first time."""
        logger.info(
            "%s-%d: answered a retry of sequences %d..%d with its offsets %d..%d",
            self.topic,
            self.index,
            duplicate.first_seq,
            duplicate.last_seq,
            duplicate.first_offset,
            duplicate.last_offset,
        )
        return AppendResult(
            duplicate.first_offset,
            duplicate.last_offset,
            duplicate.timestamp,
            duplicate.last_offset,
        )

    def _append(self, records: bytearray, batch: BatchHeader, now_ms: int) -> AppendResult:
        """Stamp the batch with the leader epoch, as Kafka does, then append it."""
        set_leader_epoch(records, 0, self.leader_epoch)
        result = self.log.append(records, [batch], now_ms)
        self._wake_waiters()
        return result

    async def _load_dedup_window(self, cutoff_ms: int, now_ms: int) -> DedupWindow:
        """The ids of the records logged since `cutoff_ms`, so the window survives restarts
        and covers what was written before the topic enabled it. Records are decoded in a
        worker thread, a chunk at a time, while this partition's appends wait on the lock."""
        window = DedupWindow()
        found = self.log.offset_for_timestamp(cutoff_ms)
        if found is not None:
            for data in _logged_chunks(self.log, found[1]):
                await asyncio.to_thread(window.load, data, cutoff_ms, now_ms)
        logger.info(
            "%s-%d: dedup window loaded with %d message ids", self.topic, self.index, len(window)
        )
        return window

    def save_producer_state(self) -> None:
        """Snapshot the producer state at the log end (at shutdown). Not fsynced: a snapshot
        torn by a power cut is detected and the state rebuilt from an older one and the log."""
        self._write_snapshot(self.log.log_end_offset)

    async def _save_producer_state_durably(self) -> None:
        """Snapshot producer state that the log does not hold. The log is flushed first, so
        the snapshot cannot outlive (and be discarded with) data lost to a crash."""
        offset, data = self.log.log_end_offset, self.producers.encode()

        def flush_and_write() -> None:
            self.log.flush()
            self._snapshots.write(offset, data, durable=True)

        try:
            await asyncio.to_thread(flush_and_write)
        except OSError as exc:
            logger.warning("%s-%d: cannot snapshot producer state: %s", self.topic, self.index, exc)

    def _write_snapshot(self, offset: int) -> None:
        """A failed snapshot costs only a longer replay at the next start: log it, go on."""
        try:
            self._snapshots.write(offset, self.producers.encode(), durable=False)
            self._snapshots.delete_before(self.log.log_start_offset)
        except OSError as exc:
            logger.warning(
                "%s-%d: cannot snapshot producer state at %d: %s",
                self.topic,
                self.index,
                offset,
                exc,
            )

    def add_waiter(self, waiter: asyncio.Future[None]) -> None:
        self._waiters.add(waiter)

    def remove_waiter(self, waiter: asyncio.Future[None]) -> None:
        self._waiters.discard(waiter)

    def _wake_waiters(self) -> None:
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


def load_producer_state(log: PartitionLog, expiration_ms: int) -> ProducerStateManager:
    """Kafka's rebuild: the newest intact snapshot at or below the log end (snapshots above it
    describe data that recovery cut off), then the headers of the batches logged after it.
    Without any snapshot the whole log is replayed. Expired producers are dropped."""
    snapshots = SnapshotFiles(log.directory)
    snapshots.delete_above(log.log_end_offset)
    state, start = ProducerStateManager(), log.log_start_offset
    for offset in reversed(snapshots.offsets()):
        try:
            state = ProducerStateManager.decode(snapshots.read(offset))
        except (OSError, SnapshotError) as exc:
            logger.warning("%s: ignoring producer snapshot %d: %s", log, offset, exc)
            snapshots.delete(offset)
            continue
        start = max(start, offset)
        break
    for data in _logged_chunks(log, start):
        for header, _ in iter_batches(data):
            if header.producer_id != NO_PRODUCER_ID and not header.is_control:
                state.record(header, header.base_offset, header.last_offset)
    state.remove_expired(time.time_ns() // 1_000_000, expiration_ms)
    return state


def _logged_chunks(log: PartitionLog, start: int) -> Iterator[bytes]:
    """The log's whole batches from the one holding `start` to the current log end, a chunk
    of at most about READ_CHUNK_BYTES at a time (reads resume from the log start if retention
    removed the next offset meanwhile)."""
    offset, end = start, log.log_end_offset
    while offset < end:
        piece = log.read(max(offset, log.log_start_offset), READ_CHUNK_BYTES, end)
        if piece is None:
            return
        data = os.pread(piece.fd, piece.size, piece.position)
        headers = [header for header, _ in iter_batches(data)]
        if not headers:
            return
        yield data
        offset = headers[-1].next_offset
