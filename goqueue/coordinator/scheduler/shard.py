"""One partition of `__goqueue_schedule`: the scheduled messages of the target partitions that
hash to it.

The shard is the scheduler's state machine: synchronous and free of network I/O. Messages due
before the *horizon* are held in memory, in a heap by due time; later ones live in the window
files of a `BucketStore` (the only I/O here: buffered appends to a cache that replay rebuilds).
The horizon moves forward one window at a time (`advance`), and the coordinator reads the
window that just came near and hands its messages back (`admit`).

Delivery takes due messages out of the heap (`take_due`), writes an intent for each target
partition (`begin_delivery`) and, once the messages are durable in their topic, tombstones
them (`finish_delivery`).

Idempotent producers' records (what makes a retried park a no-op) are tombstoned by a timer
once their producer has not parked for `producer.id.expiration.ms` (`expire_producers`).
"""

from __future__ import annotations

import enum
import heapq
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from goqueue.broker.producer_state import INT32_MAX, in_sequence, last_sequence
from goqueue.coordinator.runtime import Record, Result, Timer
from goqueue.coordinator.scheduler.buckets import BucketStore, Frame
from goqueue.coordinator.scheduler.records import (
    CANCELLED,
    INTENT_PREFIX,
    MESSAGE_PREFIX,
    PRODUCER_PREFIX,
    Intent,
    ParkedBatches,
    ProducerBatch,
    RecordFormatError,
    decode_cancel,
    decode_intent,
    decode_parked_batches,
    encode_cancel,
    encode_intent,
    encode_parked_batches,
    intent_key,
    message_key,
    parse_intent_key,
    peek_message,
    producer_key,
    record_kind,
    tombstones,
)

logger = logging.getLogger(__name__)

TopicPartition = tuple[str, int]
EXPIRE_PRODUCERS_TIMER = "expire-producers"
EXPIRED_PER_RUN = 10_000
"""Most producer records one expiration run tombstones (one small batch, a short hold of the
event loop); if more expired, the next run follows at once."""


@dataclass(frozen=True, slots=True)
class ProducerExpiration:
    """When producer records expire (`producer.id.expiration.ms`) and how often a shard looks
    (`producer.id.expiration.check.interval.ms`), the broker's settings for its own state."""

    expiration_ms: int
    check_interval_ms: int


@dataclass(frozen=True, slots=True)
class Scheduled:
    """A pending message held in memory; `value` is its encoded schedule log value."""

    schedule_id: str
    topic: str
    partition: int
    due_ms: int
    offset: int
    value: bytes


class CancelOutcome(enum.Enum):
    CANCELLED = "cancelled"
    NOT_FOUND = "not_found"
    DELIVERING = "delivering"
    """Too late: the message is being appended to its topic."""


