"""Pure metadata transitions of hot configuration and partition expansion."""

import uuid

import pytest

from goqueue.metadata.image import MetadataImage, TopicInfo
from goqueue.metadata.state_machine import (
    InvalidPartitionsError,
    UnknownTopicError,
    apply_record,
    image_from_json,
    image_to_json,
    topic_to_json,
)

TOPIC = TopicInfo("orders", uuid.uuid4(), 2, 1, {"retention.ms": "1000", "segment.bytes": "4096"})


def with_topic() -> MetadataImage:
    return apply_record(
        MetadataImage.empty(), {"type": "create_topic", "topic": topic_to_json(TOPIC)}
    )


def alter_topic(image: MetadataImage, set_: dict[str, str], delete: list[str]) -> MetadataImage:
    record = {"type": "alter_topic_configs", "name": "orders", "set": set_, "delete": delete}
    return apply_record(image, record)


def test_alter_topic_configs_sets_and_deletes_in_one_step_keeping_both_indexes() -> None:
    image = alter_topic(with_topic(), {"retention.ms": "5", "flush.ms": "10"}, ["segment.bytes"])
    expected = {"retention.ms": "5", "flush.ms": "10"}
    assert dict(image.topics["orders"].configs) == expected
    assert dict(image.topics_by_id[TOPIC.topic_id].configs) == expected
    assert image.topics["orders"].partitions == 2


def test_an_alteration_that_changes_nothing_keeps_the_image() -> None:
    image = with_topic()
    assert alter_topic(image, {"retention.ms": "1000"}, ["flush.ms"]) is image


def test_altering_a_missing_topic_is_rejected() -> None:
    with pytest.raises(UnknownTopicError, match="Topic 'orders' does not exist"):
        alter_topic(MetadataImage.empty(), {"retention.ms": "1"}, [])


def test_broker_config_levels_are_independent_and_empty_levels_disappear() -> None:
    image = MetadataImage.empty()
    for level, set_ in (("", {"log.retention.ms": "1"}), ("0", {"message.max.bytes": "9"})):
        record = {"type": "alter_broker_configs", "level": level, "set": set_, "delete": []}
        image = apply_record(image, record)
    assert {k: dict(v) for k, v in image.broker_configs.items()} == {
        "": {"log.retention.ms": "1"},
        "0": {"message.max.bytes": "9"},
    }
    record = {
        "type": "alter_broker_configs",
        "level": "",
        "set": {},
        "delete": ["log.retention.ms"],
    }
    image = apply_record(image, record)
    assert list(image.broker_configs) == ["0"]


def test_partitions_only_grow() -> None:
    image = apply_record(
        with_topic(), {"type": "create_partitions", "name": "orders", "partitions": 5}
    )
    assert image.topics["orders"].partitions == 5
    assert image.topics_by_id[TOPIC.topic_id].partitions == 5
    assert dict(image.topics["orders"].configs) == dict(TOPIC.configs)
    with pytest.raises(InvalidPartitionsError, match="Topic already has 5 partitions"):
        apply_record(image, {"type": "create_partitions", "name": "orders", "partitions": 5})
    with pytest.raises(InvalidPartitionsError, match="higher than the requested 3"):
        apply_record(image, {"type": "create_partitions", "name": "orders", "partitions": 3})


def test_snapshots_keep_dynamic_broker_configs_and_old_snapshots_still_load() -> None:
    record = {
        "type": "alter_broker_configs",
        "level": "",
        "set": {"log.retention.ms": "7"},
        "delete": [],
    }
    image = apply_record(with_topic(), record)
    restored = image_from_json(image_to_json(image))
    assert restored == image
    old = image_to_json(image)
    del old["broker_configs"]
    assert dict(image_from_json(old).broker_configs) == {}
