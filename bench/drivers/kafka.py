"""Kafka protocol driver on confluent-kafka (librdkafka): the client most Kafka users run."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from bench.drivers.base import (
    STAMP,
    BenchError,
    ConsumeResult,
    ConsumeSpec,
    LatencyRun,
    Pacer,
    ProduceResult,
    ProduceSpec,
    Receipts,
    Throughput,
)

POLL_EVERY = 10_000
"""Messages between producer polls and deadline checks: often enough, cheap enough."""
DRAIN_BATCH = 10_000
SETUP_TIMEOUT_S = 30.0
CREATE_S_PER_PARTITION = 0.02
"""Extra time allowed per partition created (10,000 take about 25 s on 2 busy cores)."""
LATENCY_GRACE_S = 10.0
"""How long after the last send the latency consumer may still wait for stragglers."""


@dataclass(frozen=True, slots=True)
class KafkaDriver:
    """confluent-kafka against one bootstrap address, with the issue's producer settings."""

    bootstrap: str
    linger_ms: int = 5
    batch_bytes: int = 1024 * 1024
    name: str = "confluent-kafka"

    def _conf(self, **extra: Any) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap, **extra}

    def create_topic(self, topic: str, partitions: int) -> None:
        """Create the topic and wait until its leaders are known, so runs start on a ready log."""
        admin = AdminClient(self._conf())
        limit = SETUP_TIMEOUT_S + partitions * CREATE_S_PER_PARTITION
        future = admin.create_topics(
            [NewTopic(topic, partitions, 1)], request_timeout=limit, operation_timeout=limit
        )[topic]
        future.result(timeout=limit)
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            found = admin.list_topics(topic, timeout=limit).topics.get(topic)
            leaders = [] if found is None or found.error else found.partitions.values()
            if len(leaders) == partitions and all(p.leader >= 0 for p in leaders):
                return
            time.sleep(0.05)
        raise BenchError(f"topic {topic} has no leaders after {limit:g}s")

    def create(self, topic: str, partitions: int, groups: int) -> None:
        """Consumer groups need nothing on the broker: readers assign and keep their position."""
        self.create_topic(topic, partitions)

    def delete(self, topic: str, partitions: int, groups: int) -> None:
        admin = AdminClient(self._conf())
        admin.delete_topics([topic])[topic].result(timeout=SETUP_TIMEOUT_S)

    def send(self, spec: ProduceSpec, ready: Callable[[], None]) -> ProduceResult:
        """Round-robin over partitions; linger.ms=0 when paced, so latency is not batching."""
        failures: list[KafkaError] = []
        producer = self._producer(self.linger_ms if spec.rate is None else 0, failures)
        producer.list_topics(spec.topic, timeout=SETUP_TIMEOUT_S)
        padding = spec.padding()
        ready()
        pacer = Pacer(spec, POLL_EVERY)
        for batch in pacer.batches():
            for seq in batch:
                while True:
                    try:
                        producer.produce(
                            spec.topic, spec.payload(seq, padding), None, spec.partition(seq)
                        )
                        break
                    except BufferError:
                        producer.poll(0.001)
            producer.poll(0)
        unsent = producer.flush(SETUP_TIMEOUT_S)
        return pacer.result(pacer.sent - unsent - len(failures))

    def receive(self, spec: ConsumeSpec, ready: Callable[[], None]) -> ConsumeResult:
        """Assign partition 0 from the beginning; a blocking poll for the first message, then
        whatever else is already fetched, so neither latency nor throughput waits on batching."""
        consumer = Consumer(
            self._conf(
                **{
                    "group.id": f"bench-group-{spec.group}",
                    "enable.auto.commit": False,
                    "enable.partition.eof": False,
                    "fetch.max.bytes": 64 * 1024 * 1024,
                    "max.partition.fetch.bytes": 8 * 1024 * 1024,
                    "fetch.wait.max.ms": 100,
                }
            )
        )
        try:
            consumer.list_topics(spec.topic, timeout=SETUP_TIMEOUT_S)
            ready()
            receipts = Receipts(spec)
            consumer.assign([TopicPartition(spec.topic, 0, OFFSET_BEGINNING)])
            while not receipts.done and receipts.remaining_s() > 0:
                first = consumer.poll(0.1)
                if first is None:
                    continue
                batch = [first, *consumer.consume(DRAIN_BATCH, 0)]
                values = [m.value() for m in batch if m.error() is None]
                receipts.add([v for v in values if v is not None])
        finally:
            consumer.close()
        return receipts.result()

    def end_offset(self, topic: str) -> int:
        """The log end offset of partition 0: the broker's own count of what it stored."""
        consumer = Consumer(self._conf(**{"group.id": "bench-offsets"}))
        try:
            _, high = consumer.get_watermark_offsets(
                TopicPartition(topic, 0), timeout=SETUP_TIMEOUT_S
            )
        finally:
            consumer.close()
        return high

    def _producer(self, linger_ms: int, failures: list[KafkaError]) -> Producer:
        """acks=1 without compression; only failed deliveries call back, to keep Python idle."""

        def on_delivery(error: KafkaError | None, _: Message) -> None:
            if error is not None:
                failures.append(error)

        return Producer(
            self._conf(
                **{
                    "acks": 1,
                    "linger.ms": linger_ms,
                    "batch.size": self.batch_bytes,
                    "batch.num.messages": 1_000_000,
                    "message.max.bytes": 2 * self.batch_bytes,
                    "compression.type": "none",
                    "enable.idempotence": False,
                    "delivery.report.only.error": True,
                    "on_delivery": on_delivery,
                }
            )
        )

    def produce(self, topic: str, count: int, value_size: int, time_limit_s: float) -> Throughput:
        """Send `count` values to partition 0 as fast as librdkafka accepts them, then flush.

        Throughput is counted from the first send to the last acknowledgement.
        """
        failures: list[KafkaError] = []
        producer = self._producer(self.linger_ms, failures)
        send = producer.produce
        value = os.urandom(value_size)
        sent = 0
        start = time.perf_counter()
        deadline = start + time_limit_s
        while sent < count:
            try:
                send(topic, value, None, 0)
            except BufferError:
                producer.poll(0.001)
                if time.perf_counter() > deadline:
                    break
                continue
            sent += 1
            if sent % POLL_EVERY == 0:
                producer.poll(0)
                if time.perf_counter() > deadline:
                    break
        unsent = producer.flush(max(1.0, deadline - time.perf_counter()))
        seconds = time.perf_counter() - start
        if failures or unsent:
            first = failures[0] if failures else "none"
            raise BenchError(f"{len(failures)} failed, {unsent} undelivered; first error: {first}")
        return Throughput(sent, sent * value_size, seconds)

    def drain(self, topic: str, count: int, value_size: int, time_limit_s: float) -> Throughput:
        """Read `count` messages from offset 0 with a fresh consumer, checking offsets are dense.

        The clock starts at assign, so connection setup is included as a consumer would see it.
        """
        consumer = Consumer(
            self._conf(
                **{
                    "group.id": "bench-drain",
                    "enable.auto.commit": False,
                    "enable.partition.eof": False,
                    "fetch.max.bytes": 64 * 1024 * 1024,
                    "max.partition.fetch.bytes": 8 * 1024 * 1024,
                }
            )
        )
        received = 0
        try:
            start = time.perf_counter()
            deadline = start + time_limit_s
            consumer.assign([TopicPartition(topic, 0, 0)])
            while received < count and time.perf_counter() < deadline:
                batch = consumer.consume(min(DRAIN_BATCH, count - received), 0.1)
                if batch:
                    _check_dense(batch, received, value_size)
                    received += len(batch)
            seconds = time.perf_counter() - start
        finally:
            consumer.close()
        return Throughput(received, received * value_size, seconds)

    def end_to_end(
        self, topic: str, rate: int, seconds: float, warmup_s: float, value_size: int
    ) -> LatencyRun:
        """Produce at a fixed rate (linger.ms=0) while a consumer process receives concurrently.

        The consumer runs in its own process so the two do not share a GIL; both read the same
        monotonic clock. Messages sent during the warm-up are received but not measured.
        """
        start_offset = self.end_offset(topic)
        total = int(rate * (warmup_s + seconds))
        warmup = int(rate * warmup_s)
        time_limit_s = warmup_s + seconds + LATENCY_GRACE_S
        context = multiprocessing.get_context("spawn")
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(
            target=_latency_consumer,
            args=(self.bootstrap, topic, start_offset, total, warmup, time_limit_s, sender),
            daemon=True,
        )
        process.start()
        try:
            if not receiver.poll(SETUP_TIMEOUT_S) or receiver.recv() != "ready":
                raise BenchError("latency consumer did not start")
            sent = self._paced_send(topic, total, rate, value_size, time_limit_s)
            if not receiver.poll(time_limit_s):
                raise BenchError("latency consumer did not report")
            latencies, received = receiver.recv()
            process.join(SETUP_TIMEOUT_S)
        finally:
            if process.is_alive():
                process.terminate()
                process.join(SETUP_TIMEOUT_S)
        return LatencyRun(latencies, sent, received)

    def _paced_send(
        self, topic: str, total: int, rate: int, value_size: int, time_limit_s: float
    ) -> int:
        """Send message i at start + i/rate (catching up after oversleeping), stamped at send."""
        failures: list[KafkaError] = []
        producer = self._producer(0, failures)
        padding = bytes(value_size - STAMP.size)
        interval_ns = 1_000_000_000 // rate
        start = time.monotonic_ns()
        deadline = start + int(time_limit_s * 1e9)
        sent = 0
        while sent < total:
            now = time.monotonic_ns()
            if now > deadline:
                break
            due = min(total, (now - start) // interval_ns + 1)
            while sent < due:
                producer.produce(topic, STAMP.pack(sent, time.monotonic_ns()) + padding, None, 0)
                sent += 1
            producer.poll(0)
            time.sleep(max(0, start + sent * interval_ns - time.monotonic_ns()) / 1e9)
        unsent = producer.flush(SETUP_TIMEOUT_S)
        if failures or unsent:
            raise BenchError(f"latency producer: {len(failures)} failed, {unsent} undelivered")
        return sent


def _check_dense(batch: list[Message], first_expected: int, value_size: int) -> None:
    """Cheap per-batch check: first and last offsets and sizes match a gap-free, error-free run."""
    first, last = batch[0], batch[-1]
    for message in (first, last):
        if message.error() is not None:
            raise BenchError(f"consumer error: {message.error()}")
    offsets = (first.offset(), last.offset())
    expected = (first_expected, first_expected + len(batch) - 1)
    if offsets != expected:
        raise BenchError(f"offsets {offsets} where {expected} were expected")
    value = last.value()
    if value is None or len(value) != value_size:
        raise BenchError(f"value of offset {offsets[1]} has the wrong size")


def _latency_consumer(
    bootstrap: str,
    topic: str,
    start_offset: int,
    total: int,
    warmup: int,
    time_limit_s: float,
    out: Connection,
) -> None:
    """Child process: receive `total` stamped messages, send back post-warm-up latencies."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-latency",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "fetch.wait.max.ms": 100,
            "fetch.min.bytes": 1,
        }
    )
    consumer.assign([TopicPartition(topic, 0, start_offset)])
    consumer.poll(0.1)
    out.send("ready")
    latencies: list[int] = []
    seen: set[int] = set()
    deadline = time.monotonic() + time_limit_s
    try:
        while len(seen) < total and time.monotonic() < deadline:
            message = consumer.poll(0.1)
            if message is None:
                continue
            received_ns = time.monotonic_ns()
            value = message.value()
            if message.error() is not None or value is None:
                continue
            seq, sent_ns = STAMP.unpack_from(value)
            if seq not in seen:
                seen.add(seq)
                if seq >= warmup:
                    latencies.append(received_ns - sent_ns)
    finally:
        consumer.close()
        out.send((latencies, len(seen)))
