"""`python -m bench`: flags to BenchConfig, run, write results, print the Markdown table."""

from __future__ import annotations

import argparse
import resource
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from bench.compare import CompareRun
from bench.compare_report import CompareResults
from bench.config import QUICK, TARGETS, WORKLOADS, BenchConfig, CompareConfig, ProfileWhen
from bench.drivers.base import BenchError
from bench.machine import describe_machine
from bench.report import BenchResults
from bench.run import BenchRun, default_stamp
from bench.systems.goqueue import GoQueueSystem

HELP = {
    "data_root": "directory for the temp data dir and the disk test [default: system temp dir]",
    "results_dir": "where Markdown and JSON results go",
    "runs": "runs per figure (the median, min and max are reported)",
    "disk_bytes": "bytes per raw disk write run",
    "value_size": "message value size in bytes",
    "produce_messages": "messages per produce run (the drain reads all of them back)",
    "linger_ms": "producer linger.ms for the throughput runs",
    "batch_bytes": "producer batch.size for the throughput runs",
    "latency_rate": "fixed produce rate of the latency runs, msg/s",
    "latency_seconds": "measured seconds per latency run",
    "latency_warmup_seconds": "unmeasured warm-up seconds per latency run",
    "time_limit_seconds": "upper bound of every produce or drain run",
    "idle_settle_seconds": "idle pause before reading the broker's RSS",
    "profile": "py-spy the broker during an extra run: auto = only if a target is missed",
}


COMPARE_HELP = {
    "data_root": HELP["data_root"],
    "results_dir": HELP["results_dir"],
    "targets": f"systems and clients to measure, comma-separated, of: {', '.join(TARGETS)}",
    "workloads": f"workloads to run, comma-separated, of: {', '.join(WORKLOADS)}",
    "runs": HELP["runs"],
    "value_size": HELP["value_size"],
    "produce_seconds": "seconds of sending per max-throughput run",
    "produce_partitions": "partition counts of the max-throughput workload",
    "producers": "producer process counts of the max-throughput workload",
    "latency_rates": "fixed rates (msg/s) of the latency workload",
    "latency_seconds": HELP["latency_seconds"],
    "latency_warmup_seconds": HELP["latency_warmup_seconds"],
    "backlog_mib": "backlog size of the drain workload, MiB (the issue's figure: 1024)",
    "fanout_messages": "messages per fan-out run",
    "fanout_groups": "consumer groups of the fan-out workload",
    "many_partitions": "partition counts of the many-partitions workload",
    "partition_rate": "msg/s sent to each partition in the many-partitions workload",
    "partition_seconds": "seconds of producing per many-partitions run",
    "disk_bytes": HELP["disk_bytes"],
    "tcp_bytes": "bytes per loopback TCP run",
    "time_limit_seconds": "upper bound of every producer or consumer in a run",
    "profile": "py-spy the Go-Queue broker during one extra max-throughput run",
}


def parser_for(
    config_type: type[Any], help_texts: dict[str, str], prog: str, description: str
) -> argparse.ArgumentParser:
    """One flag per field of a config dataclass, typed and defaulted by the field."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    defaults = config_type()
    for item in fields(config_type):
        default = getattr(defaults, item.name)
        flag = "--" + item.name.replace("_", "-")
        text = help_texts[item.name] + ("" if default is None else f" [default: {default}]")
        if isinstance(default, bool):
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=default, help=text
            )
            continue
        kind = type(default) if default is not None else Path
        choices = list(ProfileWhen) if kind is ProfileWhen else None
        parser.add_argument(flag, type=kind, default=default, choices=choices, help=text)
    return parser


def parse_args(argv: Sequence[str]) -> BenchConfig:
    parser = parser_for(
        BenchConfig,
        HELP,
        "python -m bench",
        "Go-Queue benchmark: raw disk speed, produce, drain, latency, memory. "
        "`python -m bench compare --help` for the comparison with other brokers, "
        "`python -m bench sdk --help` for the SDK next to confluent-kafka and aiokafka, "
        "`python -m bench cluster --help` for leader failover time and multi-node scale-up.",
    )
    config = BenchConfig(**vars(parser.parse_args(argv)))
    if config.runs < 1 or config.value_size < 16 or config.latency_rate < 1:
        parser.error("--runs and --latency-rate must be >= 1 and --value-size >= 16")
    return config


def parse_compare_args(argv: Sequence[str]) -> CompareConfig:
    """`--quick` first applies the smoke-run counts; explicit flags still override them."""
    parser = parser_for(
        CompareConfig,
        COMPARE_HELP,
        "python -m bench compare",
        "Go-Queue next to Redis Streams, NATS JetStream and RabbitMQ on OpenMessaging-style "
        "workloads, with the machine's disk and loopback limits.",
    )
    parser.add_argument("--quick", action="store_true", help="tiny counts for a smoke run")
    known, _ = parser.parse_known_args(argv)
    if known.quick:
        parser.set_defaults(**QUICK)
    values = vars(parser.parse_args(argv))
    values.pop("quick")
    config = CompareConfig(**values)
    if config.runs < 1 or config.value_size < 16:
        parser.error("--runs must be >= 1 and --value-size >= 16")
    return config


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["compare"]:
        return compare(args[1:])
    if args[:1] == ["sdk"]:
        from bench.sdk import main as sdk

        return sdk(args[1:])
    if args[:1] == ["delayed"]:
        from bench.delayed import main as delayed

        return delayed(args[1:])
    if args[:1] == ["share"]:
        from bench.share import main as share

        return share(args[1:])
    if args[:1] == ["cluster"]:
        from bench.cluster import main as cluster

        return cluster(args[1:])
    config = parse_args(args)
    config.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = default_stamp()
    results = BenchResults(
        started_at=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        command=shlex.join(["python", "-m", "bench", *args]),
        system=GoQueueSystem.name,
        driver="confluent-kafka (librdkafka) in Python",
        machine=describe_machine(config.data_root or Path(tempfile.gettempdir())),
        config={key: str(value) for key, value in asdict(config).items()},
        durability=GoQueueSystem.durability(acks=1),
    )
    code = 0
    try:
        BenchRun(config, results, stamp).run()
    except BenchError as exc:
        results.notes.append(f"run aborted: {exc}")
        code = 1
    path = results.write(config.results_dir, stamp)
    print(results.to_markdown())
    print(f"results: {path} and {path.with_suffix('.json')}", file=sys.stderr)
    return code


def compare(args: list[str]) -> int:
    """The comparison suite; exit code 1 when any case failed (its cell says why)."""
    config = parse_compare_args(args)
    config.results_dir.mkdir(parents=True, exist_ok=True)
    raise_open_files_limit()
    stamp = default_stamp()
    results = CompareResults(
        started_at=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        command=shlex.join(["python", "-m", "bench", "compare", *args]),
        machine=describe_machine(config.data_root or Path(tempfile.gettempdir())),
        config={key: str(value) for key, value in asdict(config).items()},
    )
    code = 0
    try:
        CompareRun(config, results, stamp).run()
    except BenchError as exc:
        results.notes.append(f"run aborted: {exc}")
        code = 1
    if any(cell.summary is None for cell in results.cells):
        code = 1
    path = results.write(config.results_dir, stamp)
    print(results.to_markdown())
    print(f"results: {path} and {path.with_suffix('.json')}", file=sys.stderr)
    return code


def raise_open_files_limit() -> None:
    """Servers inherit the limit: thousands of partitions need thousands of open files."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
