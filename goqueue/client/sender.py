"""The producer's background task: drains ready batches into Produce requests, one pipeline of
at most `max_in_flight` requests per broker connection, and settles every batch's outcome.

Kafka's rules, as the Java client applies them: a batch goes out when it is full, has lingered
`linger_ms`, or when someone is waiting (flush, close, a full buffer). Retriable errors put the
batch back at the head of its partition's queue, in its original order, after an exponential
backoff; a partition with a retried batch sends nothing else until its earlier requests are
answered, so retries never overtake. Errors that show stale metadata mark the topic for a
metadata refresh. MESSAGE_TOO_LARGE splits a batch in two (keeping its sequence numbers). With
idempotence, OUT_OF_ORDER_SEQUENCE_NUMBER and UNKNOWN_PRODUCER_ID are retried; when they hit the
first unacknowledged batch of a partition, or a batch that had a sequence number is given up,
the producer takes a new producer id (Kafka's epoch bump) before sending anything else.
"""

import asyncio
import datetime
import itertools
import logging
import math
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from kio.schema.errors import ErrorCode

from goqueue.client.accumulator import (
    NO_SEQUENCE,
    MemoryPool,
    ProducerBatch,
    RecordAccumulator,
    expired_error,
)
from goqueue.client.cluster import Cluster
from goqueue.client.connection import Connection
from goqueue.client.errors import (
    BrokerConnectionError,
    ClientError,
    InvalidMetadataError,
    ProducerClosedError,
    RequestTimedOutError,
    partition_error,
)
from goqueue.client.idempotence import IdempotenceState, init_producer_id
from goqueue.client.metadata import TopicPartition
from goqueue.client.produce_protocol import PRODUCE, partition_responses, produce_request
from goqueue.records.compression import Compression

logger = logging.getLogger(__name__)

SEQUENCE_ERRORS = frozenset({ErrorCode.out_of_order_sequence_number, ErrorCode.unknown_producer_id})
RESPONSE_GRACE = 1.0
"""Seconds the client waits beyond the request timeout it gives the broker, so the broker's own
timeout answer arrives before the client gives up on the connection."""
JITTER = 0.2
"""Kafka's retry backoff jitter (KIP-580): each backoff is scaled by a random factor of 1 +- 0.2."""


@dataclass(frozen=True, slots=True)
class SenderConfig:
    acks: int
    compression: Compression
    max_request_size: int
    request_timeout: float
    delivery_timeout: float
    retries: int | None
    retry_backoff: float
    retry_backoff_max: float
    max_in_flight: int
    metadata_max_age: float


