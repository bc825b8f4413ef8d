"""Replicated partitions on a 3-node loopback cluster: acks=all with kafka-python, aiokafka and
confluent-kafka lands on every replica byte for byte, min.insync.replicas refuses writes the ISR
cannot hold, a leader's death loses no acknowledged message, a returning old leader truncates
what it wrote alone, and group offsets survive the move of their coordinator."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from client_compat import unique_topic
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition
from kio.schema.errors import ErrorCode

from goqueue.broker.replica_fetcher import OFFSET_FOR_LEADER_EPOCH
from goqueue.client import groups
from goqueue.client.cluster import Cluster
from goqueue.client.connection import Connection
from goqueue.client.errors import ClientError
from goqueue.client.fetcher import FETCH, FetchLimits, fetch_request
from goqueue.client.metadata import TopicPartition as GqTopicPartition
from goqueue.testing.cluster import ClusterProcess, wait_until

FETCH_WAIT_S = 0.2
REPLICATION_TIMINGS = {
    "GOQUEUE_REPLICA_FETCH_BACKOFF_MS": "100",
    "GOQUEUE_REPLICA_LAG_TIME_MAX_MS": "3000",
    "GOQUEUE_REPLICA_FETCH_WAIT_MAX_MS": str(int(FETCH_WAIT_S * 1000)),
    "GOQUEUE_REPLICA_HIGH_WATERMARK_CHECKPOINT_INTERVAL_MS": "500",
}
"""Followers retry a failed leader within 0.1 s, a dead follower leaves the ISR in 3 s, a
follower's fetch waits at most 0.2 s at the leader, and high watermarks are saved twice a
second."""
SESSION_S = 3.0
TIMEOUT_S = 30.0


def start_cluster(base: Path) -> ClusterProcess:
    cluster = ClusterProcess(base, 3, env=REPLICATION_TIMINGS)
    cluster.start()
    return cluster


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    cluster = start_cluster(tmp_path_factory.mktemp("replication"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterProcess]:
    running = start_cluster(tmp_path / "cluster")
    try:
        yield running
    finally:
        running.stop()


def admin(cluster: ClusterProcess) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap(cluster)})


def bootstrap(cluster: ClusterProcess) -> str:
    return ",".join(node.bootstrap for _, node in cluster.running())


def create_topic(
    cluster: ClusterProcess, partitions: int, configs: dict[str, str] | None = None
) -> str:
    name = unique_topic("replicated")
    new = NewTopic(name, partitions, 3, config=configs or {})
    client = admin(cluster)
    for future in client.create_topics([new]).values():
        future.result(timeout=TIMEOUT_S)
    return name


def partition_state(cluster: ClusterProcess, topic: str, index: int) -> Any:
    return admin(cluster).list_topics(topic, timeout=10).topics[topic].partitions[index]


def log_bytes(cluster: ClusterProcess, node_id: int, topic: str, index: int) -> bytes:
    """Every segment of one replica, in order: what the node stores for the partition."""
    directory = cluster.nodes[node_id].data_dir / f"{topic}-{index}"
    return b"".join(path.read_bytes() for path in sorted(directory.glob("*.log")))


def assert_replicas_identical(cluster: ClusterProcess, topic: str, partitions: int) -> None:
    """Wait until every node stores the same bytes for each partition (followers may still be
    fetching the high watermark), then check they hold data."""
    for index in range(partitions):

        def same(index: int = index) -> bool:
            logs = {log_bytes(cluster, node, topic, index) for node in cluster.nodes}
            return len(logs) == 1

        wait_until(same, TIMEOUT_S, f"replicas of {topic}-{index} to be identical")
        assert log_bytes(cluster, 1, topic, index), f"{topic}-{index} is empty"


def confluent_produce(
    cluster: ClusterProcess, topic: str, values: list[bytes], partition: int = 0, **config: Any
) -> list[KafkaError | None]:
    """Produce one message per value and return each one's delivery error (None if acked)."""
    producer = Producer({"bootstrap.servers": bootstrap(cluster), "acks": "all", **config})
    errors: list[KafkaError | None] = []
    for value in values:
        producer.produce(
            topic, value=value, partition=partition, on_delivery=lambda e, _m: errors.append(e)
        )
    assert producer.flush(TIMEOUT_S) == 0
    return errors


