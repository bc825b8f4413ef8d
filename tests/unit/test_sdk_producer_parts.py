"""The SDK producer's pieces without sockets: the memory pool, the accumulator, sequence
numbers, settings, and the sender's answers to broker errors against an in-memory broker."""

from __future__ import annotations

import asyncio
import datetime
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
from client_fakes import FakeBroker, api_versions, connect
from kio.index import load_response_schema
from kio.schema.errors import ErrorCode

from goqueue.client.accumulator import MemoryPool, ProducerBatch, RecordAccumulator
from goqueue.client.cluster import Cluster
from goqueue.client.connection import Connection
from goqueue.client.errors import (
    KafkaTimeoutError,
    NotLeaderOrFollowerError,
    ProducerClosedError,
    TopicAuthorizationFailedError,
)
from goqueue.client.idempotence import SEQUENCE_MODULUS, IdempotenceState
from goqueue.client.metadata import TopicPartition
from goqueue.client.producer import Producer
from goqueue.client.protocol import build_entity
from goqueue.client.record_metadata import RecordMetadata
from goqueue.records.batch import read_header
from goqueue.records.builder import NewRecord

T = TypeVar("T")
TP = TopicPartition("orders", 0)
TOPIC_ID = uuid.UUID("6f1c0c7e-9f1b-4a57-8a3e-2d8f4f2b9c10")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def record(value: bytes = b"v", timestamp: int = 1000) -> NewRecord:
    return NewRecord(None, value, (), timestamp)


# --- memory pool ---------------------------------------------------------------------------


def test_memory_is_granted_first_come_first_served_as_it_is_released() -> None:
    async def scenario() -> list[str]:
        pool = MemoryPool(100)
        await pool.reserve(80, 1)
        order: list[str] = []

        async def take(name: str, size: int) -> None:
            await pool.reserve(size, 5)
            order.append(name)

        big = asyncio.create_task(take("big", 50))
        small = asyncio.create_task(take("small", 10))
        await asyncio.sleep(0)
        assert pool.exhausted and not order  # the small one queues behind the big one
        assert not pool.try_reserve(10)  # enqueue's fast path does not jump the queue either
        pool.release(80)
        await asyncio.gather(big, small)
        assert pool.available == 40
        return order

    assert run(scenario()) == ["big", "small"]


def test_a_reservation_that_times_out_takes_nothing_and_unblocks_those_behind() -> None:
    async def scenario() -> int:
        pool = MemoryPool(100)
        await pool.reserve(60, 1)
        with pytest.raises(KafkaTimeoutError, match="buffer_memory"):
            await pool.reserve(50, 0.01)
        await pool.reserve(40, 0)
        return pool.available

    assert run(scenario()) == 0


# --- accumulator and batches ---------------------------------------------------------------


def test_batches_close_at_batch_size_and_go_out_when_full_lingered_or_hurried() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        accumulator = RecordAccumulator(batch_size=100, linger=10.0)
        assert accumulator.append(TP, record(), 60, loop.create_future())
        assert not accumulator.append(TP, record(), 30, loop.create_future())
        head = accumulator.queues[TP][0]
        ready, at = accumulator.sendable(TP, head.created, hurry=False)
        assert not ready and at == head.created + 10.0
        assert accumulator.sendable(TP, head.created, hurry=True)[0]
        assert accumulator.sendable(TP, head.created + 10.0, hurry=False)[0]
        assert accumulator.append(TP, record(), 30, loop.create_future())  # 120 > 100
        assert accumulator.sendable(TP, head.created, hurry=False)[0]  # a full batch waits not
        assert [len(b.records) for b in accumulator.queues[TP]] == [2, 1]

    run(scenario())


def test_retried_batches_go_back_ahead_of_newer_ones_in_their_first_order() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        accumulator = RecordAccumulator(batch_size=10, linger=0)
        for _ in range(4):
            accumulator.append(TP, record(), 10, loop.create_future())
        first, second = accumulator.pop(TP), accumulator.pop(TP)
        accumulator.requeue(second)
        accumulator.requeue(first)
        assert [b.drain_order for b in accumulator.queues[TP]] == [0, 1, -1, -1]

    run(scenario())


