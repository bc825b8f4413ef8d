"""`python -m bench`: flags to BenchConfig, run, write results, print the Markdown table."""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path

from bench.config import BenchConfig, ProfileWhen
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


def parse_args(argv: Sequence[str]) -> BenchConfig:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Go-Queue benchmark: raw disk speed, produce, drain, latency, memory.",
    )
    defaults = BenchConfig()
    for item in fields(BenchConfig):
        default = getattr(defaults, item.name)
        kind = type(default) if item.name != "data_root" else Path
        parser.add_argument(
            "--" + item.name.replace("_", "-"),
            type=kind,
            default=default,
            choices=list(ProfileWhen) if kind is ProfileWhen else None,
            help=HELP[item.name] + ("" if default is None else f" [default: {default}]"),
        )
    config = BenchConfig(**vars(parser.parse_args(argv)))
    if config.runs < 1 or config.value_size < 16 or config.latency_rate < 1:
        parser.error("--runs and --latency-rate must be >= 1 and --value-size >= 16")
    return config


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
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
