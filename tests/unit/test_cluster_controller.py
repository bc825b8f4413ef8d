"""The controller's decisions as pure functions of the image: fencing, elections, ISR changes
(AlterPartition) and reassignment steps. No Raft, no sockets."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kio.schema.errors import ErrorCode

from goqueue.metadata import controller
from goqueue.metadata.active_controller import expired_brokers
from goqueue.metadata.errors import DuplicateBrokerError, PartitionChangeError
from goqueue.metadata.image import (
    NO_LEADER,
    BrokerInfo,
    MetadataImage,
    PartitionState,
    TopicInfo,
)
from goqueue.metadata.state_machine import (
    apply_record,
    broker_to_json,
    image_from_json,
    image_to_json,
)

TOPIC_ID = uuid.UUID(int=7)


def cluster(*states: PartitionState, configs: dict[str, str] | None = None) -> MetadataImage:
    """Brokers 1, 2, 3 (live) and topic `t` with the given partition states."""
    image = MetadataImage.empty()
    for node in (1, 2, 3):
        image = image.with_broker(
            BrokerInfo(node, "127.0.0.1", 9000 + node, incarnation_id=f"i{node}")
        )
    topic = TopicInfo("t", TOPIC_ID, len(states), 3, configs or {}, dict(enumerate(states)))
    return image.with_topic(topic)


def state(image: MetadataImage, index: int = 0) -> PartitionState:
    return image.topics["t"].partition_states[index]


def apply(image: MetadataImage, **record: Any) -> MetadataImage:
    return apply_record(image, record)


FULL = PartitionState((1, 2, 3), 1, 0, (1, 2, 3), 0)


def test_fencing_the_leader_elects_the_next_in_sync_replica_and_shrinks_the_isr() -> None:
    image = apply(cluster(FULL), type="fence_broker", node_id=1, incarnation_id="i1")
    assert image.brokers[1].fenced
    new = state(image)
    assert (new.leader, new.isr, new.replicas) == (2, (2, 3), (1, 2, 3))
    assert (new.leader_epoch, new.partition_epoch) == (1, 1)


def test_fencing_a_follower_only_shrinks_the_isr() -> None:
    new = state(apply(cluster(FULL), type="fence_broker", node_id=3, incarnation_id="i3"))
    assert (new.leader, new.isr, new.leader_epoch, new.partition_epoch) == (1, (1, 2), 0, 1)


def test_a_late_fence_of_an_earlier_incarnation_changes_nothing() -> None:
    image = cluster(FULL)
    assert apply(image, type="fence_broker", node_id=1, incarnation_id="old") is image


def test_the_last_isr_member_stays_and_the_partition_goes_offline_without_unclean_election() -> (
    None
):
    lone = PartitionState((1, 2), 1, 4, (1,), 9)
    new = state(apply(cluster(lone), type="fence_broker", node_id=1, incarnation_id="i1"))
    assert (new.leader, new.isr, new.leader_epoch) == (NO_LEADER, (1,), 5)


def test_unclean_election_takes_a_live_out_of_sync_replica_when_the_topic_allows_it() -> None:
    lone = PartitionState((1, 2), 1, 4, (1,), 9)
    image = cluster(lone, configs={controller.UNCLEAN_ELECTION_CONFIG: "true"})
    new = state(apply(image, type="fence_broker", node_id=1, incarnation_id="i1"))
    assert (new.leader, new.isr) == (2, (2,))


def test_a_returning_isr_member_leads_an_offline_partition_again() -> None:
    lone = PartitionState((1, 2), 1, 4, (1,), 9)
    image = apply(cluster(lone), type="fence_broker", node_id=1, incarnation_id="i1")
    image = apply(image, type="broker_heartbeat", node_id=1, incarnation_id="i1")
    assert not image.brokers[1].fenced
    assert (state(image).leader, state(image).leader_epoch) == (1, 6)


def test_heartbeats_of_live_brokers_leave_the_image_untouched() -> None:
    image = cluster(FULL)
    assert apply(image, type="broker_heartbeat", node_id=2, incarnation_id="i2") is image


def test_a_second_live_process_cannot_take_a_node_id_but_a_restart_at_the_same_address_can() -> (
    None
):
    image = cluster(FULL)
    intruder = BrokerInfo(2, "127.0.0.1", 7777, incarnation_id="other")
    with pytest.raises(DuplicateBrokerError, match="already registered by a live broker"):
        apply(image, type="register_broker", broker=broker_to_json(intruder))
    restarted = BrokerInfo(2, "127.0.0.1", 9002, incarnation_id="new")
    image = apply(image, type="register_broker", broker=broker_to_json(restarted))
    assert image.brokers[2].incarnation_id == "new"
    assert image.brokers[2].epoch == image.offset


def test_a_fenced_broker_can_be_replaced_from_another_address() -> None:
    image = apply(cluster(FULL), type="fence_broker", node_id=2, incarnation_id="i2")
    moved = BrokerInfo(2, "10.0.0.2", 9092, incarnation_id="new")
    image = apply(image, type="register_broker", broker=broker_to_json(moved))
    assert (image.brokers[2].host, image.brokers[2].fenced) == ("10.0.0.2", False)


def alter(image: MetadataImage, **request: Any) -> MetadataImage:
    fields = {"leader_id": 1, "leader_epoch": 0, "partition_epoch": 0, "new_isr": [1, 2]}
    fields.update(request)
    return apply(image, type="alter_partition", topic_id=str(TOPIC_ID), partition=0, **fields)


def test_alter_partition_shrinks_and_expands_the_isr_bumping_only_the_partition_epoch() -> None:
    image = alter(cluster(FULL))
    assert (state(image).isr, state(image).partition_epoch, state(image).leader_epoch) == (
        (1, 2),
        1,
        0,
    )
    image = alter(image, partition_epoch=1, new_isr=[3, 1, 2])
    assert state(image).isr == (1, 2, 3)


@pytest.mark.parametrize(
    ("request_fields", "code"),
    [
        ({"leader_epoch": 1}, ErrorCode.fenced_leader_epoch),
        ({"leader_id": 2}, ErrorCode.not_leader_or_follower),
        ({"partition_epoch": 5}, ErrorCode.invalid_update_version),
        ({"new_isr": [1, 4]}, ErrorCode.invalid_request),
        ({"new_isr": []}, ErrorCode.invalid_request),
    ],
)
def test_alter_partition_refuses_stale_or_invalid_requests(
    request_fields: dict[str, Any], code: ErrorCode
) -> None:
    with pytest.raises(PartitionChangeError) as refused:
        alter(cluster(FULL), **request_fields)
    assert refused.value.error_code == code


def test_only_unfenced_brokers_may_join_the_isr() -> None:
    shrunk = PartitionState((1, 2, 3), 1, 0, (1, 2), 3)
    image = apply(cluster(shrunk), type="fence_broker", node_id=3, incarnation_id="i3")
    with pytest.raises(PartitionChangeError) as refused:
        alter(image, partition_epoch=3, new_isr=[1, 2, 3])
    assert refused.value.error_code == ErrorCode.ineligible_replica


def reassign(image: MetadataImage, replicas: list[int] | None) -> MetadataImage:
    return apply(image, type="reassign_partitions", partitions=[["t", 0, replicas]])


def test_reassignment_adds_first_and_removes_once_the_new_replicas_are_in_sync() -> None:
    start = PartitionState((1, 2), 1, 0, (1, 2), 0)
    image = reassign(cluster(start), [2, 3])
    moving = state(image)
    assert (moving.replicas, moving.adding, moving.removing) == ((2, 3, 1), (3,), (1,))
    assert moving.leader == 1 and moving.target_replicas == (2, 3)
    image = alter(image, partition_epoch=moving.partition_epoch, new_isr=[1, 2, 3])
    done = state(image)
    assert (done.replicas, done.isr, done.adding, done.removing) == ((2, 3), (2, 3), (), ())
    assert (done.leader, done.leader_epoch) == (2, 1)


def test_a_reassignment_that_only_removes_completes_at_once() -> None:
    done = state(reassign(cluster(FULL), [3, 2]))
    assert (done.replicas, done.isr, done.leader) == ((3, 2), (3, 2), 3)


def test_cancelling_a_reassignment_returns_to_the_original_replicas() -> None:
    image = reassign(cluster(PartitionState((1, 2), 1, 0, (1, 2), 0)), [2, 3])
    back = state(reassign(image, None))
    # As Kafka: the original replicas, in the order the reassignment listed them.
    assert (back.replicas, back.isr, back.adding, back.removing) == ((2, 1), (1, 2), (), ())


def test_reassignment_requests_are_checked_as_kafka_checks_them() -> None:
    image = cluster(FULL)
    problem = controller.reassignment_problem
    assert problem(image, "t", 0, (1, 1))[0] == ErrorCode.invalid_replica_assignment
    assert problem(image, "t", 0, (1, 9))[0] == ErrorCode.invalid_replica_assignment
    assert problem(image, "t", 0, ())[0] == ErrorCode.invalid_replica_assignment
    assert problem(image, "t", 5, (1,))[0] == ErrorCode.unknown_topic_or_partition
    assert problem(image, "t", 0, None)[0] == ErrorCode.no_reassignment_in_progress
    assert (
        problem(image, "t", 0, (1, 2), allow_replication_factor_change=False)[0]
        == ErrorCode.invalid_replication_factor
    )
    assert problem(image, "t", 0, (3, 2, 1)) == controller.OK


def test_preferred_election_moves_leadership_back_to_the_first_replica() -> None:
    moved = PartitionState((1, 2, 3), 2, 3, (1, 2, 3), 5)
    image = cluster(moved, FULL)
    outcomes = controller.plan_elections(image, [("t", 0), ("t", 1), ("t", 9)], preferred=True)
    assert outcomes[("t", 0)] == controller.OK
    assert outcomes[("t", 1)][0] == ErrorCode.election_not_needed
    assert outcomes[("t", 9)][0] == ErrorCode.unknown_topic_or_partition
    image = apply(image, type="elect_leaders", election="preferred", partitions=[["t", 0]])
    assert (state(image).leader, state(image).leader_epoch) == (1, 4)


def test_preferred_election_needs_the_preferred_replica_in_sync() -> None:
    lagging = PartitionState((1, 2, 3), 2, 3, (2, 3), 5)
    outcomes = controller.plan_elections(cluster(lagging), [("t", 0)], preferred=True)
    assert outcomes[("t", 0)][0] == ErrorCode.preferred_leader_not_available


def test_unclean_election_only_for_partitions_without_a_leader() -> None:
    offline = PartitionState((1, 2), NO_LEADER, 3, (3,), 5)
    image = cluster(offline, FULL)
    outcomes = controller.plan_elections(image, [("t", 0), ("t", 1)], preferred=False)
    assert outcomes[("t", 0)] == controller.OK
    assert outcomes[("t", 1)][0] == ErrorCode.election_not_needed
    image = apply(image, type="elect_leaders", election="unclean", partitions=[["t", 0]])
    assert (state(image).leader, state(image).isr) == (1, (1,))


def test_brokers_are_fenced_after_a_session_without_heartbeats() -> None:
    image = cluster(FULL)
    heartbeats = {1: ("i1", 100.0), 2: ("i2", 95.0), 3: ("stale", 100.0)}
    expired = expired_brokers(image, heartbeats, now=100.5, since=0.0, session_timeout=3.0)
    assert expired == [(2, "i2"), (3, "i3")]
    grace = expired_brokers(image, heartbeats, now=100.5, since=99.0, session_timeout=3.0)
    assert grace == []


def test_partition_states_and_brokers_survive_a_snapshot() -> None:
    image = apply(cluster(FULL), type="fence_broker", node_id=3, incarnation_id="i3")
    image = apply(image, type="set_voters", voters={"1": "127.0.0.1:9093"})
    assert image_from_json(image_to_json(image)) == image


def test_topics_written_before_partition_states_live_on_the_single_broker() -> None:
    image = MetadataImage.empty().with_broker(BrokerInfo(0, "127.0.0.1", 9092))
    old_record = {
        "name": "legacy",
        "topic_id": str(uuid.uuid4()),
        "partitions": 2,
        "replication_factor": 1,
        "configs": {},
    }
    image = apply(image, type="create_topic", topic=old_record)
    image = apply(image, type="create_partitions", name="legacy", partitions=3)
    states = image.topics["legacy"].partition_states
    assert [states[i] for i in range(3)] == [PartitionState.initial((0,))] * 3


def test_auto_rebalance_picks_partitions_of_brokers_above_the_imbalance_threshold() -> None:
    elsewhere = PartitionState((1, 2, 3), 2, 1, (1, 2, 3), 1)
    not_in_sync = PartitionState((1, 2, 3), 2, 1, (2, 3), 1)
    image = cluster(FULL, elsewhere, not_in_sync, FULL)
    assert controller.imbalanced_partitions(image, 10) == [("t", 1)]
    assert controller.imbalanced_partitions(image, 50) == []