def test_a_split_batch_keeps_its_sequence_numbers_and_futures() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        batch = ProducerBatch(TP, 0.0, base_sequence=SEQUENCE_MODULUS - 2, producer_id=7)
        for i in range(5):
            batch.add(record(b"%d" % i), 22, loop.create_future())
        first, second = batch.split()
        assert [len(first.records), len(second.records)] == [2, 3]
        assert (first.base_sequence, second.base_sequence) == (SEQUENCE_MODULUS - 2, 0)
        assert first.futures + second.futures == batch.futures
        assert first.size + second.size == batch.size
        second.complete(40, None)
        assert [f.result().offset for f in second.futures] == [40, 41, 42]

    run(scenario())


def test_log_append_time_replaces_the_records_own_timestamps() -> None:
    async def scenario() -> RecordMetadata:
        batch = ProducerBatch(TP, 0.0)
        batch.add(record(timestamp=5), 22, asyncio.get_running_loop().create_future())
        batch.complete(0, datetime.datetime.fromtimestamp(12.345, datetime.UTC))
        return batch.futures[0].result()

    assert run(scenario()) == RecordMetadata("orders", 0, 0, 12_345)


def test_sequence_numbers_run_per_partition_and_wrap_like_kafkas() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        state = IdempotenceState()
        state.use(9, 0)

        def batch(tp: TopicPartition, count: int) -> ProducerBatch:
            made = ProducerBatch(tp, 0.0)
            for _ in range(count):
                made.add(record(), 22, loop.create_future())
            state.assign(made)
            return made

        a, b, other = batch(TP, 3), batch(TP, 2), batch(TopicPartition("orders", 1), 1)
        assert [a.base_sequence, b.base_sequence, other.base_sequence] == [0, 3, 0]
        assert state.is_next(a) and not state.is_next(b)
        state.acknowledged(a)
        assert state.is_next(b)
        state._next[TP] = SEQUENCE_MODULUS - 1
        assert batch(TP, 2).base_sequence == SEQUENCE_MODULUS - 1
        assert batch(TP, 1).base_sequence == 1
        state.use(10, 0)
        assert batch(TP, 1).base_sequence == 0

    run(scenario())


# --- settings ------------------------------------------------------------------------------


def test_idempotence_is_on_by_default_and_off_when_settings_conflict() -> None:
    assert Producer().idempotent
    assert not Producer(acks=1).idempotent
    assert not Producer(retries=0).idempotent
    assert not Producer(enable_idempotence=False).idempotent
    with pytest.raises(ValueError, match="acks='all'"):
        Producer(acks=0, enable_idempotence=True)
    with pytest.raises(ValueError, match="max_in_flight"):
        Producer(enable_idempotence=True, max_in_flight_requests_per_connection=6)


def test_settings_kafka_refuses_are_refused() -> None:
    with pytest.raises(ValueError, match="acks"):
        Producer(acks=2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="delivery_timeout_ms"):
        Producer(delivery_timeout_ms=1000, request_timeout_ms=5000)
    with pytest.raises(ValueError, match="compression"):
        Producer(compression="brotli")  # type: ignore[arg-type]


# --- the sender against an in-memory broker ------------------------------------------------


