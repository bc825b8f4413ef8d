"""What every driver measures, so workloads, summaries and reports stay driver-agnostic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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
