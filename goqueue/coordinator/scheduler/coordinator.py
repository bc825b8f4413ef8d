"""The scheduler service: parks delayed records, delivers them when due, cancels and lists them.

Each target partition's messages live in the shard of `__goqueue_schedule` that
`<topic>-<partition>` hashes to, so one produce writes one batch to one shard. Every shard has
a delivery loop that moves the horizon forward (reading the window files that come near) and
appends due messages to their topics.

In a cluster a shard lives on the leader of its schedule partition, which need not lead the
target partitions that hash to it. The target's leader (where the delayed record is produced)
sends the park on to the shard's leader (`forward.py`, through `broker.peers`), and the shard's
leader appends due messages on the target's leader: locally when it leads the target too,
else with a Produce (acks=all) through `broker.peers`. Cancels ask every shard on its leader.

Exactly once. A delivery round for a target partition is: (1) write and fsync an intent
record holding where the target's log ended (its log end offset here; on a remote leader its
high watermark, below which no leader change moves an offset) and the ids about to be
appended; (2) append the messages, each carrying its `goqueue.schedule-id` header, durably on
every in-sync replica; (3) tombstone the messages and the intent. A crash before (1) is
durable leaves the messages pending and nothing appended; a crash, a move of the shard's
leadership or a failed append (which may have happened: a lost connection, a timeout) after
it leaves an open intent. Before delivering again the scheduler settles it: it waits until
the target's log, as it ends then, is on every in-sync replica (so a failed append is either
committed or truncated) and reads it from the intent's offset: ids it finds there were
appended (tombstoned now), the others are still pending and delivered again. Nothing is
appended twice, nothing due is lost.
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
from goqueue.config.catalog import (
    compression_type_for,
    max_message_bytes_for,
    min_insync_replicas_for,
)
from goqueue.coordinator.runtime import CoordinatorRuntime, Record, Result, Timer, partition_for
from goqueue.coordinator.scheduler import forward
from goqueue.coordinator.scheduler.buckets import BucketStore, Frame
from goqueue.coordinator.scheduler.records import (
    SCHEDULE_ID_HEADER,
    SCHEDULE_TOPIC,
    SCHEDULED_AT_HEADER,
    Intent,
    Message,
    ParkRequest,
    ProducerBatch,
    decode_message,
    encode_message,
    message_key,
)
from goqueue.coordinator.scheduler.shard import (
    CancelOutcome,
    ProducerExpiration,
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
    from goqueue.broker.partition import Partition
    from goqueue.metadata.image import MetadataImage

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
FORWARD_TIMEOUT_S = 10.0
"""How long a park or cancel sent on to a shard's leader retries while leadership moves."""
DELIVERY_TIMEOUT_S = 10.0
"""How long an append of due messages waits for the target's in-sync replicas."""
SETTLE_TIMEOUT_S = 10.0
"""How long settling an intent waits for the target's high watermark to reach its log end."""
SETTLE_POLL_S = 0.1
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
        self._expiration = ProducerExpiration(
            settings.producer_id_expiration_ms, settings.producer_id_expiration_check_interval_ms
        )
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

    @property
    def broker(self) -> Broker:
        return self._broker

    def _new_shard(self, index: int, timer: Timer) -> ScheduleShard:
        """A shard for a partition this broker now leads; its delivery loop runs from when it
        has loaded until it is unloaded (leadership moved, or the broker stops)."""
        store = BucketStore(self._buckets_dir / str(index))
        self._stores[index] = store
        shard = ScheduleShard(
            store,
            self._window_ms,
            timer.now_ms(),
            timer,
            self._expiration,
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

    async def park(
        self,
        topic: str,
        partition: int,
        messages: Sequence[ParkRequest],
        producer: ProducerBatch | None = None,
    ) -> int:
        """Park messages in their shard, durably: here if this broker leads it, else sent on to
        its leader. Returns the schedule log offset of the first (what the producer is
        answered)."""
        index = self.shard_for(topic, partition)
        if self._leads(index):
            return await self.park_here(index, topic, partition, messages, producer)
        batch = forward.park_batch(messages, producer)
        return await self._forward(index, batch)

    async def park_here(
        self,
        index: int,
        topic: str,
        partition: int,
        messages: Sequence[ParkRequest],
        producer: ProducerBatch | None = None,
    ) -> int:
        """Write messages to a shard this broker leads. A message without an id gets
        `<topic>-<partition>@<offset>`; a batch of an idempotent `producer` parked before is
        answered with its first answer."""
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
            return shard.park(records, first, producer)

        first_offset = await self.runtime.write(index, operation)
        wakeup = self._wakeups.get(index)
        if wakeup is not None:
            wakeup.set()
        return first_offset

    async def parked_before(self, producer: ProducerBatch) -> tuple[int, int] | None:
        """The idempotent producer's newest batch parked for its target partition if
        `producer`'s batch directly follows it: (schedule log offset of its first record, its
        record count), asked of the shard's leader. The target's leader adopts it when that
        batch is out of sequence in its producer state (a new leader never saw parked
        batches)."""
        index = self.shard_for(producer.topic, producer.partition)
        if self._leads(index):
            return self.parked_before_here(index, producer)
        answer = await self._forward(index, forward.sequence_query_batch(producer))
        return forward.parse_sequence_answer(answer)

    def parked_before_here(self, index: int, producer: ProducerBatch) -> tuple[int, int] | None:
        return self.runtime.shard(index).parked_before(producer)

    def _leads(self, index: int) -> bool:
        """Whether this broker leads the shard (or nobody does, or the schedule log is not
        created yet: then the local runtime gives the error to answer)."""
        if SCHEDULE_TOPIC not in self._broker.image.topics:
            return True
        leader = self._broker.peers.leader_of(SCHEDULE_TOPIC, index)
        return leader is None or leader == self._broker.settings.node_id

    async def _forward(self, index: int, batch: bytes) -> int:
        return await self._broker.peers.produce(
            SCHEDULE_TOPIC, index, batch, timeout=FORWARD_TIMEOUT_S
        )

    # Cancel, show, list.

    async def cancel(self, schedule_id: str) -> CancelOutcome:
        """Cancel a pending message wherever it is: every shard is asked, on its leader (ids
        are unique, so at most one has it). A shard that cannot answer fails the cancel, with
        a retriable error, unless another one had the message."""
        answers = await asyncio.gather(
            *(self._cancel_in(index, schedule_id) for index in range(self.runtime.num_partitions)),
            return_exceptions=True,
        )
        for outcome in (CancelOutcome.CANCELLED, CancelOutcome.DELIVERING):
            if outcome in answers:
                return outcome
        for answer in answers:
            if isinstance(answer, BaseException):
                raise answer
        return CancelOutcome.NOT_FOUND

    async def _cancel_in(self, index: int, schedule_id: str) -> CancelOutcome:
        if self._leads(index):
            return await self.cancel_here(index, schedule_id)
        answer = await self._forward(index, forward.cancel_batch(schedule_id))
        if not 0 <= answer < len(forward.CANCEL_OUTCOMES):
            raise BrokerError(
                ErrorCode.unknown_server_error, f"schedule shard {index} answered {answer}"
            )
        return forward.CANCEL_OUTCOMES[answer]

    async def cancel_here(self, index: int, schedule_id: str) -> CancelOutcome:
        """Cancel a pending message of a shard this broker leads (in memory or in a window)."""
        shard = self.runtime.shard(index)
        found = None
        if shard.get(schedule_id) is None and not shard.delivering(schedule_id):
            found = await self._find_far(index, schedule_id)
        outcome = await self.runtime.write(index, _cancelling(schedule_id, found))
        if outcome is CancelOutcome.CANCELLED:
            logger.info("cancelled scheduled message %s", schedule_id)
        return outcome

    async def show(self, schedule_id: str) -> PendingView | None:
        """A pending message with its contents, None if no shard this broker leads has it
        pending (the HTTP API asks every broker)."""
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
        """Pending messages of the shards this broker leads in due order (of `topic` only, if
        given), at most `limit`."""
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
        """The delivery loop of one loaded shard: settle open intents, deliver and admit. A
        target whose intent cannot be settled yet (its leader is unreachable) is tried again
        every RETRY_WAIT_S while the other targets are delivered; a failure is logged and the
        step retried: the loop ends only when the shard unloads."""
        wakeup = self._wakeups[index]
        settle_at = 0.0
        while True:
            try:
                unsettled = shard.intents or shard.closing
                if (
                    unsettled
                    and time.monotonic() >= settle_at
                    and not await self._recover(index, shard)
                ):
                    settle_at = time.monotonic() + RETRY_WAIT_S
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
            if shard.intents:
                wait_ms = min(wait_ms, (settle_at - time.monotonic()) * 1000)
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
            await self._deliver(index, shard, due)
        except BaseException:
            shard.release(due)
            raise
        return True

    async def _deliver(self, index: int, shard: ScheduleShard, due: Sequence[Scheduled]) -> None:
        """One round: intents, appends (here for targets this broker leads, else on their
        leaders with acks=all), tombstones. A target that fails (its leader is unreachable)
        does not hold back the others: theirs are tombstoned, then the failure is raised and
        the loop settles what is left open. Messages of a target whose intent is still open
        are set aside until it is settled (a new intent would replace it)."""
        by_target: dict[TopicPartition, list[Scheduled]] = {}
        for entry in due:
            target = (entry.topic, entry.partition)
            if target in shard.intents:
                shard.set_aside([entry])
            else:
                by_target.setdefault(target, []).append(entry)
        image = self._broker.image
        gone = [e.schedule_id for t, es in by_target.items() if not _exists(image, t) for e in es]
        if gone:
            logger.warning("dropping %d scheduled messages of deleted partitions", len(gone))
            await self.runtime.write(index, lambda s: s.drop(gone))
        targets = [t for t in by_target if _exists(image, t)]
        local = {t: p for t in targets if (p := self._local_leader(t)) is not None}
        starts = await asyncio.gather(
            *(self._start_of(t, local.get(t)) for t in targets), return_exceptions=True
        )
        failures = [start for start in starts if isinstance(start, BaseException)]
        intents = {
            target: Intent(start, tuple(e.schedule_id for e in by_target[target]))
            for target, start in zip(targets, starts, strict=True)
            if not isinstance(start, BaseException)
        }
        await self.runtime.write(index, lambda s: s.begin_delivery(intents))
        now_ms = _now_ms()
        appends = await asyncio.gather(
            *(self._append(t, by_target[t], now_ms, local.get(t)) for t in intents),
            return_exceptions=True,
        )
        failures += [result for result in appends if isinstance(result, BaseException)]
        done = {
            target: [e.schedule_id for e in by_target[target]]
            for target, result in zip(intents, appends, strict=True)
            if not isinstance(result, BaseException)
        }
        await self.runtime.write(index, lambda s: s.finish_delivery(done))
        delivered_ms = _now_ms()
        for target in done:
            for entry in by_target[target]:
                self.lateness.observe(max(delivered_ms - entry.due_ms, 0) / 1000)
        if failures:
            raise failures[0]

    def _local_leader(self, target: TopicPartition) -> Partition | None:
        partition = self._broker.hosted_partition(*target)
        return partition if partition is not None and partition.is_leader else None

    async def _start_of(self, target: TopicPartition, local: Partition | None) -> int:
        """Where the intent starts: the log end of a partition this broker leads; else the
        leader's high watermark, below which no leader change moves an offset (a new leader's
        log may end before the old one's), so the messages land after it wherever they land."""
        if local is not None:
            return local.log.log_end_offset
        return (await self._broker.peers.offsets(*target)).high_watermark

    async def _append(
        self,
        target: TopicPartition,
        entries: Sequence[Scheduled],
        now_ms: int,
        local: Partition | None,
    ) -> None:
        """Append due messages to their partition as an acks=all produce would (refused while
        fewer than min.insync.replicas are in sync; done once fsynced and on every in-sync
        replica): the local fast path if this broker led it when the round started (and
        still does), else Produce with acks=all on its leader through `broker.peers`."""
        configs = self._broker.image.topics[target[0]].configs
        codec = TOPIC_CODECS.get(compression_type_for(configs, self._broker.settings))
        limit = min(max_message_bytes_for(configs, self._broker.settings), _BATCH_BYTES)
        batches = await asyncio.to_thread(
            _build_batches, entries, now_ms, codec or Compression.none, limit
        )
        if local is None:
            for batch in batches:
                await self._broker.peers.produce(*target, batch, timeout=DELIVERY_TIMEOUT_S)
            return
        local.check_leader()
        min_insync = min_insync_replicas_for(configs, self._broker.settings)
        if len(local.isr) < min_insync:
            raise BrokerError(
                ErrorCode.not_enough_replicas,
                f"{target[0]}-{target[1]}: in-sync replicas {list(local.isr)} are fewer than "
                f"min.insync.replicas={min_insync}",
            )
        for batch in batches:
            local.append(bytearray(batch), read_header(batch), now_ms)
        await self._replicated(local, min_insync)

    async def _replicated(self, partition: Partition, min_insync: int = 1) -> None:
        """Wait until the partition's log, as it ends now, is fsynced and on every in-sync
        replica (at once on a single node); as acks=all, an error if fewer than `min_insync`
        replicas are in sync."""
        log = partition.log
        end = log.log_end_offset
        await self._broker.flusher.flush(log, end)
        await partition.wait_replicated(end, DELIVERY_TIMEOUT_S, min_insync)

    async def _recover(self, index: int, shard: ScheduleShard) -> bool:
        """Settle the intents a crash, a leadership move or a failed round left open, and write
        the tombstones of cancels replay found; True if every intent is settled."""
        done: dict[TopicPartition, list[str]] = {}
        image = self._broker.image
        for target, intent in list(shard.intents.items()):
            pending = {i for i in intent.ids if shard.get(i) is not None}
            appended: set[str] = set()
            if pending and _exists(image, target):
                try:
                    appended = await self._appended(target, intent.start, pending)
                except Exception as exc:
                    _log_failure(index, f"settling {target[0]}-{target[1]}", exc)
                    continue
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
            for target in done:
                shard.restore(target)
        if shard.closing:
            closing = sorted(shard.closing)
            await self.runtime.write(index, lambda s: s.drop(closing))
        return not shard.intents

    async def _appended(self, target: TopicPartition, start: int, wanted: set[str]) -> set[str]:
        """Which of `wanted` the target partition holds from `start`, reading its log as it ends
        now once all of it is on every in-sync replica: a record of a failed append above the
        high watermark is then either committed, and found, or truncated, and delivered
        again."""
        local = self._local_leader(target)
        if local is not None:
            await self._replicated(local)
            return await appended_ids(local.log, start, wanted)
        peers = self._broker.peers
        end = (await peers.offsets(*target)).log_end_offset
        found: set[str] = set()
        offset = start
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while offset < end:
            piece = await peers.read(*target, offset)
            if piece.records:
                next_offset = await asyncio.to_thread(_collect_ids, piece.records, wanted, found)
                if next_offset <= offset:
                    raise BrokerError(
                        ErrorCode.corrupt_message,
                        f"{target[0]}-{target[1]}: no whole batch at offset {offset}",
                    )
                offset = next_offset
            elif piece.log_start_offset > offset:
                offset = piece.log_start_offset
            elif time.monotonic() < deadline:
                await asyncio.sleep(SETTLE_POLL_S)
            else:
                raise BrokerError(
                    ErrorCode.request_timed_out,
                    f"{target[0]}-{target[1]}: the high watermark stayed below {end}",
                )
        return found


def _log_failure(index: int, what: str, exc: Exception) -> None:
    """Expected refusals (leadership moved, a full disk) in one line; anything else with its
    traceback."""
    if isinstance(exc, BrokerError | OSError):
        logger.warning("schedule shard %d: %s failed, retrying: %s", index, what, exc)
    else:
        logger.exception("schedule shard %d: %s failed, retrying", index, what)


def _cancelling(
    schedule_id: str, found: tuple[int, int] | None
) -> Callable[[ScheduleShard], Result[CancelOutcome]]:
    due_ms = None if found is None else found[1]
    return lambda shard: shard.cancel(schedule_id, due_ms)


def _exists(image: MetadataImage, target: TopicPartition) -> bool:
    info = image.topics.get(target[0])
    return info is not None and 0 <= target[1] < info.partitions


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
