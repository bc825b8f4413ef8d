"""`python -m bench share`: share group throughput with 1, 4 and 16 consumers on one partition,
every record acknowledged on its own (explicit ACCEPT per record, no implicit batch accept).

One broker, one topic of one partition holding a bounded number of records. Each run is a new
share group (reading from the start) consumed by N members at once until every offset has been
seen and accepted; the clock runs from the members' start to the last member's final commit.
The Go-Queue SDK's `ShareConsumer` runs all its members on one event loop of the benchmark
process (that is how an asyncio application runs many); librdkafka's `ShareConsumer` runs one
thread per member. Besides msg/s it reports redeliveries (deliveries beyond one per record:
locks that expired, 0 when consumers keep up) and the CPU time of the broker and of the
benchmark process over the run's wall time, in % of one core: on a small machine the client
and the broker compete for the same cores.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import confluent_kafka
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from bench.cli import parser_for
from bench.drivers.base import BenchError
from bench.machine import cpu_seconds, load_average
from bench.report import machine_description, number
from bench.results_files import results_header
from bench.run import default_stamp
from bench.systems.goqueue import GoQueueSystem
from goqueue.client import ShareConsumer

CLIENTS = ("goqueue.client", "confluent-kafka")
TOPIC = "share-bench"


@dataclass(frozen=True, slots=True)
class ShareBenchConfig:
    """Bounded counts: the machine is shared, and each run ends within its time limit."""

    data_root: Path | None = None
    results_dir: Path = Path(__file__).parent / "results"
    messages: int = 20_000
    value_size: int = 100
    consumers: str = "1,4,16"
    clients: str = ",".join(CLIENTS)
    max_records: int = 500
    time_limit_seconds: float = 120.0


HELP = {
    "data_root": "directory for the broker's temp data dir [default: system temp dir]",
    "results_dir": "where Markdown and JSON results go",
    "messages": "records in the partition, all consumed by each run",
    "value_size": "record value size in bytes",
    "consumers": "member counts to measure, comma-separated",
    "clients": f"share consumer clients to measure, comma-separated, of: {', '.join(CLIENTS)}",
    "max_records": "records a member takes at most per fetch (max_records, max.poll.records)",
    "time_limit_seconds": "upper bound of each run",
}


@dataclass(frozen=True, slots=True)
class Figure:
    client: str
    consumers: int
    messages: int
    deliveries: int
    seconds: float
    broker_cpu_seconds: float
    client_cpu_seconds: float

    @property
    def msg_per_s(self) -> float:
        return self.messages / self.seconds


@dataclass(slots=True)
class ShareResults:
    started_at: str
    command: str
    config: dict[str, Any]
    machine: dict[str, Any]
    figures: list[Figure] = field(default_factory=list)
    load_average_at_end: str = ""

    def to_markdown(self) -> str:
        lines = [
            f"# Share group benchmark ({self.started_at})",
            "",
            f"Command: `{self.command}`",
            "",
            f"{machine_description(self.machine)} Load average at start "
            f"{self.machine['load_average_at_start']}, at end {self.load_average_at_end} "
            "(1, 5, 15 min).",
            "",
            "| client | consumers | msg/s (acked) | seconds | redeliveries | broker CPU "
            "| client CPU |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for f in self.figures:
            lines.append(
                f"| {f.client} | {f.consumers} | {number(f.msg_per_s)} | {f.seconds:.2f} "
                f"| {f.deliveries - f.messages} | {100 * f.broker_cpu_seconds / f.seconds:.0f}% "
                f"| {100 * f.client_cpu_seconds / f.seconds:.0f}% |"
            )
        return "\n".join(lines) + "\n"

    def write(self, results_dir: Path, stamp: str) -> Path:
        results_dir.mkdir(parents=True, exist_ok=True)
        path = results_dir / f"share-{stamp}.md"
        path.write_text(self.to_markdown())
        path.with_suffix(".json").write_text(json.dumps(asdict(self), indent=2, default=str) + "\n")
        return path


class Progress:
    """Offsets seen and deliveries counted by every member of a run, from any thread."""

    def __init__(self, messages: int, time_limit: float) -> None:
        self.messages = messages
        self.seen: set[int] = set()
        self.deliveries = 0
        self.deadline = time.monotonic() + time_limit
        self.complete = threading.Event()
        self._lock = threading.Lock()

    def delivered(self, offset: int) -> None:
        with self._lock:
            self.deliveries += 1
            self.seen.add(offset)
            if len(self.seen) >= self.messages:
                self.complete.set()

    def check_time(self, client: str) -> None:
        if time.monotonic() > self.deadline:
            raise BenchError(f"{client}: {len(self.seen)}/{self.messages} records in time")


def run_sdk(bootstrap: str, group: str, members: int, config: ShareBenchConfig) -> Progress:
    progress = Progress(config.messages, config.time_limit_seconds)

    async def member(consumer: ShareConsumer) -> None:
        while not progress.complete.is_set():
            progress.check_time("goqueue.client")
            for message in await consumer.poll(timeout=0.1):
                await message.ack()
                progress.delivered(message.offset)

    async def main() -> None:
        consumers = [
            ShareConsumer(bootstrap, group_id=group, topics=[TOPIC], max_records=config.max_records)
            for _ in range(members)
        ]
        await asyncio.gather(*(c.start() for c in consumers))
        try:
            await asyncio.gather(*(member(c) for c in consumers))
            await asyncio.gather(*(c.commit() for c in consumers))
        finally:
            await asyncio.gather(*(c.close() for c in consumers))

    asyncio.run(main())
    return progress


def run_confluent(bootstrap: str, group: str, members: int, config: ShareBenchConfig) -> Progress:
    progress = Progress(config.messages, config.time_limit_seconds)
    failures: list[BaseException] = []

    def member() -> None:
        consumer = confluent_kafka.ShareConsumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "share.acknowledgement.mode": "explicit",
                "max.poll.records": config.max_records,
            }
        )
        try:
            consumer.subscribe([TOPIC])
            while not progress.complete.is_set():
                progress.check_time("confluent-kafka")
                for message in consumer.poll(0.1) or []:
                    offset = message.offset()
                    if message.error() is None and offset is not None:
                        consumer.acknowledge(message, confluent_kafka.AcknowledgeType.ACCEPT)
                        progress.delivered(offset)
            consumer.commit_sync()
        except BaseException as exc:
            failures.append(exc)
            progress.complete.set()
        finally:
            consumer.close()

    threads = [threading.Thread(target=member) for _ in range(members)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise BenchError(f"confluent-kafka: {failures[0]}")
    return progress


RUNNERS = {"goqueue.client": run_sdk, "confluent-kafka": run_confluent}


def prepare(bootstrap: str, config: ShareBenchConfig) -> None:
    """The topic and its records, produced once for every run."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(30)
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": False}
    )
    value = b"v" * config.value_size
    for _ in range(config.messages):
        while True:
            try:
                producer.produce(TOPIC, value, partition=0)
                break
            except BufferError:
                producer.poll(0.001)
    if producer.flush(config.time_limit_seconds):
        raise BenchError("the records were not all acknowledged")


