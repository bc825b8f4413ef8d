"""The SDK's asyncio `Producer`, and one-shot produce helpers (`produce`, `produce_all`,
`produce_batches`) for callers that already hold whole batches, such as the CLI and the bench.
"""

import asyncio
import dataclasses
import datetime
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from goqueue.client.accumulator import MemoryPool, RecordAccumulator
from goqueue.client.cluster import DEFAULT_BOOTSTRAP, Cluster
from goqueue.client.delayed import delay_headers
from goqueue.client.errors import (
    ClientError,
    KafkaTimeoutError,
    MessageTooLargeError,
    ProducerClosedError,
    UnknownTopicOrPartitionError,
)
from goqueue.client.idempotence import MAX_IN_FLIGHT, IdempotenceState
from goqueue.client.lifecycle import AsyncClient
from goqueue.client.metadata import TopicMetadata, TopicPartition
from goqueue.client.partitioner import Partitioner
from goqueue.client.produce_protocol import (
    ACKS_ALL,
    DEFAULT_PRODUCE_TIMEOUT_MS,
    PRODUCE,
    RECORD_OVERHEAD,
    estimated_size,
    partition_responses,
    produce_request,
)
from goqueue.client.record_metadata import RecordMetadata
from goqueue.client.sender import Sender, SenderConfig
from goqueue.records.batch import HEADER_SIZE
from goqueue.records.builder import NewRecord, build_batch
from goqueue.records.compression import Compression

__all__ = [
    "ACKS_ALL",
    "DEFAULT_MAX_BATCH_BYTES",
    "PRODUCE",
    "RECORD_OVERHEAD",
    "ProduceResult",
    "Producer",
    "RecordMetadata",
    "estimated_size",
    "produce",
    "produce_all",
    "produce_batches",
    "produce_request",
    "split_batches",
]

logger = logging.getLogger(__name__)

Acks = Literal["all", -1, 0, 1]
CompressionName = Literal["gzip", "snappy", "lz4", "zstd"]
HeaderValue = bytes | str | None
Headers = Mapping[str, HeaderValue] | Sequence[tuple[str, HeaderValue]]
DeliveryCallback = Callable[[RecordMetadata | BaseException], object]

DEFAULT_BATCH_SIZE = 256 * 1024
"""Larger than the Java client's 16 KiB: a Python client pays per request and per batch more
than per byte, and the broker bounds each batch by `max.message.bytes` (1 MiB) anyway."""
DEFAULT_MAX_REQUEST_SIZE = 1_048_576
DEFAULT_BUFFER_MEMORY = 32 * 1024 * 1024