class FakeKafka:
    """One broker with one topic: appends what it is sent, or answers the scripted errors."""

    def __init__(self, partitions: int = 1) -> None:
        self.partitions = partitions
        self.logs: dict[int, list[bytes | None]] = {p: [] for p in range(partitions)}
        self.errors: list[ErrorCode] = []
        """Error codes for the next partition answers, in order (then: none)."""
        self.produced: list[tuple[int, int, int]] = []
        """(producer id, base sequence, record count) of every batch received."""
        self.producer_ids = 0
        self.metadata_requests = 0
        self.answer_produce = True
        self.init_error = ErrorCode.none
        self.throttle = datetime.timedelta(0)
        self.batches_per_request: list[int] = []

    def handle(self, header: Any, request: Any) -> Any:
        key, version = header.request_api_key, header.request_api_version
        response = load_response_schema(key, version)
        if key == 18:
            return api_versions(version, {0: (3, 9), 3: (0, 12), 22: (0, 4)})
        if key == 3:
            self.metadata_requests += 1
            return build_entity(response, self._metadata())
        if key == 22:
            self.producer_ids += 1
            return build_entity(
                response,
                {
                    "throttle_time": datetime.timedelta(0),
                    "error_code": self.init_error,
                    "producer_id": 1000 + self.producer_ids,
                    "producer_epoch": 0,
                },
            )
        assert key == 0
        if not self.answer_produce:
            return None
        self.batches_per_request.append(sum(len(t.partition_data) for t in request.topic_data))
        produced = [self._produce(topic) for topic in request.topic_data]
        return build_entity(response, {"responses": produced, "throttle_time": self.throttle})

    def _metadata(self) -> dict[str, Any]:
        partition = {"error_code": ErrorCode.none, "leader_id": 0, "leader_epoch": 0}
        return {
            "throttle_time": datetime.timedelta(0),
            "brokers": [{"node_id": 0, "host": "fake", "port": 9092, "rack": None}],
            "cluster_id": "fake",
            "controller_id": 0,
            "topics": [
                {
                    "error_code": ErrorCode.none,
                    "name": "orders",
                    "topic_id": TOPIC_ID,
                    "is_internal": False,
                    "partitions": [
                        {**partition, "partition_index": p, "replica_nodes": [0], "isr_nodes": [0]}
                        for p in range(self.partitions)
                    ],
                }
            ],
        }

    def _produce(self, topic: Any) -> dict[str, Any]:
        answers = []
        for data in topic.partition_data:
            header = read_header(memoryview(data.records), 0)
            self.produced.append((header.producer_id, header.base_sequence, header.record_count))
            code = self.errors.pop(0) if self.errors else ErrorCode.none
            base_offset = len(self.logs[data.index])
            if code == ErrorCode.none:
                self.logs[data.index] += [None] * header.record_count
            answers.append(
                {
                    "index": data.index,
                    "error_code": code,
                    "base_offset": base_offset if code == ErrorCode.none else -1,
                    "log_append_time": None,
                    "log_start_offset": 0,
                    "record_errors": [],
                    "error_message": None,
                }
            )
        return {"name": topic.name, "partition_responses": answers}


