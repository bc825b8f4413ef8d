"""The control plane of a 3-node loopback cluster: metadata as every client sees it, fencing of
a dead broker, controlled shutdown, and nodes the cluster must refuse."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from client_compat import unique_topic
from confluent_kafka import ElectionType, KafkaError, KafkaException
from confluent_kafka import TopicPartition as ConfluentPartition
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic
from kafka import KafkaAdminClient, TopicPartition
from kafka import errors as kafka_errors

from goqueue.testing.cluster import ClusterProcess, wait_until

SESSION_S = 3.0
UNCLEAN = "unclean.leader.election.enable"
"""The test cluster's broker session timeout (goqueue.testing.cluster.TEST_SETTINGS)."""


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


def admin(cluster: ClusterProcess, *, avoid: int | None = None) -> AdminClient:
    """A confluent-kafka admin bootstrapped from the running nodes (except `avoid`)."""
    servers = ",".join(n.bootstrap for i, n in cluster.running() if i != avoid)
    return AdminClient({"bootstrap.servers": servers})


def create_topic(client: AdminClient, name: str, partitions: int, replicas: int) -> None:
    for future in client.create_topics([NewTopic(name, partitions, replicas)]).values():
        future.result(timeout=30)


def partitions_of(client: AdminClient, topic: str) -> dict[int, Any]:
    metadata = client.list_topics(topic, timeout=10)
    return dict(metadata.topics[topic].partitions)


def broker_ids(client: AdminClient) -> set[int]:
    return set(client.list_topics(timeout=10).brokers)


def test_every_client_sees_replicas_leaders_and_isrs(shared: ClusterProcess) -> None:
    topic = unique_topic("placed")
    confluent = admin(shared)
    create_topic(confluent, topic, 6, 3)

    metadata = confluent.list_topics(topic, timeout=10)
    assert set(metadata.brokers) == {1, 2, 3}
    assert metadata.controller_id in {1, 2, 3}
    partitions = metadata.topics[topic].partitions
    assert sorted(partitions) == list(range(6))
    for partition in partitions.values():
        assert sorted(partition.replicas) == [1, 2, 3]
        assert partition.leader == partition.replicas[0]
        assert set(partition.isrs) <= {1, 2, 3}
        assert partition.leader in partition.isrs
    leaders = [partition.leader for partition in partitions.values()]
    assert sorted(leaders.count(node) for node in (1, 2, 3)) == [2, 2, 2], leaders

    kafka_python = KafkaAdminClient(bootstrap_servers=shared.bootstrap)
    try:
        described = kafka_python.describe_topics([topic])[0]
        by_index = {p["partition_index"]: p for p in described["partitions"]}
        for index, partition in partitions.items():
            assert by_index[index]["leader_id"] == partition.leader
            assert by_index[index]["replica_nodes"] == partition.replicas
            assert by_index[index]["isr_nodes"] == partition.isrs
        cluster_info = kafka_python.describe_cluster()
        assert {b["broker_id"] for b in cluster_info["brokers"]} == {1, 2, 3}
        assert cluster_info["controller_id"] in {1, 2, 3}
    finally:
        kafka_python.close()

    async def aiokafka_view() -> dict[str, Any]:
        client = AIOKafkaAdminClient(bootstrap_servers=shared.bootstrap)
        await client.start()
        try:
            return await client.describe_cluster()
        finally:
            await client.close()

    described_cluster = asyncio.run(aiokafka_view())
    assert {b["node_id"] for b in described_cluster["brokers"]} == {1, 2, 3}
    assert described_cluster["controller_id"] in {1, 2, 3}


def test_a_killed_controller_is_replaced_then_fenced_and_its_leaderships_move(
    cluster: ClusterProcess,
) -> None:
    topic = unique_topic("failover")
    confluent = admin(cluster)
    create_topic(confluent, topic, 6, 3)
    victim = confluent.list_topics(timeout=10).controller_id
    cluster.nodes[victim].kill()
    killed_at = time.monotonic()
    survivors = admin(cluster, avoid=victim)

    def moved() -> bool:
        partitions = partitions_of(survivors, topic).values()
        return victim not in broker_ids(survivors) and all(
            p.leader not in (victim, -1) and victim not in p.isrs for p in partitions
        )

    wait_until(moved, SESSION_S + 5, "the killed broker to be fenced and its leaderships moved")
    assert time.monotonic() - killed_at >= SESSION_S - 0.5, "fenced before its session expired"
    for partition in partitions_of(survivors, topic).values():
        assert victim in partition.replicas, "fencing must not change the assignment"
    assert survivors.list_topics(timeout=10).controller_id in set(cluster.nodes) - {victim}

    cluster.nodes[victim].start()
    wait_until(lambda: victim in broker_ids(survivors), 10, "the restarted broker to be unfenced")


