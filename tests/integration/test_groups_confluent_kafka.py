"""Consumer groups with confluent-kafka (librdkafka): its assignors split the partitions,
cooperative-sticky moves only the partitions that change owner, a static member restarts
without a rebalance, committed offsets survive a broker restart; and the same with the
KIP-848 protocol (`group.protocol=consumer`), where the broker assigns the partitions."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from client_compat import wait_for
from confluent_kafka import Consumer, TopicPartition
from group_helpers import (
    HEARTBEAT_MS,
    PARTITIONS,
    SESSION_MS,
    TP,
    Pollers,
    all_partitions,
    create_topic,
    describe_group,
    group_broker,
    own_group_broker,
    produce,
    unique_group,
    wait_shared,
)

from goqueue.testing.process import BrokerProcess

__all__ = ["group_broker", "own_group_broker"]


class Tracked:
    """A consumer with a log of the rebalance callbacks it got. Its partitions are followed
    through those callbacks: asking librdkafka for them while another thread polls would
    deadlock on the GIL, which the rebalance callback run by that poll needs."""

    def __init__(self, bootstrap: str, group: str, topic: str, **config: Any) -> None:
        self.events: list[tuple[str, set[TP]]] = []
        self._lock = threading.Lock()
        timing = {"session.timeout.ms": SESSION_MS, "heartbeat.interval.ms": HEARTBEAT_MS}
        settings = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **({} if config.get("group.protocol") == "consumer" else timing),
            **config,
        }
        self.consumer = Consumer(settings)
        self.consumer.subscribe(
            [topic], on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._revoked
        )

    def _assigned(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        with self._lock:
            self.events.append(("assign", {(p.topic, p.partition) for p in partitions}))

    def _revoked(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        with self._lock:
            self.events.append(("revoke", {(p.topic, p.partition) for p in partitions}))

    def owned(self) -> set[TP]:
        """Assignments add partitions and revocations remove them: that covers the eager
        protocol (everything revoked, then the new set) and the cooperative one (increments)."""
        owned: set[TP] = set()
        with self._lock:
            for kind, partitions in self.events:
                owned = owned | partitions if kind == "assign" else owned - partitions
        return owned

    def rebalances(self) -> int:
        with self._lock:
            return len(self.events)


def poll_values(tracked: Tracked) -> list[bytes]:
    message = tracked.consumer.poll(0.2)
    if message is None or message.error():
        return []
    return [message.value()]


@pytest.fixture
def pollers() -> Iterator[Pollers]:
    running = Pollers(poll_values)
    yield running
    running.stop()
    for tracked in running.consumers:
        tracked.consumer.close()


@pytest.mark.parametrize("strategy", ["range", "roundrobin", "cooperative-sticky"])
def test_members_split_the_partitions_with_each_assignor(
    group_broker: BrokerProcess, pollers: Pollers, strategy: str
) -> None:
    topic = create_topic(group_broker.bootstrap, "ck-assign")
    group = unique_group("ck-assign")
    for _ in range(3):
        pollers.start(
            Tracked(
                group_broker.bootstrap, group, topic, **{"partition.assignment.strategy": strategy}
            )
        )
    split = wait_shared(
        lambda: [t.owned() for t in pollers.consumers],
        all_partitions(topic),
        f"three members to split {PARTITIONS} partitions",
    )
    assert sorted(len(s) for s in split) == [2, 2, 2]
    assert describe_group(group_broker.bootstrap, group).protocol == strategy


def test_cooperative_sticky_moves_only_the_partitions_that_change_owner(
    group_broker: BrokerProcess, pollers: Pollers
) -> None:
    topic = create_topic(group_broker.bootstrap, "ck-coop")
    group = unique_group("ck-coop")
    config = {"partition.assignment.strategy": "cooperative-sticky"}
    first = Tracked(group_broker.bootstrap, group, topic, **config)
    pollers.start(first)
    everything = all_partitions(topic)
    wait_for(lambda: first.owned() == everything or None, "the first member to own all")
    second = Tracked(group_broker.bootstrap, group, topic, **config)
    pollers.start(second)
    wait_shared(lambda: [first.owned(), second.owned()], everything, "the two members to split")
    revoked = set().union(*(parts for kind, parts in first.events if kind == "revoke"))
    kept = first.owned()
    assert revoked == second.owned()
    assert len(kept) == PARTITIONS // 2
    assert not kept & revoked, "an incremental rebalance never revokes what the member keeps"
    assert [kind for kind, _ in first.events][:2] == ["assign", "revoke"]


def test_a_static_member_restarts_without_a_rebalance(
    group_broker: BrokerProcess, pollers: Pollers
) -> None:
    """A static member closing does not leave the group (KIP-345); coming back with the same
    `group.instance.id` within its session it takes its place and partitions back, and the
    other member sees no rebalance at all."""
    topic = create_topic(group_broker.bootstrap, "ck-static")
    group = unique_group("ck-static")
    static = {"group.instance.id": "static-1", "session.timeout.ms": 10_000}
    before = Tracked(group_broker.bootstrap, group, topic, **static)
    other = Tracked(group_broker.bootstrap, group, topic)
    pollers.start(before)
    pollers.start(other)
    wait_shared(lambda: [before.owned(), other.owned()], all_partitions(topic), "a split")
    wait_for(
        lambda: describe_group(group_broker.bootstrap, group).state == "Stable" or None,
        "the group to be stable",
    )
    owned_before, rebalances_before = before.owned(), other.rebalances()
    members_before = {m.member_id for m in describe_group(group_broker.bootstrap, group).members}
    pollers.detach(before)
    before.consumer.close()
    after = Tracked(group_broker.bootstrap, group, topic, **static)
    pollers.start(after)
    wait_for(lambda: after.owned() == owned_before or None, "the restarted member's partitions")
    described = describe_group(group_broker.bootstrap, group)
    members_after = {m.member_id for m in described.members}
    assert described.state == "Stable"
    assert len(members_after) == 2 and members_after != members_before
    assert other.rebalances() == rebalances_before
    assert [m.group_instance_id for m in described.members].count("static-1") == 1


def test_committed_offsets_survive_a_restart_and_consumption_resumes_after_them(
    own_group_broker: BrokerProcess,
) -> None:
    broker = own_group_broker
    topic = create_topic(broker.bootstrap, "ck-restart", partitions=1)
    group = unique_group("ck-restart")
    sent = produce(broker.bootstrap, topic, 20, partitions=1)[(topic, 0)]
    first = Tracked(broker.bootstrap, group, topic)
    consumed = []
    while len(consumed) < 8:
        consumed.extend(poll_values(first))
    first.consumer.commit(
        offsets=[TopicPartition(topic, 0, 8, metadata="eight")], asynchronous=False
    )
    first.consumer.close()
    broker.restart()
    second = Tracked(broker.bootstrap, group, topic)
    try:
        (committed,) = second.consumer.committed([TopicPartition(topic, 0)], timeout=30)
        assert (committed.offset, committed.metadata) == (8, "eight")
        rest: list[bytes] = []
        wait_for(lambda: rest.extend(poll_values(second)) or (len(rest) >= 12 or None), "the rest")
        assert consumed[:8] + rest == sent
    finally:
        second.consumer.close()


KIP_848 = {"group.protocol": "consumer"}


@pytest.mark.parametrize("assignor", ["uniform", "range"])
def test_kip_848_members_split_the_partitions_with_each_server_assignor(
    group_broker: BrokerProcess, pollers: Pollers, assignor: str
) -> None:
    topic = create_topic(group_broker.bootstrap, "ck848-assign")
    group = unique_group("ck848-assign")
    config = {**KIP_848, "group.remote.assignor": assignor}
    for _ in range(3):
        pollers.start(Tracked(group_broker.bootstrap, group, topic, **config))
    split = wait_shared(
        lambda: [t.owned() for t in pollers.consumers],
        all_partitions(topic),
        f"three members to split {PARTITIONS} partitions",
    )
    assert sorted(len(s) for s in split) == [2, 2, 2]
    described = describe_group(group_broker.bootstrap, group)
    assert (described.group_type, described.protocol) == ("consumer", assignor)
    assert {tp for m in described.members for tp in m.partitions} == {
        (t, p) for t, p in all_partitions(topic)
    }


def test_kip_848_group_consumes_every_message_once_while_members_come_and_go(
    group_broker: BrokerProcess, pollers: Pollers
) -> None:
    """Members join and one leaves while messages flow; with auto-commit a member commits
    before it releases a partition, so the group gets each message exactly once."""
    topic = create_topic(group_broker.bootstrap, "ck848-once")
    group = unique_group("ck848-once")
    config = {**KIP_848, "enable.auto.commit": True}
    total = 600
    sent = produce(group_broker.bootstrap, topic, total // 2)
    for members in range(1, 4):
        pollers.start(Tracked(group_broker.bootstrap, group, topic, **config))
        share = members * total // 6
        wait_for(lambda n=share: pollers.count() >= n or None, f"{members} members to consume")
    leaving = pollers.consumers[0]
    pollers.detach(leaving)
    leaving.consumer.close()
    sent_later = produce(group_broker.bootstrap, topic, total // 2, start=total // 2)
    wait_for(lambda: pollers.count() >= total or None, "every message")
    wait_shared(lambda: [t.owned() for t in pollers.consumers], all_partitions(topic), "split")
    pollers.stop()
    expected = sorted(v for part in (*sent.values(), *sent_later.values()) for v in part)
    assert sorted(pollers.received) == expected


def test_kip_848_group_survives_a_broker_restart(own_group_broker: BrokerProcess) -> None:
    """The group's epochs and assignment are replayed from `__consumer_offsets`: the member
    goes on with its partitions after the restart and resumes after its commits."""
    broker = own_group_broker
    topic = create_topic(broker.bootstrap, "ck848-restart", partitions=2)
    group = unique_group("ck848-restart")
    sent = produce(broker.bootstrap, topic, 20, partitions=2)
    member = Tracked(broker.bootstrap, group, topic, **KIP_848)
    try:
        got: list[bytes] = []
        wait_for(lambda: got.extend(poll_values(member)) or (len(got) >= 20 or None), "all")
        member.consumer.commit(asynchronous=False)
        before = describe_group(broker.bootstrap, group)
        broker.restart()
        produce(broker.bootstrap, topic, 10, partitions=2, start=20)
        wait_for(lambda: got.extend(poll_values(member)) or (len(got) >= 30 or None), "the rest")
        after = describe_group(broker.bootstrap, group)
        assert [m.member_id for m in after.members] == [m.member_id for m in before.members]
        before_restart = [v for values in sent.values() for v in values]
        assert sorted(got) == sorted(
            [*before_restart, *(b"message %06d" % i for i in range(20, 30))]
        )
    finally:
        member.consumer.close()
