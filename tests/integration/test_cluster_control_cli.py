"""`goqueue cluster status|elect-leaders|reassign|add-node|remove-node` against a 3-node
loopback cluster: their effect on the cluster, their output and their refusals."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from client_compat import unique_topic
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from typer.testing import CliRunner

from goqueue.cli.main import app
from goqueue.testing.cluster import ClusterProcess, wait_until

RUNNER = CliRunner()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    """One cluster for the tests that leave every node running (each uses its own topics)."""
    with ClusterProcess(tmp_path_factory.mktemp("shared") / "cluster", 3) as running:
        yield running


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterProcess]:
    """A cluster of its own, for a test that kills, stops or freezes nodes."""
    with ClusterProcess(tmp_path / "cluster", 3) as running:
        yield running


def cli(cluster: ClusterProcess, *args: str, code: int = 0) -> str:
    """Run `goqueue cluster ARGS` against the running nodes; its output and errors."""
    servers = ",".join(node.bootstrap for _, node in cluster.running())
    result = RUNNER.invoke(app, ["cluster", *args, "--bootstrap", servers])
    assert result.exit_code == code, f"{args}: {result.exit_code}\n{result.stdout}{result.stderr}"
    return result.stdout + result.stderr


def admin(cluster: ClusterProcess) -> AdminClient:
    servers = ",".join(node.bootstrap for _, node in cluster.running())
    return AdminClient({"bootstrap.servers": servers})


def topic_with(cluster: ClusterProcess, partitions: int, replicas: int) -> str:
    name = unique_topic("cli")
    client = admin(cluster)
    for future in client.create_topics([NewTopic(name, partitions, replicas)]).values():
        future.result(timeout=30)
    return name


def leaders(cluster: ClusterProcess, topic: str) -> dict[int, int]:
    partitions = admin(cluster).list_topics(topic, timeout=10).topics[topic].partitions
    return {index: p.leader for index, p in partitions.items()}


def test_status_lists_brokers_controller_and_quorum(shared: ClusterProcess) -> None:
    topic_with(shared, 3, 3)
    output = cli(shared, "status")
    assert "controller" in output
    for node in (1, 2, 3):
        assert f"127.0.0.1:{shared.nodes[node].port}" in output
    assert "Offline partitions: 0" in output
    quorum = next(line for line in output.splitlines() if line.startswith("Quorum:"))
    assert "voters 1 (behind" in quorum and "3 (behind" in quorum and "observers []" in quorum


def test_reordering_replicas_then_electing_leaders_moves_leadership_to_the_new_preferred(
    shared: ClusterProcess,
) -> None:
    topic = topic_with(shared, 1, 3)
    first, second, third = replicas_of(shared, topic)
    reordered = f"{second},{first},{third}"
    cli(shared, "reassign", "--topic", topic, "--partition", "0", "--replicas", reordered)
    assert replicas_of(shared, topic) == [second, first, third]
    assert leaders(shared, topic) == {0: first}, "a reorder alone keeps the leader"
    output = cli(shared, "elect-leaders", "--topic", topic)
    assert f"{topic}-0: elected" in output
    assert leaders(shared, topic) == {0: second}
    again = cli(shared, "elect-leaders", "--topic", topic, "--partition", "0")
    assert "ELECTION_NOT_NEEDED" in again


def replicas_of(cluster: ClusterProcess, topic: str) -> list[int]:
    client = admin(cluster)
    return list(client.list_topics(topic, timeout=10).topics[topic].partitions[0].replicas)


def test_reassign_drops_a_replica_deletes_its_log_and_refuses_bad_requests(
    shared: ClusterProcess,
) -> None:
    topic = topic_with(shared, 1, 3)
    *kept, dropped = replicas_of(shared, topic)
    dropped_log = shared.nodes[dropped].data_dir / f"{topic}-0"
    wait_until(dropped_log.exists, 10, f"the log of {topic}-0 on broker {dropped}")
    output = cli(
        shared,
        "reassign",
        "--topic",
        topic,
        "--partition",
        "0",
        "--replicas",
        ",".join(map(str, kept)),
        "--wait",
    )
    assert "reassignment complete" in output
    now = admin(shared).list_topics(topic, timeout=10).topics[topic].partitions[0]
    assert (now.replicas, now.leader) == (kept, kept[0])
    wait_until(lambda: not dropped_log.exists(), 10, f"broker {dropped} to delete {dropped_log}")
    refused = cli(
        shared, "reassign", "--topic", topic, "--partition", "0", "--replicas", "1,9", code=1
    )
    assert "INVALID_REPLICA_ASSIGNMENT" in refused and "no such broker" in refused
    cancel = cli(shared, "reassign", "--topic", topic, "--partition", "0", "--cancel", code=1)
    assert "NO_REASSIGNMENT_IN_PROGRESS" in cancel


def test_a_voter_is_added_and_removed_on_the_running_cluster(cluster: ClusterProcess) -> None:
    newcomer = cluster.new_node(4, voter=True)
    started = threading.Thread(target=newcomer.start)
    started.start()
    try:
        cli(cluster, "add-node", f"4@127.0.0.1:{newcomer.raft_port}")
        started.join(30)
        assert newcomer.is_running()
        wait_until(lambda: 4 in admin(cluster).list_topics(timeout=10).brokers, 10, "broker 4")
        output = cli(cluster, "remove-node", "4")
        assert "no longer a voter" in output
        newcomer.stop()
        wait_until(lambda: 4 not in admin(cluster).list_topics(timeout=10).brokers, 10, "4 fenced")
        assert "broker 4 unregistered" in cli(cluster, "remove-node", "4")
        assert f"127.0.0.1:{newcomer.port}" not in cli(cluster, "status")
    finally:
        started.join(30)
        newcomer.stop()


def test_a_partition_moves_to_other_brokers_while_a_producer_keeps_producing(
    shared: ClusterProcess,
) -> None:
    topic = unique_topic("moving")
    client = admin(shared)
    client.create_topics([NewTopic(topic, 1, replica_assignment=[[1]])])[topic].result(30)
    servers = shared.bootstrap
    acked: list[bytes] = []
    stop = threading.Event()

    def produce() -> None:
        producer = Producer(
            {"bootstrap.servers": servers, "enable.idempotence": True, "linger.ms": 5}
        )

        def delivered(error: object, message: Any) -> None:
            if error is None:
                acked.append(message.value())

        sent = 0
        while not stop.is_set():
            producer.produce(topic, f"m{sent}".encode(), on_delivery=delivered)
            producer.poll(0)
            sent += 1
            if sent % 100 == 0:
                producer.flush(10)
        producer.flush(30)

    producing = threading.Thread(target=produce)
    producing.start()
    try:
        wait_until(lambda: len(acked) > 500, 30, "the producer to get going")
        output = cli(
            shared, "reassign", "--topic", topic, "--partition", "0", "--replicas", "2,3", "--wait"
        )
        assert "reassignment complete" in output
        wait_until(lambda: len(acked) > 1500, 30, "produces to the moved partition")
    finally:
        stop.set()
        producing.join(60)
    moved = admin(shared).list_topics(topic, timeout=10).topics[topic].partitions[0]
    assert (moved.replicas, moved.leader, sorted(moved.isrs)) == ([2, 3], 2, [2, 3])

    consumer = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": unique_topic("g"),
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    seen: list[bytes] = []
    try:
        deadline = time.monotonic() + 30
        while len(seen) < len(acked) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                seen.append(message.value())
    finally:
        consumer.close()
    assert seen == acked, f"{len(seen)} read back, {len(acked)} acknowledged"
