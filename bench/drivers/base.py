"""What every driver measures, so workloads, summaries and reports stay driver-agnostic."""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

T = TypeVar("T")


class BenchError(Exception):
    """A run that cannot give a trustworthy number (lost, duplicated or failed messages)."""


@dataclass(frozen=True, slots=True)
class Throughput:
    """Messages moved in one run; `payload_bytes` counts values only, as OpenMessaging does."""

    messages: int
    payload_bytes: int
    seconds: float

    @property
    def msg_per_s(self) -> float:
        return self.messages / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.payload_bytes / self.seconds / 1e6


@dataclass(frozen=True, slots=True)
class LatencyRun:
    """End-to-end latencies (send call to receipt, ns) of one fixed-rate run after its warm-up."""

    latencies_ns: list[int]
    sent: int
    received: int


class Driver(Protocol):
    """A client of the system under test; every call is bounded by `time_limit_s`."""

    name: str

    def create_topic(self, topic: str, partitions: int) -> None: ...

    def produce(
        self, topic: str, count: int, value_size: int, time_limit_s: float
    ) -> Throughput: ...

    def drain(self, topic: str, count: int, value_size: int, time_limit_s: float) -> Throughput: ...

    def end_to_end(
        self, topic: str, rate: int, seconds: float, warmup_s: float, value_size: int
    ) -> LatencyRun: ...


STAMP = struct.Struct("<qq")
"""Payload prefix of latency runs: sequence number and CLOCK_MONOTONIC send time (one clock for
every process on Linux)."""


@dataclass(frozen=True, slots=True)
class ProduceSpec:
    """What one producer process sends: `count` values round-robin over the topic's partitions,
    starting at `first_partition`, at `rate` msg/s or as fast as acknowledgements allow."""

    topic: str
    partitions: int
    count: int
    value_size: int
    time_limit_s: float
    rate: float | None = None
    first_partition: int = 0
    stamped: bool = False

    def partition(self, seq: int) -> int:
        return (self.first_partition + seq) % self.partitions

    def payload(self, seq: int, padding: bytes) -> bytes:
        """The value of message `seq`: stamped at the moment of the call in latency runs."""
        if self.stamped:
            return STAMP.pack(seq, time.monotonic_ns()) + padding
        return padding

    def padding(self) -> bytes:
        """Random bytes filling the value (after the stamp, when there is one)."""
        return os.urandom(self.value_size - (STAMP.size if self.stamped else 0))


@dataclass(frozen=True, slots=True)
class ConsumeSpec:
    """What one consumer process reads: `count` messages of partition 0 as consumer group
    `group` (an index), from the start of the topic. Latencies count from sequence `warmup`."""

    topic: str
    group: int
    count: int
    value_size: int
    time_limit_s: float
    stamped: bool = False
    warmup: int = 0


@dataclass(frozen=True, slots=True)
class ProduceResult:
    """Messages sent and acknowledged, from the first send to the last acknowledgement (ns)."""

    sent: int
    acked: int
    start_ns: int
    end_ns: int
    last_send_ns: int

    @property
    def send_rate(self) -> float:
        """Messages per second from the first send to the last (not to the last ack)."""
        return (self.sent - 1) / max(1e-9, (self.last_send_ns - self.start_ns) / 1e9)


@dataclass(frozen=True, slots=True)
class ConsumeResult:
    """Messages received from the start signal to the last receipt (ns), with latencies."""

    received: int
    start_ns: int
    end_ns: int
    latencies_ns: list[int]


class Receipts:
    """Counts received values and, in latency runs, their end-to-end latencies (first copy
    of each sequence number only, so a redelivery neither counts twice nor skews latency)."""

    def __init__(self, spec: ConsumeSpec) -> None:
        self.spec = spec
        self.start_ns = time.monotonic_ns()
        self.end_ns = self.start_ns
        self.count = 0
        self.latencies_ns: list[int] = []
        self._seen: set[int] = set()

    def add(self, values: Sequence[bytes]) -> None:
        if not values:
            return
        now = time.monotonic_ns()
        self.end_ns = now
        if len(values[-1]) != self.spec.value_size:
            size = len(values[-1])
            raise BenchError(f"received a {size} B value, expected {self.spec.value_size}")
        if not self.spec.stamped:
            self.count += len(values)
            return
        for value in values:
            seq, sent_ns = STAMP.unpack_from(value)
            if seq not in self._seen:
                self._seen.add(seq)
                if seq >= self.spec.warmup:
                    self.latencies_ns.append(now - sent_ns)
        self.count = len(self._seen)

    @property
    def done(self) -> bool:
        return self.count >= self.spec.count

    def remaining_s(self) -> float:
        return self.spec.time_limit_s - (time.monotonic_ns() - self.start_ns) / 1e9

    def result(self) -> ConsumeResult:
        return ConsumeResult(self.count, self.start_ns, self.end_ns, self.latencies_ns)