class Producer(AsyncClient):
    """An asyncio Kafka producer: `async with Producer("127.0.0.1:9092") as producer:`.

    Records are buffered per partition and sent in batches (`batch_size`, `linger_ms`) by a
    background task, one pipeline of up to `max_in_flight_requests_per_connection` requests
    per broker. Idempotence is on unless `acks` is not "all" (a producer id and sequence
    numbers let the broker drop retried duplicates and keep retries in order). `buffer_memory`
    bounds the bytes buffered: `send` waits for room (backpressure) up to `max_block_ms`, which
    also bounds the wait for a topic's metadata. A record is retried on retriable errors
    until `delivery_timeout_ms` after it was buffered (or `retries` attempts, if given), with
    exponential backoff from `retry_backoff_ms` to `retry_backoff_max_ms`.
    """

    def __init__(
        self,
        bootstrap_servers: str | Sequence[str] = DEFAULT_BOOTSTRAP,
        *,
        acks: Acks = "all",
        enable_idempotence: bool | None = None,
        compression: CompressionName | None = None,
        linger_ms: float = 5,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_request_size: int = DEFAULT_MAX_REQUEST_SIZE,
        buffer_memory: int = DEFAULT_BUFFER_MEMORY,
        max_block_ms: float = 60_000,
        retries: int | None = None,
        delivery_timeout_ms: float = 120_000,
        request_timeout_ms: float = 30_000,
        retry_backoff_ms: float = 100,
        retry_backoff_max_ms: float = 1_000,
        metadata_max_age_ms: float = 300_000,
        max_in_flight_requests_per_connection: int = MAX_IN_FLIGHT,
        partitioner: Partitioner | None = None,
        allow_auto_create_topics: bool = True,
        client_id: str | None = "goqueue-producer",
    ) -> None:
        ack_value = _acks(acks)
        idempotent = _idempotence(
            enable_idempotence, ack_value, retries, max_in_flight_requests_per_connection
        )
        if delivery_timeout_ms < linger_ms + request_timeout_ms:
            raise ValueError("delivery_timeout_ms must be at least linger_ms + request_timeout_ms")
        self._cluster = Cluster(
            bootstrap_servers, client_id=client_id, request_timeout=request_timeout_ms / 1000
        )
        self._accumulator = RecordAccumulator(min(batch_size, max_request_size), linger_ms / 1000)
        self._pool = MemoryPool(buffer_memory)
        config = SenderConfig(
            acks=ack_value,
            compression=_compression(compression),
            max_request_size=max_request_size,
            request_timeout=request_timeout_ms / 1000,
            delivery_timeout=delivery_timeout_ms / 1000,
            retries=retries,
            retry_backoff=retry_backoff_ms / 1000,
            retry_backoff_max=retry_backoff_max_ms / 1000,
            max_in_flight=max_in_flight_requests_per_connection,
            metadata_max_age=metadata_max_age_ms / 1000,
        )
        self._sender = Sender(
            self._cluster,
            self._accumulator,
            self._pool,
            config,
            IdempotenceState() if idempotent else None,
        )
        self._partitioner = partitioner or Partitioner()
        self._max_block = max_block_ms / 1000
        self._max_request_size = max_request_size
        self._retry_backoff = retry_backoff_ms / 1000
        self._auto_create = allow_auto_create_topics
        self._metadata_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def idempotent(self) -> bool:
        return self._sender.idempotence is not None

    async def start(self) -> None:
        """Reach the cluster (raises `BrokerConnectionError` if no bootstrap server answers)
        and start the background sender."""
        if self._task is not None:
            return
        if self._closed:
            raise ProducerClosedError("the producer is closed")
        await self._cluster.connect()
        self._task = asyncio.create_task(self._sender.run(), name="goqueue-producer-sender")
        self._task.add_done_callback(self._sender_stopped)

    async def close(self, timeout: float | None = None) -> None:
        """Send every buffered record, then disconnect. After `timeout` seconds (None: as long
        as delivery takes, bounded by `delivery_timeout_ms`) unsent records fail with
        `ProducerClosedError`."""
        self._closed = True
        task = self._task
        if task is None:
            await self._cluster.close()
            return
        self._sender.closing = True
        self._sender.wake()
        try:
            # asyncio.wait, not wait_for: a sender that crashed already failed every record
            # with its error, so closing raises nothing.
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if not done:
                self._sender.abort(ProducerClosedError("the producer closed before delivery"))
                await asyncio.wait({task})
        finally:
            await self._cluster.close()

    async def send(
        self,
        topic: str,
        value: bytes | str | None,
        key: bytes | str | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
        timestamp: int | None = None,
        *,
        delay: datetime.timedelta | None = None,
        deliver_at: datetime.datetime | None = None,
    ) -> RecordMetadata:
        """Send one record and wait for the broker's acknowledgement: where it landed.

        `timestamp` is in milliseconds since the epoch (default: now). Raises the
        `KafkaError` the broker answered, or `KafkaTimeoutError`.

        `delay` or `deliver_at` ask for delayed delivery (on a topic with
        `goqueue.delayed.enabled=true`): the broker parks the record and appends it to the
        topic when due. The metadata's `schedule_id` names it (for `Admin.cancel_delayed`) and
        its offset is where the broker parked it, not yet an offset of the topic.
        """
        schedule_id = None
        if delay is not None or deliver_at is not None:
            timing, schedule_id = delay_headers(topic, delay, deliver_at)
            headers = [*_headers(headers), *timing]
        future = await self.enqueue(topic, value, key, headers, partition, timestamp)
        metadata = await asyncio.shield(future)
        if schedule_id is None:
            return metadata
        return dataclasses.replace(metadata, schedule_id=schedule_id)

    async def enqueue(
        self,
        topic: str,
        value: bytes | str | None,
        key: bytes | str | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
        timestamp: int | None = None,
        *,
        on_delivery: DeliveryCallback | None = None,
    ) -> asyncio.Future[RecordMetadata]:
        """Buffer one record and return its delivery future without waiting for the broker.

        Waits only for the topic's metadata and for room in `buffer_memory` (at most
        `max_block_ms`). `on_delivery` is called with the `RecordMetadata` or the exception.
        """
        self._check_open()
        started = time.monotonic()
        record = NewRecord(
            _bytes(key),
            _bytes(value),
            _headers(headers),
            int(time.time() * 1000) if timestamp is None else timestamp,
        )
        size = estimated_size(record)
        if size + HEADER_SIZE > self._max_request_size or size > self._pool.total:
            raise MessageTooLargeError(
                f"the record is {size} bytes when serialized, larger than max_request_size"
                f" ({self._max_request_size}) or buffer_memory ({self._pool.total})"
            )
        # Fast path: a known topic and room in the buffer cost no await (no coroutine) per record.
        metadata = self._cluster.cached(topic)
        waited = metadata is None
        if metadata is None:
            metadata = await self._topic(topic, started + self._max_block)
        tp = TopicPartition(
            topic, self._choose(topic, record.key, partition, len(metadata.partitions), size)
        )
        if not self._pool.try_reserve(size):
            waited = True
            await self._pool.reserve(size, started + self._max_block - time.monotonic())
        if waited and (self._closed or self._sender.fatal is not None):
            self._pool.release(size)
            self._check_open()
        future: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        if on_delivery is not None:
            future.add_done_callback(_deliver_to(on_delivery))
        if self._accumulator.append(tp, record, size, future):
            self._sender.wake()
        return future

    async def flush(self) -> None:
        """Send every record buffered so far now and wait until each is delivered or failed."""
        batches = list(self._accumulator.incomplete)
        if not batches:
            return
        self._sender.hurry += 1
        self._sender.wake()
        try:
            for batch in batches:
                await batch.wait_settled()
        finally:
            self._sender.hurry -= 1

    def _check_open(self) -> None:
        if self._sender.fatal is not None:
            raise ProducerClosedError(f"the producer failed: {self._sender.fatal}")
        if self._closed or self._task is None:
            raise ProducerClosedError("the producer is not started or already closed")

    async def _topic(self, topic: str, deadline: float) -> TopicMetadata:
        """The topic's metadata, waiting (at most until `deadline`) for it to exist and have
        leaders, as Kafka's producer waits `max.block.ms` in `send`."""
        async with self._metadata_locks[topic]:
            while True:
                remaining = deadline - time.monotonic()
                try:
                    async with asyncio.timeout(max(remaining, 0.0)):
                        found = await self._cluster.topic(topic, auto_create=self._auto_create)
                    self._sender.topics.add(topic)
                    return found
                except TimeoutError:
                    error: ClientError | None = None
                except ClientError as exc:
                    if not exc.retriable:
                        raise
                    error = exc
                if time.monotonic() + self._retry_backoff >= deadline:
                    raise KafkaTimeoutError(
                        f"topic {topic!r} not present in metadata after"
                        f" {self._max_block * 1000:.0f} ms" + (f": {error}" if error else "")
                    )
                await asyncio.sleep(self._retry_backoff)

    def _choose(
        self, topic: str, key: bytes | None, partition: int | None, count: int, size: int
    ) -> int:
        if partition is not None:
            if not 0 <= partition < count:
                raise UnknownTopicOrPartitionError(
                    f"topic {topic!r} has no partition {partition} (it has {count})"
                )
            return partition
        chosen = self._partitioner.partition(topic, key, count)
        if key is None and self._accumulator.opens_new_batch(TopicPartition(topic, chosen), size):
            chosen = self._partitioner.on_new_batch(topic, count, chosen)
        return chosen

    def _sender_stopped(self, task: asyncio.Task[None]) -> None:
        """A sender that crashed must not leave records waiting forever."""
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        logger.error("the producer's sender failed", exc_info=error)
        self._sender.fatal = ProducerClosedError(f"the producer's sender failed: {error!r}")
        self._sender.abort(self._sender.fatal)


