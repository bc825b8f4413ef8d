"""One benchmark run: physical limit, broker start, workloads, memory, profile, broker stop."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.config import BenchConfig, ProfileWhen
from bench.disk import standard_modes, write_speed
from bench.drivers.base import BenchError, Throughput
from bench.drivers.kafka import KafkaDriver
from bench.machine import cpu_seconds, load_average, memory_mb
from bench.profiling import PySpyRecorder, find_py_spy
from bench.report import BenchResults, Figure, Target
from bench.stats import Summary, percentile
from bench.systems.goqueue import GoQueueSystem

PRODUCE_TOPIC = "bench-produce"
LATENCY = "end-to-end latency"
PERCENTILES = {"p50": 0.5, "p99": 0.99, "p99.9": 0.999, "max": 1.0}
LATENCY_TOPIC = "bench-latency"
TARGETS = {
    "produce": Target(">=", 250_000),
    "drain": Target(">=", 350_000),
    "p99": Target("<=", 2.0),
    "rss": Target("<", 100),
}


@dataclass(frozen=True, slots=True)
class CpuShare:
    """CPU used during one run by the broker and by this (client) process, in % of one core."""

    broker_pct: float
    client_pct: float


@contextmanager
def cpu_share(broker_pid: int, shares: list[CpuShare]) -> Iterator[None]:
    """Append the CPU the broker and the client used over the `with` block to `shares`."""
    wall, broker, client = time.monotonic(), cpu_seconds(broker_pid), time.process_time()
    yield
    wall = time.monotonic() - wall
    shares.append(
        CpuShare(
            100 * (cpu_seconds(broker_pid) - broker) / wall,
            100 * (time.process_time() - client) / wall,
        )
    )


class BenchRun:
    """Runs every workload against one system with one driver and collects the figures."""

    def __init__(self, config: BenchConfig, results: BenchResults, stamp: str) -> None:
        self.config = config
        self.results = results
        self.stamp = stamp
        self.produced = 0

    def figure(
        self, section: str, name: str, unit: str, values: list[float], target: str | None = None
    ) -> Figure:
        summary = Summary.of(values)
        return self.results.add(Figure(section, name, unit, summary, TARGETS.get(target or "")))

    def run(self) -> None:
        config = self.config
        with tempfile.TemporaryDirectory(prefix="goqueue-bench-", dir=config.data_root) as tmp:
            raw = self.disk(Path(tmp))
            system = GoQueueSystem(Path(tmp) / "data")
            system.start()
            try:
                self.memory(system.pid, "idle after start")
                driver = KafkaDriver(system.bootstrap, config.linger_ms, config.batch_bytes)
                self.produce(driver, system.pid, raw)
                self.drain(driver, system.pid)
                self.latency(driver, system.pid)
                self.memory(system.pid, "after the runs, idle")
                self.profile_if_needed(driver, system.pid)
            finally:
                code = system.stop()
                shutil.copy(system.log_path, config.results_dir / f"{self.stamp}-broker.log")
            self.results.notes.append(f"broker exit code after SIGTERM: {code}")
            self.results.notes.append(f"load average at the end: {load_average()}")

    def disk(self, directory: Path) -> dict[str, float]:
        """Raw sequential write speed of the data dir's disk; returns median B/s per mode.

        An untimed first run pays the one-off cost of touching fresh memory for the page cache
        (large on a VM), which would otherwise land in whichever run comes first.
        """
        size = self.config.disk_bytes
        flush_s = GoQueueSystem.flush_interval_ms() / 1000
        modes = standard_modes(flush_s)
        write_speed(directory, size, modes[0])
        medians = {}
        for mode in modes:
            rates = [
                write_speed(directory, size, mode).bytes_per_s for _ in range(self.config.runs)
            ]
            at_least = f", at least {mode.min_seconds:g} s" if mode.min_seconds else ""
            name = f"{mode.name} ({size / 2**30:g} GiB{at_least}, 1 MiB writes)"
            self.figure("disk", name, "MB/s", [r / 1e6 for r in rates])
            self.figure("disk", f"{mode.name}, as {self.config.value_size} B msgs", "msg/s",
                        [r / self.config.value_size for r in rates])  # fmt: skip
            medians[mode.name] = Summary.of(rates).median
        return medians

    def memory(self, pid: int, when: str) -> None:
        """Broker RSS after an idle pause (a deliberate idle period, not a synchronisation)."""
        time.sleep(self.config.idle_settle_seconds)
        memory = memory_mb(pid)
        self.figure("memory", f"broker RSS, {when}", "MB", [memory["rss_mb"]], "rss")
        self.figure("memory", f"broker peak RSS (VmHWM), {when}", "MB", [memory["peak_rss_mb"]])

    def throughput_figures(
        self, section: str, runs: list[Throughput], shares: list[CpuShare], target: str
    ) -> None:
        self.figure(section, "throughput", "msg/s", [r.msg_per_s for r in runs], target)
        self.figure(section, "throughput (values)", "MB/s", [r.mb_per_s for r in runs])
        self.figure(section, "broker CPU", "% of a core", [s.broker_pct for s in shares])
        self.figure(section, "client CPU", "% of a core", [s.client_pct for s in shares])

    def produce(self, driver: KafkaDriver, pid: int, raw: dict[str, float]) -> None:
        config = self.config
        driver.create_topic(PRODUCE_TOPIC, 1)
        runs: list[Throughput] = []
        shares: list[CpuShare] = []
        for _ in range(config.runs):
            runs.append(self.produce_once(driver, pid, shares))
        self.throughput_figures("produce", runs, shares, "produce")
        for mode, rate in raw.items():
            self.figure("produce", f"ratio to {mode}", "%",
                        [100 * r.payload_bytes / r.seconds / rate for r in runs])  # fmt: skip
        self.results.notes.append(
            f"produce: {config.produce_messages:,} x {config.value_size} B per run, one partition, "
            f"acks=1, linger.ms={config.linger_ms}, batch.size={config.batch_bytes}, "
            "no compression; timed from first send to last acknowledgement"
        )

    def produce_once(self, driver: KafkaDriver, pid: int, shares: list[CpuShare]) -> Throughput:
        """One produce run, checked against the broker's log end offset."""
        config = self.config
        with cpu_share(pid, shares):
            run = driver.produce(
                PRODUCE_TOPIC, config.produce_messages, config.value_size, config.time_limit_seconds
            )
        self.produced += run.messages
        end = driver.end_offset(PRODUCE_TOPIC)
        if end != self.produced:
            raise BenchError(f"log end offset {end} after {self.produced} acknowledged messages")
        return run

    def drain(self, driver: KafkaDriver, pid: int) -> None:
        runs: list[Throughput] = []
        shares: list[CpuShare] = []
        for _ in range(self.config.runs):
            runs.append(self.drain_once(driver, pid, shares))
        self.throughput_figures("drain", runs, shares, "drain")
        self.results.notes.append(
            f"drain: the whole backlog ({self.produced:,} messages, "
            f"{self.produced * self.config.value_size / 1e9:.2f} GB of values) from offset 0 per "
            "run, fresh consumer with manual assign, timed from assign to the last message"
        )

    def drain_once(self, driver: KafkaDriver, pid: int, shares: list[CpuShare]) -> Throughput:
        with cpu_share(pid, shares):
            run = driver.drain(
                PRODUCE_TOPIC, self.produced, self.config.value_size, self.config.time_limit_seconds
            )
        if run.messages != self.produced:
            raise BenchError(f"drained {run.messages} of {self.produced} messages in time")
        return run

    def latency(self, driver: KafkaDriver, pid: int) -> None:
        config = self.config
        driver.create_topic(LATENCY_TOPIC, 1)
        shares: list[CpuShare] = []
        runs = [self.latency_once(driver, pid, shares) for _ in range(config.runs)]
        for name in PERCENTILES:
            self.figure(LATENCY, name, "ms", [run[name] for run in runs], name)
        self.figure(LATENCY, "broker CPU", "% of a core", [s.broker_pct for s in shares])
        self.results.notes.append(
            f"latency: {config.latency_rate:,} msg/s for {config.latency_seconds:g} s after a "
            f"{config.latency_warmup_seconds:g} s warm-up, acks=1, linger.ms=0, consumer in its "
            "own process (fetch.wait.max.ms=100); from the send call to receipt by the consumer "
            "application, CLOCK_MONOTONIC stamp in the payload"
        )

    def latency_once(
        self, driver: KafkaDriver, pid: int, shares: list[CpuShare]
    ) -> dict[str, float]:
        """One fixed-rate run; every message sent must arrive. Returns percentiles in ms."""
        config = self.config
        with cpu_share(pid, shares):
            run = driver.end_to_end(
                LATENCY_TOPIC,
                config.latency_rate,
                config.latency_seconds,
                config.latency_warmup_seconds,
                config.value_size,
            )
        if run.received != run.sent or not run.latencies_ns:
            raise BenchError(f"latency run: received {run.received} of {run.sent}")
        ordered = sorted(run.latencies_ns)
        return {name: percentile(ordered, q) / 1e6 for name, q in PERCENTILES.items()}

    def profile_if_needed(self, driver: KafkaDriver, pid: int) -> None:
        """py-spy on the broker during an extra run of produce and of each workload that missed.

        These runs come after the measured ones and are not counted in the figures.
        """
        missed = {figure.section for figure in self.results.missed}
        when = self.config.profile
        if when is ProfileWhen.never or (when is ProfileWhen.auto and not missed):
            return
        py_spy = find_py_spy()
        if py_spy is None:
            self.results.notes.append("profile skipped: py-spy not found (pip install py-spy)")
            return
        workloads: dict[str, Callable[[list[CpuShare]], str]] = {
            "produce": lambda s: f"{self.produce_once(driver, pid, s).msg_per_s:,.0f} msg/s",
            "drain": lambda s: f"{self.drain_once(driver, pid, s).msg_per_s:,.0f} msg/s",
            LATENCY: lambda s: f"p99 {self.latency_once(driver, pid, s)['p99']:.2f} ms",
        }
        for name, workload in workloads.items():
            if when is ProfileWhen.auto and name != "produce" and name not in missed:
                continue
            raw = self.config.results_dir / f"{self.stamp}-profile-{name.replace(' ', '-')}.txt"
            shares: list[CpuShare] = []
            recorder = PySpyRecorder(py_spy, pid, raw, self.config.time_limit_seconds + 30)
            with recorder:
                outcome = workload(shares)
            if recorder.summary is not None:
                self.results.profiles[name] = recorder.summary
            self.results.notes.append(
                f"profiled {name} run (py-spy attached, not counted above): {outcome}, "
                f"broker CPU {shares[0].broker_pct:.0f} % of a core"
            )


def default_stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