def confluent_read(cluster: ClusterProcess, topic: str, partition: int, count: int) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap(cluster),
            "group.id": unique_topic("reader"),
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, partition, 0)])
    values: list[bytes] = []
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while len(values) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                values.append(message.value())
    finally:
        consumer.close()
    return values


def test_acks_all_from_every_client_lands_on_every_replica(shared_cluster: ClusterProcess) -> None:
    cluster = shared_cluster
    topic = create_topic(cluster, 3)
    confluent_values = [b"confluent-%d" % i for i in range(50)]
    assert confluent_produce(cluster, topic, confluent_values) == [None] * 50

    kafka_python = KafkaProducer(
        bootstrap_servers=bootstrap(cluster), acks="all", enable_idempotence=False
    )
    try:
        for i in range(50):
            kafka_python.send(topic, b"kafka-python-%d" % i, partition=1).get(TIMEOUT_S)
    finally:
        kafka_python.close()

    async def aiokafka_round_trip() -> list[bytes]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap(cluster), acks="all")
        await producer.start()
        try:
            for i in range(50):
                await producer.send_and_wait(topic, b"aiokafka-%d" % i, partition=2)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap(cluster))
        await consumer.start()
        try:
            consumer.assign([KpTopicPartition(topic, 2)])
            consumer.seek(KpTopicPartition(topic, 2), 0)
            batches = await consumer.getmany(timeout_ms=10_000, max_records=50)
            return [r.value for records in batches.values() for r in records]
        finally:
            await consumer.stop()

    assert asyncio.run(aiokafka_round_trip()) == [b"aiokafka-%d" % i for i in range(50)]
    assert confluent_read(cluster, topic, 0, 50) == confluent_values
    consumer = KafkaConsumer(bootstrap_servers=bootstrap(cluster), consumer_timeout_ms=10_000)
    try:
        consumer.assign([KpTopicPartition(topic, 1)])
        consumer.seek_to_beginning()
        read = [next(consumer).value for _ in range(50)]
    finally:
        consumer.close()
    assert read == [b"kafka-python-%d" % i for i in range(50)]
    assert_replicas_identical(cluster, topic, 3)
    for index in range(3):
        state = partition_state(cluster, topic, index)
        assert sorted(state.isrs) == [1, 2, 3], "every follower kept up"


def test_consumers_read_only_up_to_the_high_watermark(shared_cluster: ClusterProcess) -> None:
    cluster = shared_cluster
    topic = create_topic(cluster, 1)
    assert confluent_produce(cluster, topic, [b"a", b"b", b"c"]) == [None] * 3
    consumer = Consumer({"bootstrap.servers": bootstrap(cluster), "group.id": "hw"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), TIMEOUT_S)
    finally:
        consumer.close()
    assert (low, high) == (0, 3)


def test_every_replica_checkpoints_its_high_watermark_while_running(
    shared_cluster: ClusterProcess,
) -> None:
    cluster = shared_cluster
    topic = create_topic(cluster, 1)
    assert confluent_produce(cluster, topic, [b"a", b"b", b"c", b"d"]) == [None] * 4

    def saved(node_id: int) -> str | None:
        path = cluster.nodes[node_id].data_dir / f"{topic}-0" / "high-watermark"
        return path.read_text().strip() if path.exists() else None

    for node_id in cluster.nodes:
        wait_until(lambda n=node_id: saved(n) == "4", TIMEOUT_S, f"broker {node_id} to save HW 4")