def test_controlled_shutdown_of_the_controller_moves_its_leaderships_and_the_quorum(
    cluster: ClusterProcess,
) -> None:
    topic = unique_topic("controlled")
    confluent = admin(cluster)
    create_topic(confluent, topic, 6, 3)
    leaving = confluent.list_topics(timeout=10).controller_id
    assert any(p.leader == leaving for p in partitions_of(confluent, topic).values())
    node = cluster.nodes[leaving]
    assert node.stop() == 0
    assert "controlled shutdown: leaderships moved to other brokers" in node.log_text()
    survivors = admin(cluster, avoid=leaving)
    partitions = partitions_of(survivors, topic)
    assert all(p.leader not in (leaving, -1) for p in partitions.values()), partitions
    assert leaving not in broker_ids(survivors)
    wait_until(
        lambda: survivors.list_topics(timeout=10).controller_id not in (leaving, -1),
        10,
        "another controller",
    )


def test_a_frozen_broker_is_fenced_and_comes_back_when_it_resumes(cluster: ClusterProcess) -> None:
    topic = unique_topic("frozen")
    confluent = admin(cluster)
    create_topic(confluent, topic, 3, 3)
    frozen = next(node for node in (1, 2, 3) if node != confluent.list_topics().controller_id)
    os.kill(cluster.nodes[frozen].pid, signal.SIGSTOP)
    try:
        others = admin(cluster, avoid=frozen)
        wait_until(
            lambda: frozen not in broker_ids(others), SESSION_S + 5, "the frozen broker fenced"
        )
        assert all(p.leader != frozen for p in partitions_of(others, topic).values())
    finally:
        os.kill(cluster.nodes[frozen].pid, signal.SIGCONT)
    wait_until(lambda: frozen in broker_ids(others), 10, "the resumed broker to be unfenced")


