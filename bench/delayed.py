"""`python -m bench delayed`: one million pending delayed messages and a burst coming due.

One broker (default settings: 60 s scheduler windows), one topic with delayed delivery and
four partitions. confluent-kafka parks `--messages` records due over `--spread-s` seconds
(starting `--first-due-s` from now, so none comes due during the run), then `--burst` records
all due at one instant a few seconds after they are parked. Figures:

- scheduling throughput: parked messages acknowledged per second (acks=all, so each
  produce waits for the schedule log's fsync);
- broker memory (RSS) idle, with the far messages pending (all on disk but their window
  files' page cache, which RSS does not count), again after a clean restart (which replays
  the schedule log and rebuilds the window files: its duration is a figure too), and with
  the burst pending as well (held in memory, as it is due within the next window);
- the burst's lateness: record timestamp (the append to the topic) minus its scheduled time,
  and consumer arrival minus scheduled time, as percentiles, and how long after the due
  instant the last one was appended.

Load averages at start and end are part of the result: the machine may be shared.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
)
from confluent_kafka import TopicPartition as ConfluentTopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from bench.machine import load_average
from bench.report import machine_description, number
from bench.results_files import results_header, write_results
from bench.stats import percentile
from goqueue.testing.process import BrokerProcess

TOPIC = "delayed-bench"
PARTITIONS = 4
VALUE_SIZE = 100
PERCENTILES = (0.5, 0.9, 0.99, 0.999, 1.0)


@dataclass
class DelayedResults:
    started_at: str
    command: str
    machine: dict[str, Any]
    config: dict[str, Any]
    figures: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        f = self.figures
        lines = [
            f"# Delayed messages: {number(self.config['messages'])} pending, a burst of "
            f"{number(self.config['burst'])} due at once",
            "",
            f"Run {self.started_at}: `{self.command}`",
            "",
            machine_description(self.machine),
            f"Load average (1, 5, 15 min) at start: {self.machine['load_average_at_start']}; "
            f"at end: {f.get('load_average_at_end', '?')}.",
            "",
            "| figure | value |",
            "|---|---|",
        ]
        for name, value in f.items():
            if name != "load_average_at_end":
                lines.append(f"| {name.replace('_', ' ')} | {_cell(value)} |")
        lines += ["", *self.notes]
        return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    return number(value) if isinstance(value, int | float) else str(value)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def dir_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def park(bootstrap: str, dues_ms: Sequence[int]) -> float:
    """Send one delayed record per due time; returns acknowledged messages per second."""
    failures: list[KafkaError] = []

    def delivered(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            failures.append(error)

    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 5000}
    )
    value = b"d" * VALUE_SIZE
    started = time.perf_counter()
    for i, due_ms in enumerate(dues_ms):
        while True:
            try:
                producer.produce(
                    TOPIC,
                    value=value,
                    partition=i % PARTITIONS,
                    headers=[("goqueue.deliver-at", str(due_ms).encode())],
                    on_delivery=delivered,
                )
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    if producer.flush(600) != 0 or failures:
        raise RuntimeError(f"parking failed: {failures[:3]}")
    return len(dues_ms) / (time.perf_counter() - started)


def read_burst(bootstrap: str, count: int, timeout_s: float) -> list[tuple[int, int, int]]:
    """(scheduled ms, appended ms, received ms) of `count` delivered records."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "delayed-bench",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 20,
        }
    )
    consumer.assign(
        [ConfluentTopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(PARTITIONS)]
    )
    got: list[tuple[int, int, int]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(got) < count and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=10_000, timeout=0.2):
                if message.error() is not None:
                    raise RuntimeError(str(message.error()))
                received = time.time_ns() // 1_000_000
                headers: dict[str, Any] = dict(message.headers() or [])
                scheduled = int(headers["goqueue.scheduled-at"])
                got.append((scheduled, message.timestamp()[1], received))
    finally:
        consumer.close()
    return got


def restart(broker: BrokerProcess, timeout_s: float = 600) -> float:
    """Stop the broker cleanly and start it again; seconds until the scheduler has replayed
    its log and answers (503 from /api/v1/delayed while it loads)."""
    broker.stop()
    started = time.monotonic()
    broker.start()
    url = f"http://127.0.0.1:{broker.http_port}/api/v1/delayed?limit=1"
    while time.monotonic() - started < timeout_s:
        try:
            with urllib.request.urlopen(url, timeout=10):
                return time.monotonic() - started
        except urllib.error.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"the scheduler did not load within {timeout_s:.0f} s")