def _acks(acks: Acks) -> int:
    if acks == "all" or acks == -1:
        return ACKS_ALL
    if acks in (0, 1):
        return int(acks)
    raise ValueError(f"acks must be 'all', -1, 0 or 1, not {acks!r}")


def _compression(name: CompressionName | None) -> Compression:
    if name is None:
        return Compression.none
    if name not in ("gzip", "snappy", "lz4", "zstd"):
        raise ValueError(f"compression must be gzip, snappy, lz4, zstd or None, not {name!r}")
    return Compression[name]


def _idempotence(enabled: bool | None, acks: int, retries: int | None, in_flight: int) -> bool:
    """Kafka's rule: idempotence is on by default, silently off when the settings conflict
    with it, and an error when asked for explicitly alongside conflicting settings."""
    conflict = None
    if acks != ACKS_ALL:
        conflict = "acks='all'"
    elif retries == 0:
        conflict = "retries > 0"
    elif in_flight > MAX_IN_FLIGHT:
        conflict = f"max_in_flight_requests_per_connection <= {MAX_IN_FLIGHT}"
    if enabled and conflict:
        raise ValueError(f"enable_idempotence needs {conflict}")
    return enabled is not False and conflict is None


def _bytes(value: bytes | str | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


def _headers(headers: Headers | None) -> Sequence[tuple[str, bytes | None]]:
    if headers is None:
        return ()  # shared and not tracked by the garbage collector, unlike a list per record
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return [(name, _bytes(value)) for name, value in pairs]


def _deliver_to(callback: DeliveryCallback) -> Callable[[asyncio.Future[RecordMetadata]], None]:
    def deliver(future: asyncio.Future[RecordMetadata]) -> None:
        if future.cancelled():
            return
        error = future.exception()
        callback(error if error is not None else future.result())

    return deliver


DEFAULT_MAX_BATCH_BYTES = 1_000_000
"""Below the broker's default `max.message.bytes` (1048588), which bounds each batch."""


@dataclass(frozen=True, slots=True)
class ProduceResult:
    """Where a batch landed; offsets are -1 with acks=0, which gets no answer."""

    topic_partition: TopicPartition
    base_offset: int
    log_start_offset: int


def split_batches(records: Sequence[NewRecord], max_bytes: int) -> Iterator[Sequence[NewRecord]]:
    """Consecutive runs of `records` that each fit in a batch of `max_bytes` (at least one
    record per run, so an oversized record still goes out alone and gets the broker's error)."""
    start, size = 0, HEADER_SIZE
    for index, record in enumerate(records):
        record_size = estimated_size(record)
        if index > start and size + record_size > max_bytes:
            yield records[start:index]
            start, size = index, HEADER_SIZE
        size += record_size
    if start < len(records):
        yield records[start:]


async def produce(
    cluster: Cluster,
    records: Mapping[TopicPartition, Sequence[NewRecord]],
    *,
    compression: Compression = Compression.none,
    acks: int = ACKS_ALL,
    timeout_ms: int = DEFAULT_PRODUCE_TIMEOUT_MS,
) -> dict[TopicPartition, ProduceResult]:
    """Send each partition's records as one batch; raises the first partition error."""
    batches = {
        tp: build_batch(batch, compression=compression) for tp, batch in records.items() if batch
    }
    return await produce_batches(cluster, batches, acks=acks, timeout_ms=timeout_ms)


async def produce_all(
    cluster: Cluster,
    records: Mapping[TopicPartition, Sequence[NewRecord]],
    *,
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
    compression: Compression = Compression.none,
    acks: int = ACKS_ALL,
    timeout_ms: int = DEFAULT_PRODUCE_TIMEOUT_MS,
) -> None:
    """Send any number of records per partition, in order, as batches of at most
    `max_batch_bytes`: each request carries the next batch of every partition."""
    queues = {tp: deque(split_batches(batch, max_batch_bytes)) for tp, batch in records.items()}
    while queues:
        batches = {tp: queue.popleft() for tp, queue in queues.items()}
        await produce(cluster, batches, compression=compression, acks=acks, timeout_ms=timeout_ms)
        queues = {tp: queue for tp, queue in queues.items() if queue}


async def produce_batches(
    cluster: Cluster,
    batches: Mapping[TopicPartition, bytes],
    *,
    acks: int = ACKS_ALL,
    timeout_ms: int = DEFAULT_PRODUCE_TIMEOUT_MS,
) -> dict[TopicPartition, ProduceResult]:
    """Send encoded batches, one request per leader, all leaders at once."""
    by_leader = await cluster.leaders(batches)
    answers = await asyncio.gather(
        *(
            _send(cluster, node_id, {tp: batches[tp] for tp in tps}, acks, timeout_ms)
            for node_id, tps in by_leader.items()
        )
    )
    return {tp: result for answer in answers for tp, result in answer.items()}


async def _send(
    cluster: Cluster,
    node_id: int,
    batches: Mapping[TopicPartition, bytes],
    acks: int,
    timeout_ms: int,
) -> dict[TopicPartition, ProduceResult]:
    topic_ids = {tp.topic: (await cluster.topic(tp.topic)).topic_id for tp in batches}
    request = produce_request(batches, topic_ids, acks, timeout_ms)
    connection = await cluster.connection(node_id)
    if acks == 0:
        await connection.request_no_response(PRODUCE, request)
        return {tp: ProduceResult(tp, -1, -1) for tp in batches}
    response = await connection.request(
        PRODUCE, request, timeout=cluster.request_timeout + timeout_ms / 1000
    )
    results = {}
    for tp, partition in partition_responses(response, topic_ids):
        cluster.check(partition.error_code, tp.topic, tp.partition, partition.error_message)
        results[tp] = ProduceResult(tp, partition.base_offset, partition.log_start_offset)
    return results
