"""Pure metadata transitions: records in, images out, no Raft and no sockets."""

import uuid

import pytest

from goqueue.metadata.image import BrokerInfo, MetadataImage, PartitionState, TopicInfo
from goqueue.metadata.state_machine import (
    MetadataError,
    TopicExistsError,
    UnknownTopicError,
    apply_record,
    broker_to_json,
    image_from_json,
    image_to_json,
    new_cluster_id,
    topic_to_json,
)


def topic(name: str, partitions: int = 1) -> TopicInfo:
    states = {index: PartitionState.initial((1,)) for index in range(partitions)}
    return TopicInfo(name, uuid.uuid4(), partitions, 1, {"retention.ms": "1000"}, states)


def create(image: MetadataImage, info: TopicInfo) -> MetadataImage:
    return apply_record(image, {"type": "create_topic", "topic": topic_to_json(info)})


def test_create_and_delete_topic_keep_both_indexes_in_step() -> None:
    info = topic("orders", 3)
    image = create(MetadataImage.empty(), info)
    assert image.topics["orders"] == info
    assert image.topics_by_id[info.topic_id] == info
    assert image.offset == 0
    image = apply_record(image, {"type": "delete_topic", "name": "orders"})
    assert dict(image.topics) == {}
    assert dict(image.topics_by_id) == {}
    assert image.offset == 1


def test_duplicate_topic_name_is_rejected() -> None:
    image = create(MetadataImage.empty(), topic("orders"))
    with pytest.raises(TopicExistsError, match=r"Topic 'orders' already exists\."):
        create(image, topic("orders"))


def test_deleting_a_missing_topic_is_rejected() -> None:
    with pytest.raises(UnknownTopicError, match=r"Topic 'nope' does not exist\."):
        apply_record(MetadataImage.empty(), {"type": "delete_topic", "name": "nope"})


def test_the_first_cluster_id_wins() -> None:
    image = apply_record(MetadataImage.empty(), {"type": "init_cluster", "cluster_id": "first"})
    again = apply_record(image, {"type": "init_cluster", "cluster_id": "second"})
    assert again is image
    assert again.cluster_id == "first"


def test_records_that_change_nothing_return_the_same_image() -> None:
    broker = BrokerInfo(1, "127.0.0.1", 9092)
    record = {"type": "register_broker", "broker": broker_to_json(broker)}
    image = apply_record(MetadataImage.empty(), record)
    assert image.brokers[1] == broker
    assert apply_record(image, record) is image
    controller = apply_record(image, {"type": "elect_controller", "node_id": 1})
    assert controller.controller_id == 1
    assert apply_record(controller, {"type": "elect_controller", "node_id": 1}) is controller


def test_unknown_record_type_asks_for_an_upgrade() -> None:
    with pytest.raises(MetadataError, match="upgrade"):
        apply_record(MetadataImage.empty(), {"type": "create_exchange"})


def test_images_are_read_only() -> None:
    image = create(MetadataImage.empty(), topic("orders"))
    with pytest.raises(TypeError):
        image.topics["other"] = topic("other")  # type: ignore[index]
    with pytest.raises(TypeError):
        image.topics["orders"].configs["retention.ms"] = "1"  # type: ignore[index]


def test_image_json_round_trip() -> None:
    image = apply_record(MetadataImage.empty(), {"type": "init_cluster", "cluster_id": "c1"})
    image = apply_record(
        image, {"type": "register_broker", "broker": broker_to_json(BrokerInfo(0, "h", 1, "r1"))}
    )
    image = create(create(image, topic("a")), topic("b", 4))
    assert image_from_json(image_to_json(image)) == image


def test_cluster_id_has_kafkas_shape() -> None:
    cluster_id = new_cluster_id()
    assert len(cluster_id) == 22
    assert set(cluster_id) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )
    assert cluster_id != new_cluster_id()


def share_groups(image: MetadataImage, add: list[str], remove: list[str]) -> MetadataImage:
    return apply_record(image, {"type": "share_groups", "add": add, "remove": remove})


def test_share_groups_are_listed_and_dropped() -> None:
    image = share_groups(MetadataImage.empty(), ["queue-a", "queue-b"], [])
    assert image.share_groups == frozenset({"queue-a", "queue-b"})
    assert image.offset == 0
    image = share_groups(image, [], ["queue-a", "never-listed"])
    assert image.share_groups == frozenset({"queue-b"})
    assert image.offset == 1


def test_share_groups_record_that_changes_nothing_keeps_the_image() -> None:
    image = share_groups(MetadataImage.empty(), ["queue-a"], [])
    assert share_groups(image, ["queue-a"], []) is image
    assert share_groups(image, [], ["other"]) is image


def test_share_groups_survive_a_snapshot() -> None:
    image = share_groups(MetadataImage.empty(), ["queue-b", "queue-a"], [])
    data = image_to_json(image)
    assert data["share_groups"] == ["queue-a", "queue-b"]
    assert image_from_json(data) == image


def test_snapshot_without_share_groups_loads_with_none() -> None:
    data = image_to_json(MetadataImage.empty())
    del data["share_groups"]
    assert image_from_json(data).share_groups == frozenset()
