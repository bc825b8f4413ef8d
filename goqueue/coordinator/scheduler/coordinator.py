"""The scheduler service: parks delayed records, delivers them when due, cancels and lists them.

Each target partition's messages live in the shard of `__goqueue_schedule` that
`<topic>-<partition>` hashes to, so one produce writes one batch to one shard. Every shard has
a delivery loop that moves the horizon forward (reading the window files that come near) and
appends due messages to their topics.

Exactly once. A delivery round for a target partition is: (1) write and fsync an intent
record holding the target's log end offset and the ids about to be appended; (2) append the
messages, each carrying its `goqueue.schedule-id` header, and fsync the target; (3) tombstone
the messages and the intent. A crash before (1) is durable leaves the messages pending and
nothing appended; a crash after it leaves an open intent, and on load the scheduler reads the
target partition from the intent's offset: ids it finds there were appended (tombstoned now),
the others are still pending and delivered again. Nothing is appended twice, nothing due is
lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from kio.schema.errors import ErrorCode
from prometheus_client import Histogram

from goqueue.broker.errors import BrokerError
from goqueue.config.catalog import compression_type_for, max_message_bytes_for
from goqueue.coordinator.runtime import CoordinatorRuntime, Record, Result, Timer, partition_for
from goqueue.coordinator.scheduler.buckets import BucketStore, Frame
from goqueue.coordinator.scheduler.records import (
    SCHEDULE_ID_HEADER,
    SCHEDULE_TOPIC,
    SCHEDULED_AT_HEADER,
    Intent,
    Message,
    decode_message,
    encode_message,
    message_key,
)
from goqueue.coordinator.scheduler.shard import (
    CancelOutcome,
    Scheduled,
    ScheduleShard,
    TopicPartition,
)
from goqueue.log.partition_log import PartitionLog
from goqueue.observability.scheduler import LATENESS_BUCKETS_S, SchedulerCollector
from goqueue.records.batch import iter_batches, read_header
from goqueue.records.builder import NewRecord, build_batch
from goqueue.records.compression import Compression
from goqueue.records.reader import batch_records
from goqueue.records.recompress import TOPIC_CODECS

if TYPE_CHECKING:
    from goqueue.broker.broker import Broker

logger = logging.getLogger(__name__)

T = TypeVar("T")
ROUND_LIMIT = 20_000
"""Most messages one delivery round takes: bounds the memory of a round and how long its
synchronous parts (taking, tombstoning) hold the event loop. Each round costs two fsyncs of
its own, so in `bench/delayed.py` rounds of 5,000 appended a burst of 100,000 later (all of
it after 6.8 s instead of 4.2 to 5.5 s, at similar load) than rounds of 20,000."""
ROUND_ID_BYTES = 2 * 1024 * 1024
"""Most bytes of ids one round takes: its intent and tombstones must fit in one batch."""
SCHEDULE_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
"""`max.message.bytes` of `__goqueue_schedule`: room for a round's intent and tombstones
(ids of up to 255 bytes) and for a parked batch, which is stored uncompressed."""
IDLE_WAIT_S = 1.0
RETRY_WAIT_S = 1.0
BUCKETS_DIR = "__scheduler"
"""Under the data directory; not a partition directory name, so the log manager ignores it."""
_BATCH_BYTES = 1024 * 1024
_RECORD_OVERHEAD = 64
"""Bytes a record may take beyond its encoded message and id (varints, the added headers)."""
READ_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class PendingView:
    """A pending message as `list` and `show` report it."""

    schedule_id: str
    topic: str
    partition: int
    due_ms: int
    state: str
    message: Message | None = None


class Scheduler:
    """Delayed and scheduled messages of the topics this broker hosts."""

    def __init__(self, broker: Broker) -> None:
        settings = broker.settings
        self._broker = broker
        self._window_ms = settings.scheduler_window_ms
        self._buckets_dir = Path(settings.data_dir) / BUCKETS_DIR
        self._stores: dict[int, BucketStore] = {}
        self._loops: dict[int, asyncio.Task[None]] = {}
        self._wakeups: dict[int, asyncio.Event] = {}
        self.runtime: CoordinatorRuntime[ScheduleShard] = CoordinatorRuntime(
            broker,
            SCHEDULE_TOPIC,
            settings.scheduler_topic_partitions,
            {
                "cleanup.policy": "compact",
                "segment.bytes": str(settings.scheduler_segment_bytes),
                "max.message.bytes": str(SCHEDULE_MAX_MESSAGE_BYTES),
            },
            self._new_shard,
        )
        self.lateness = Histogram(
            "goqueue_delayed_lateness_seconds",
            "How long after its due time a delayed message was appended to its topic.",
            buckets=LATENESS_BUCKETS_S,
            registry=broker.metrics.registry,
        )
        broker.metrics.register(SchedulerCollector(self))

    def _new_shard(self, index: int, timer: Timer) -> ScheduleShard:
        """A shard for a partition this broker now leads; its delivery loop runs from when it
        has loaded until it is unloaded (leadership moved, or the broker stops)."""
        store = BucketStore(self._buckets_dir / str(index))
        self._stores[index] = store
        shard = ScheduleShard(
            store,
            self._window_ms,
            timer.now_ms(),
            on_loaded=lambda: self._start_loop(index, shard),
            on_unloaded=lambda: self._stop_loop(index),
        )
        return shard

    def _start_loop(self, index: int, shard: ScheduleShard) -> None:
        self._stop_loop(index)
        self._wakeups[index] = asyncio.Event()
        self._loops[index] = asyncio.create_task(self._run(index, shard))

    def _stop_loop(self, index: int) -> None:
        task = self._loops.pop(index, None)
        if task is not None:
            task.cancel()

    async def start(self) -> None:
        await self.runtime.start()

    async def stop(self) -> None:
        loops = list(self._loops.values())
        await self.runtime.stop()
        for task in loops:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def shard_for(self, topic: str, partition: int) -> int:
        return partition_for(f"{topic}-{partition}", self.runtime.num_partitions)

    # Parking.

    async def park(self, topic: str, partition: int, messages: Sequence[ParkRequest]) -> int:
        """Write messages to their shard, durably; returns the schedule log offset of the first
        (what the producer is answered). A message without an id gets `<topic>-<partition>@
        <offset>`."""
        index = self.shard_for(topic, partition)
        log = self._broker.partition(SCHEDULE_TOPIC, index).log

        def operation(shard: ScheduleShard) -> Result[int]:
            first = log.log_end_offset
            records = [
                Record(
                    message_key(m.schedule_id or derived_id(topic, partition, first + delta)),
                    encode_message(m.message),
                )
                for delta, m in enumerate(messages)
            ]
            return shard.park(records, first)

        first_offset = await self.runtime.write(index, operation)
        wakeup = self._wakeups.get(index)
        if wakeup is not None:
            wakeup.set()
        return first_offset

    # Cancel, show, list.

    async def cancel(self, schedule_id: str) -> CancelOutcome:
        """Cancel a pending message wherever it is (any shard, in memory or in a window)."""
        self._check_loaded()
        for index, shard in list(self.runtime.active_shards()):
            found = None
            if shard.get(schedule_id) is None and not shard.delivering(schedule_id):
                found = await self._find_far(index, schedule_id)
            outcome = await self.runtime.write(index, _cancelling(schedule_id, found))
            if outcome is not CancelOutcome.NOT_FOUND:
                if outcome is CancelOutcome.CANCELLED:
                    logger.info("cancelled scheduled message %s", schedule_id)
                return outcome
        return CancelOutcome.NOT_FOUND

    async def show(self, schedule_id: str) -> PendingView | None:
        """A pending message with its contents, None if no shard has it pending."""
        self._check_loaded()
        for index, shard in list(self.runtime.active_shards()):
            entry = shard.get(schedule_id)
            if entry is not None:
                return _view(entry, shard.delivering(schedule_id), with_message=True)
            found = await self._find_far(index, schedule_id)
            if found is None or shard.is_cancelled(schedule_id):
                continue
            frames = await asyncio.to_thread(self._stores[index].read, found[0])
            for frame in frames:
                if frame.schedule_id == schedule_id:
                    return _frame_view(frame, with_message=True)
        return None

    async def pending(self, topic: str | None = None, limit: int = 100) -> list[PendingView]:
        """Pending messages in due order (of `topic` only, if given), at most `limit`."""
        self._check_loaded()
        shards = list(self.runtime.active_shards())
        near = sorted(
            (
                _view(entry, shard.delivering(entry.schedule_id))
                for _, shard in shards
                for entry in shard.in_memory()
                if topic is None or entry.topic == topic
            ),
            key=lambda view: (view.due_ms, view.schedule_id),
        )
        found = near[:limit]
        for index, _ in shards:
            self._stores[index].flush()
        windows = sorted({(w, i) for i, _ in shards for w in self._stores[i].windows()})
        for window, index in windows:
            if len(found) >= limit:
                break
            shard = self.runtime.shard(index)
            frames = await asyncio.to_thread(self._stores[index].read, window)
            far = sorted(
                (
                    _frame_view(frame)
                    for frame in frames
                    if not shard.is_cancelled(frame.schedule_id)
                ),
                key=lambda view: (view.due_ms, view.schedule_id),
            )
            found.extend(v for v in far if topic is None or v.topic == topic)
        return sorted(found, key=lambda view: (view.due_ms, view.schedule_id))[:limit]

    def pending_count(self) -> int:
        return sum(shard.pending for _, shard in self.runtime.active_shards())

    def due_count(self) -> int:
        now_ms = _now_ms()
        return sum(shard.due_count(now_ms) for _, shard in self.runtime.active_shards())

    def _check_loaded(self) -> None:
        if self.runtime.loading():
            raise BrokerError(
                ErrorCode.coordinator_load_in_progress, "The scheduler is still loading."
            )

    async def _find_far(self, index: int, schedule_id: str) -> tuple[int, int] | None:
        store = self._stores[index]
        store.flush()
        return await asyncio.to_thread(store.find, schedule_id)

    # Delivery.

    async def _run(self, index: int, shard: ScheduleShard) -> None:
        """The delivery loop of one loaded shard: settle open intents, then deliver and admit.
        A failure is logged and the step retried: the loop ends only when the shard unloads."""
        while True:
            try:
                await self._recover(index, shard)
                break
            except Exception as exc:
                _log_failure(index, "recovery", exc)
                await asyncio.sleep(RETRY_WAIT_S)
        wakeup = self._wakeups[index]
        while True:
            try:
                if await self._step(index, shard):
                    continue
            except Exception as exc:
                _log_failure(index, "delivery", exc)
                await asyncio.sleep(RETRY_WAIT_S)
                continue
            now_ms = _now_ms()
            next_due = shard.next_due_ms()
            wait_ms = min(
                IDLE_WAIT_S * 1000,
                shard.horizon_ms - shard.window_ms - now_ms,
                IDLE_WAIT_S * 1000 if next_due is None else next_due - now_ms,
            )
            wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), max(wait_ms, 0) / 1000)

    async def _step(self, index: int, shard: ScheduleShard) -> bool:
        """Admit the next window or deliver one round; False when there was nothing to do."""
        now_ms = _now_ms()
        window = shard.advance(now_ms)
        if window is not None:
            store = self._stores[index]
            frames = await asyncio.to_thread(store.read, window)
            await self.runtime.write(index, lambda s: s.admit(window, frames))
            await asyncio.to_thread(store.remove, window)
            logger.debug("schedule shard %d: admitted %d messages", index, len(frames))
            return True
        due = shard.take_due(now_ms, ROUND_LIMIT, ROUND_ID_BYTES)
        if not due:
            return False
        try:
            await self._deliver(index, due)
        except BaseException:
            shard.release(due)
            raise
        return True

    async def _deliver(self, index: int, due: Sequence[Scheduled]) -> None:
        by_target: dict[TopicPartition, list[Scheduled]] = {}
        for entry in due:
            by_target.setdefault((entry.topic, entry.partition), []).append(entry)
        logs: dict[TopicPartition, PartitionLog] = {}
        gone: list[str] = []
        for target, entries in by_target.items():
            try:
                logs[target] = self._broker.partition(*target).log
            except BrokerError:
                gone.extend(e.schedule_id for e in entries)
        if gone:
            logger.warning("dropping %d scheduled messages of deleted partitions", len(gone))
            await self.runtime.write(index, lambda s: s.drop(gone))
        intents = {
            target: Intent(log.log_end_offset, tuple(e.schedule_id for e in by_target[target]))
            for target, log in logs.items()
        }
        await self.runtime.write(index, lambda s: s.begin_delivery(intents))
        now_ms = _now_ms()
        flushes = []
        for target, log in logs.items():
            configs = self._broker.image.topics[target[0]].configs
            codec = TOPIC_CODECS.get(compression_type_for(configs, self._broker.settings))
            limit = min(max_message_bytes_for(configs, self._broker.settings), _BATCH_BYTES)
            batches = await asyncio.to_thread(
                _build_batches, by_target[target], now_ms, codec or Compression.none, limit
            )
            partition = self._broker.partition(*target)
            for batch in batches:
                partition.append(bytearray(batch), read_header(batch), now_ms)
            flushes.append(self._broker.flusher.flush(log, log.log_end_offset))
        await asyncio.gather(*flushes)
        done = {target: [e.schedule_id for e in by_target[target]] for target in logs}
        await self.runtime.write(index, lambda s: s.finish_delivery(done))
        delivered_ms = _now_ms()
        for entries in by_target.values():
            for entry in entries:
                self.lateness.observe(max(delivered_ms - entry.due_ms, 0) / 1000)

    async def _recover(self, index: int, shard: ScheduleShard) -> None:
        """Settle the intents a crash left open, and write the tombstones of cancels replay
        found, before the first delivery."""
        done: dict[TopicPartition, list[str]] = {}
        for target, intent in list(shard.intents.items()):
            pending = {i for i in intent.ids if shard.get(i) is not None}
            appended: set[str] = set()
            if pending:
                try:
                    log = self._broker.partition(*target).log
                except BrokerError:
                    log = None
                if log is not None:
                    appended = await appended_ids(log, intent.start, pending)
            done[target] = sorted(appended)
            logger.info(
                "schedule shard %d: %s-%d had %d messages in flight, %d of them appended",
                index,
                *target,
                len(pending),
                len(appended),
            )
        if done:
            await self.runtime.write(index, lambda s: s.finish_delivery(done))
        if shard.closing:
            closing = sorted(shard.closing)
            await self.runtime.write(index, lambda s: s.drop(closing))


def _log_failure(index: int, what: str, exc: Exception) -> None:
    """Expected refusals (leadership moved, a full disk) in one line; anything else with its
    traceback."""
    if isinstance(exc, BrokerError | OSError):
        logger.warning("schedule shard %d: %s failed, retrying: %s", index, what, exc)
    else:
        logger.exception("schedule shard %d: %s failed, retrying", index, what)


@dataclass(frozen=True, slots=True)
class ParkRequest:
    """A message to park, with the id its producer gave it (None: the scheduler derives one)."""

    schedule_id: str | None
    message: Message


def _cancelling(
    schedule_id: str, found: tuple[int, int] | None
) -> Callable[[ScheduleShard], Result[CancelOutcome]]:
    due_ms = None if found is None else found[1]
    return lambda shard: shard.cancel(schedule_id, due_ms)


def derived_id(topic: str, partition: int, offset: int) -> str:
    """The id of a message whose producer gave none: where it was parked, which the producer
    learns from the produce response (its base offset is the schedule log offset)."""
    return f"{topic}-{partition}@{offset}"


def _build_batches(
    entries: Sequence[Scheduled], now_ms: int, codec: Compression, limit: int
) -> list[bytes]:
    """The due messages as batches of at most about `limit` bytes, each record with its id and
    scheduled time in headers, stamped with the delivery time (so retention counts from when
    the message appeared in its topic, not from when it was parked)."""
    batches: list[bytes] = []
    records: list[NewRecord] = []
    size = 0
    for entry in entries:
        message = decode_message(entry.value)
        headers = [h for h in message.headers if h[0] != SCHEDULE_ID_HEADER]
        headers.append((SCHEDULE_ID_HEADER, entry.schedule_id.encode()))
        headers.append((SCHEDULED_AT_HEADER, str(entry.due_ms).encode()))
        record = NewRecord(message.key, message.value, headers, now_ms)
        record_size = _RECORD_OVERHEAD + len(entry.value) + len(entry.schedule_id)
        if records and size + record_size > limit:
            batches.append(build_batch(records, compression=codec, now_ms=now_ms))
            records, size = [], 0
        records.append(record)
        size += record_size
    if records:
        batches.append(build_batch(records, compression=codec, now_ms=now_ms))
    return batches


async def appended_ids(log: PartitionLog, start: int, wanted: set[str]) -> set[str]:
    """Which of `wanted` appear as `goqueue.schedule-id` headers in the log from `start`."""
    found: set[str] = set()
    offset, end = max(start, log.log_start_offset), log.log_end_offset
    while offset < end:
        piece = log.read(max(offset, log.log_start_offset), READ_CHUNK_BYTES, end)
        if piece is None:
            break
        data = await asyncio.to_thread(os.pread, piece.fd, piece.size, piece.position)
        next_offset = await asyncio.to_thread(_collect_ids, data, wanted, found)
        if next_offset <= offset:
            break
        offset = next_offset
    return found


def _collect_ids(data: bytes, wanted: set[str], found: set[str]) -> int:
    """Add the wanted ids the records carry to `found`; returns the offset after the last
    batch read."""
    next_offset = -1
    for header, batch in iter_batches(data):
        next_offset = header.next_offset
        if header.is_control:
            continue
        for record in batch_records(header, batch):
            for name, value in record.headers:
                if name == SCHEDULE_ID_HEADER and value is not None:
                    schedule_id = value.decode(errors="replace")
                    if schedule_id in wanted:
                        found.add(schedule_id)
    return next_offset


def _view(entry: Scheduled, delivering: bool, *, with_message: bool = False) -> PendingView:
    return PendingView(
        entry.schedule_id,
        entry.topic,
        entry.partition,
        entry.due_ms,
        "delivering" if delivering else "pending",
        decode_message(entry.value) if with_message else None,
    )


def _frame_view(frame: Frame, *, with_message: bool = False) -> PendingView:
    message = decode_message(frame.value)
    return PendingView(
        frame.schedule_id,
        message.topic,
        message.partition,
        message.due_ms,
        "pending",
        message if with_message else None,
    )


def _now_ms() -> int:
    return int(time.time() * 1000)