class Sender:
    """Moves batches from the accumulator to the brokers until closed."""

    def __init__(
        self,
        cluster: Cluster,
        accumulator: RecordAccumulator,
        pool: MemoryPool,
        config: SenderConfig,
        idempotence: IdempotenceState | None,
    ) -> None:
        self.cluster = cluster
        self.accumulator = accumulator
        self.pool = pool
        self.config = config
        self.idempotence = idempotence
        self.hurry = 0
        """How many callers (flush) want every batch sent without lingering."""
        self.closing = False
        self.fatal: ClientError | None = None
        self._wakeup = asyncio.Event()
        self._in_flight = 0
        self._node_in_flight: Counter[int] = Counter()
        self._tp_in_flight: Counter[TopicPartition] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self._node_backoff: dict[int, float] = {}
        self._connections: dict[int, Connection] = {}
        self._connecting: set[int] = set()
        self.topics: set[str] = set()
        """Topics this producer sends to: their metadata is refreshed every
        `metadata_max_age` seconds, so added partitions and moved leaders are seen."""
        self._stale: set[str] = set()
        self._refresh_at = 0.0
        self._metadata_age_at = time.monotonic() + config.metadata_max_age
        self._refreshing = False
        self._producer_id_at = 0.0
        self._asking_producer_id = False
        self._rotation = itertools.count()

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        """The send loop; returns once closing and every batch is settled."""
        while True:
            self._wakeup.clear()
            now = time.monotonic()
            for batch in self.accumulator.expire(now, self.config.delivery_timeout):
                self._give_up(batch, expired_error(batch, self.config.delivery_timeout))
            if self.fatal is not None:
                wake_at = math.inf  # everything failed; wait for close
            elif self.idempotence is not None and self.idempotence.needs_producer_id:
                wake_at = self._new_producer_id(now)
            else:
                wake_at = self._send_ready(now)
            if now >= self._metadata_age_at:
                self._stale.update(self.topics)
                self._metadata_age_at = now + self.config.metadata_max_age
            wake_at = min(wake_at, self._metadata_age_at)
            if self._stale:
                wake_at = min(wake_at, self._refresh_metadata(now))
            if self.closing and not self.accumulator.incomplete and not self._in_flight:
                return
            timeout = None if wake_at == math.inf else max(wake_at - time.monotonic(), 0.0)
            try:
                async with asyncio.timeout(timeout):
                    await self._wakeup.wait()
            except TimeoutError:
                pass

    def abort(self, error: ClientError) -> None:
        """Fail every unsettled record with `error` and stop the requests in flight."""
        for task in self._tasks:
            task.cancel()
        for batch in list(self.accumulator.incomplete):
            batch.fail(error)
            self._settled(batch)
        self.accumulator.queues.clear()
        self.wake()

    def _new_producer_id(self, now: float) -> float:
        """Ask for a (new) producer id once no request is in flight; the time to look again."""
        if self._in_flight or self._asking_producer_id:
            return math.inf  # the last answer, or the InitProducerId answer, wakes the loop
        if now < self._producer_id_at:
            return self._producer_id_at
        self._asking_producer_id = True
        self._background(self._init_producer_id())
        return math.inf

    async def _init_producer_id(self) -> None:
        assert self.idempotence is not None
        try:
            producer_id, epoch = await init_producer_id(self.cluster)
        except ClientError as exc:
            if not exc.retriable:
                self.fatal = exc
                self.abort(ProducerClosedError(f"the producer cannot get a producer id: {exc}"))
                return
            logger.info("InitProducerId failed, retrying: %s", exc)
            self._producer_id_at = time.monotonic() + self.config.retry_backoff
        else:
            if self.idempotence.producer_id >= 0:
                logger.info("producer id %d replaces %d", producer_id, self.idempotence.producer_id)
            self.idempotence.use(producer_id, epoch)
            for batch in self.accumulator.queued():
                batch.forget_sequence()
        finally:
            self._asking_producer_id = False
            self.wake()

    def _background(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run a request beside the send loop (kept referenced until done, cancelled by abort)."""
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _send_ready(self, now: float) -> float:
        """Start requests for every broker with sendable batches; the next time to look again."""
        hurry = bool(self.hurry) or self.closing or self.pool.exhausted
        by_node: defaultdict[int, list[TopicPartition]] = defaultdict(list)
        topic_ids: dict[str, uuid.UUID | None] = {}
        wake_at = math.inf
        for tp in self._rotated(list(self.accumulator.queues)):
            ready, at = self._drainable(tp, now, hurry)
            if not ready:
                wake_at = min(wake_at, at)
                continue
            topic = self.cluster.cached(tp.topic)
            if topic is None or not 0 <= tp.partition < len(topic.partitions):
                self._stale.add(tp.topic)
                continue
            node = topic.partitions[tp.partition].leader
            if self._node_backoff.get(node, 0.0) > now:
                wake_at = min(wake_at, self._node_backoff[node])
                continue
            topic_ids[tp.topic] = topic.topic_id
            by_node[node].append(tp)
        for node, tps in by_node.items():
            connection = self._connection(node, tps)
            while connection is not None and self._node_in_flight[node] < self.config.max_in_flight:
                batches = self._drain(tps, now, hurry)
                if not batches:
                    break
                self._start(node, connection, batches, topic_ids)
        return wake_at

    def _connection(self, node: int, tps: list[TopicPartition]) -> Connection | None:
        """The open connection to `node`, or None while one is being opened in the background
        (so a broker slow to answer a connect holds up no other broker's batches)."""
        connection = self._connections.get(node)
        if connection is not None and not connection.closed:
            return connection
        if node not in self._connecting:
            self._connecting.add(node)
            self._background(self._connect(node, {tp.topic for tp in tps}))
        return None

    async def _connect(self, node: int, topics: set[str]) -> None:
        try:
            self._connections[node] = await self.cluster.connection(node)
        except ClientError as exc:
            logger.info("cannot reach broker %d: %s", node, exc)
            self._node_backoff[node] = time.monotonic() + self.config.retry_backoff
            self._stale.update(topics)
        finally:
            self._connecting.discard(node)
            self.wake()

    def _rotated(self, tps: list[TopicPartition]) -> list[TopicPartition]:
        """Start each round at another partition, so a size-limited request starves none."""
        if not tps:
            return tps
        start = next(self._rotation) % len(tps)
        return tps[start:] + tps[:start]

    def _drainable(self, tp: TopicPartition, now: float, hurry: bool) -> tuple[bool, float]:
        queue = self.accumulator.queues.get(tp)
        if not queue:
            return False, math.inf
        if queue[0].attempts and self._tp_in_flight[tp]:
            return False, math.inf  # a retry waits for its partition's earlier requests
        return self.accumulator.sendable(tp, now, hurry)

    def _drain(
        self, tps: list[TopicPartition], now: float, hurry: bool
    ) -> dict[TopicPartition, ProducerBatch]:
        """The next batch of each ready partition, within `max_request_size` (at least one)."""
        batches: dict[TopicPartition, ProducerBatch] = {}
        total = 0
        for tp in tps:
            if not self._drainable(tp, now, hurry)[0]:
                continue
            size = self.accumulator.queues[tp][0].size
            if batches and total + size > self.config.max_request_size:
                continue
            batch = self.accumulator.pop(tp)
            if self.idempotence is not None and batch.base_sequence == NO_SEQUENCE:
                self.idempotence.assign(batch)
            batches[tp] = batch
            total += size
        return batches

    def _start(
        self,
        node: int,
        connection: Connection,
        batches: dict[TopicPartition, ProducerBatch],
        topic_ids: dict[str, uuid.UUID | None],
    ) -> None:
        encoded = {tp: batch.encode(self.config.compression) for tp, batch in batches.items()}
        ids = {tp.topic: topic_ids[tp.topic] for tp in batches}
        request = produce_request(
            encoded, ids, self.config.acks, int(self.config.request_timeout * 1000)
        )
        self._in_flight += 1
        self._node_in_flight[node] += 1
        self._tp_in_flight.update(list(batches))
        # The task's first step writes the request, so requests leave in the order drained.
        self._background(self._produce(node, connection, batches, request, ids))

    async def _produce(
        self,
        node: int,
        connection: Connection,
        batches: dict[TopicPartition, ProducerBatch],
        request: Any,
        topic_ids: dict[str, uuid.UUID | None],
    ) -> None:
        tps = list(batches)
        try:
            if self.config.acks == 0:
                await connection.request_no_response(PRODUCE, request)
                for batch in batches.values():
                    self._complete(batch, -1, None)
                return
            response = await connection.request(
                PRODUCE, request, timeout=self.config.request_timeout + RESPONSE_GRACE
            )
        except ClientError as exc:
            if isinstance(exc, RequestTimedOutError):
                await connection.close()  # as Kafka's clients do: a late answer is not trusted
            for batch in batches.values():
                self._failed(batch, exc)
        else:
            self._throttle(node, response.throttle_time)
            for tp, answer in partition_responses(response, topic_ids):
                answered = batches.pop(tp, None)
                if answered is None:
                    continue
                if answer.error_code in (ErrorCode.none, ErrorCode.duplicate_sequence_number):
                    self._complete(answered, answer.base_offset, answer.log_append_time)
                else:
                    error = partition_error(
                        answer.error_code, tp.topic, tp.partition, answer.error_message
                    )
                    self._failed(answered, error)
            for tp, batch in batches.items():
                self._failed(batch, partition_error(ErrorCode.network_exception, *tp, "no answer"))
        finally:
            self._in_flight -= 1
            self._node_in_flight[node] -= 1
            self._tp_in_flight.subtract(tps)
            self.wake()

    def _throttle(self, node: int, throttle_time: datetime.timedelta) -> None:
        """A broker over a quota says how long to wait: send it nothing before then (KIP-219)."""
        if throttle_time > datetime.timedelta(0):
            until = time.monotonic() + throttle_time.total_seconds()
            self._node_backoff[node] = max(self._node_backoff.get(node, 0.0), until)

    def _complete(self, batch: ProducerBatch, base_offset: int, append_time: Any) -> None:
        if self.idempotence is not None:
            self.idempotence.acknowledged(batch)
        batch.complete(base_offset, append_time)
        self._settled(batch)

    def _failed(self, batch: ProducerBatch, error: ClientError) -> None:
        """Retry, split or give up on a batch the broker refused or never answered."""
        batch.last_error = error
        code = getattr(error, "code", None)
        if code == ErrorCode.message_too_large and len(batch.records) > 1:
            self._replace(batch, *batch.split())
            return
        if isinstance(error, InvalidMetadataError | BrokerConnectionError):
            self._stale.add(batch.tp.topic)
            self.cluster.invalidate(batch.tp.topic)
        retriable = error.retriable
        if self.idempotence is not None and code in SEQUENCE_ERRORS:
            retriable = True
            if self.idempotence.is_next(batch):
                logger.warning("%s: the broker lost this producer's sequence: %s", batch.tp, error)
                self.idempotence.reset_requested = True
        now = time.monotonic()
        within_time = now < batch.created + self.config.delivery_timeout
        retries_left = self.config.retries is None or batch.attempts < self.config.retries
        if retriable and within_time and retries_left:
            logger.warning(
                "%s-%d: retrying %d record(s) (attempt %d): %s",
                *batch.tp,
                len(batch.records),
                batch.attempts + 1,
                error,
            )
            batch.attempts += 1
            batch.retry_at = now + self._backoff(batch.attempts)
            self.accumulator.requeue(batch)
            return
        if retriable and not within_time:
            self._give_up(batch, expired_error(batch, self.config.delivery_timeout))
        else:
            self._give_up(batch, error)

    def _replace(self, batch: ProducerBatch, *parts: ProducerBatch) -> None:
        batch.mark_settled(parts)
        self.accumulator.done(batch)
        self.accumulator.incomplete.update(parts)
        self.accumulator.requeue(*parts)

    def _backoff(self, attempts: int) -> float:
        base = min(self.config.retry_backoff * 2.0 ** (attempts - 1), self.config.retry_backoff_max)
        return base * random.uniform(1 - JITTER, 1 + JITTER)

    def _give_up(self, batch: ProducerBatch, error: BaseException) -> None:
        idempotence = self.idempotence
        if (
            idempotence is not None
            and batch.base_sequence != NO_SEQUENCE
            and batch.producer_id == idempotence.producer_id
        ):
            idempotence.reset_requested = True
        batch.fail(error)
        self._settled(batch)

    def _settled(self, batch: ProducerBatch) -> None:
        batch.mark_settled()
        self.accumulator.done(batch)
        self.pool.release(batch.size)

    def _refresh_metadata(self, now: float) -> float:
        """Ask for fresh metadata of topics whose leaders are unknown, at most once per backoff."""
        if not self._refreshing and now >= self._refresh_at:
            topics = sorted(self._stale)
            self._stale.clear()
            self._refreshing = True
            self._refresh_at = now + self.config.retry_backoff
            self._background(self._refresh(topics))
        return self._refresh_at

    async def _refresh(self, topics: list[str]) -> None:
        """One Metadata request; topics still without leaders are asked for again by the next
        round that finds batches for them (at most once per `retry_backoff`)."""
        try:
            await self.cluster.refresh(topics)
        except ClientError as exc:
            logger.info("metadata refresh failed: %s", exc)
        finally:
            self._refreshing = False
            self.wake()
