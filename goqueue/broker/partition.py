"""A partition replica on this node: its log, its role (leader or follower) and leader epoch,
its high watermark, the fetches and acks=all produces waiting on it, and what produce keeps
beside the log: idempotent producer state and the content dedup window."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from kio.schema.errors import ErrorCode

from goqueue.broker.dedup import DedupWindow, plan_batch
from goqueue.broker.errors import BrokerError
from goqueue.broker.producer_state import (
    NO_PRODUCER_ID,
    BatchMetadata,
    ProducerStateManager,
    SnapshotError,
)
from goqueue.broker.replica_state import LeaderState
from goqueue.log.leader_epochs import LeaderEpochCache
from goqueue.log.partition_log import AppendResult, PartitionLog
from goqueue.log.snapshots import SnapshotFiles
from goqueue.records.batch import (
    BatchHeader,
    iter_batches,
    read_header,
    scan_batches,
    set_leader_epoch,
)
from goqueue.records.errors import RecordsError

logger = logging.getLogger(__name__)

READ_CHUNK_BYTES = 1024 * 1024
"""How much of the log one step of a replay reads."""
NO_LEADER_EPOCH = -1
"""A request's current leader epoch when the client does not know it: no fencing check."""
HIGH_WATERMARK_FILE = "high-watermark"
"""Per partition: the high watermark at the last clean shutdown (Kafka's
replication-offset-checkpoint), where a restarted replica resumes it."""

IsrProposer = Callable[["Partition", tuple[int, ...]], None]
"""Sends a leader's ISR change to the controller (AlterPartition); the answer comes back as
a metadata change, which the broker hands to `become_leader`."""