def test_a_consumer_group_reads_a_replicated_topic(shared_cluster: ClusterProcess) -> None:
    cluster = shared_cluster
    topic = create_topic(cluster, 4)
    values = {b"g-%d" % i for i in range(40)}
    producer = KafkaProducer(
        bootstrap_servers=bootstrap(cluster), acks="all", enable_idempotence=False
    )
    try:
        for value in sorted(values):
            producer.send(topic, value)
        producer.flush(TIMEOUT_S)
    finally:
        producer.close()
    group = unique_topic("group")

    async def aiokafka_member(seen: set[bytes]) -> None:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap(cluster),
            group_id=group,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            deadline = time.monotonic() + TIMEOUT_S
            while len(seen) < len(values) and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=500)
                seen.update(r.value for records in batches.values() for r in records)
            await consumer.commit()
        finally:
            await consumer.stop()

    seen: set[bytes] = set()
    asyncio.run(aiokafka_member(seen))
    assert seen == values
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap(cluster), group_id=group, enable_auto_commit=False
    )
    try:
        partitions = [KpTopicPartition(topic, index) for index in range(4)]
        committed = sum(consumer.committed(tp) or 0 for tp in partitions)
    finally:
        consumer.close()
    assert committed == len(values), "the group's commits cover every message"


def test_only_the_leader_serves_and_stale_epochs_are_fenced(
    shared_cluster: ClusterProcess,
) -> None:
    cluster = shared_cluster
    topic = create_topic(cluster, 1)
    assert confluent_produce(cluster, topic, [b"x", b"y"]) == [None] * 2
    state = partition_state(cluster, topic, 0)
    follower = next(node for node in state.replicas if node != state.leader)

    async def ask(node_id: int, api_key: int, request: dict[str, Any]) -> Any:
        host, port = cluster.nodes[node_id].bootstrap.split(":")
        connection = await Connection.open(host, int(port))
        try:
            return await connection.request(api_key, request)
        finally:
            await connection.close()

    async def topic_id() -> Any:
        async with Cluster(bootstrap(cluster)) as client:
            return (await client.topic(topic)).topic_id

    ids = {topic: asyncio.run(topic_id())}

    def fetch(node_id: int, epoch: int) -> Any:
        request = fetch_request({GqTopicPartition(topic, 0): 0}, ids, FetchLimits())
        request["topics"][0]["partitions"][0]["current_leader_epoch"] = epoch
        response = asyncio.run(ask(node_id, FETCH, request))
        return response.responses[0].partitions[0]

    def end_offset(node_id: int, current: int, wanted: int) -> Any:
        partitions = [{"partition": 0, "current_leader_epoch": current, "leader_epoch": wanted}]
        request = {"replica_id": -1, "topics": [{"topic": topic, "partitions": partitions}]}
        response = asyncio.run(ask(node_id, OFFSET_FOR_LEADER_EPOCH, request))
        return response.topics[0].partitions[0]

    epoch = 0
    """A new topic keeps its first leader, at leader epoch 0."""
    served = fetch(state.leader, -1)
    assert (served.error_code, served.high_watermark) == (ErrorCode.none, 2)
    refused = fetch(follower, -1)
    assert refused.error_code == ErrorCode.not_leader_or_follower
    assert refused.current_leader.leader_id == state.leader
    assert fetch(state.leader, epoch + 1).error_code == ErrorCode.unknown_leader_epoch
    answer = end_offset(state.leader, -1, epoch)
    assert (answer.error_code, answer.leader_epoch, answer.end_offset) == (ErrorCode.none, epoch, 2)
    assert end_offset(follower, -1, epoch).error_code == ErrorCode.not_leader_or_follower


