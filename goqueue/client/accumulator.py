"""The producer's buffer: records grouped into per-partition batches, inside a memory budget.

`send` appends records here; the sender drains whole batches. Memory is reserved per record (its
estimated encoded size) before it is appended and given back when its batch completes, so a
producer that outpaces the broker waits in `MemoryPool.reserve` instead of growing without
bound: that wait is the backpressure `max_block_ms` bounds.
"""

import asyncio
import datetime
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from goqueue.client.errors import ClientError, KafkaTimeoutError
from goqueue.client.metadata import TopicPartition
from goqueue.client.produce_protocol import estimated_size
from goqueue.client.record_metadata import RecordMetadata
from goqueue.records.builder import NewRecord, build_batch
from goqueue.records.compression import Compression

NO_SEQUENCE = -1
NO_PRODUCER_ID = -1
NO_EPOCH = -1


class MemoryPool:
    """A byte budget handed out first come, first served."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.available = total
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def exhausted(self) -> bool:
        """Whether someone waits for memory: batches should go out now, not after lingering."""
        return bool(self._waiters)

    def try_reserve(self, size: int) -> bool:
        """Take `size` bytes if they are free and nobody waits before us."""
        if not self._waiters and size <= self.available:
            self.available -= size
            return True
        return False

    async def reserve(self, size: int, timeout: float) -> None:
        """Take `size` bytes, waiting up to `timeout` seconds for them to be released."""
        if self.try_reserve(size):
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (size, waiter)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(max(timeout, 0.0)):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self.release(size)
            else:
                self._waiters.remove(entry)
                self._grant()
            if isinstance(exc, TimeoutError):
                raise KafkaTimeoutError(
                    f"no room for {size} bytes in buffer_memory ({self.total} bytes) within"
                    f" max_block_ms: the broker is not keeping up or not reachable"
                ) from None
            raise

    def release(self, size: int) -> None:
        self.available += size
        self._grant()

    def _grant(self) -> None:
        while self._waiters and self._waiters[0][0] <= self.available:
            size, waiter = self._waiters.popleft()
            self.available -= size
            waiter.set_result(None)


@dataclass(eq=False)
class ProducerBatch:
    """Records of one partition sent together, with one delivery future per record."""

    tp: TopicPartition
    created: float
    records: list[NewRecord] = field(default_factory=list)
    futures: list[asyncio.Future[RecordMetadata]] = field(default_factory=list)
    size: int = 0
    attempts: int = 0
    retry_at: float = 0.0
    drain_order: int = -1
    """When the batch was first drained: retried batches go back in this order."""
    base_sequence: int = NO_SEQUENCE
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_EPOCH
    encoded: bytes | None = None
    last_error: ClientError | None = None
    settled: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    """Resolved when every record of the batch is delivered or failed, or when the batch is
    split (then its `parts` carry on): what `flush` waits for, one future per batch."""
    parts: tuple["ProducerBatch", ...] = ()

    async def wait_settled(self) -> None:
        await self.settled
        for part in self.parts:
            await part.wait_settled()

    def mark_settled(self, parts: tuple["ProducerBatch", ...] = ()) -> None:
        self.parts = parts
        if not self.settled.done():
            self.settled.set_result(None)

    def add(self, record: NewRecord, size: int, future: asyncio.Future[RecordMetadata]) -> None:
        self.records.append(record)
        self.futures.append(future)
        self.size += size

    def encode(self, compression: Compression) -> bytes:
        """The batch's wire bytes, built once and resent unchanged by retries."""
        if self.encoded is None:
            self.encoded = build_batch(
                self.records,
                compression=compression,
                producer_id=self.producer_id,
                producer_epoch=self.producer_epoch,
                base_sequence=self.base_sequence,
            )
        return self.encoded

    def forget_sequence(self) -> None:
        """Drop the producer id and sequence (a new producer id renumbers unsent batches)."""
        self.base_sequence = NO_SEQUENCE
        self.producer_id = NO_PRODUCER_ID
        self.producer_epoch = NO_EPOCH
        self.encoded = None

    def split(self) -> tuple["ProducerBatch", "ProducerBatch"]:
        """Two halves of the batch with the sequence numbers the whole had, so batches sent
        after it stay in sequence (Kafka's answer to MESSAGE_TOO_LARGE)."""
        half = len(self.records) // 2
        sizes = [estimated_size(record) for record in self.records]
        halves = []
        for start, stop in ((0, half), (half, len(self.records))):
            part = ProducerBatch(
                self.tp,
                self.created,
                self.records[start:stop],
                self.futures[start:stop],
                sum(sizes[start:stop]),
                attempts=self.attempts,
                drain_order=self.drain_order,
                producer_id=self.producer_id,
                producer_epoch=self.producer_epoch,
            )
            if self.base_sequence != NO_SEQUENCE:
                part.base_sequence = (self.base_sequence + start) % (1 << 31)
            halves.append(part)
        return halves[0], halves[1]

    def complete(self, base_offset: int, log_append_time: datetime.datetime | None) -> None:
        """Resolve every record's future with where it landed."""
        append_ms = None if log_append_time is None else int(log_append_time.timestamp() * 1000)
        if append_ms is not None and append_ms < 0:
            append_ms = None
        topic, partition = self.tp
        offset = base_offset if base_offset >= 0 else -1
        step = 1 if base_offset >= 0 else 0
        for record, future in zip(self.records, self.futures, strict=True):
            if not future.done():
                timestamp = append_ms if append_ms is not None else record.timestamp_ms
                future.set_result(
                    RecordMetadata(topic, partition, offset, -1 if timestamp is None else timestamp)
                )
            offset += step

    def fail(self, error: BaseException) -> None:
        for future in self.futures:
            if not future.done():
                future.set_exception(error)


