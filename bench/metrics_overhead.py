"""What the request-path metrics cost: produce throughput of a broker with `metrics_enabled`
against one without, in the same run.

    python -m bench.metrics_overhead                    # 5 rounds of 200,000 messages each
    python -m bench.metrics_overhead --rounds 3 --messages 100000

Two brokers run side by side on free loopback ports (only one is loaded at a time); rounds
alternate between them, so drift of the machine (other load, page cache, CPU frequency)
affects both alike. Besides throughput it reports the broker's CPU time per message (from
/proc), which a busy machine disturbs much less than throughput. The workload is
request-heavy on purpose: one partition, 100-byte
values, at most 10 messages per batch and no linger, so every few messages make one Produce
request and the per-request cost of the metrics is as large a share as it can be. Every
message must be acknowledged. Prints each round and the medians; exits 1 if a round failed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from goqueue.testing.process import BrokerProcess

TOPIC = "metrics-overhead"
VALUE = b"v" * 100
ROUND_TIME_LIMIT_S = 120.0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def produce_round(bootstrap: str, messages: int) -> float:
    """Send `messages` and return acknowledged messages per second."""
    failures: list[KafkaError] = []

    def delivered(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            failures.append(error)

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": 1,
            "linger.ms": 0,
            "batch.num.messages": 10,
            "enable.idempotence": False,
        }
    )
    started = time.perf_counter()
    deadline = time.monotonic() + ROUND_TIME_LIMIT_S
    for _ in range(messages):
        while True:
            try:
                producer.produce(TOPIC, VALUE, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.001)
        if time.monotonic() > deadline:
            raise RuntimeError("round exceeded its time limit")
    remaining = producer.flush(ROUND_TIME_LIMIT_S)
    elapsed = time.perf_counter() - started
    if remaining or failures:
        raise RuntimeError(f"{remaining} unacknowledged, {len(failures)} failed: {failures[:3]}")
    return messages / elapsed


def create_topic(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(TOPIC, 1, 1)]).values():
        future.result(30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds per broker (5)")
    parser.add_argument("--messages", type=int, default=200_000, help="per round (200000)")
    parser.add_argument("--warmup", type=int, default=20_000, help="unmeasured, per broker")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="goqueue-metrics-overhead-") as tmp:
        brokers = {
            "metrics on": BrokerProcess(Path(tmp) / "on"),
            "metrics off": BrokerProcess(
                Path(tmp) / "off", env={"GOQUEUE_METRICS_ENABLED": "false"}
            ),
        }
        rates: dict[str, list[float]] = {name: [] for name in brokers}
        cpu_us: dict[str, list[float]] = {name: [] for name in brokers}
        try:
            for broker in brokers.values():
                broker.start()
                create_topic(broker.bootstrap)
                produce_round(broker.bootstrap, args.warmup)
            for round_index in range(args.rounds):
                order = list(brokers) if round_index % 2 == 0 else list(reversed(brokers))
                for name in order:
                    broker = brokers[name]
                    cpu_before = cpu_seconds(broker.pid)
                    rate = produce_round(broker.bootstrap, args.messages)
                    cpu = (cpu_seconds(broker.pid) - cpu_before) / args.messages * 1e6
                    rates[name].append(rate)
                    cpu_us[name].append(cpu)
                    print(
                        f"round {round_index + 1} {name:<12} {rate:>10,.0f} msg/s "
                        f"{cpu:6.2f} broker CPU us/msg",
                        flush=True,
                    )
        except RuntimeError as exc:
            print(f"failed: {exc}", file=sys.stderr)
            return 1
        finally:
            for broker in brokers.values():
                broker.stop()
    on, off = (statistics.median(rates[name]) for name in ("metrics on", "metrics off"))
    cpu_on, cpu_off = (statistics.median(cpu_us[name]) for name in ("metrics on", "metrics off"))
    print(f"median with metrics    {on:>10,.0f} msg/s  {cpu_on:6.2f} broker CPU us/msg")
    print(f"median without metrics {off:>10,.0f} msg/s  {cpu_off:6.2f} broker CPU us/msg")
    print(
        f"metrics cost {100 * (off - on) / off:+.1f}% of produce throughput, "
        f"{100 * (cpu_on - cpu_off) / cpu_off:+.1f}% broker CPU per message"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
