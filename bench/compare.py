"""`python -m bench compare`: every system and client on the same five workloads, in one run.

Modelled on the OpenMessaging Benchmark: max producer throughput, end-to-end latency at fixed
rates, backlog drain, fan-out to several consumer groups, and many partitions at a low rate.
Every figure is the median of `--runs` runs with min and max; every run uses a fresh topic (or
a fresh server) so runs do not inherit each other's data.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from functools import partial
from itertools import count
from pathlib import Path

from bench.compare_report import Cell, CompareResults
from bench.config import MIB, CompareConfig
from bench.disk import standard_modes, write_speed
from bench.drivers.base import BenchError, Client, ConsumeSpec, ProduceSpec
from bench.machine import load_average, memory_mb
from bench.network import loopback_throughput
from bench.profiling import PySpyRecorder, find_py_spy
from bench.stats import Summary, percentile
from bench.systems.goqueue import GoQueueSystem
from bench.systems.server import System
from bench.targets import SYSTEMS, TARGETS, Target
from bench.workers import Outcome, admin, run_workers

PRODUCE = "1. Max producer throughput"
LATENCY = "2. End-to-end latency at a fixed rate"
DRAIN = "3. Backlog drain"
FANOUT = "4. Fan-out"
PARTITIONS = "5. Many partitions"
PERCENTILES = {"p50 ms": 0.5, "p99 ms": 0.99, "p99.9 ms": 0.999, "max ms": 1.0}
LATENCY_GRACE_S = 20.0
ADMIN_TIME_LIMIT_S = 300.0
IDLE_SETTLE_S = 2.0
PROFILED_TARGET = "goqueue-kafka"
UNBOUNDED = 10**12
"""Message count of a producer that stops at its time limit instead."""

Measure = Callable[[], dict[str, float]]
"""One run of a workload case: returns a value per metric."""


def broker_rss_mb(system: System) -> float:
    """Resident memory of the server's whole process tree."""
    total = 0.0
    for pid in system.pids():
        try:
            total += memory_mb(pid)["rss_mb"]
        except (OSError, ValueError):
            continue
    return total