def lateness(samples: Sequence[float]) -> str:
    ordered = sorted(samples)
    return (
        ", ".join(
            f"p{fraction * 100:g} {percentile(ordered, fraction):.0f}" for fraction in PERCENTILES
        ).replace("p100 ", "max ")
        + " ms"
    )


def run(args: argparse.Namespace, results: DelayedResults, data_dir: Path) -> None:
    broker = BrokerProcess(data_dir)
    broker.start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        topic = NewTopic(TOPIC, PARTITIONS, 1, config={"goqueue.delayed.enabled": "true"})
        for future in admin.create_topics([topic]).values():
            future.result(30)
        time.sleep(1)
        figures = results.figures
        figures["broker_rss_idle_mib"] = round(rss_mib(broker.pid), 1)
        now = time.time_ns() // 1_000_000
        far = args.messages - args.burst
        first_due = now + args.first_due_s * 1000
        dues = [first_due + (i * 7919 % far) * args.spread_s * 1000 // far for i in range(far)]
        figures["far_messages"] = far
        figures["far_scheduling_msg_per_s"] = round(park(broker.bootstrap, dues))
        time.sleep(args.settle_s)
        figures["broker_rss_far_pending_mib"] = round(rss_mib(broker.pid), 1)
        figures["restart_until_scheduler_loaded_s"] = round(restart(broker), 1)
        time.sleep(args.settle_s)
        figures["broker_rss_far_pending_after_restart_mib"] = round(rss_mib(broker.pid), 1)
        burst_at = time.time_ns() // 1_000_000 + args.burst_lead_s * 1000
        figures["burst_scheduling_msg_per_s"] = round(
            park(broker.bootstrap, [burst_at] * args.burst)
        )
        parked_at = time.time_ns() // 1_000_000
        if parked_at >= burst_at:
            results.notes.append("The burst was still being parked when it came due.")
        figures["broker_rss_all_pending_mib"] = round(rss_mib(broker.pid), 1)
        figures["schedule_log_mib"] = round(
            sum(dir_mib(p) for p in data_dir.glob("__goqueue_schedule-*")), 1
        )
        figures["window_files_mib"] = round(dir_mib(data_dir / "__scheduler"), 1)
        got = read_burst(broker.bootstrap, args.burst, args.burst_lead_s + 300)
        figures["burst_delivered"] = len(got)
        if len(got) < args.burst:
            results.notes.append(f"Only {len(got)} of the burst arrived.")
        if got:
            figures["burst_lateness_appended"] = lateness([a - s for s, a, _ in got])
            figures["burst_lateness_received"] = lateness([r - s for s, _, r in got])
            figures["burst_all_appended_after_s"] = round(
                (max(a for _, a, _ in got) - burst_at) / 1000, 2
            )
        figures["broker_rss_after_burst_mib"] = round(rss_mib(broker.pid), 1)
    finally:
        broker.stop()
        results.figures["load_average_at_end"] = load_average()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench delayed", description=__doc__)
    parser.add_argument("--messages", type=int, default=1_000_000, help="pending in all")
    parser.add_argument("--burst", type=int, default=100_000, help="of them due at one instant")
    parser.add_argument("--spread-s", type=int, default=3600, help="the others' due times span")
    parser.add_argument("--first-due-s", type=int, default=600, help="first far due time")
    parser.add_argument("--burst-lead-s", type=int, default=20, help="burst due after parking")
    parser.add_argument("--settle-s", type=float, default=2.0, help="pause before RSS reads")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--results-dir", type=Path, default=Path("bench/results"))
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if not 0 < args.burst < args.messages:
        parser.error("--burst must be between 0 and --messages")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    root = args.data_root or Path(tempfile.gettempdir())
    results = DelayedResults(**results_header("delayed", argv, vars(args), args.data_root))
    code = 0
    with tempfile.TemporaryDirectory(dir=root, prefix="goqueue-delayed-bench-") as tmp:
        try:
            run(args, results, Path(tmp) / "data")
        except (RuntimeError, KafkaException) as exc:
            results.notes.append(f"run aborted: {exc}")
            code = 1
    write_results(args.results_dir, "delayed", results.to_markdown(), asdict(results))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