class Partition:
    """Wraps a PartitionLog with what the request path needs beyond storage.

    As leader it appends producers' batches stamped with its leader epoch, tracks its
    followers (`LeaderState`) and moves the high watermark to the smallest log end over the
    ISR; as follower it appends the leader's batches verbatim and follows the leader's high
    watermark. A new partition is the leader of a single-replica set at epoch 0, which is
    exactly a single node's partition: every append is committed at once.

    Fetches that found too little data park a future here; every append and every move of the
    high watermark resolves them. An acks=all produce parks until the high watermark passes
    its batch.

    Producer state is snapshotted whenever the log rolls a segment and at shutdown, and
    rebuilt on open from the newest snapshot plus the batch headers logged after it, and
    again after a follower truncates its log.
    """

    def __init__(
        self,
        topic: str,
        index: int,
        log: PartitionLog,
        producers: ProducerStateManager,
        *,
        node_id: int = 0,
        expiration_ms: int = 0,
    ) -> None:
        self.topic = topic
        self.index = index
        self.log = log
        self.node_id = node_id
        self.producers = producers
        self._expiration_ms = expiration_ms
        self.dedup: DedupWindow | None = None
        """The content dedup window; built from the log when a produce first needs it."""
        self.dedup_lock = asyncio.Lock()
        """Held by appends to a topic with a dedup window: they await record decoding, and the
        window must not change between their lookups and their append."""
        self.epochs = LeaderEpochCache.load(log.directory, log.log_start_offset, log.log_end_offset)
        self.leader_id = node_id
        self.leader_epoch = NO_LEADER_EPOCH
        self.partition_epoch = NO_LEADER_EPOCH
        self.replicas: tuple[int, ...] = (node_id,)
        self.isr: tuple[int, ...] = (node_id,)
        self.leader: LeaderState | None = None
        """Set while this replica leads."""
        self.truncation_pending = False
        """Set on becoming a follower of a new leader epoch: the replica fetcher must find where
        this log diverges from the leader's (OffsetForLeaderEpoch) before fetching."""
        self.on_isr_change: IsrProposer | None = None
        self._high_watermark = log.log_start_offset
        self._checkpointed_high_watermark = -1
        self._snapshots = SnapshotFiles(log.directory)
        self._waiters: set[asyncio.Future[None]] = set()
        self._acks: list[tuple[int, asyncio.Future[ErrorCode]]] = []
        log.on_roll = self._write_snapshot
        self.become_leader(0, 0, (node_id,), (node_id,), now_ms=0)
        self._assumed = True
        """The single-replica leadership above is assumed until `confirm`: its high watermark
        (the log end) holds only if the metadata agrees."""

    @classmethod
    def open(
        cls, topic: str, index: int, log: PartitionLog, expiration_ms: int, node_id: int = 0
    ) -> Partition:
        """A partition with its producer state loaded from snapshot and log."""
        producers = load_producer_state(log, expiration_ms)
        return cls(topic, index, log, producers, node_id=node_id, expiration_ms=expiration_ms)

    @property
    def high_watermark(self) -> int:
        """Offsets below it are on every in-sync replica: consumers read only those."""
        return self._high_watermark

    @property
    def is_leader(self) -> bool:
        return self.leader is not None

    # Leadership.

    def become_leader(
        self,
        leader_epoch: int,
        partition_epoch: int,
        replicas: tuple[int, ...],
        isr: tuple[int, ...],
        now_ms: int,
    ) -> None:
        """Apply a metadata state naming this node leader. A new leader epoch starts at the log
        end (recorded in the epoch cache before anything is appended, see `epochs_durable`);
        the same epoch with a new partition epoch is an ISR or replica change."""
        self.leader_id, self.partition_epoch = self.node_id, partition_epoch
        self.replicas, self.isr = replicas, isr
        if self.leader is not None and leader_epoch == self.leader_epoch:
            self.leader.set_replicas(replicas, isr, now_ms)
        else:
            self.leader_epoch = leader_epoch
            end = self.log.log_end_offset
            self.epochs.assign(leader_epoch, end)
            self.leader = LeaderState(self.node_id, replicas, isr, end, now_ms)
            self.truncation_pending = False
            self.dedup = None
            self._high_watermark = min(max(self._high_watermark, self.log.log_start_offset), end)
        self._maybe_advance_high_watermark()

    def become_follower(
        self,
        leader_id: int,
        leader_epoch: int,
        partition_epoch: int,
        replicas: tuple[int, ...],
        isr: tuple[int, ...],
    ) -> None:
        """Apply a metadata state naming another leader: stop serving produce (parked acks=all
        produces fail with NOT_LEADER_OR_FOLLOWER) and, for a new leader epoch, have the
        fetcher truncate divergent data before fetching."""
        new_epoch = self.leader is not None or leader_epoch != self.leader_epoch
        self.leader_id, self.leader_epoch, self.partition_epoch = (
            leader_id,
            leader_epoch,
            partition_epoch,
        )
        self.replicas, self.isr = replicas, isr
        if new_epoch:
            self.leader = None
            self.truncation_pending = True
            self.dedup = None
            self._fail_acks(ErrorCode.not_leader_or_follower)
            self._wake_waiters()

    def confirm(self, isr: tuple[int, ...]) -> None:
        """Take the first state from metadata: unless this replica is alone in the ISR, nothing
        says how much of the log is committed (Kafka keeps a high watermark checkpoint for
        this), so the high watermark starts over from the log start and is learnt again from
        the ISR."""
        if self._assumed:
            self._assumed = False
            if isr != (self.node_id,):
                saved = _read_offset(self.log.directory / HIGH_WATERMARK_FILE)
                start, end = self.log.log_start_offset, self.log.log_end_offset
                self._high_watermark = max(start, min(saved, end))

    def check_leader(self, current_leader_epoch: int = NO_LEADER_EPOCH) -> None:
        """Kafka's checks of a request for the leader: a client's leader epoch older than ours
        is fenced, a newer one is not known here yet; then only the leader serves."""
        self.check_epoch(current_leader_epoch)
        if self.leader is None:
            raise BrokerError(
                ErrorCode.not_leader_or_follower,
                f"Broker {self.node_id} is not the leader of {self.topic}-{self.index} "
                f"(the leader is {self.leader_id})",
            )

    def check_epoch(self, current_leader_epoch: int) -> None:
        if current_leader_epoch == NO_LEADER_EPOCH:
            return
        if current_leader_epoch < self.leader_epoch:
            raise BrokerError(
                ErrorCode.fenced_leader_epoch,
                f"{self.topic}-{self.index}: leader epoch {current_leader_epoch} of the request "
                f"is older than the current {self.leader_epoch}",
            )
        if current_leader_epoch > self.leader_epoch:
            raise BrokerError(
                ErrorCode.unknown_leader_epoch,
                f"{self.topic}-{self.index}: leader epoch {current_leader_epoch} of the request "
                f"is newer than the current {self.leader_epoch}",
            )

    async def epochs_durable(self) -> None:
        """Write the leader epoch cache if it changed, so it never lags the log."""
        if self.epochs.dirty:
            await asyncio.to_thread(self.epochs.write)

    # The leader's side of replication.

    def record_follower_fetch(
        self, replica: int, fetch_offset: int, now_ms: int, *, fenced: bool = False
    ) -> None:
        """A follower fetched from `fetch_offset`: it has everything below it. It may join the
        ISR (proposed to the controller) and move the high watermark."""
        if self.leader is None:
            self.check_leader()
            return
        if not self.leader.update_follower(replica, fetch_offset, self.log.log_end_offset, now_ms):
            raise BrokerError(
                ErrorCode.not_leader_or_follower,
                f"Broker {replica} is not a replica of {self.topic}-{self.index}",
            )
        expanded = self.leader.expansion(replica, self._high_watermark, fenced)
        if expanded is not None:
            self._propose_isr(expanded)
        self._maybe_advance_high_watermark()

    def maybe_shrink_isr(self, now_ms: int, max_lag_ms: int) -> None:
        """Propose removing the followers that have not caught up within `max_lag_ms`."""
        if self.leader is None:
            return
        shrunk = self.leader.shrink(now_ms, max_lag_ms, self.log.log_end_offset)
        if shrunk is not None:
            self._propose_isr(shrunk)

    def isr_change_failed(self, isr: tuple[int, ...]) -> None:
        """The controller refused (or never answered) a proposal: allow another one."""
        if self.leader is not None and self.leader.pending_isr == isr:
            self.leader.pending_isr = None

    def _propose_isr(self, isr: tuple[int, ...]) -> None:
        assert self.leader is not None
        logger.info(
            "%s-%d: proposing ISR %s (was %s) at leader epoch %d",
            self.topic,
            self.index,
            list(isr),
            list(self.leader.isr),
            self.leader_epoch,
        )
        self.leader.pending_isr = isr
        if self.on_isr_change is not None:
            self.on_isr_change(self, isr)

    def _maybe_advance_high_watermark(self) -> None:
        """Move the high watermark to the smallest log end over the maximal ISR (it never goes
        back); wake the consumers and acks=all produces that wait for it."""
        if self.leader is None:
            return
        candidate = self.leader.high_watermark(self.log.log_end_offset)
        if candidate > self._high_watermark:
            self._high_watermark = candidate
            self._wake_waiters()
            self._complete_acks()

    async def wait_replicated(self, offset: int, timeout: float, min_insync: int) -> None:
        """Wait until every in-sync replica has the offsets below `offset` (an acks=all
        produce); Kafka's DelayedProduce errors if leadership is lost, the ISR fell below
        `min_insync` meanwhile, or `timeout` passed."""
        if self._high_watermark < offset:
            self.check_leader()
            future: asyncio.Future[ErrorCode] = asyncio.get_running_loop().create_future()
            entry = (offset, future)
            self._acks.append(entry)
            try:
                code = await asyncio.wait_for(future, timeout)
            except TimeoutError:
                raise BrokerError(
                    ErrorCode.request_timed_out,
                    f"{self.topic}-{self.index}: the in-sync replicas {list(self.isr)} did not "
                    f"all reach offset {offset} within {timeout:g} s",
                ) from None
            finally:
                if entry in self._acks:
                    self._acks.remove(entry)
            if code != ErrorCode.none:
                raise BrokerError(code, f"{self.topic}-{self.index}: leadership moved")
        if len(self.isr) < min_insync:
            raise BrokerError(
                ErrorCode.not_enough_replicas_after_append,
                f"The size of the current ISR {list(self.isr)} is insufficient to satisfy "
                f"the min.isr requirement of {min_insync} for partition "
                f"{self.topic}-{self.index}",
            )

    def _complete_acks(self) -> None:
        done = [entry for entry in self._acks if entry[0] <= self._high_watermark]
        for entry in done:
            self._acks.remove(entry)
            if not entry[1].done():
                entry[1].set_result(ErrorCode.none)

    def _fail_acks(self, code: ErrorCode) -> None:
        acks, self._acks = self._acks, []
        for _, future in acks:
            if not future.done():
                future.set_result(code)

    # The follower's side of replication.

    async def append_from_leader(self, records: bytes, leader_epoch: int, now_ms: int) -> bool:
        """Append batches fetched from the leader, verbatim, at the leader's offsets. A batch of
        a leader epoch new to this log is recorded in the epoch cache (durably) first. False if
        the partition changed role or epoch meanwhile (the data is then dropped)."""
        try:
            batches = scan_batches(records)
        except RecordsError as exc:
            raise BrokerError(exc.error_code, f"{self.topic}-{self.index}: {exc}") from exc
        if not batches:
            return True
        for header in batches:
            if header.leader_epoch > self.epochs.latest_epoch:
                self.epochs.assign(header.leader_epoch, header.base_offset)
        await self.epochs_durable()
        if self.leader is not None or self.leader_epoch != leader_epoch:
            return False
        if batches[0].base_offset != self.log.log_end_offset:
            return False
        self.log.append_replicated(bytearray(records), batches, now_ms)
        for header in batches:
            if header.producer_id != NO_PRODUCER_ID and not header.is_control:
                self.producers.record(header, header.base_offset, header.last_offset)
        self._wake_waiters()
        return True

    def follow_high_watermark(self, leader_high_watermark: int) -> None:
        """A follower's high watermark is the leader's, as far as its own log reaches."""
        candidate = min(leader_high_watermark, self.log.log_end_offset)
        self._high_watermark = max(self._high_watermark, candidate)

    def follow_log_start(self, leader_log_start_offset: int) -> bool:
        """Move the log start up to the leader's (DeleteRecords there), never past the high
        watermark; True if it moved (the caller checkpoints it)."""
        target = min(leader_log_start_offset, self._high_watermark)
        if target <= self.log.log_start_offset:
            return False
        self.log.delete_records_before(target)
        self.epochs.truncate_from_start(target)
        return True

    def truncate(self, offset: int) -> None:
        """Remove the log from `offset` on (divergent data of an older leader epoch), with its
        epoch entries; producer state is rebuilt for the log that remains."""
        if offset < self.log.log_end_offset:
            logger.info(
                "%s-%d: truncating from %d to %d (leader epoch %d)",
                self.topic,
                self.index,
                self.log.log_end_offset,
                offset,
                self.leader_epoch,
            )
            self.log.truncate_to(offset)
            self.producers = load_producer_state(self.log, self._expiration_ms)
        self._after_truncation()

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """The leader no longer has this log's end (retention moved its start past it): drop
        everything and continue at the leader's log start."""
        logger.info(
            "%s-%d: log %d..%d is not on the leader; restarting empty at %d",
            self.topic,
            self.index,
            self.log.log_start_offset,
            self.log.log_end_offset,
            offset,
        )
        self.log.truncate_fully_and_start_at(offset)
        self.producers = load_producer_state(self.log, self._expiration_ms)
        self.epochs.truncate_from_start(offset)
        self._after_truncation()

    def _after_truncation(self) -> None:
        self.epochs.truncate_from_end(self.log.log_end_offset)
        self.dedup = None
        self._high_watermark = min(self._high_watermark, self.log.log_end_offset)

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
        """Stamp the batch with the leader epoch, as Kafka does, then append it (leader only:
        leadership may have moved while the produce awaited)."""
        self.check_leader()
        set_leader_epoch(records, 0, self.leader_epoch)
        result = self.log.append(records, [batch], now_ms)
        self._wake_waiters()
        self._maybe_advance_high_watermark()
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
        """At shutdown: snapshot the producer state at the log end (not fsynced: a snapshot
        torn by a power cut is detected and the state rebuilt from an older one and the log),
        write the leader epoch cache if it changed, and save the high watermark (a torn or
        stale one is only lower than the truth, which the ISR soon corrects)."""
        self._write_snapshot(self.log.log_end_offset)
        if self.epochs.dirty:
            self.epochs.write()
        self.checkpoint_high_watermark()

    def checkpoint_high_watermark(self) -> None:
        """Save the high watermark if it moved since the last save: at shutdown and every
        `replica.high.watermark.checkpoint.interval.ms`, as Kafka does, so that a replica
        restarted after a crash starts from a recent one (a torn or stale file is only lower
        than the truth, which the ISR soon corrects)."""
        if self._high_watermark == self._checkpointed_high_watermark:
            return
        try:
            (self.log.directory / HIGH_WATERMARK_FILE).write_text(f"{self._high_watermark}\n")
        except OSError as exc:
            logger.warning("%s-%d: cannot save the high watermark: %s", self.topic, self.index, exc)
        else:
            self._checkpointed_high_watermark = self._high_watermark

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


def _read_offset(path: Path) -> int:
    """An offset saved in a file; 0 if it is missing or unreadable (a partial write)."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return 0


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
