"""Faults on a 3-node cluster while an idempotent producer and a consumer group work.

Every link between nodes runs through a fault proxy: each node reaches each other node's Raft
port over its own proxy (a Raft route), and clients and followers reach each node's Kafka port
through that node's proxy (its advertised address). While numbered messages are produced with
`acks=all` to a topic with `min.insync.replicas=2` and two consumers of one group read them,
the test kills nodes with SIGKILL, freezes them with SIGSTOP/SIGCONT and cuts them off from
the others, one fault at a time, waiting for the full ISR after each. The history checker then
proves that every acknowledged message is in the log exactly once and in order, that nothing a
consumer read was lost, and that committed offsets never moved backwards.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from goqueue.client.errors import ClientError
from goqueue.client.sync import Admin as SyncAdmin
from goqueue.testing.cluster import ClusterProcess, wait_until
from goqueue.testing.fault_proxy import FaultProxy, LinkState
from goqueue.testing.history import History, Placed, violations
from goqueue.testing.process import BrokerProcess

TOPIC = "chaos"
GROUP = "chaos-readers"
PARTITIONS = 3
FAULT_SECONDS = 6.0
"""Long enough for the controller to fence the node (3 s session in tests)."""
RECOVERY_TIMEOUT_S = 90.0
MAX_MESSAGES = 200_000
TIMINGS = {
    "GOQUEUE_REPLICA_FETCH_BACKOFF_MS": "100",
    "GOQUEUE_REPLICA_LAG_TIME_MAX_MS": "3000",
}
CLIENT_TIMEOUTS = {"socket.timeout.ms": 10_000, "reconnect.backoff.max.ms": 1000}


class ProxiedCluster:
    """A 3-node cluster whose every inter-node link and client link passes a fault proxy."""

    def __init__(self, base: Path) -> None:
        self.cluster = ClusterProcess(base, 3, env=TIMINGS)
        nodes = self.cluster.nodes
        self.kafka = {i: FaultProxy("127.0.0.1", node.port) for i, node in nodes.items()}
        self.raft = {
            (i, j): FaultProxy("127.0.0.1", nodes[j].raft_port)
            for i in nodes
            for j in nodes
            if i != j
        }
        for i, node in nodes.items():
            routes = ",".join(f"{j}@{self.raft[i, j].address}" for j in nodes if j != i)
            node.env = {**node.env, "GOQUEUE_RAFT_ROUTES": routes}
            node.extra_args = (*node.extra_args, "--advertised", self.kafka[i].address)

    @property
    def bootstrap(self) -> str:
        return ",".join(proxy.address for proxy in self.kafka.values())

    def start(self) -> None:
        for proxy in [*self.kafka.values(), *self.raft.values()]:
            proxy.start(when_target_listens=True)
        self.cluster.start()

    def close(self) -> None:
        for node in self.cluster.nodes.values():
            if node.is_running():
                os.kill(node.pid, signal.SIGCONT)
        try:
            self.cluster.stop()
        finally:
            for proxy in [*self.kafka.values(), *self.raft.values()]:
                proxy.close()

    def links_of(self, node_id: int) -> list[FaultProxy]:
        """Every proxy carrying traffic to or from `node_id` (its Kafka port and its Raft links)."""
        raft = [proxy for (i, j), proxy in self.raft.items() if node_id in (i, j)]
        return [self.kafka[node_id], *raft]


class FaultInjector:
    """Applies one fault at a time, holds it until the cluster has noticed it (the node is
    out of an ISR) and for at least FAULT_SECONDS, then ends it; counts what it did."""

    def __init__(self, proxied: ProxiedCluster, admin: AdminClient) -> None:
        self.proxied = proxied
        self.admin = admin
        self.counts = {"kill": 0, "freeze": 0, "cut": 0}
        self.recoveries: list[float] = []

    def kill(self, node: BrokerProcess, _node_id: int) -> None:
        """SIGKILL the node, then start it again on the same data."""
        node.kill()
        self.counts["kill"] += 1
        self._hold(node.start)

    def freeze(self, node: BrokerProcess, _node_id: int) -> None:
        """SIGSTOP the node for longer than its session, then SIGCONT it."""
        os.kill(node.pid, signal.SIGSTOP)
        self.counts["freeze"] += 1
        self._hold(lambda: os.kill(node.pid, signal.SIGCONT))

    def cut(self, _node: BrokerProcess, node_id: int) -> None:
        """Cut the node off: its Raft links go silent and its Kafka port resets connections."""
        links = self.proxied.links_of(node_id)
        links[0].cut(LinkState.RESET)
        for proxy in links[1:]:
            proxy.cut(LinkState.BLACKHOLE)
        self.counts["cut"] += 1

        def heal() -> None:
            for proxy in links:
                proxy.heal()

        self._hold(heal)

    def _hold(self, end_fault: Callable[[], None]) -> None:
        applied = time.monotonic()
        wait_until(lambda: full_isr(self.admin) is False, RECOVERY_TIMEOUT_S, "the fault noticed")
        time.sleep(max(0.0, FAULT_SECONDS - (time.monotonic() - applied)))
        end_fault()
        ended = time.monotonic()
        wait_until(lambda: full_isr(self.admin), RECOVERY_TIMEOUT_S, "the full ISR again")
        self.recoveries.append(time.monotonic() - ended)


class Workload:
    """The producer, the two group consumers and the committed-offset observer, on threads."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.history = History()
        self.errors: list[str] = []
        self.ack_times: list[float] = []
        self.stop_producing = threading.Event()
        self.stop_consuming = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._produce, name="producer"),
            *(threading.Thread(target=self._consume, name=f"consumer-{n}") for n in range(2)),
            threading.Thread(target=self._observe_commits, name="commit-observer"),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop every thread (also when the test failed midway) and wait for them."""
        self.stop_producing.set()
        self.stop_consuming.set()
        for thread in self._threads:
            thread.join(timeout=120)
            assert not thread.is_alive(), f"{thread.name} did not stop"

    def producer_finished(self) -> bool:
        return not self._threads[0].is_alive()

    def acked_count(self) -> int:
        with self._lock:
            return len(self.history.acked)

    def consumed_seqs(self) -> set[int]:
        with self._lock:
            return {record.seq for record in self.history.consumed}

    def longest_unavailability(self) -> float:
        """The longest time between two acknowledgements while the producer ran."""
        times = sorted(self.ack_times)
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def _produce(self) -> None:
        producer = Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "request.timeout.ms": 5000,
                "message.timeout.ms": 300_000,
                **CLIENT_TIMEOUTS,
            }
        )

        def delivered(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                self.errors.append(f"produce failed: {error}")
                return
            with self._lock:
                self.history.acked.append(
                    Placed(message.partition(), message.offset(), int(message.value()))
                )
                self.ack_times.append(time.monotonic())

        seq = 0
        while not self.stop_producing.is_set() and seq < MAX_MESSAGES:
            try:
                producer.produce(
                    TOPIC, value=str(seq).encode(), key=str(seq).encode(), on_delivery=delivered
                )
            except BufferError:
                producer.poll(0.1)
                continue
            seq += 1
            producer.poll(0.002)
        remaining = producer.flush(RECOVERY_TIMEOUT_S)
        if remaining:
            self.errors.append(f"{remaining} messages still unanswered at the end")

    def _consume(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": GROUP,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 10_000,
                "heartbeat.interval.ms": 1000,
                **CLIENT_TIMEOUTS,
            }
        )
        consumer.subscribe([TOPIC])
        since_commit = 0
        try:
            while not self.stop_consuming.is_set():
                message = consumer.poll(0.2)
                if message is None or message.error() is not None:
                    continue
                with self._lock:
                    self.history.consumed.append(
                        Placed(message.partition(), message.offset(), int(message.value()))
                    )
                since_commit += 1
                if since_commit >= 200:
                    since_commit = 0
                    self._commit(consumer)
            self._commit(consumer)
        finally:
            consumer.close()

    @staticmethod
    def _commit(consumer: Consumer) -> None:
        """Commit the positions; a commit refused during a fault or rebalance is retried by
        the next one, as an application would."""
        with contextlib.suppress(KafkaException):
            consumer.commit(asynchronous=False)

    def _observe_commits(self) -> None:
        """Poll the group's committed offsets as the coordinator reports them (with the SDK:
        librdkafka's admin requests trip an assertion when brokers vanish mid-request)."""
        with SyncAdmin(self.bootstrap, request_timeout_ms=5000) as admin:
            while not self.stop_consuming.wait(0.5):
                try:
                    committed = admin.list_group_offsets(GROUP)
                except ClientError:
                    continue  # unavailable during a fault: poll again
                with self._lock:
                    self.history.commits.extend(
                        (tp.partition, c.offset) for tp, c in committed.items() if c.offset >= 0
                    )


