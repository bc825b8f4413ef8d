"""What the consumer group tests share: brokers tuned for fast rebalances, topics with known
contents, and checks that a group's members split its partitions.

The broker's initial rebalance delay is cut to 100 ms and the minimum session timeout to
500 ms (through the environment), so clients can use short sessions and heartbeat intervals
and every rebalance takes well under a second; KIP-848 consumer groups, whose timing the
broker sets, heartbeat every 200 ms with 3 s sessions.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from client_compat import unique_topic, wait_for
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient
from typer.testing import CliRunner

from goqueue.cli.main import app
from goqueue.client.admin import Admin
from goqueue.client.groups import GroupDescription
from goqueue.testing.process import BrokerProcess

GROUP_ENV = {
    "GOQUEUE_GROUP_INITIAL_REBALANCE_DELAY_MS": "100",
    "GOQUEUE_GROUP_MIN_SESSION_TIMEOUT_MS": "500",
    "GOQUEUE_GROUP_CONSUMER_SESSION_TIMEOUT_MS": "3000",
    "GOQUEUE_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS": "200",
}
SESSION_MS = 2000
HEARTBEAT_MS = 200
PARTITIONS = 6
TP = tuple[str, int]


def group_broker_process(data_dir: Path) -> BrokerProcess:
    return BrokerProcess(data_dir, env=GROUP_ENV)


@pytest.fixture(scope="module")
def group_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One broker for a module of group tests that neither restart nor kill it."""
    with group_broker_process(tmp_path_factory.mktemp("groups") / "data") as process:
        yield process


@pytest.fixture
def own_group_broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    """A broker of the test's own, for tests that restart or kill it."""
    process = group_broker_process(tmp_path / "data")
    process.start()
    try:
        yield process
    finally:
        process.stop()


def unique_group(prefix: str) -> str:
    return unique_topic(f"group-{prefix}")


def create_topic(bootstrap: str, prefix: str, partitions: int = PARTITIONS) -> str:
    name = unique_topic(prefix)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics({name: {"num_partitions": partitions, "replication_factor": 1}})
    finally:
        admin.close()
    return name


def produce(
    bootstrap: str,
    topic: str,
    count: int,
    partitions: int = PARTITIONS,
    *,
    start: int = 0,
    timestamp_ms: int | None = None,
) -> dict[TP, list[bytes]]:
    """Messages `start`..`start+count-1` round-robin over the partitions, each value naming
    its number; returns what each partition got, in order."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, enable_idempotence=False
    )
    sent: dict[TP, list[bytes]] = {(topic, p): [] for p in range(partitions)}
    try:
        futures = []
        for i in range(start, start + count):
            value = b"message %06d" % i
            partition = i % partitions
            futures.append(
                producer.send(topic, value=value, partition=partition, timestamp_ms=timestamp_ms)
            )
            sent[(topic, partition)].append(value)
        for future in futures:
            future.get(timeout=30)
    finally:
        producer.close()
    return sent


def all_partitions(topic: str, partitions: int = PARTITIONS) -> set[TP]:
    return {(topic, p) for p in range(partitions)}


def shared_fairly(assignments: Sequence[Iterable[TP]], expected: set[TP]) -> bool:
    """Every member owns at least one partition, none owns one twice, all are owned."""
    sets = [set(a) for a in assignments]
    owned = [tp for s in sets for tp in s]
    return all(sets) and len(owned) == len(set(owned)) and set(owned) == expected


def wait_shared(
    assignments: Callable[[], Sequence[Iterable[TP]]],
    expected: set[TP],
    what: str,
    timeout: float = 30.0,
) -> list[set[TP]]:
    """Wait until the members' assignments split `expected` fairly; returns them."""

    def check() -> list[set[TP]] | None:
        current = [set(a) for a in assignments()]
        return current if shared_fairly(current, expected) else None

    return wait_for(check, what, timeout)


class Pollers:
    """Consumers each polling in a thread of its own, as applications run them, collecting
    what they receive. (kafka-python must not be polled with short timeouts in turns: a join
    that completes after a poll gave up is thrown away and sent again, and a leader that
    rejoins a stable group starts yet another rebalance.)"""

    def __init__(self, poll: Callable[[Any], Iterable[bytes]]) -> None:
        self._poll = poll
        self._running: dict[int, tuple[threading.Thread, threading.Event]] = {}
        self._lock = threading.Lock()
        self.consumers: list[Any] = []
        self.received: list[bytes] = []
        self.errors: list[BaseException] = []

    def start(self, consumer: Any) -> None:
        stop = threading.Event()
        thread = threading.Thread(target=self._run, args=(consumer, stop), daemon=True)
        self.consumers.append(consumer)
        self._running[id(consumer)] = (thread, stop)
        thread.start()

    def _run(self, consumer: Any, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                values = list(self._poll(consumer))
                with self._lock:
                    self.received.extend(values)
        except BaseException as exc:
            self.errors.append(exc)

    def count(self) -> int:
        assert not self.errors, self.errors
        with self._lock:
            return len(self.received)

    def detach(self, consumer: Any) -> None:
        """Stop polling one consumer (so the test may close it) and forget it."""
        thread, stop = self._running.pop(id(consumer))
        stop.set()
        thread.join(timeout=30)
        self.consumers.remove(consumer)

    def stop(self) -> None:
        for _thread, stop in self._running.values():
            stop.set()
        for thread, _stop in self._running.values():
            thread.join(timeout=30)
        assert not self.errors, self.errors


def kafka_python_values(consumer: Any) -> list[bytes]:
    """One kafka-python poll: the values it returned."""
    return [r.value for records in consumer.poll(timeout_ms=500).values() for r in records]


@pytest.fixture
def pollers() -> Iterator[Pollers]:
    """kafka-python consumers polling in their own threads, closed (leaving their group) at
    the end of the test."""
    running = Pollers(kafka_python_values)
    yield running
    running.stop()
    for consumer in running.consumers:
        consumer.close()


def goqueue(bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a `goqueue` command against the broker, in-process (starting the command line
    takes a second, mostly imports) with its output and exit status captured."""
    result = CliRunner().invoke(app, [*args, "--bootstrap", bootstrap])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def describe_with_cli(bootstrap: str, group: str) -> dict[str, Any]:
    """`goqueue group describe GROUP --json`, parsed."""
    result = goqueue(bootstrap, "group", "describe", group, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def describe_group(bootstrap: str, group: str) -> GroupDescription:
    """The group as the broker describes it (through the goqueue admin client, in-process)."""

    async def describe() -> GroupDescription:
        async with Admin(bootstrap) as admin:
            return await admin.describe_group(group)

    return asyncio.run(describe())