class CompareRun:
    """Starts each system once (a fresh one per many-partitions run), runs every workload with
    every client of it, stops it, and fills `results`."""

    def __init__(self, config: CompareConfig, results: CompareResults, stamp: str) -> None:
        self.config = config
        self.results = results
        self.stamp = stamp
        self._topics = count()

    def run(self) -> None:
        config = self.config
        unknown = set(config.names("targets")) - set(TARGETS)
        if unknown:
            raise BenchError(f"unknown targets {sorted(unknown)}; known: {sorted(TARGETS)}")
        targets = [TARGETS[name] for name in config.names("targets")]
        workloads = set(config.names("workloads"))
        self._describe_workloads(workloads)
        with tempfile.TemporaryDirectory(prefix="bench-compare-", dir=config.data_root) as tmp:
            root = Path(tmp)
            self.physical_limits(root)
            for system_name in dict.fromkeys(t.system for t in targets):
                mine = [t for t in targets if t.system == system_name]
                self.results.notes.append(
                    f"load average before {system_name}: {load_average()} (1, 5, 15 min)"
                )
                if workloads - {"partitions"}:
                    self.on_one_server(root / system_name, mine, workloads)
                if "partitions" in workloads:
                    for target in mine:
                        if target.many_partitions:
                            self.many_partitions(root / f"{target.name}-partitions", target)
        self.results.notes.append(f"load average at the end: {load_average()}")

    def _system(self, directory: Path, name: str) -> System:
        system = SYSTEMS[name](directory)
        self.results.systems.setdefault(
            system.name,
            {"version": system.version, "durability": system.durability_setting},
        )
        return system

    def _label(self, target: Target) -> str:
        self.results.targets.setdefault(
            target.label, {"partition": target.partition, "group": target.group}
        )
        return target.label

    def on_one_server(self, directory: Path, targets: list[Target], workloads: set[str]) -> None:
        """Workloads 1 to 4 for every client of one system, on one server process."""
        system = self._system(directory, targets[0].system)
        system.start()
        try:
            for target in targets:
                client = target.client(system)
                label = self._label(target)
                if "produce" in workloads:
                    self.produce(label, client, system)
                if "latency" in workloads:
                    self.latency(label, client, system)
                if "drain" in workloads:
                    self.drain(label, client, system)
                if "fanout" in workloads:
                    self.fanout(label, client, system)
                if self.config.profile and target.name == PROFILED_TARGET:
                    self.profile(client, system)
        finally:
            system.stop()

    def repeat(self, workload: str, case: str, label: str, measure: Measure) -> None:
        """`--runs` runs of one case; a failed run makes the whole case one failed cell."""
        runs: list[dict[str, float]] = []
        try:
            for _ in range(self.config.runs):
                runs.append(measure())
        except BenchError as exc:
            self.fail(workload, case, label, str(exc))
            return
        for metric in runs[0]:
            summary = Summary.of([run[metric] for run in runs])
            self.results.cells.append(Cell(workload, case, label, metric, summary))

    def fail(self, workload: str, case: str, label: str, reason: str) -> None:
        """A case that could not be measured: a short reason in its cell, all of it in notes."""
        self.results.cells.append(Cell(workload, case, label, "", None, reason[:200]))
        self.results.notes.append(f"{label}, {workload}, {case}: failed: {reason}")

    def fresh_topic(self, client: Client, partitions: int, groups: int) -> str:
        topic = f"bench-{self.stamp.replace('-', '')}-{next(self._topics)}"
        admin(client, "create", (topic, partitions, groups), ADMIN_TIME_LIMIT_S)
        return topic

    def produce_spec(
        self, topic: str, partitions: int, messages: int, **extra: object
    ) -> ProduceSpec:
        return ProduceSpec(
            topic,
            partitions,
            messages,
            self.config.value_size,
            self.config.time_limit_seconds,
            **extra,  # type: ignore[arg-type]
        )

    def produce(self, label: str, client: Client, system: System) -> None:
        for partitions in self.config.ints("produce_partitions"):
            for producers in self.config.ints("producers"):
                case = f"{_plural(partitions, 'partition')}, {_plural(producers, 'producer')}"
                run = partial(self.produce_once, client, system, partitions, producers)
                self.repeat(PRODUCE, case, label, run)

    def produce_once(
        self, client: Client, system: System, partitions: int, producers: int
    ) -> dict[str, float]:
        """Every producer sends for `--produce-seconds`; everything sent must be acknowledged."""
        topic = self.fresh_topic(client, partitions, 0)
        specs = [
            ProduceSpec(
                topic,
                partitions,
                UNBOUNDED,
                self.config.value_size,
                self.config.produce_seconds,
                first_partition=i,
            )
            for i in range(producers)
        ]
        outcome = run_workers(client, system.pids, specs, [])
        admin(client, "delete", (topic, partitions, 0), ADMIN_TIME_LIMIT_S)
        return self.produce_figures(outcome, sum(p.sent for p in outcome.producers))

    def produce_figures(self, outcome: Outcome, expected: int) -> dict[str, float]:
        acked = sum(p.acked for p in outcome.producers)
        if acked != expected:
            raise BenchError(f"{acked} of {expected} messages acknowledged in time")
        start = min(p.start_ns for p in outcome.producers)
        seconds = (max(p.end_ns for p in outcome.producers) - start) / 1e9
        return {
            "msg/s": acked / seconds,
            "MB/s": acked * self.config.value_size / seconds / 1e6,
            "broker CPU %": outcome.broker_cpu_pct,
            "client CPU %": outcome.client_cpu_pct,
        }

    def latency(self, label: str, client: Client, system: System) -> None:
        for rate in self.config.ints("latency_rates"):
            run = partial(self.latency_once, client, system, rate)
            self.repeat(LATENCY, f"{rate:,} msg/s", label, run)

    def latency_once(self, client: Client, system: System, rate: int) -> dict[str, float]:
        config = self.config
        total = int(rate * (config.latency_warmup_seconds + config.latency_seconds))
        warmup = int(rate * config.latency_warmup_seconds)
        limit = config.latency_warmup_seconds + config.latency_seconds + LATENCY_GRACE_S
        topic = self.fresh_topic(client, 1, 1)
        producer = ProduceSpec(topic, 1, total, config.value_size, limit, rate=rate, stamped=True)
        consumer = ConsumeSpec(
            topic, 0, total, config.value_size, limit + LATENCY_GRACE_S, True, warmup
        )
        outcome = run_workers(client, system.pids, [producer], [consumer])
        admin(client, "delete", (topic, 1, 1), ADMIN_TIME_LIMIT_S)
        sent, received = outcome.producers[0], outcome.consumers[0]
        if sent.sent != total:
            raise BenchError(
                f"the client sent only {sent.sent:,} of {total:,} within {limit:g} s "
                f"({sent.send_rate:,.0f} msg/s): too slow for this rate"
            )
        if received.received != total or sent.acked != total:
            raise BenchError(
                f"acknowledged {sent.acked:,}, received {received.received:,} of {total:,}"
            )
        ordered = sorted(received.latencies_ns)
        figures = {name: percentile(ordered, q) / 1e6 for name, q in PERCENTILES.items()}
        figures["rate achieved msg/s"] = sent.send_rate
        figures["broker CPU %"] = outcome.broker_cpu_pct
        return figures

    def drain(self, label: str, client: Client, system: System) -> None:
        """One backlog, read by a fresh consumer group per run (on RabbitMQ queues, where
        reading consumes, each group has its own queue and so its own copy of the backlog)."""
        config = self.config
        messages = config.backlog_mib * MIB // config.value_size
        case = f"{config.backlog_mib:,} MiB backlog"
        try:
            topic = self.fresh_topic(client, 1, config.runs)
            filled = run_workers(client, system.pids, [self.produce_spec(topic, 1, messages)], [])
            fill = self.produce_figures(filled, messages)["msg/s"]
        except BenchError as exc:
            self.fail(DRAIN, case, label, f"filling the backlog: {exc}")
            return
        groups = count()
        self.repeat(DRAIN, case, label, partial(self.drain_once, client, system, topic, groups))
        admin(client, "delete", (topic, 1, config.runs), ADMIN_TIME_LIMIT_S)
        self.results.notes.append(f"{label}: backlog filled at {fill:,.0f} msg/s (one producer)")

    def drain_once(
        self, client: Client, system: System, topic: str, groups: count[int]
    ) -> dict[str, float]:
        config = self.config
        messages = config.backlog_mib * MIB // config.value_size
        consumer = ConsumeSpec(
            topic, next(groups), messages, config.value_size, config.time_limit_seconds
        )
        outcome = run_workers(client, system.pids, [], [consumer])
        received = outcome.consumers[0]
        if received.received != messages:
            raise BenchError(f"drained {received.received} of {messages} in time")
        seconds = (received.end_ns - received.start_ns) / 1e9
        return {
            "msg/s": messages / seconds,
            "MB/s": messages * config.value_size / seconds / 1e6,
            "broker CPU %": outcome.broker_cpu_pct,
            "client CPU %": outcome.client_cpu_pct,
        }

    def fanout(self, label: str, client: Client, system: System) -> None:
        case = f"1 producer, {self.config.fanout_groups} consumer groups"
        self.repeat(FANOUT, case, label, partial(self.fanout_once, client, system))

    def fanout_once(self, client: Client, system: System) -> dict[str, float]:
        config = self.config
        groups, messages = config.fanout_groups, config.fanout_messages
        topic = self.fresh_topic(client, 1, groups)
        consumers = [
            ConsumeSpec(topic, g, messages, config.value_size, config.time_limit_seconds)
            for g in range(groups)
        ]
        producer = self.produce_spec(topic, 1, messages)
        outcome = run_workers(client, system.pids, [producer], consumers)
        admin(client, "delete", (topic, 1, groups), ADMIN_TIME_LIMIT_S)
        produced = self.produce_figures(outcome, messages)
        short = [c.received for c in outcome.consumers if c.received != messages]
        if short:
            raise BenchError(f"groups received {short} of {messages} in time")
        start = min(c.start_ns for c in outcome.consumers)
        seconds = (max(c.end_ns for c in outcome.consumers) - start) / 1e9
        return {
            "produce msg/s": produced["msg/s"],
            "delivered msg/s (all groups)": groups * messages / seconds,
            "broker CPU %": outcome.broker_cpu_pct,
            "client CPU %": outcome.client_cpu_pct,
        }

    def many_partitions(self, directory: Path, target: Target) -> None:
        """A fresh server per run, so memory figures do not carry earlier runs' allocations."""
        runs = count()
        for partitions in self.config.ints("many_partitions"):
            case = f"{partitions:,} partitions, {self.config.partition_rate:g} msg/s each"
            run = partial(self.many_partitions_once, directory, target, partitions, runs)
            self.repeat(PARTITIONS, case, self._label(target), run)

    def many_partitions_once(
        self, directory: Path, target: Target, partitions: int, runs: count[int]
    ) -> dict[str, float]:
        config = self.config
        rate = partitions * config.partition_rate
        messages = int(rate * config.partition_seconds)
        topic = f"many-{partitions}"
        system = self._system(directory / f"run-{next(runs)}", target.system)
        system.start()
        try:
            client = target.client(system)
            time.sleep(IDLE_SETTLE_S)
            idle = broker_rss_mb(system)
            create_s = admin(client, "create", (topic, partitions, 0), ADMIN_TIME_LIMIT_S)
            time.sleep(IDLE_SETTLE_S)
            created = broker_rss_mb(system)
            limit = config.partition_seconds + LATENCY_GRACE_S
            spec = ProduceSpec(topic, partitions, messages, config.value_size, limit, rate=rate)
            outcome = run_workers(client, system.pids, [spec], [])
            loaded = broker_rss_mb(system)
        finally:
            stopping = time.monotonic()
            system.stop()
        stop_s = time.monotonic() - stopping
        sent = outcome.producers[0]
        if sent.acked != messages:
            raise BenchError(f"{sent.acked} of {messages} acknowledged in time")
        return {
            "create s": create_s,
            "RSS idle MB": idle,
            "RSS after create MB": created,
            "RSS after load MB": loaded,
            "broker CPU %": outcome.broker_cpu_pct,
            "rate achieved msg/s": sent.send_rate,
            "stop s": stop_s,
        }

    def physical_limits(self, root: Path) -> None:
        """Disk write speed (no fsync, one at the end, every flush.ms) and loopback TCP."""
        config = self.config
        flush_s = GoQueueSystem.flush_interval_ms() / 1000
        write_speed(root, config.disk_bytes, standard_modes(flush_s)[0])
        for mode in standard_modes(flush_s):
            rates = [
                write_speed(root, config.disk_bytes, mode).bytes_per_s / 1e6
                for _ in range(config.runs)
            ]
            self.results.limits.append(
                (
                    f"disk: {mode.name} ({config.disk_bytes / MIB:,.0f} MiB, 1 MiB writes)",
                    "MB/s",
                    Summary.of(rates),
                )
            )
        rates = [
            loopback_throughput(config.tcp_bytes).bytes_per_s / 1e6 for _ in range(config.runs)
        ]
        self.results.limits.append(
            (
                f"loopback TCP, one connection ({config.tcp_bytes / MIB:,.0f} MiB, 1 MiB sends)",
                "MB/s",
                Summary.of(rates),
            )
        )

    def profile(self, client: Client, system: System) -> None:
        """py-spy on the broker during one extra max-throughput run (not counted above)."""
        py_spy = find_py_spy()
        if py_spy is None:
            self.results.notes.append("profile skipped: py-spy not found (pip install py-spy)")
            return
        pid = system.pids()[0]
        raw = self.config.results_dir / f"{self.stamp}-compare-profile-produce.txt"
        recorder = PySpyRecorder(py_spy, pid, raw, self.config.time_limit_seconds + 30)
        topic = self.fresh_topic(client, 1, 0)
        with recorder:
            spec = ProduceSpec(
                topic, 1, UNBOUNDED, self.config.value_size, self.config.produce_seconds
            )
            outcome = run_workers(client, system.pids, [spec], [])
        admin(client, "delete", (topic, 1, 0), ADMIN_TIME_LIMIT_S)
        figures = self.produce_figures(outcome, outcome.producers[0].sent)
        if recorder.summary is not None:
            self.results.profiles["Go-Queue, max producer throughput (1 partition, 1 producer)"] = (
                recorder.summary
            )
        self.results.notes.append(
            f"profiled produce run (py-spy attached, not counted above): {figures['msg/s']:,.0f} "
            f"msg/s, broker CPU {figures['broker CPU %']:.0f} % of a core"
        )

    def _describe_workloads(self, workloads: set[str]) -> None:
        c = self.config
        size = f"{c.value_size:,} B values"
        backlog = c.backlog_mib * MIB // c.value_size
        descriptions = {
            "produce": (
                PRODUCE,
                f"Each producer (one process each) sends {size} for {c.produce_seconds:g} s, "
                "round-robin over all partitions, as fast as the client's acknowledgement window "
                "allows; every message sent must be acknowledged. Timed from the first send to "
                "the last acknowledgement. A fresh topic per run.",
            ),
            "latency": (
                LATENCY,
                f"One producer at a fixed rate for {c.latency_seconds:g} s after a "
                f"{c.latency_warmup_seconds:g} s warm-up (not measured) and one consumer in "
                "another process reading concurrently, one partition. Latency runs from the "
                "send call to the consumer application's receipt (CLOCK_MONOTONIC stamp in the "
                "payload, one clock for both processes). A 'rate achieved' below the target "
                "means the client could not keep up, and latency then includes its queueing.",
            ),
            "drain": (
                DRAIN,
                f"A backlog of {c.backlog_mib:,} MiB ({backlog:,} messages of {size}) is "
                "produced into one partition once (its fill rate is in the notes); then each "
                "run, one consumer of a fresh consumer group reads all of it, timed from the "
                "start signal (connected, not yet subscribed) to the last message.",
            ),
            "fanout": (
                FANOUT,
                f"One producer sends {c.fanout_messages:,} messages of {size} to one partition "
                f"as fast as it can while {c.fanout_groups} consumers, one per consumer group "
                "(each its own process), read every message; delivered msg/s adds up all "
                "groups.",
            ),
            "partitions": (
                PARTITIONS,
                "A fresh server per run: idle memory, then a topic with that many partitions "
                f"is created (create s), then one producer sends {c.partition_rate:g} msg/s to "
                f"each partition, round-robin, for {c.partition_seconds:g} s ({size}). Memory "
                "is the RSS of the server's process tree; broker CPU is over the producing "
                "window; stop s is how long a clean shutdown (SIGTERM) then takes.",
            ),
        }
        for name in dict.fromkeys(n for n in descriptions if n in workloads):
            title, text = descriptions[name]
            self.results.workloads[title] = text


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'s' if n != 1 else ''}"