def new_group(bootstrap: str, client: str, members: int) -> str:
    """A share group of its own per run, reading the partition from its start."""
    group = f"share-bench-{client.replace('.', '-')}-{members}-{uuid.uuid4().hex[:6]}"
    resource = ConfigResource(
        ResourceType.GROUP,
        group,
        incremental_configs=[
            ConfigEntry(
                "share.auto.offset.reset",
                "earliest",
                incremental_operation=AlterConfigOpType.SET,
            )
        ],
    )
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.incremental_alter_configs([resource])[resource].result(30)
    return group


def run_bench(config: ShareBenchConfig, results: ShareResults) -> None:
    counts = [int(item) for item in config.consumers.split(",") if item]
    clients = [item for item in config.clients.split(",") if item]
    with tempfile.TemporaryDirectory(prefix="goqueue-share-bench-", dir=config.data_root) as tmp:
        system = GoQueueSystem(Path(tmp) / "data")
        system.start()
        try:
            prepare(system.bootstrap, config)
            for client in clients:
                for members in counts:
                    group = new_group(system.bootstrap, client, members)
                    broker_cpu, client_cpu = cpu_seconds(system.pid), time.process_time()
                    start = time.perf_counter()
                    progress = RUNNERS[client](system.bootstrap, group, members, config)
                    seconds = time.perf_counter() - start
                    figure = Figure(
                        client=client,
                        consumers=members,
                        messages=config.messages,
                        deliveries=progress.deliveries,
                        seconds=seconds,
                        broker_cpu_seconds=cpu_seconds(system.pid) - broker_cpu,
                        client_cpu_seconds=time.process_time() - client_cpu,
                    )
                    results.figures.append(figure)
                    print(
                        f"{client} x{members}: {number(figure.msg_per_s)} msg/s",
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            system.stop()


def parse_args(argv: Sequence[str]) -> ShareBenchConfig:
    parser = parser_for(
        ShareBenchConfig,
        HELP,
        "python -m bench share",
        "Share group throughput with 1, 4 and 16 consumers on one partition, per-record acks.",
    )
    config = ShareBenchConfig(**vars(parser.parse_args(argv)))
    unknown = set(config.clients.split(",")) - set(CLIENTS)
    if config.messages < 1 or config.max_records < 1 or unknown:
        parser.error(f"--messages and --max-records must be >= 1; clients of: {CLIENTS}")
    return config


def main(argv: Sequence[str]) -> int:
    config = parse_args(argv)
    results = ShareResults(**results_header("share", argv, asdict(config), config.data_root))
    code = 0
    try:
        run_bench(config, results)
    except BenchError as exc:
        print(f"run aborted: {exc}", file=sys.stderr)
        code = 1
    results.load_average_at_end = load_average()
    path = results.write(config.results_dir, default_stamp())
    print(results.to_markdown())
    print(f"results: {path} and {path.with_suffix('.json')} (pid {os.getpid()})", file=sys.stderr)
    return code
