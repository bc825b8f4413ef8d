"""`python -m bench sdk`: the SDK's producer and consumer next to confluent-kafka and aiokafka.

One broker, one run: each client produces the same bounded number of values to a topic of its
own (one partition), then reads them back from offset 0 (manual assignment, no group). Every
client gets the same settings (acks=1, no idempotence, no compression, the same linger and
batch size), so the figures compare the client libraries, not their defaults. Produce time
runs from the first send to the last acknowledgement, consume time from the assignment to the
last message; the log end offset must equal the count sent and the consumer must see every
offset once, else the run fails. Figures are msg/s and MB/s of values, and the ratio to
confluent-kafka (librdkafka, C), measured in the same run.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiokafka
import confluent_kafka

from bench.cli import parser_for
from bench.drivers.base import BenchError
from bench.machine import load_average
from bench.report import machine_description, number
from bench.results_files import results_header
from bench.run import default_stamp
from bench.systems.goqueue import GoQueueSystem
from goqueue.client import LATEST, Admin, Consumer, Producer, TopicPartition

CLIENTS = ("confluent-kafka", "aiokafka", "goqueue.client")
REFERENCE = "confluent-kafka"
CONSUME_BATCH = 10_000


@dataclass(frozen=True, slots=True)
class SdkBenchConfig:
    """A short run by default: the machine is shared, and the ratios are what matter."""

    data_root: Path | None = None
    results_dir: Path = Path(__file__).parent / "results"
    messages: int = 200_000
    value_size: int = 100
    runs: int = 1
    linger_ms: int = 5
    batch_bytes: int = 256 * 1024
    time_limit_seconds: float = 120.0


HELP = {
    "data_root": "directory for the broker's temp data dir [default: system temp dir]",
    "results_dir": "where Markdown and JSON results go",
    "messages": "messages each client produces and then consumes, per run",
    "value_size": "message value size in bytes",
    "runs": "runs per client (the best run is reported, the others listed in the JSON)",
    "linger_ms": "producer linger.ms of every client",
    "batch_bytes": "producer batch size of every client",
    "time_limit_seconds": "upper bound of each produce or consume run",
}


@dataclass(frozen=True, slots=True)
class Figure:
    client: str
    work: str
    """`produce` or `consume`."""
    messages: int
    seconds: float
    cpu_seconds: float
    """CPU time of the benchmark process (the client, with its threads) during the run."""

    @property
    def msg_per_s(self) -> float:
        return self.messages / self.seconds


@dataclass(slots=True)
class SdkResults:
    started_at: str
    command: str
    config: dict[str, Any]
    machine: dict[str, Any]
    figures: list[Figure] = field(default_factory=list)
    load_average_at_end: str = ""

    def best(self, client: str, work: str) -> Figure | None:
        runs = [f for f in self.figures if (f.client, f.work) == (client, work)]
        return max(runs, key=lambda f: f.msg_per_s) if runs else None

    def to_markdown(self, value_size: int) -> str:
        lines = [
            f"# SDK benchmark ({self.started_at})",
            "",
            f"Command: `{self.command}`",
            "",
            f"{machine_description(self.machine)} Load average at start "
            f"{self.machine['load_average_at_start']}, at end {self.load_average_at_end} "
            "(1, 5, 15 min).",
            "",
            "| client | produce msg/s | MB/s | vs confluent | consume msg/s | MB/s "
            "| vs confluent | client CPU (produce / consume) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        reference = {work: self.best(REFERENCE, work) for work in ("produce", "consume")}
        for client in CLIENTS:
            cells = [client]
            cpu = []
            for work in ("produce", "consume"):
                best, ref = self.best(client, work), reference[work]
                if best is None:
                    cells += ["-", "-", "-"]
                    cpu.append("-")
                    continue
                ratio = "-" if ref is None else f"{best.msg_per_s / ref.msg_per_s:.2f}"
                mb = best.msg_per_s * value_size / 1e6
                cells += [number(best.msg_per_s), f"{mb:.1f}", ratio]
                cpu.append(f"{100 * best.cpu_seconds / best.seconds:.0f}%")
            lines.append("| " + " | ".join([*cells, " / ".join(cpu)]) + " |")
        return "\n".join(lines) + "\n"

    def write(self, results_dir: Path, stamp: str, value_size: int) -> Path:
        results_dir.mkdir(parents=True, exist_ok=True)
        document = asdict(self)
        path = results_dir / f"sdk-{stamp}.md"
        path.write_text(self.to_markdown(value_size))
        path.with_suffix(".json").write_text(json.dumps(document, indent=2, default=str) + "\n")
        return path


def values(config: SdkBenchConfig) -> list[bytes]:
    """Distinct values of the configured size: each names its index."""
    return [(b"%010d" % i).ljust(config.value_size, b"x") for i in range(config.messages)]


def measured(client: str, work: str, count: int, run: Callable[[], None]) -> Figure:
    cpu, start = time.process_time(), time.perf_counter()
    run()
    return Figure(client, work, count, time.perf_counter() - start, time.process_time() - cpu)


def produce_confluent(config: SdkBenchConfig, bootstrap: str, topic: str) -> Callable[[], None]:
    batch = values(config)
    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": 1,
            "linger.ms": config.linger_ms,
            "batch.size": config.batch_bytes,
            "enable.idempotence": False,
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    producer.list_topics(topic, timeout=30)

    def run() -> None:
        failures = []

        def report(error: Any, _message: Any) -> None:
            if error is not None:
                failures.append(error)

        for value in batch:
            while True:
                try:
                    producer.produce(topic, value, partition=0, on_delivery=report)
                    break
                except BufferError:
                    producer.poll(0.001)
        if producer.flush(config.time_limit_seconds) or failures:
            raise BenchError(f"confluent-kafka: {len(failures)} deliveries failed")

    return run


def consume_confluent(config: SdkBenchConfig, bootstrap: str, topic: str) -> Callable[[], None]:
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-sdk",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
        }
    )

    def run() -> None:
        offsets = Offsets("confluent-kafka", config)
        consumer.assign([confluent_kafka.TopicPartition(topic, 0, 0)])
        try:
            while not offsets.done:
                offsets.add(m.offset() for m in consumer.consume(CONSUME_BATCH, 0.1))
        finally:
            consumer.close()

    return run


def produce_aiokafka(config: SdkBenchConfig, bootstrap: str, topic: str) -> Callable[[], None]:
    batch = values(config)

    async def main() -> None:
        producer = aiokafka.AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks=1,
            linger_ms=config.linger_ms,
            max_batch_size=config.batch_bytes,
            enable_idempotence=False,
        )
        await producer.start()
        try:
            futures = [await producer.send(topic, value, partition=0) for value in batch]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    return lambda: asyncio.run(main())


def consume_aiokafka(config: SdkBenchConfig, bootstrap: str, topic: str) -> Callable[[], None]:
    async def main() -> None:
        offsets = Offsets("aiokafka", config)
        consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            tp = aiokafka.TopicPartition(topic, 0)
            consumer.assign([tp])
            consumer.seek(tp, 0)
            while not offsets.done:
                found = await consumer.getmany(timeout_ms=100, max_records=CONSUME_BATCH)
                offsets.add(m.offset for ms in found.values() for m in ms)
        finally:
            await consumer.stop()

    return lambda: asyncio.run(main())


def produce_sdk(config: SdkBenchConfig, bootstrap: str, topic: str) -> Callable[[], None]:
    batch = values(config)

    async def main() -> None:
        async with Producer(
            bootstrap,
            acks=1,
            linger_ms=config.linger_ms,
            batch_size=config.batch_bytes,
            enable_idempotence=False,
        ) as producer:
            futures = [await producer.enqueue(topic, value, partition=0) for value in batch]
            await producer.flush()
            await asyncio.gather(*futures)

    return lambda: asyncio.run(main())


def consume_sdk(config: SdkBenchConfig, bootstrap: str, topic: str) -> Callable[[], None]:
    async def main() -> None:
        offsets = Offsets("goqueue.client", config)
        async with Consumer(bootstrap, enable_auto_commit=False) as consumer:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            consumer.seek(tp, 0)
            while not offsets.done:
                found = await consumer.getmany(timeout_ms=100, max_records=CONSUME_BATCH)
                offsets.add(m.offset for ms in found.values() for m in ms)

    return lambda: asyncio.run(main())


class Offsets:
    """What a consumer received: every offset once, in order, within the time limit."""

    def __init__(self, client: str, config: SdkBenchConfig) -> None:
        self.client = client
        self.count = config.messages
        self.next = 0
        self.deadline = time.monotonic() + config.time_limit_seconds

    @property
    def done(self) -> bool:
        if self.next < self.count and time.monotonic() > self.deadline:
            raise BenchError(f"{self.client}: {self.next}/{self.count} messages in time")
        return self.next >= self.count

    def add(self, offsets: Any) -> None:
        for offset in offsets:
            if offset != self.next:
                raise BenchError(f"{self.client}: offset {offset}, expected {self.next}")
            self.next += 1


PRODUCERS = {
    "confluent-kafka": produce_confluent,
    "aiokafka": produce_aiokafka,
    "goqueue.client": produce_sdk,
}
CONSUMERS = {
    "confluent-kafka": consume_confluent,
    "aiokafka": consume_aiokafka,
    "goqueue.client": consume_sdk,
}


async def _create(bootstrap: str, topic: str) -> None:
    async with Admin(bootstrap) as admin:
        await admin.create_topic(topic, 1)


async def _end_offset(bootstrap: str, topic: str) -> int:
    async with Admin(bootstrap) as admin:
        tp = TopicPartition(topic, 0)
        return (await admin.list_offsets({tp: LATEST}))[tp].offset


def run_bench(config: SdkBenchConfig, results: SdkResults) -> None:
    with tempfile.TemporaryDirectory(prefix="goqueue-sdk-bench-", dir=config.data_root) as tmp:
        system = GoQueueSystem(Path(tmp) / "data")
        system.start()
        try:
            for run in range(config.runs):
                for client in CLIENTS:
                    topic = f"sdk-bench-{client.replace('.', '-')}-{run}"
                    asyncio.run(_create(system.bootstrap, topic))
                    produce = PRODUCERS[client](config, system.bootstrap, topic)
                    results.figures.append(measured(client, "produce", config.messages, produce))
                    stored = asyncio.run(_end_offset(system.bootstrap, topic))
                    if stored != config.messages:
                        raise BenchError(f"{client}: {stored} of {config.messages} stored")
                    consume = CONSUMERS[client](config, system.bootstrap, topic)
                    results.figures.append(measured(client, "consume", config.messages, consume))
        finally:
            system.stop()


def parse_args(argv: Sequence[str]) -> SdkBenchConfig:
    parser = parser_for(
        SdkBenchConfig,
        HELP,
        "python -m bench sdk",
        "The SDK's producer and consumer next to confluent-kafka and aiokafka, one broker.",
    )
    config = SdkBenchConfig(**vars(parser.parse_args(argv)))
    if config.runs < 1 or config.messages < 1 or config.value_size < 10:
        parser.error("--runs and --messages must be >= 1 and --value-size >= 10")
    return config


def main(argv: Sequence[str]) -> int:
    config = parse_args(argv)
    results = SdkResults(**results_header("sdk", argv, asdict(config), config.data_root))
    code = 0
    try:
        run_bench(config, results)
    except BenchError as exc:
        print(f"run aborted: {exc}", file=sys.stderr)
        code = 1
    results.load_average_at_end = load_average()
    path = results.write(config.results_dir, default_stamp(), config.value_size)
    print(results.to_markdown(config.value_size))
    print(f"results: {path} and {path.with_suffix('.json')} (pid {os.getpid()})", file=sys.stderr)
    return code
