"""`python -m bench cluster`: leader failover time, and scale-up with more nodes on one machine.

Failover: a 3-node loopback cluster, one topic with replication factor 3 and
`min.insync.replicas=2`. One confluent-kafka producer per partition sends with `acks=all`, one
message in flight at a time, and timestamps every acknowledgement. Each run SIGKILLs the
leader of partition 0 and measures, for every partition that node led, the time from the kill
to the first acknowledgement after it (Kafka's own definition of unavailability for a client
that keeps retrying). The killed node is restarted and the ISR refilled before the next run.
Runs take the broker session timeout the cluster is configured with (`--session-timeout-ms`,
Kafka's 9 s by default): a killed broker is only noticed when its session expires.

Scale-up: a broker node is one process with one event loop, so a machine's other cores are
used by running more nodes on it. Producer processes (one per partition, `acks=1`) send to a
topic of replication factor 1 whose partitions are spread over 1 node, then over `--nodes`
nodes; the figure is the aggregate msg/s and its ratio to one node.

Load averages at start and end are part of the result: the machine may be shared.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bench.results_files import results_header, write_results
from goqueue.testing.cluster import ClusterProcess, wait_until

TOPIC = "bench-failover"
SCALE_TOPIC = "bench-scale"
RECOVERY_TIMEOUT_S = 120.0


@dataclass
class ClusterResults:
    started_at: str
    command: str
    machine: dict[str, Any]
    config: dict[str, Any]
    load_average: list[tuple[float, float, float]] = field(default_factory=list)
    failover_s: list[float] = field(default_factory=list)
    """Per run: the slowest partition's time from the kill to its first acknowledgement."""
    scale_msgs_per_s: dict[int, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        lines = [
            "# Go-Queue cluster benchmark",
            "",
            f"- started: {self.started_at}",
            f"- command: `{self.command}`",
            f"- load average (start, end): {self.load_average}",
            "",
            "| figure | value |",
            "|---|---|",
        ]
        if self.failover_s:
            runs = ", ".join(f"{s:.2f}" for s in self.failover_s)
            lines.append(
                f"| leader failover, kill to first acks=all ack (s), median of "
                f"{len(self.failover_s)} | {statistics.median(self.failover_s):.2f} "
                f"(runs: {runs}) |"
            )
        base = self.scale_msgs_per_s.get(1)
        for nodes, rate in sorted(self.scale_msgs_per_s.items()):
            ratio = f" ({rate / base:.2f}x one node)" if base else ""
            lines.append(f"| produce, {nodes} node(s), msg/s | {rate:,.0f}{ratio} |")
        lines += ["", *(f"- {note}" for note in self.notes)]
        return "\n".join(lines) + "\n"


class AckClock:
    """One producer per partition, one message in flight, every acknowledgement timestamped."""

    def __init__(self, bootstrap: str, partitions: int) -> None:
        self.acks: dict[int, list[float]] = {p: [] for p in range(partitions)}
        self.stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._send, args=(bootstrap, p), daemon=True)
            for p in range(partitions)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def first_ack_after(self, partition: int, instant: float) -> float | None:
        return next((t for t in self.acks[partition] if t > instant), None)

    def await_first_ack(self, partition: int, instant: float) -> float:
        """The time of the partition's first acknowledgement after `instant`, once it came."""
        wait_until(
            lambda: self.first_ack_after(partition, instant) is not None,
            RECOVERY_TIMEOUT_S,
            f"an ack on partition {partition} after the kill",
        )
        first = self.first_ack_after(partition, instant)
        assert first is not None
        return first

    def _send(self, bootstrap: str, partition: int) -> None:
        producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "max.in.flight.requests.per.connection": 1,
                "linger.ms": 0,
                "message.timeout.ms": int(RECOVERY_TIMEOUT_S * 1000),
                "reconnect.backoff.max.ms": 100,
            }
        )

        def acked(error: KafkaError | None, _message: Message) -> None:
            if error is None:
                self.acks[partition].append(time.monotonic())

        while not self.stop.is_set():
            producer.produce(TOPIC, b"x" * 100, partition=partition, on_delivery=acked)
            producer.flush(RECOVERY_TIMEOUT_S)
        producer.flush(10)


def leaders(admin: AdminClient, topic: str) -> dict[int, int]:
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    return {p.id: p.leader for p in partitions.values()}


def full_isr(admin: AdminClient, topic: str, size: int) -> bool:
    try:
        partitions = admin.list_topics(topic, timeout=5).topics[topic].partitions
    except KafkaException:
        return False  # the cluster may not answer while it heals
    return all(p.leader >= 0 and len(p.isrs) == size for p in partitions.values())


