"""Delayed messages on a 3-node cluster, where a partition's schedule shard is often led by
another broker than the partition: parks are sent on to the shard's leader, due messages are
appended on the target's leader, cancels and the HTTP API reach every shard; and after a
SIGKILL of a shard's leader (messages pending) or of a target's leader (during deliveries)
every message arrives exactly once, none before its time; an idempotent producer whose
batches were parked goes on in sequence on the target's next leader."""

from __future__ import annotations

import asyncio
import datetime
import json
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from client_compat import unique_topic
from confluent_kafka import KafkaError, Producer
from delayed_helpers import Arrival, Reader, now_ms

from goqueue.client import Admin, Cluster
from goqueue.client import Producer as SdkProducer
from goqueue.coordinator.runtime import partition_for
from goqueue.coordinator.scheduler.records import SCHEDULE_TOPIC
from goqueue.testing.cluster import ClusterProcess, wait_until

pytestmark = pytest.mark.integration

PARTITIONS = 6
SHARDS = 4
TIMINGS = {
    "GOQUEUE_SCHEDULER_WINDOW_MS": "1000",
    "GOQUEUE_SCHEDULER_TOPIC_PARTITIONS": str(SHARDS),
    "GOQUEUE_REPLICA_FETCH_BACKOFF_MS": "100",
    "GOQUEUE_REPLICA_LAG_TIME_MAX_MS": "3000",
    "GOQUEUE_REPLICA_FETCH_WAIT_MAX_MS": "200",
}
"""Windows of a second (messages a few seconds away go through the window files), and
followers that notice a dead leader within 0.1 s and drop a dead follower in 3 s."""
READ_DEADLINE_S = 45.0
QUIET_S = 1.5
"""How long the reader keeps polling after the last expected message, to catch duplicates."""


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterProcess]:
    with ClusterProcess(tmp_path / "cluster", 3, env=TIMINGS) as running:
        yield running


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def create_topic(bootstrap: str) -> str:
    name = unique_topic("delayed-cluster")
    async with Admin(bootstrap) as admin:
        await admin.create_topic(name, PARTITIONS, 3, {"goqueue.delayed.enabled": "true"})
    return name


async def placement(bootstrap: str, topic: str) -> dict[int, tuple[int, int]]:
    """Partition -> (its leader, the leader of its schedule shard), from metadata."""
    async with Cluster(bootstrap) as cluster:
        targets = (await cluster.topic(topic)).partitions
        shards = (await cluster.topic(SCHEDULE_TOPIC)).partitions
    shard_leaders = {p.partition: p.leader for p in shards}
    assert len(shard_leaders) == SHARDS
    return {
        p.partition: (p.leader, shard_leaders[partition_for(f"{topic}-{p.partition}", SHARDS)])
        for p in targets
    }