@pytest.fixture
def kafka(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> FakeKafka:
    fake = FakeKafka(getattr(request, "param", 1))

    async def open_fake(self: Cluster, host: str, port: int) -> Connection:
        return await connect(FakeBroker(fake.handle))

    monkeypatch.setattr(Cluster, "_open", open_fake)
    return fake


def produce(
    count: int,
    check: Callable[[Producer], Coroutine[Any, Any, None]] | None = None,
    **settings: Any,
) -> list[RecordMetadata | BaseException]:
    """Send `count` records one request at a time; what each delivery future holds."""

    async def scenario() -> list[RecordMetadata | BaseException]:
        settings.setdefault("retry_backoff_ms", 1)
        async with Producer("fake:9092", **settings) as producer:
            outcomes: list[RecordMetadata | BaseException] = []
            for i in range(count):
                try:
                    outcomes.append(await producer.send("orders", b"%d" % i))
                except Exception as exc:  # the outcome under test
                    outcomes.append(exc)
            if check is not None:
                await check(producer)
        return outcomes

    return run(scenario())


def test_stale_leader_answers_are_retried_after_a_metadata_refresh(kafka: FakeKafka) -> None:
    kafka.errors = [ErrorCode.not_leader_or_follower, ErrorCode.not_leader_or_follower]
    outcomes = produce(2)
    assert [m.offset for m in outcomes if isinstance(m, RecordMetadata)] == [0, 1]
    assert kafka.produced == [(1001, 0, 1)] * 3 + [(1001, 1, 1)]
    assert kafka.metadata_requests >= 3  # bootstrap, first send, and after the stale answer


def test_retries_run_out_with_the_brokers_error(kafka: FakeKafka) -> None:
    kafka.errors = [ErrorCode.not_leader_or_follower] * 3
    (outcome,) = produce(1, retries=2)
    assert isinstance(outcome, NotLeaderOrFollowerError)
    assert len(kafka.produced) == 3


def test_a_lost_sequence_gets_a_new_producer_id_and_starts_again_at_zero(
    kafka: FakeKafka,
) -> None:
    kafka.errors = [ErrorCode.none, ErrorCode.out_of_order_sequence_number]
    outcomes = produce(3)
    assert [m.offset for m in outcomes if isinstance(m, RecordMetadata)] == [0, 1, 2]
    assert kafka.produced == [(1001, 0, 1), (1001, 1, 1), (1002, 0, 1), (1002, 1, 1)]


def test_a_fatal_error_fails_the_record_and_the_next_gets_a_new_producer_id(
    kafka: FakeKafka,
) -> None:
    kafka.errors = [ErrorCode.topic_authorization_failed]
    first, second = produce(2)
    assert isinstance(first, TopicAuthorizationFailedError)
    assert isinstance(second, RecordMetadata)
    assert kafka.produced == [(1001, 0, 1), (1002, 0, 1)]


def test_records_never_acknowledged_expire_after_the_delivery_timeout(kafka: FakeKafka) -> None:
    kafka.errors = [ErrorCode.not_leader_or_follower] * 1000
    (outcome,) = produce(1, delivery_timeout_ms=300, request_timeout_ms=200, linger_ms=0)
    assert isinstance(outcome, KafkaTimeoutError)
    assert "300 ms has passed since batch creation" in str(outcome)


def test_a_closed_producer_takes_no_more_records(kafka: FakeKafka) -> None:
    async def scenario() -> None:
        producer = Producer("fake:9092")
        with pytest.raises(ProducerClosedError):
            await producer.send("orders", b"not started")
        await producer.start()
        await producer.close()
        with pytest.raises(ProducerClosedError):
            await producer.send("orders", b"closed")

    run(scenario())


def test_close_with_a_timeout_fails_what_the_broker_never_answered(kafka: FakeKafka) -> None:
    kafka.answer_produce = False

    async def scenario() -> BaseException | None:
        producer = Producer("fake:9092", linger_ms=0)
        await producer.start()
        future = await producer.enqueue("orders", b"unanswered")
        await producer.close(timeout=0.05)
        return future.exception()

    error = run(scenario())
    assert isinstance(error, ProducerClosedError)
    assert "closed before delivery" in str(error)


def test_a_producer_refused_a_producer_id_fails_its_records_and_asks_no_more(
    kafka: FakeKafka,
) -> None:
    kafka.init_error = ErrorCode.cluster_authorization_failed
    first, second = produce(2)
    assert isinstance(first, ProducerClosedError)
    assert "cluster authorization failed" in str(first).lower()
    assert isinstance(second, ProducerClosedError)
    assert kafka.producer_ids == 1
    assert kafka.produced == []


def test_a_throttled_broker_gets_nothing_until_its_throttle_time_passed(kafka: FakeKafka) -> None:
    kafka.throttle = datetime.timedelta(milliseconds=300)

    async def check(producer: Producer) -> None:
        start = time.monotonic()
        await producer.send("orders", b"after the throttle")
        assert time.monotonic() - start >= 0.25  # the wait began when the answer came

    produce(1, check)


@pytest.mark.parametrize("kafka", [4], indirect=True)
def test_requests_carry_one_batch_per_partition_within_max_request_size(kafka: FakeKafka) -> None:
    async def scenario() -> list[RecordMetadata]:
        async with Producer(
            "fake:9092", linger_ms=50, batch_size=200, max_request_size=300
        ) as producer:
            futures = [
                await producer.enqueue("orders", b"x" * 110, partition=p) for p in (0, 1, 2, 3, 0)
            ]
            await producer.flush()
            return [f.result() for f in futures]

    delivered = run(scenario())
    assert [(m.partition, m.offset) for m in delivered] == [(0, 0), (1, 0), (2, 0), (3, 0), (0, 1)]
    # A record counts 131 bytes: two make too big a batch, two batches fill a request.
    assert max(kafka.batches_per_request) == 2
    assert sum(kafka.batches_per_request) == 5
