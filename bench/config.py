"""Run parameters: defaults finish in a few minutes on a 2-core machine; flags scale them up."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

GIB = 1024 * 1024 * 1024
MIB = 1024 * 1024


class ProfileWhen(StrEnum):
    """Profile the broker under an extra run: only when a target is missed, always, or never."""

    auto = "auto"
    always = "always"
    never = "never"


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """Everything a run depends on, recorded next to its results."""

    data_root: Path | None = None
    results_dir: Path = Path(__file__).parent / "results"
    runs: int = 3
    disk_bytes: int = GIB
    value_size: int = 1024
    produce_messages: int = 500_000
    linger_ms: int = 5
    batch_bytes: int = MIB
    latency_rate: int = 5_000
    latency_seconds: float = 10.0
    latency_warmup_seconds: float = 1.0
    time_limit_seconds: float = 60.0
    idle_settle_seconds: float = 2.0
    profile: ProfileWhen = ProfileWhen.auto


TARGETS = ("goqueue-kafka", "goqueue-sdk", "redis", "nats", "rabbitmq-queue", "rabbitmq-stream")
WORKLOADS = ("produce", "latency", "drain", "fanout", "partitions")


@dataclass(frozen=True, slots=True)
class CompareConfig:
    """`python -m bench compare`: every system on the OpenMessaging-style workloads.

    Lists are comma-separated so every field is one flag. Defaults take about an hour on
    2 cores; `--quick` shrinks every count for a smoke run (figures then mean little).
    """

    data_root: Path | None = None
    results_dir: Path = Path(__file__).parent / "results"
    targets: str = ",".join(TARGETS)
    workloads: str = ",".join(WORKLOADS)
    runs: int = 3
    value_size: int = 1024
    produce_seconds: float = 5.0
    produce_partitions: str = "1,16"
    producers: str = "1,4"
    latency_rates: str = "10000,50000"
    latency_seconds: float = 10.0
    latency_warmup_seconds: float = 2.0
    backlog_mib: int = 256
    fanout_messages: int = 100_000
    fanout_groups: int = 4
    many_partitions: str = "1000,10000"
    partition_rate: float = 0.5
    partition_seconds: float = 10.0
    disk_bytes: int = GIB
    tcp_bytes: int = 4 * GIB
    time_limit_seconds: float = 180.0
    profile: bool = True

    def ints(self, name: str) -> list[int]:
        return [int(item) for item in str(getattr(self, name)).split(",") if item]

    def names(self, name: str) -> list[str]:
        return [item.strip() for item in str(getattr(self, name)).split(",") if item.strip()]


QUICK = {
    "runs": 1,
    "produce_seconds": 1.0,
    "produce_partitions": "1,16",
    "producers": "1,4",
    "latency_rates": "1000",
    "latency_seconds": 2.0,
    "latency_warmup_seconds": 0.5,
    "backlog_mib": 8,
    "fanout_messages": 5_000,
    "many_partitions": "100",
    "partition_seconds": 2.0,
    "disk_bytes": 64 * MIB,
    "tcp_bytes": 256 * MIB,
    "time_limit_seconds": 60.0,
    "profile": False,
}
"""`--quick`: smallest counts that still run every code path once (smoke tests, not figures)."""
