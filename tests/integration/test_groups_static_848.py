"""Static membership (KIP-345) with the KIP-848 protocol and confluent-kafka: a static member
that closes leaves with epoch -2, the broker keeps its partitions, and a new instance with the
same `group.instance.id` gets them back without the other member rebalancing; a second live
instance with that id is refused (UNRELEASED_INSTANCE_ID). The departure is a record: it
survives a broker crash."""

from __future__ import annotations

from pathlib import Path

from client_compat import wait_for
from confluent_kafka import Consumer, KafkaError
from group_helpers import (
    GROUP_ENV,
    Pollers,
    all_partitions,
    create_topic,
    describe_group,
    group_broker,
    unique_group,
)
from test_groups_confluent_kafka import KIP_848, Tracked, pollers

from goqueue.testing.process import BrokerProcess

__all__ = ["group_broker", "pollers"]

STATIC = {**KIP_848, "group.instance.id": "static-848"}


def refusal(consumer: Consumer) -> KafkaError | None:
    """The error a poll reports, if any."""
    message = consumer.poll(0.2)
    return None if message is None or not message.error() else message.error()


def test_a_static_kip_848_member_comes_back_to_its_partitions_and_a_twin_is_refused(
    group_broker: BrokerProcess, pollers: Pollers
) -> None:
    bootstrap = group_broker.bootstrap
    topic = create_topic(bootstrap, "ck848-static")
    group = unique_group("ck848-static")
    before = Tracked(bootstrap, group, topic, **STATIC)
    other = Tracked(bootstrap, group, topic, **KIP_848)
    pollers.start(before)
    pollers.start(other)
    wait_for(
        lambda: (
            (
                describe_group(bootstrap, group).state == "Stable"
                and before.owned() | other.owned() == all_partitions(topic)
                and before.owned()
                and other.owned()
            )
            or None
        ),
        "a stable split",
    )
    owned_before, other_before, rebalances_before = (
        before.owned(),
        other.owned(),
        other.rebalances(),
    )
    pollers.detach(before)
    before.consumer.close()

    departed = describe_group(bootstrap, group)
    assert len(departed.members) == 2, "the departed static member stays in the group"
    kept = next(m for m in departed.members if m.group_instance_id == "static-848")
    assert set(kept.partitions) == owned_before

    after = Tracked(bootstrap, group, topic, **STATIC)
    pollers.start(after)
    wait_for(lambda: after.owned() == owned_before or None, "the new instance's partitions")
    described = describe_group(bootstrap, group)
    assert len(described.members) == 2
    assert [m.group_instance_id for m in described.members].count("static-848") == 1
    assert kept.member_id not in {m.member_id for m in described.members}
    assert other.rebalances() == rebalances_before and other.owned() == other_before

    twin = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, **STATIC, "enable.auto.commit": False}
    )
    try:
        twin.subscribe([topic])
        error = wait_for(lambda: refusal(twin), "the twin to be refused")
        unreleased = KafkaError(KafkaError.UNRELEASED_INSTANCE_ID).str()
        assert error.code() == KafkaError._FATAL and unreleased in error.str(), error
    finally:
        twin.close()
    assert after.owned() == owned_before and other.owned() == other_before
    assert len(describe_group(bootstrap, group).members) == 2


def test_a_departed_static_member_survives_a_broker_crash(tmp_path: Path, pollers: Pollers) -> None:
    """The -2 departure is in `__consumer_offsets`: after a SIGKILL and restart the member is
    still there with its partitions, and a new instance takes them within its session (10 s
    here, counted again from the load)."""
    env = {**GROUP_ENV, "GOQUEUE_GROUP_CONSUMER_SESSION_TIMEOUT_MS": "10000"}
    with BrokerProcess(tmp_path / "data", env=env) as broker:
        topic = create_topic(broker.bootstrap, "ck848-static-crash")
        group = unique_group("ck848-static-crash")
        before = Tracked(broker.bootstrap, group, topic, **STATIC)
        pollers.start(before)
        everything = all_partitions(topic)
        wait_for(lambda: before.owned() == everything or None, "the member to own all")
        pollers.detach(before)
        before.consumer.close()
        broker.kill()
        broker.start()

        departed = describe_group(broker.bootstrap, group).members
        assert [(m.group_instance_id, set(m.partitions)) for m in departed] == [
            ("static-848", everything)
        ]
        after = Tracked(broker.bootstrap, group, topic, **STATIC)
        pollers.start(after)
        wait_for(lambda: after.owned() == everything or None, "the new instance to own all")
        members = describe_group(broker.bootstrap, group).members
        assert len(members) == 1 and members[0].member_id != departed[0].member_id
        assert after.events[0] == ("assign", everything), "its first assignment is all of it"
        replaced = f"static member {departed[0].member_id} of consumer group {group}"
        assert replaced in broker.log_text(), "a replacement, not a new member after expiry"