def test_a_node_with_the_wrong_secret_is_refused_and_the_cluster_keeps_serving(
    shared: ClusterProcess, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong-secret"
    wrong.write_text("not the cluster's secret")
    intruder = shared.new_node(4, secret_file=wrong)
    with pytest.raises(RuntimeError, match="refused this node's cluster secret"):
        intruder.start()
    assert intruder.stop() == 1
    confluent = admin(shared)
    create_topic(confluent, unique_topic("after-intruder"), 3, 3)
    assert broker_ids(confluent) == {1, 2, 3}


def test_a_broker_joins_without_voting_and_its_id_cannot_be_taken_twice(
    shared: ClusterProcess,
) -> None:
    joiner = shared.new_node(4)
    joiner.start()
    try:
        confluent = admin(shared)
        wait_until(lambda: broker_ids(confluent) == {1, 2, 3, 4}, 10, "broker 4 to register")
        topic = unique_topic("four")
        create_topic(confluent, topic, 4, 4)
        assert all(len(p.replicas) == 4 for p in partitions_of(confluent, topic).values())

        duplicate = shared.new_node(4)
        with pytest.raises(RuntimeError, match="already registered by a live broker"):
            duplicate.start()
        assert duplicate.stop() == 1
        assert joiner.is_running()
        assert broker_ids(confluent) == {1, 2, 3, 4}
    finally:
        joiner.stop()


def test_manual_assignments_place_replicas_where_asked_and_bad_ones_are_refused(
    shared: ClusterProcess,
) -> None:
    confluent = admin(shared)
    topic = unique_topic("manual")
    placement = [[1, 2], [2, 3], [3, 1]]
    for future in confluent.create_topics(
        [NewTopic(topic, num_partitions=3, replica_assignment=placement)]
    ).values():
        future.result(timeout=30)
    partitions = partitions_of(confluent, topic)
    assert [partitions[i].replicas for i in range(3)] == placement
    assert [partitions[i].leader for i in range(3)] == [1, 2, 3]

    for future in confluent.create_partitions(
        [NewPartitions(topic, 4, replica_assignment=[[3, 2]])]
    ).values():
        future.result(timeout=30)
    assert partitions_of(confluent, topic)[3].replicas == [3, 2]

    bad = confluent.create_topics(
        [NewTopic(unique_topic("bad"), num_partitions=1, replica_assignment=[[1, 9]])]
    )
    with pytest.raises(KafkaException, match="no such broker is registered"):
        next(iter(bad.values())).result(timeout=30)
    uneven = confluent.create_partitions([NewPartitions(topic, 5, replica_assignment=[[1]])])
    with pytest.raises(KafkaException, match="Inconsistent replication factor"):
        next(iter(uneven.values())).result(timeout=30)


def test_unclean_election_only_where_the_topic_allows_it(cluster: ClusterProcess) -> None:
    broker = cluster.new_node(4)
    broker.start()
    try:
        confluent = admin(cluster)
        wait_until(lambda: broker_ids(confluent) == {1, 2, 3, 4}, 10, "broker 4 to register")
        unclean, clean = unique_topic("unclean"), unique_topic("clean")
        topics = [
            NewTopic(unclean, 1, replica_assignment=[[3, 4]], config={UNCLEAN: "true"}),
            NewTopic(clean, 1, replica_assignment=[[3, 4]]),
        ]
        for future in confluent.create_topics(topics).values():
            future.result(timeout=30)

        def state(topic: str) -> tuple[int, list[int]]:
            partition = partitions_of(confluent, topic)[0]
            return partition.leader, list(partition.isrs)

        cluster.nodes[3].kill()
        wait_until(lambda: state(clean) == (4, [4]), SESSION_S + 5, "4 to lead alone")
        broker.kill()
        wait_until(lambda: 4 not in broker_ids(confluent), SESSION_S + 5, "4 to be fenced")
        assert state(clean) == state(unclean) == (-1, [4]), "the last in-sync replica stays"
        cluster.nodes[3].start()
        wait_until(lambda: state(unclean) == (3, [3]), 10, "3 to lead the unclean topic")
        assert state(clean) == (-1, [4]), "a clean topic waits for its in-sync replica"
    finally:
        broker.stop()


def test_replicas_are_spread_over_racks(tmp_path: Path) -> None:
    racks = {1: "a", 2: "a", 3: "b"}
    with ClusterProcess(tmp_path / "racks", 3, racks=racks) as racked:
        confluent = admin(racked)
        topic = unique_topic("racks")
        create_topic(confluent, topic, 6, 2)
        for partition in partitions_of(confluent, topic).values():
            assert {racks[node] for node in partition.replicas} == {"a", "b"}, partition
        kafka_python = KafkaAdminClient(bootstrap_servers=racked.bootstrap)
        try:
            brokers = kafka_python.describe_cluster()["brokers"]
        finally:
            kafka_python.close()
        assert {b["broker_id"]: b["rack"] for b in brokers} == racks


def test_kafka_admin_clients_reassign_list_and_elect(shared: ClusterProcess) -> None:
    topic = unique_topic("admin-ops")
    confluent = admin(shared)
    create_topic(confluent, topic, 2, 3)
    first, second, third = partitions_of(confluent, topic)[0].replicas
    kafka_python = KafkaAdminClient(bootstrap_servers=shared.bootstrap)
    try:
        results = kafka_python.alter_partition_reassignments(
            {TopicPartition(topic, 0): [second, first, third], TopicPartition(topic, 1): [1, 9]}
        )
        assert results[TopicPartition(topic, 0)] is None
        assert results[TopicPartition(topic, 1)] is kafka_errors.InvalidReplicationAssignmentError
        assert kafka_python.list_partition_reassignments({topic: [0, 1]}) == {}
        kafka_python.elect_leaders(0, {topic: [0]})
    finally:
        kafka_python.close()
    assert partitions_of(confluent, topic)[0].leader == second

    outcome = confluent.elect_leaders(
        ElectionType.PREFERRED, [ConfluentPartition(topic, 0)]
    ).result(timeout=30)
    (error,) = outcome.values()
    assert error is not None and error.code() == KafkaError.ELECTION_NOT_NEEDED