def measure_failover(args: argparse.Namespace, results: ClusterResults, base: Path) -> None:
    timings = {
        "GOQUEUE_BROKER_SESSION_TIMEOUT_MS": str(args.session_timeout_ms),
        "GOQUEUE_BROKER_HEARTBEAT_INTERVAL_MS": str(max(args.session_timeout_ms // 6, 100)),
    }
    with ClusterProcess(base / "failover", 3, timings=timings) as cluster:
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        topic = NewTopic(TOPIC, args.partitions, 3, config={"min.insync.replicas": "2"})
        admin.create_topics([topic])[TOPIC].result(timeout=30)
        wait_until(lambda: full_isr(admin, TOPIC, 3), RECOVERY_TIMEOUT_S, "the full ISR")
        clock = AckClock(cluster.bootstrap, args.partitions)
        clock.start()
        try:
            for _ in range(args.failover_runs):
                wait_until(lambda: all(clock.acks.values()), RECOVERY_TIMEOUT_S, "acks")
                led = leaders(admin, TOPIC)
                victim = led[0]
                moved = [p for p, leader in led.items() if leader == victim]
                killed_at = time.monotonic()
                cluster.nodes[victim].kill()
                firsts = [clock.await_first_ack(p, killed_at) for p in moved]
                results.failover_s.append(max(firsts) - killed_at)
                cluster.nodes[victim].start()
                wait_until(lambda: full_isr(admin, TOPIC, 3), RECOVERY_TIMEOUT_S, "full ISR")
        finally:
            clock.close()


def _produce_process(bootstrap: str, partition: int, seconds: float, counter: Any) -> None:
    """One producer process sending to one partition for `seconds`; adds its acks to counter."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 5, "batch.size": 1_000_000}
    )
    acked = 0

    def done(error: KafkaError | None, _message: Message) -> None:
        nonlocal acked
        acked += error is None

    deadline = time.monotonic() + seconds
    value = os.urandom(1024)
    while time.monotonic() < deadline:
        try:
            producer.produce(SCALE_TOPIC, value, partition=partition, on_delivery=done)
        except BufferError:
            producer.poll(0.01)
        producer.poll(0)
    producer.flush(30)
    with counter.get_lock():
        counter.value += acked


def measure_scale(args: argparse.Namespace, results: ClusterResults, base: Path) -> None:
    for nodes in sorted({1, args.nodes}):
        with ClusterProcess(base / f"scale-{nodes}", nodes) as cluster:
            admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
            partitions = args.scale_partitions
            assignment = [[node] for node in list(cluster.nodes) * partitions][:partitions]
            topic = NewTopic(SCALE_TOPIC, num_partitions=partitions, replica_assignment=assignment)
            admin.create_topics([topic])[SCALE_TOPIC].result(timeout=30)
            counter = multiprocessing.Value("q", 0)
            started = time.monotonic()
            workers = [
                multiprocessing.Process(
                    target=_produce_process,
                    args=(cluster.bootstrap, p, args.scale_seconds, counter),
                )
                for p in range(partitions)
            ]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(args.scale_seconds + 60)
            results.scale_msgs_per_s[nodes] = counter.value / (time.monotonic() - started)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench cluster", description=__doc__)
    parser.add_argument("--failover-runs", type=int, default=5)
    parser.add_argument("--partitions", type=int, default=3, help="of the failover topic")
    parser.add_argument("--session-timeout-ms", type=int, default=9000)
    parser.add_argument("--nodes", type=int, default=2, help="nodes of the scale-up run")
    parser.add_argument("--scale-partitions", type=int, default=4)
    parser.add_argument("--scale-seconds", type=float, default=15.0)
    parser.add_argument("--skip", choices=["failover", "scale"], default=None)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--results-dir", type=Path, default=Path("bench/results"))
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    root = args.data_root or Path(tempfile.gettempdir())
    results = ClusterResults(**results_header("cluster", argv, vars(args), args.data_root))
    results.load_average.append(os.getloadavg())
    code = 0
    with tempfile.TemporaryDirectory(dir=root, prefix="goqueue-cluster-bench-") as tmp:
        try:
            if args.skip != "failover":
                measure_failover(args, results, Path(tmp))
            if args.skip != "scale":
                measure_scale(args, results, Path(tmp))
        except (RuntimeError, AssertionError) as exc:
            results.notes.append(f"run aborted: {exc}")
            code = 1
    results.load_average.append(os.getloadavg())
    write_results(args.results_dir, "cluster", results.to_markdown(), asdict(results))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