def read_final_log(bootstrap: str) -> list[Placed]:
    """Every record of the topic, read from the start of each partition up to its end."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "chaos-final", "enable.auto.commit": False}
    )
    records: list[Placed] = []
    try:
        for partition in range(PARTITIONS):
            _, end = consumer.get_watermark_offsets(TopicPartition(TOPIC, partition), timeout=30)
            consumer.assign([TopicPartition(TOPIC, partition, 0)])
            deadline = time.monotonic() + RECOVERY_TIMEOUT_S
            position = 0
            while position < end:
                assert time.monotonic() < deadline, f"reading {TOPIC}-{partition} timed out"
                message = consumer.poll(0.5)
                if message is None or message.error() is not None:
                    continue
                records.append(Placed(partition, message.offset(), int(message.value())))
                position = message.offset() + 1
    finally:
        consumer.close()
    return records


def full_isr(admin: AdminClient) -> bool | None:
    """Whether every partition of the topic has all three replicas in sync and a leader;
    None when the cluster did not answer (it may not, while it heals)."""
    try:
        partitions = admin.list_topics(TOPIC, timeout=5).topics[TOPIC].partitions
    except KafkaException:
        return None
    return len(partitions) == PARTITIONS and all(
        p.leader >= 0 and sorted(p.isrs) == [1, 2, 3] for p in partitions.values()
    )


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[ProxiedCluster]:
    cluster = ProxiedCluster(tmp_path / "chaos")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


def test_acknowledged_messages_survive_kills_freezes_and_partitions(
    proxied: ProxiedCluster, request: pytest.FixtureRequest
) -> None:
    admin = AdminClient({"bootstrap.servers": proxied.bootstrap, **CLIENT_TIMEOUTS})
    topic = NewTopic(TOPIC, PARTITIONS, 3, config={"min.insync.replicas": "2"})
    admin.create_topics([topic])[TOPIC].result(timeout=30)
    wait_until(lambda: full_isr(admin), 30, "the new topic's full ISR")
    workload = Workload(proxied.bootstrap)
    workload.start()
    request.addfinalizer(workload.stop)
    faults = FaultInjector(proxied, admin)
    nodes = proxied.cluster.nodes
    try:
        wait_until(lambda: workload.acked_count() >= 100, RECOVERY_TIMEOUT_S, "first acks")
        for round_ in range(2):
            for offset, fault in enumerate((faults.kill, faults.freeze, faults.cut)):
                node_id = (round_ + offset) % 3 + 1
                fault(nodes[node_id], node_id)
                acked = workload.acked_count()
                wait_until(
                    lambda acked=acked: workload.acked_count() > acked + 20,
                    RECOVERY_TIMEOUT_S,
                    "acknowledgements after the fault",
                )
    finally:
        workload.stop_producing.set()
    wait_until(workload.producer_finished, RECOVERY_TIMEOUT_S, "the producer to flush")
    expected = {record.seq for record in workload.history.acked}
    wait_until(
        lambda: expected <= workload.consumed_seqs(), RECOVERY_TIMEOUT_S, "consumers to catch up"
    )
    workload.stop()
    assert full_isr(admin), "the ISR did not stay full after the faults ended"
    workload.history.final_log = read_final_log(proxied.bootstrap)

    problems = violations(workload.history)
    print(
        f"\nchaos: {len(workload.history.acked)} acknowledged, "
        f"{len(workload.history.consumed)} consumed, faults {faults.counts}, "
        f"recoveries to full ISR {[round(s, 1) for s in faults.recoveries]} s, "
        f"longest unavailability {workload.longest_unavailability():.2f} s"
    )
    assert workload.errors == []
    assert problems == [], "\n".join(problems[:20])
    assert sum(faults.counts.values()) == 6