class RecordAccumulator:
    """Per-partition queues of batches: appends go to the last batch, drains take the first."""

    def __init__(self, batch_size: int, linger: float) -> None:
        self.batch_size = batch_size
        self.linger = linger
        self.queues: dict[TopicPartition, deque[ProducerBatch]] = {}
        self.incomplete: set[ProducerBatch] = set()
        self._drains = 0

    def opens_new_batch(self, tp: TopicPartition, size: int) -> bool:
        """Whether a record of `size` bytes would start a new batch on `tp`."""
        queue = self.queues.get(tp)
        return not queue or queue[-1].size + size > self.batch_size

    def append(
        self,
        tp: TopicPartition,
        record: NewRecord,
        size: int,
        future: asyncio.Future[RecordMetadata],
    ) -> bool:
        """Add a record; True when it started a new batch (the sender's timers change)."""
        queue = self.queues.get(tp)
        if queue is None:
            queue = self.queues[tp] = deque()
        elif queue[-1].size + size <= self.batch_size:
            queue[-1].add(record, size, future)
            return False
        batch = ProducerBatch(tp, time.monotonic())
        queue.append(batch)
        self.incomplete.add(batch)
        batch.add(record, size, future)
        return True

    def sendable(self, tp: TopicPartition, now: float, hurry: bool) -> tuple[bool, float]:
        """Whether the head batch of `tp` may go out now (full, lingered long enough, or
        `hurry`: flushing, closing or out of memory), else when it may."""
        queue = self.queues[tp]
        head = queue[0]
        if head.retry_at > now:
            return False, head.retry_at
        ready_at = head.created + self.linger
        full = len(queue) > 1 or head.size >= self.batch_size
        return hurry or full or head.attempts > 0 or now >= ready_at, ready_at

    def pop(self, tp: TopicPartition) -> ProducerBatch:
        """Take the head batch of `tp` for sending."""
        queue = self.queues[tp]
        batch = queue.popleft()
        if not queue:
            del self.queues[tp]
        if batch.drain_order < 0:
            batch.drain_order = self._drains
            self._drains += 1
        return batch

    def requeue(self, *batches: ProducerBatch) -> None:
        """Put batches back for a retry, ahead of newer ones and in their original order."""
        for batch in batches:
            queue = self.queues.setdefault(batch.tp, deque())
            position = 0
            while position < len(queue) and 0 <= queue[position].drain_order <= batch.drain_order:
                position += 1
            queue.insert(position, batch)

    def done(self, batch: ProducerBatch) -> None:
        self.incomplete.discard(batch)

    def queued(self) -> Iterator[ProducerBatch]:
        for queue in self.queues.values():
            yield from queue

    def expire(self, now: float, delivery_timeout: float) -> list[ProducerBatch]:
        """Remove and return queued batches older than the delivery timeout."""
        expired = []
        for tp in list(self.queues):
            queue = self.queues[tp]
            while queue and now >= queue[0].created + delivery_timeout:
                expired.append(queue.popleft())
            if not queue:
                del self.queues[tp]
        return expired


def expired_error(batch: ProducerBatch, delivery_timeout: float) -> KafkaTimeoutError:
    """Kafka's words for a batch given up on: how many records, and the last error seen."""
    reason = f": last error: {batch.last_error}" if batch.last_error else ""
    return KafkaTimeoutError(
        f"expiring {len(batch.records)} record(s) for {batch.tp.topic}-{batch.tp.partition}:"
        f" {delivery_timeout * 1000:.0f} ms has passed since batch creation{reason}"
    )