def test_min_insync_replicas_refuses_acks_all_when_a_replica_is_down(
    cluster: ClusterProcess,
) -> None:
    topic = create_topic(cluster, 1, {"min.insync.replicas": "3"})
    assert confluent_produce(cluster, topic, [b"before"]) == [None]
    leader = partition_state(cluster, topic, 0).leader
    victim = next(node for node in cluster.nodes if node != leader)
    cluster.nodes[victim].kill()
    wait_until(
        lambda: victim not in partition_state(cluster, topic, 0).isrs,
        SESSION_S + 10,
        "the killed follower to leave the ISR",
    )
    errors = confluent_produce(cluster, topic, [b"refused"], retries=0)
    assert errors[0] is not None and errors[0].code() == KafkaError.NOT_ENOUGH_REPLICAS
    assert confluent_produce(cluster, topic, [b"acks-1"], acks="1") == [None]
    assert confluent_read(cluster, topic, 0, 2) == [b"before", b"acks-1"]

    cluster.nodes[victim].start()
    wait_until(
        lambda: sorted(partition_state(cluster, topic, 0).isrs) == [1, 2, 3],
        TIMEOUT_S,
        "the restarted follower to catch up and rejoin the ISR",
    )
    assert confluent_produce(cluster, topic, [b"after"], retries=0) == [None]
    assert_replicas_identical(cluster, topic, 1)


def test_a_killed_leader_loses_no_acknowledged_message(cluster: ClusterProcess) -> None:
    topic = create_topic(cluster, 1)
    first = [b"first-%d" % i for i in range(200)]
    assert confluent_produce(cluster, topic, first, **{"enable.idempotence": True}) == [None] * len(
        first
    )
    old = partition_state(cluster, topic, 0).leader
    cluster.nodes[old].kill()
    wait_until(
        lambda: partition_state(cluster, topic, 0).leader not in (old, -1),
        SESSION_S + 10,
        "a follower to take over",
    )
    second = [b"second-%d" % i for i in range(200)]
    assert confluent_produce(cluster, topic, second, **{"enable.idempotence": True}) == [
        None
    ] * len(second)
    assert confluent_read(cluster, topic, 0, 400) == first + second

    cluster.nodes[old].start()
    wait_until(
        lambda: sorted(partition_state(cluster, topic, 0).isrs) == [1, 2, 3],
        TIMEOUT_S,
        "the old leader to catch up as a follower",
    )
    assert_replicas_identical(cluster, topic, 1)


@pytest.fixture
def frozen_cluster(tmp_path: Path) -> Iterator[ClusterProcess]:
    """A cluster whose nodes are SIGKILLed at the end: after two of its three Raft voters were
    frozen, pysyncobj may report a diverged log, and the last node's controlled shutdown then
    waits for a quorum that is gone (a control plane matter, not what this test checks)."""
    running = start_cluster(tmp_path / "cluster")
    try:
        yield running
    finally:
        for _, node in running.running():
            node.kill()


def test_a_returning_old_leader_truncates_what_only_it_had(
    frozen_cluster: ClusterProcess,
) -> None:
    cluster = frozen_cluster
    topic = create_topic(cluster, 1)
    assert (
        confluent_produce(cluster, topic, [b"committed-%d" % i for i in range(10)]) == [None] * 10
    )
    state = partition_state(cluster, topic, 0)
    old = state.leader
    followers = [node for node in state.replicas if node != old]
    wait_until(
        lambda: len({log_bytes(cluster, n, topic, 0) for n in cluster.nodes}) == 1,
        TIMEOUT_S,
        "followers to hold the committed data",
    )
    for node in followers:
        os.kill(cluster.nodes[node].pid, signal.SIGSTOP)
    # A fetch the followers parked at the leader just before freezing would carry the next
    # batch into their socket buffers (replicating it after all): let such fetches expire.
    time.sleep(FETCH_WAIT_S * 3)
    try:
        lonely = confluent_produce(cluster, topic, [b"unreplicated"], acks="1")
        assert lonely == [None], "the leader appended it alone"
        cluster.nodes[old].kill()
    finally:
        for node in followers:
            os.kill(cluster.nodes[node].pid, signal.SIGCONT)
    wait_until(
        lambda: partition_state(cluster, topic, 0).leader in followers,
        SESSION_S + 15,
        "a follower to take over",
    )
    after = [b"after-%d" % i for i in range(5)]
    assert confluent_produce(cluster, topic, after) == [None] * 5

    cluster.nodes[old].start()
    wait_until(
        lambda: sorted(partition_state(cluster, topic, 0).isrs) == [1, 2, 3],
        TIMEOUT_S,
        "the old leader to rejoin the ISR",
    )
    assert_replicas_identical(cluster, topic, 1)
    values = confluent_read(cluster, topic, 0, 15)
    assert values == [b"committed-%d" % i for i in range(10)] + after
    assert b"unreplicated" not in log_bytes(cluster, old, topic, 0)
    assert "truncating from 11 to 10" in cluster.nodes[old].log_text()


