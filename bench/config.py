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
