"""Consumer groups with kafka-python: every assignor splits the partitions, a member that dies
is evicted and its partitions move, offsets survive a broker restart, no message is consumed
twice, and `goqueue group describe` reports the lag the test set up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from client_compat import wait_for
from group_helpers import (
    HEARTBEAT_MS,
    PARTITIONS,
    SESSION_MS,
    TP,
    Pollers,
    all_partitions,
    create_topic,
    describe_group,
    describe_with_cli,
    group_broker,
    own_group_broker,
    pollers,
    produce,
    unique_group,
    wait_shared,
)
from kafka import KafkaConsumer, TopicPartition
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from kafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from kafka.structs import OffsetAndMetadata

from goqueue.testing.process import BrokerProcess

__all__ = ["group_broker", "own_group_broker", "pollers"]


def consumer(bootstrap: str, group: str, *topics: str, **config: object) -> KafkaConsumer:
    settings: dict[str, object] = {
        "bootstrap_servers": bootstrap,
        "group_id": group,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": SESSION_MS,
        "heartbeat_interval_ms": HEARTBEAT_MS,
        "enable_auto_commit": False,
        **config,
    }
    return KafkaConsumer(*topics, **settings)


def owned(c: KafkaConsumer) -> set[TP]:
    return {(tp.topic, tp.partition) for tp in c.assignment()}


@pytest.mark.parametrize(
    "assignor",
    [
        RangePartitionAssignor,
        RoundRobinPartitionAssignor,
        StickyPartitionAssignor,
        CooperativeStickyAssignor,
    ],
    ids=["range", "roundrobin", "sticky", "cooperative-sticky"],
)
def test_members_split_the_partitions_with_each_assignor(
    group_broker: BrokerProcess, pollers: Pollers, assignor: type
) -> None:
    topic = create_topic(group_broker.bootstrap, "kp-assign")
    group = unique_group("kp-assign")
    for _ in range(3):
        pollers.start(
            consumer(group_broker.bootstrap, group, topic, partition_assignment_strategy=[assignor])
        )
    split = wait_shared(
        lambda: [owned(c) for c in pollers.consumers],
        all_partitions(topic),
        f"three members to split {PARTITIONS} partitions",
    )
    assert sorted(len(s) for s in split) == [2, 2, 2]
    described = describe_group(group_broker.bootstrap, group)
    assert (described.state, described.protocol) == ("Stable", assignor.name)
    assert len(described.members) == 3


def test_a_member_that_stops_heartbeating_is_evicted_and_its_partitions_move(
    group_broker: BrokerProcess, pollers: Pollers
) -> None:
    """The other member runs in its own process, which is SIGKILLed: it never leaves the
    group, so only the expiry of its session can give its partitions away."""
    topic = create_topic(group_broker.bootstrap, "kp-evict")
    group = unique_group("kp-evict")
    script = textwrap.dedent(
        f"""
        from kafka import KafkaConsumer
        c = KafkaConsumer({topic!r}, bootstrap_servers={group_broker.bootstrap!r},
                          group_id={group!r}, session_timeout_ms={SESSION_MS},
                          heartbeat_interval_ms={HEARTBEAT_MS}, enable_auto_commit=False)
        while True:
            c.poll(timeout_ms=1000)
            if c.assignment():
                print("assigned", flush=True)
        """
    )
    doomed = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        assert doomed.stdout is not None
        doomed.stdout.readline()
        survivor = consumer(group_broker.bootstrap, group, topic)
        pollers.start(survivor)
        wait_for(
            lambda: 0 < len(owned(survivor)) < PARTITIONS or None,
            "the two members to split the partitions",
        )
        os.kill(doomed.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for(
            lambda: owned(survivor) == all_partitions(topic) or None,
            "the survivor to take over every partition",
        )
        assert time.monotonic() - killed_at >= SESSION_MS / 1000 * 0.9
        assert len(describe_group(group_broker.bootstrap, group).members) == 1
    finally:
        doomed.kill()
        doomed.wait()


def test_no_message_is_consumed_twice_while_members_come_and_go(
    group_broker: BrokerProcess, pollers: Pollers
) -> None:
    """Members join one after another while messages flow; auto-commit commits the consumed
    positions before every rebalance, so each message reaches the group exactly once."""
    topic = create_topic(group_broker.bootstrap, "kp-once")
    group = unique_group("kp-once")
    total = 600
    sent = produce(group_broker.bootstrap, topic, total // 2)
    for members in range(1, 4):
        pollers.start(consumer(group_broker.bootstrap, group, topic, enable_auto_commit=True))
        share = members * total // 6
        wait_for(
            lambda n=share: pollers.count() >= n or None,
            f"{members} members to consume",
        )
    wait_shared(
        lambda: [owned(c) for c in pollers.consumers],
        all_partitions(topic),
        "the final split",
    )
    sent_later = produce(group_broker.bootstrap, topic, total // 2, start=total // 2)
    wait_for(lambda: pollers.count() >= total or None, "every message")
    pollers.stop()
    expected = sorted(v for part in (*sent.values(), *sent_later.values()) for v in part)
    assert sorted(pollers.received) == expected


def test_committed_offsets_survive_a_restart_and_consumption_resumes_after_them(
    own_group_broker: BrokerProcess,
) -> None:
    broker = own_group_broker
    topic = create_topic(broker.bootstrap, "kp-restart", partitions=2)
    group = unique_group("kp-restart")
    sent = produce(broker.bootstrap, topic, 40, partitions=2)
    first = consumer(broker.bootstrap, group, topic)
    consumed: dict[TP, list[bytes]] = {(topic, 0): [], (topic, 1): []}
    wait_for(
        lambda: (
            [
                consumed[(tp.topic, tp.partition)].extend(r.value for r in records)
                for tp, records in first.poll(timeout_ms=1000, max_records=5).items()
            ]
            and (sum(map(len, consumed.values())) >= 10 or None)
        ),
        "the first ten messages",
    )
    commits = {TopicPartition(t, p): len(v) for (t, p), v in consumed.items()}
    first.commit({tp: OffsetAndMetadata(n, f"kept {n}", -1) for tp, n in commits.items()})
    first.close()
    broker.restart()
    second = consumer(broker.bootstrap, group, topic)
    try:
        assert {tp: second.committed(tp) for tp in commits} == commits
        assert second.committed(TopicPartition(topic, 0), metadata=True).metadata == (
            f"kept {commits[TopicPartition(topic, 0)]}"
        )
        rest: dict[TP, list[bytes]] = {(topic, 0): [], (topic, 1): []}
        wait_for(
            lambda: (
                [
                    rest[(tp.topic, tp.partition)].extend(r.value for r in records)
                    for tp, records in second.poll(timeout_ms=1000).items()
                ]
                and (sum(map(len, rest.values())) >= 30 or None)
            ),
            "the remaining messages",
        )
        for tp, values in sent.items():
            assert consumed[tp] + rest[tp] == values
    finally:
        second.close()


def test_group_describe_reports_the_lag_of_the_committed_offsets(
    group_broker: BrokerProcess,
) -> None:
    topic = create_topic(group_broker.bootstrap, "kp-lag", partitions=3)
    group = unique_group("kp-lag")
    written_at = int(time.time() * 1000) - 60_000
    produce(group_broker.bootstrap, topic, 30, partitions=3, timestamp_ms=written_at)
    c = consumer(group_broker.bootstrap, group)
    try:
        c.commit(
            {
                TopicPartition(topic, 0): OffsetAndMetadata(4, "", -1),
                TopicPartition(topic, 1): OffsetAndMetadata(10, "", -1),
            }
        )
    finally:
        c.close()
    described = describe_with_cli(group_broker.bootstrap, group)
    rows = {(r["topic"], r["partition"]): r for r in described["partitions"]}
    assert set(rows) == {(topic, 0), (topic, 1)}
    assert (rows[(topic, 0)]["committed_offset"], rows[(topic, 0)]["log_end_offset"]) == (4, 10)
    assert rows[(topic, 0)]["lag"] == 6
    assert 60_000 <= rows[(topic, 0)]["time_lag_ms"] < 120_000
    assert (rows[(topic, 1)]["lag"], rows[(topic, 1)]["time_lag_ms"]) == (0, 0)
    assert described["state"] == "Empty"