class ScheduleShard:
    """Pending messages of one schedule partition: near ones in memory, far ones on disk."""

    def __init__(
        self,
        store: BucketStore,
        window_ms: int,
        now_ms: int,
        timer: Timer,
        expiration: ProducerExpiration,
        on_loaded: Callable[[], None] = lambda: None,
        on_unloaded: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._timer = timer
        self._expiration = expiration
        self._loaded_hook = on_loaded
        self._unloaded_hook = on_unloaded
        self.window_ms = window_ms
        self.horizon_ms = (now_ms // window_ms + 2) * window_ms
        """Every pending message due before this is in memory; the others are in windows."""
        self._entries: dict[str, Scheduled] = {}
        self._heap: list[tuple[int, int, str]] = []
        self._in_flight: set[str] = set()
        self.far_count = 0
        self._admitting: set[int] = set()
        self._dropped: dict[str, tuple[int, int]] = {}
        """Far messages cancelled: id -> (offset of the cancel record, due time)."""
        self.intents: dict[TopicPartition, Intent] = {}
        self.closing: set[str] = set()
        """Cancels found on replay whose message needs its tombstone written."""
        self._aside: dict[TopicPartition, list[Scheduled]] = {}
        """Due messages of targets whose last delivery is not settled yet."""
        self._producers: dict[bytes, ParkedBatches] = {}
        """Producer record key -> the idempotent producer's last parked batches."""

    # Replay.

    def replay(self, offset: int, record: Record) -> None:
        key, value = record
        try:
            if key.startswith(MESSAGE_PREFIX):
                schedule_id = key[len(MESSAGE_PREFIX) :].decode()
                if value is None:
                    self._forget(schedule_id)
                elif record_kind(value) == CANCELLED:
                    self._cancelled(offset, schedule_id, decode_cancel(value))
                else:
                    self._park(offset, schedule_id, value)
            elif key.startswith(INTENT_PREFIX):
                target = parse_intent_key(key)
                if value is None:
                    self.intents.pop(target, None)
                else:
                    self.intents[target] = decode_intent(value)
            elif key.startswith(PRODUCER_PREFIX):
                if value is None:
                    self._producers.pop(key, None)
                else:
                    self._producers[key] = decode_parked_batches(value, self._timer.now_ms())
        except (RecordFormatError, UnicodeDecodeError, ValueError) as exc:
            logger.warning("skipping unreadable schedule record at offset %d: %s", offset, exc)

    def on_loaded(self) -> None:
        """Start delivering (the coordinator's loop, for as long as this shard serves) and
        expiring producer records (the runtime cancels the timer on unload)."""
        self._schedule_expiration(self._expiration.check_interval_ms)
        self._loaded_hook()

    def on_unloaded(self) -> None:
        self._unloaded_hook()
        self._store.close()

    def _park(self, offset: int, schedule_id: str, value: bytes) -> None:
        topic, partition, due_ms = peek_message(value)
        if due_ms < self.horizon_ms:
            self._hold(Scheduled(schedule_id, topic, partition, due_ms, offset, value))
        else:
            self._store.add(self._window(due_ms), offset, schedule_id, due_ms, value)
            self.far_count += 1

    def _hold(self, entry: Scheduled) -> None:
        self._entries[entry.schedule_id] = entry
        self._push(entry)

    def _forget(self, schedule_id: str) -> None:
        self._entries.pop(schedule_id, None)
        self._in_flight.discard(schedule_id)
        self.closing.discard(schedule_id)

    def _cancelled(self, offset: int, schedule_id: str, due_ms: int) -> None:
        if self._on_disk(due_ms):
            self._dropped[schedule_id] = (offset, due_ms)
            self.far_count -= 1
        else:
            self._entries.pop(schedule_id, None)
            self.closing.add(schedule_id)

    def _window(self, due_ms: int) -> int:
        return due_ms // self.window_ms

    def _on_disk(self, due_ms: int) -> bool:
        """Whether a pending message due then is in a window file (not yet in memory)."""
        return due_ms >= self.horizon_ms or self._window(due_ms) in self._admitting

    # Operations.

    def park(
        self,
        records: Sequence[Record],
        first_offset: int,
        producer: ProducerBatch | None = None,
    ) -> Result[int]:
        """Write scheduled messages (replay files each in memory or in its window); answers
        `first_offset`, where the runtime appends them. A batch of an idempotent `producer`
        parked before is answered where it was parked, and nothing is written."""
        if producer is None:
            return Result(first_offset, records)
        key = producer_key(producer.topic, producer.partition, producer.producer_id)
        now_ms = self._timer.now_ms()
        parked = self._producers.get(key, ParkedBatches(producer.producer_epoch, (), now_ms))
        earlier = parked.first_offset(producer)
        if earlier is not None:
            return Result(earlier)
        last = last_sequence(producer.base_sequence, len(records) - 1)
        noted = parked.with_batch(producer, first_offset, last, now_ms)
        return Result(first_offset, [*records, Record(key, encode_parked_batches(noted))])

    def parked_before(self, producer: ProducerBatch) -> tuple[int, int] | None:
        """The producer's newest batch parked for the target if the batch `producer` names
        directly follows it (same epoch, its last sequence + 1): (schedule log offset of its
        first record, its record count). What the target's new leader adopts into its
        producer state when that batch is out of sequence there."""
        parked = self._producers.get(
            producer_key(producer.topic, producer.partition, producer.producer_id)
        )
        if (
            parked is None
            or not parked.batches
            or parked.last_sequence < 0
            or parked.producer_epoch != producer.producer_epoch
            or not in_sequence(parked.last_sequence, producer.base_sequence)
        ):
            return None
        base_sequence, first_offset = parked.batches[-1]
        return first_offset, (parked.last_sequence - base_sequence) % (INT32_MAX + 1) + 1

    def expire_producers(self) -> Result[None]:
        """Tombstone the records of producers that have not parked here for the expiration
        time (a timer operation, run again every check interval). A live producer parks
        more often and keeps its record, so its retries stay no-ops; an expired one that
        comes back parks as a new producer would, as Kafka accepts it once its state is
        gone."""
        now_ms = self._timer.now_ms()
        expired = [
            key
            for key, parked in self._producers.items()
            if parked.expired(now_ms, self._expiration.expiration_ms)
        ]
        more = len(expired) > EXPIRED_PER_RUN
        self._schedule_expiration(0 if more else self._expiration.check_interval_ms)
        if expired:
            logger.info("expiring %d idle producer records", min(len(expired), EXPIRED_PER_RUN))
        return Result(None, [Record(key, None) for key in expired[:EXPIRED_PER_RUN]])

    def _schedule_expiration(self, delay_ms: int) -> None:
        self._timer.schedule(EXPIRE_PRODUCERS_TIMER, delay_ms, self.expire_producers)

    def cancel(self, schedule_id: str, far_due_ms: int | None) -> Result[CancelOutcome]:
        """Cancel a pending message. `far_due_ms` is the due time the coordinator found for it
        in a window file (None if it found none)."""
        if schedule_id in self._in_flight:
            return Result(CancelOutcome.DELIVERING)
        if schedule_id in self._entries:
            return Result(CancelOutcome.CANCELLED, tombstones([schedule_id]))
        if (
            far_due_ms is not None
            and self._on_disk(far_due_ms)
            and schedule_id not in self._dropped
        ):
            record = Record(message_key(schedule_id), encode_cancel(far_due_ms))
            return Result(CancelOutcome.CANCELLED, [record])
        return Result(CancelOutcome.NOT_FOUND)

    def take_due(self, now_ms: int, limit: int, id_bytes: int = 2**62) -> list[Scheduled]:
        """Up to `limit` messages due by `now_ms`, earliest first, now in flight; at most
        about `id_bytes` of ids, which bounds the intent and tombstone batches of a round."""
        taken: list[Scheduled] = []
        while self._heap and self._heap[0][0] <= now_ms and len(taken) < limit and id_bytes > 0:
            _, offset, schedule_id = heapq.heappop(self._heap)
            entry = self._entries.get(schedule_id)
            if entry is None or entry.offset != offset or schedule_id in self._in_flight:
                continue
            self._in_flight.add(schedule_id)
            taken.append(entry)
            id_bytes -= len(schedule_id)
        return taken

    def release(self, entries: Iterable[Scheduled]) -> None:
        """Put back messages whose delivery failed, to be tried again (not those set aside)."""
        for entry in entries:
            if (
                self._entries.get(entry.schedule_id) is entry
                and entry.schedule_id in self._in_flight
            ):
                self._in_flight.discard(entry.schedule_id)
                self._push(entry)

    def _push(self, entry: Scheduled) -> None:
        heapq.heappush(self._heap, (entry.due_ms, entry.offset, entry.schedule_id))

    def set_aside(self, entries: Iterable[Scheduled]) -> None:
        """Keep due messages out of delivery (still pending and cancellable) while their
        target's last delivery is not settled: a new intent would replace the open one."""
        for entry in entries:
            self._in_flight.discard(entry.schedule_id)
            self._aside.setdefault((entry.topic, entry.partition), []).append(entry)

    def restore(self, target: TopicPartition) -> None:
        """The target's delivery is settled: its messages set aside can be delivered."""
        for entry in self._aside.pop(target, []):
            if self._entries.get(entry.schedule_id) is entry:
                self._push(entry)

    def begin_delivery(self, intents: dict[TopicPartition, Intent]) -> Result[None]:
        return Result(
            None,
            [Record(intent_key(*target), encode_intent(i)) for target, i in intents.items()],
        )

    def finish_delivery(self, done: Mapping[TopicPartition, Sequence[str]]) -> Result[None]:
        """The messages are durable in their topics: tombstone them and close the intents."""
        records: list[Record] = []
        for target, schedule_ids in done.items():
            records.extend(tombstones(schedule_ids))
            records.append(Record(intent_key(*target), None))
        return Result(None, records)

    def drop(self, schedule_ids: Sequence[str]) -> Result[None]:
        """Tombstone messages that cannot be delivered (their topic is gone) or whose cancel
        was found on replay."""
        return Result(None, tombstones(schedule_ids))

    # The horizon.

    def advance(self, now_ms: int) -> int | None:
        """Move the horizon one window forward once it is less than a window ahead; returns
        the window whose messages the coordinator must read and `admit`."""
        if self.horizon_ms - now_ms >= self.window_ms:
            return None
        window = self._window(self.horizon_ms)
        self.horizon_ms += self.window_ms
        self._admitting.add(window)
        self._store.seal(window)
        return window

    def admit(self, window: int, frames: Sequence[Frame]) -> Result[None]:
        """Hold the messages read from a window's file, except the cancelled ones, whose
        tombstones are written now."""
        self._admitting.discard(window)
        cancelled = {
            schedule_id
            for schedule_id, (_, due_ms) in self._dropped.items()
            if self._window(due_ms) == window
        }
        for frame in frames:
            dropped = self._dropped.get(frame.schedule_id)
            if dropped is not None and dropped[0] > frame.offset:
                continue
            topic, partition, due_ms = peek_message(frame.value)
            self._hold(
                Scheduled(frame.schedule_id, topic, partition, due_ms, frame.offset, frame.value)
            )
            self.far_count -= 1
        for schedule_id in cancelled:
            del self._dropped[schedule_id]
        return Result(None, tombstones(sorted(cancelled)))

    # Queries.

    def get(self, schedule_id: str) -> Scheduled | None:
        return self._entries.get(schedule_id)

    def delivering(self, schedule_id: str) -> bool:
        return schedule_id in self._in_flight

    def is_cancelled(self, schedule_id: str) -> bool:
        return schedule_id in self._dropped

    def next_due_ms(self) -> int | None:
        while self._heap:
            due_ms, offset, schedule_id = self._heap[0]
            entry = self._entries.get(schedule_id)
            if entry is not None and entry.offset == offset and schedule_id not in self._in_flight:
                return due_ms
            heapq.heappop(self._heap)
        return None

    def in_memory(self) -> Iterator[Scheduled]:
        return iter(self._entries.values())

    @property
    def pending(self) -> int:
        return len(self._entries) + self.far_count

    def due_count(self, now_ms: int) -> int:
        """Messages due by now and not yet delivered (the scheduler's backlog)."""
        return sum(1 for entry in self._entries.values() if entry.due_ms <= now_ms)