class Sender:
    """A confluent-kafka producer (headers) that checks every delivery report."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        self.errors: list[KafkaError] = []

    def send(self, topic: str, partition: int, value: bytes, headers: list[Any]) -> None:
        self.producer.produce(
            topic,
            value=value,
            partition=partition,
            headers=headers,
            on_delivery=lambda error, _: self.errors.append(error) if error else None,
        )

    def flush(self) -> None:
        assert self.producer.flush(30) == 0
        assert self.errors == []


def park(sender: Sender, topic: str, count: int, first_ms: int, spread_ms: int) -> dict[bytes, int]:
    """`count` messages over every partition, due from `first_ms` to `first_ms + spread_ms`
    from now in shuffled order, half with each header; returns value -> due time."""
    start = now_ms()
    due = {}
    for i in range(count):
        delay_ms = first_ms + (i * 7919) % count * spread_ms // count
        value = b"m%04d" % i
        if i % 2:
            headers = [("goqueue.delay-ms", str(delay_ms).encode())]
        else:
            headers = [("goqueue.deliver-at", str(start + delay_ms).encode())]
        sender.send(topic, i % PARTITIONS, value, headers)
        due[value] = start + delay_ms
    sender.flush()
    return due


def read_all(bootstrap: str, topic: str, expected: set[bytes]) -> list[Arrival]:
    """Every arrival until each expected value came, then QUIET_S more (duplicates)."""
    reader = Reader(bootstrap, topic, PARTITIONS)
    arrivals: list[Arrival] = []
    deadline = time.monotonic() + READ_DEADLINE_S
    try:
        while not expected <= {a.value for a in arrivals}:
            missing = len(expected - {a.value for a in arrivals})
            assert time.monotonic() < deadline, f"{missing} of {len(expected)} never arrived"
            arrivals += reader.poll()
        quiet_until = time.monotonic() + QUIET_S
        while time.monotonic() < quiet_until:
            arrivals += reader.poll()
    finally:
        reader.close()
    return arrivals


def check_exactly_once_in_due_order(arrivals: list[Arrival], due: dict[bytes, int]) -> None:
    counts = Counter(a.value for a in arrivals)
    assert {v: n for v, n in counts.items() if n != 1} == {}, "duplicates"
    assert set(counts) == set(due)
    for partition in range(PARTITIONS):
        scheduled = [a.scheduled_ms for a in arrivals if a.partition == partition]
        assert scheduled == sorted(scheduled), f"partition {partition} not in due order"
    for arrival in arrivals:
        assert arrival.timestamp_ms >= arrival.scheduled_ms >= due[arrival.value] - 1, "early"
        assert arrival.received_ms >= due[arrival.value], "consumed before its time"


def http(cluster: ClusterProcess, node_id: int, path: str, method: str = "GET") -> Any:
    url = f"http://127.0.0.1:{cluster.nodes[node_id].http_port}/api/v1{path}"
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=30) as answer:
        return json.load(answer)


def test_parks_deliveries_cancels_and_the_api_span_brokers(cluster: ClusterProcess) -> None:
    topic = run(create_topic(cluster.bootstrap))
    place = run(placement(cluster.bootstrap, topic))
    remote = [p for p, (leader, shard_leader) in place.items() if leader != shard_leader]
    assert remote, f"every partition's shard is led by its own leader: {place}"
    sender = Sender(cluster.bootstrap)
    due = park(sender, topic, 48, 4000, 3000)
    cancelled = {b"cancel by header": remote[0], b"cancel by http": remote[-1]}
    for value, partition in cancelled.items():
        schedule_id = value.replace(b" ", b"-")
        headers = [("goqueue.delay-ms", b"6000"), ("goqueue.schedule-id", schedule_id)]
        sender.send(topic, partition, value, headers)
    sender.flush()

    async def sdk_sends() -> dict[str, int]:
        async with SdkProducer(cluster.bootstrap) as producer:
            sent = {}
            for partition in remote:
                delay = datetime.timedelta(milliseconds=5000 + 100 * partition)
                value = b"sdk %d" % partition
                metadata = await producer.send(topic, value, partition=partition, delay=delay)
                assert metadata.schedule_id is not None
                sent[metadata.schedule_id] = partition
            return sent

    async def sdk_cancel(schedule_id: str) -> None:
        async with Admin(cluster.bootstrap) as admin:
            await admin.cancel_delayed(schedule_id)

    started = now_ms()
    sdk_ids = run(sdk_sends())
    sdk_cancelled = next(iter(sdk_ids))
    run(sdk_cancel(sdk_cancelled))
    cancelled[b"sdk %d" % sdk_ids.pop(sdk_cancelled)] = -1
    due |= {b"sdk %d" % p: started + 5000 + 100 * p for p in sdk_ids.values()}

    # Cancel by header on a partition whose leader does not lead the message's shard.
    shard_leader = place[remote[0]][1]
    via = next(p for p, (leader, _) in place.items() if leader != shard_leader)
    sender.send(topic, via, b"", [("goqueue.cancel-schedule-id", b"cancel-by-header")])
    sender.flush()

    # The HTTP API of a broker that does not lead the shard sees and cancels the message.
    node = next(n for n in cluster.nodes if n != place[remote[-1]][1])
    listed = {m["schedule_id"] for m in http(cluster, node, f"/delayed?topic={topic}&limit=1000")}
    assert set(sdk_ids) | {"cancel-by-http"} <= listed
    assert "cancel-by-header" not in listed
    assert len(listed) == len(due) + 1
    local = http(cluster, node, f"/delayed?topic={topic}&limit=1000&scope=local")
    assert all(place[m["partition"]][1] == node for m in local)
    assert len(local) < len(listed)
    shown = http(cluster, node, "/delayed/cancel-by-http")
    where = (shown["topic"], shown["partition"], shown["value"])
    assert where == (topic, remote[-1], "cancel by http")
    assert http(cluster, node, "/delayed/cancel-by-http", "DELETE")["cancelled"] is True

    arrivals = read_all(cluster.bootstrap, topic, set(due))
    check_exactly_once_in_due_order(arrivals, due)
    assert not {a.value for a in arrivals} & set(cancelled)


def test_a_shard_leader_killed_with_messages_pending_loses_and_duplicates_none(
    cluster: ClusterProcess,
) -> None:
    topic = run(create_topic(cluster.bootstrap))
    place = run(placement(cluster.bootstrap, topic))
    victim = place[0][1]
    assert any(shard_leader == victim for _, shard_leader in place.values())
    due = park(Sender(cluster.bootstrap), topic, 120, 4000, 3000)
    cluster.nodes[victim].kill()
    survivors = ",".join(node.bootstrap for _, node in cluster.running())
    check_exactly_once_in_due_order(read_all(survivors, topic, set(due)), due)


def test_a_target_leader_killed_during_deliveries_loses_and_duplicates_none(
    cluster: ClusterProcess,
) -> None:
    topic = run(create_topic(cluster.bootstrap))
    place = run(placement(cluster.bootstrap, topic))
    remote = [p for p, (leader, shard_leader) in place.items() if leader != shard_leader]
    assert remote, f"every partition's shard is led by its own leader: {place}"
    victim = place[remote[0]][0]
    led = {p for p, (leader, _) in place.items() if leader == victim}
    due = park(Sender(cluster.bootstrap), topic, 3000, 1500, 3000)
    reader = Reader(cluster.bootstrap, topic, PARTITIONS)
    deadline = time.monotonic() + READ_DEADLINE_S
    while not any(a.partition in led for a in reader.poll()):
        assert time.monotonic() < deadline, "no delivery began"
    reader.close()
    cluster.nodes[victim].kill()
    survivors = ",".join(node.bootstrap for _, node in cluster.running())
    check_exactly_once_in_due_order(read_all(survivors, topic, set(due)), due)


def test_an_idempotent_producer_goes_on_after_parked_batches_when_the_leader_moves(
    cluster: ClusterProcess,
) -> None:
    """The target's new leader never saw the parked batches' sequences: it adopts the newest
    from the schedule shard instead of refusing the next plain batch, so the producer keeps
    its epoch and every plain record is stored once."""
    topic = run(create_topic(cluster.bootstrap))
    place = run(placement(cluster.bootstrap, topic))
    remote = [p for p, (leader, shard_leader) in place.items() if leader != shard_leader]
    assert remote, f"every partition's shard is led by its own leader: {place}"
    partition = remote[0]
    victim = place[partition][0]
    sender = Sender(cluster.bootstrap)
    sender.producer = Producer(
        {"bootstrap.servers": cluster.bootstrap, "linger.ms": 5, "enable.idempotence": True}
    )
    for value in (b"plain 0", b"plain 1"):
        sender.send(topic, partition, value, [])
        sender.flush()
    for value in (b"parked 0", b"parked 1"):
        sender.send(topic, partition, value, [("goqueue.delay-ms", b"600000")])
        sender.flush()
    cluster.nodes[victim].kill()

    def new_leader() -> int | None:
        leader = run(placement(survivors, topic))[partition][0]
        return leader if leader != victim and leader in dict(cluster.running()) else None

    survivors = ",".join(node.bootstrap for _, node in cluster.running())
    leader = wait_until(new_leader, READ_DEADLINE_S, "a new leader")
    sender.send(topic, partition, b"plain after", [])
    sender.flush()

    reader = Reader(survivors, topic, PARTITIONS)
    arrivals: list[Arrival] = []
    deadline = time.monotonic() + READ_DEADLINE_S
    try:
        while b"plain after" not in {a.value for a in arrivals}:
            assert time.monotonic() < deadline, "the batch after the failover never arrived"
            arrivals += reader.poll()
        arrivals += reader.poll(QUIET_S)
    finally:
        reader.close()
    assert [a.value for a in arrivals] == [b"plain 0", b"plain 1", b"plain after"]
    assert "continues after its parked batch" in cluster.nodes[leader].log_text()