def test_a_stalled_follower_leaves_the_isr_and_rejoins(tmp_path: Path) -> None:
    """With replica.lag.time.max.ms below the broker session timeout, the leader (not the
    controller's fencing) drops a frozen follower from the ISR, acks=all goes on without it,
    and the follower rejoins once it catches up. The frozen node is not the controller, so the
    quorum keeps applying the ISR change."""
    cluster = ClusterProcess(
        tmp_path / "cluster",
        3,
        env={**REPLICATION_TIMINGS, "GOQUEUE_REPLICA_LAG_TIME_MAX_MS": "1000"},
    )
    cluster.start()
    try:
        topic = create_topic(cluster, 1)
        assert confluent_produce(cluster, topic, [b"before"]) == [None]
        state = partition_state(cluster, topic, 0)
        controller = admin(cluster).list_topics(timeout=10).controller_id
        stalled = next(node for node in state.replicas if node not in (state.leader, controller))
        os.kill(cluster.nodes[stalled].pid, signal.SIGSTOP)
        try:
            producer = Producer({"bootstrap.servers": bootstrap(cluster), "acks": "all"})
            errors: list[KafkaError | None] = []
            producer.produce(
                topic, b"during", partition=0, on_delivery=lambda e, _m: errors.append(e)
            )
            assert producer.flush(SESSION_S) == 0, "acks=all waited for the frozen follower"
            assert errors == [None]
            assert stalled not in partition_state(cluster, topic, 0).isrs
        finally:
            os.kill(cluster.nodes[stalled].pid, signal.SIGCONT)
        wait_until(
            lambda: sorted(partition_state(cluster, topic, 0).isrs) == [1, 2, 3],
            TIMEOUT_S,
            "the follower to rejoin the ISR",
        )
        assert_replicas_identical(cluster, topic, 1)
    finally:
        cluster.stop()


def test_group_commits_survive_the_coordinator_moving(cluster: ClusterProcess) -> None:
    topic = create_topic(cluster, 2)
    assert confluent_produce(cluster, topic, [b"m%d" % i for i in range(10)]) == [None] * 10
    group = unique_topic("group")
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap(cluster),
            "group.id": group,
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        seen = 0
        deadline = time.monotonic() + TIMEOUT_S
        while seen < 10 and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                seen += 1
        assert seen == 10
        consumer.commit(offsets=[TopicPartition(topic, 0, 7)], asynchronous=False)
    finally:
        consumer.close()
    coordinator = find_coordinator(cluster, group)
    cluster.nodes[coordinator].kill()
    wait_until(
        lambda: find_coordinator(cluster, group) not in (coordinator, -1),
        SESSION_S + 15,
        "the coordinator to move",
    )
    reader = Consumer({"bootstrap.servers": bootstrap(cluster), "group.id": group})
    try:
        committed = reader.committed([TopicPartition(topic, 0)], timeout=TIMEOUT_S)
    finally:
        reader.close()
    assert committed[0].offset == 7


def find_coordinator(cluster: ClusterProcess, group: str) -> int:
    """The node id FindCoordinator names for a group (-1 while there is none)."""

    async def ask() -> int:
        async with Cluster(bootstrap(cluster)) as client:
            return await groups.find_coordinator(client, group)

    try:
        return asyncio.run(ask())
    except ClientError:
        return -1