class Pacer:
    """Which messages are due: message i at start + i/rate, or all of them at once without a
    rate, in batches of at most `max_batch`; nothing after the producer's time limit (which
    ends a throughput run by time rather than by count)."""

    def __init__(self, spec: ProduceSpec, max_batch: int) -> None:
        self.spec = spec
        self.max_batch = max_batch
        self.start_ns = time.monotonic_ns()
        self.deadline_ns = self.start_ns + int(spec.time_limit_s * 1e9)
        self.sent = 0
        self.last_send_ns = self.start_ns

    def next_batch(self) -> range | float | None:
        """The next sequence numbers to send, else seconds to wait, else None when finished."""
        count = self.spec.count
        now = time.monotonic_ns()
        if self.sent >= count or now > self.deadline_ns:
            return None
        rate = self.spec.rate
        due = count if rate is None else min(count, int((now - self.start_ns) * rate / 1e9) + 1)
        if due <= self.sent:
            return (self.start_ns + self.sent * 1e9 / rate - now) / 1e9 if rate else 0.0
        batch = range(self.sent, min(due, self.sent + self.max_batch))
        self.sent = batch.stop
        self.last_send_ns = now
        return batch

    def batches(self) -> Iterator[range]:
        """Blocking iteration for synchronous clients."""
        while (step := self.next_batch()) is not None:
            if isinstance(step, range):
                yield step
            else:
                time.sleep(step)

    async def abatches(self) -> AsyncIterator[range]:
        """Non-blocking iteration for asyncio clients."""
        while (step := self.next_batch()) is not None:
            if isinstance(step, range):
                yield step
            else:
                await asyncio.sleep(step)

    def result(self, acked: int) -> ProduceResult:
        return ProduceResult(
            self.sent, acked, self.start_ns, time.monotonic_ns(), self.last_send_ns
        )


class InFlight:
    """A bounded window of outstanding acknowledgements for asyncio clients: adding beyond
    `limit` waits for the oldest to complete, as a pipelining producer must."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.acked = 0
        self._pending: deque[asyncio.Future[object]] = deque()
        self._sizes: deque[int] = deque()

    async def add(self, awaitable: Awaitable[object], messages: int = 1) -> None:
        future = asyncio.ensure_future(awaitable)
        self._pending.append(future)
        self._sizes.append(messages)
        while len(self._pending) >= self.limit:
            await self._reap_one()

    async def _reap_one(self) -> None:
        future = self._pending.popleft()
        messages = self._sizes.popleft()
        await future
        self.acked += messages

    async def drain(self) -> int:
        while self._pending:
            await self._reap_one()
        return self.acked


class Client(Protocol):
    """A client of one system for the comparison workloads (`python -m bench compare`).

    `create` and `delete` run in the harness; `send` and `receive` run in worker processes
    and call `ready()` once connected, which returns when every worker is ready.
    """

    @property
    def name(self) -> str: ...

    def create(self, topic: str, partitions: int, groups: int) -> None: ...

    def delete(self, topic: str, partitions: int, groups: int) -> None: ...

    def send(self, spec: ProduceSpec, ready: Callable[[], None]) -> ProduceResult: ...

    def receive(self, spec: ConsumeSpec, ready: Callable[[], None]) -> ConsumeResult: ...


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most `size` items: setup of thousands of partitions is batched."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def wait_until(finished: asyncio.Event, receipts: Receipts) -> None:
    """Wait for a callback-driven consumer to see every message, or for its time limit."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(finished.wait(), max(0.0, receipts.remaining_s()))
