"""Run-time configuration: validating changes, merging levels, and reporting value origins."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from goqueue.config.catalog import CATALOG, InvalidConfigError
from goqueue.config.dynamic import (
    BROKER_CONFIGS,
    AlterOp,
    ConfigChange,
    ConfigRequestError,
    ConfigSource,
    OpType,
    Synonym,
    WireType,
    broker_change,
    describe_broker,
    describe_topic,
    effective_settings,
    topic_change,
)
from goqueue.config.settings import BrokerSettings

STATIC = BrokerSettings(node_id=3, data_dir=Path("/data"), log_retention_ms=5000)


def set_(name: str, value: str | None) -> AlterOp:
    return AlterOp(name, OpType.SET, value)


def test_every_topic_default_setting_is_dynamic_and_nothing_else_is() -> None:
    defaults = {entry.default_setting for entry in CATALOG.values() if entry.default_setting}
    for spec in fields(BrokerSettings):
        assert spec.metadata["dynamic"] == (spec.name in defaults), spec.name


def test_incremental_topic_changes_set_delete_append_and_subtract() -> None:
    current = {"retention.ms": "100", "segment.bytes": "4096"}
    ops = [
        set_("retention.ms", " 200 "),
        AlterOp("segment.bytes", OpType.DELETE, None),
        AlterOp("cleanup.policy", OpType.APPEND, "compact"),
    ]
    change = topic_change(current, ops, STATIC, incremental=True)
    assert change == ConfigChange(
        {"retention.ms": "200", "cleanup.policy": "delete,compact"}, ["segment.bytes"]
    )
    subtract = [AlterOp("cleanup.policy", OpType.SUBTRACT, "delete")]
    after = topic_change({"cleanup.policy": "delete,compact"}, subtract, STATIC, incremental=True)
    assert after.set == {"cleanup.policy": "compact"}


def test_legacy_alter_configs_replaces_every_topic_config() -> None:
    change = topic_change(
        {"retention.ms": "100", "flush.ms": "5"}, [set_("flush.ms", "5")], STATIC, incremental=False
    )
    assert change == ConfigChange({}, ["retention.ms"])


@pytest.mark.parametrize(
    ("ops", "error", "message"),
    [
        (
            [set_("retention.ms", "1"), set_("segment.bytes", "3")],
            InvalidConfigError,
            "Invalid value 3 for configuration segment.bytes: Value must be at least 14",
        ),
        ([set_("retention.hours", "1")], InvalidConfigError, "Unknown topic config name"),
        (
            [AlterOp("retention.ms", OpType.APPEND, "5")],
            InvalidConfigError,
            "Config value append is not allowed for config key: retention.ms",
        ),
        ([set_("flush.ms", None)], ConfigRequestError, "Null value not supported for : flush.ms"),
        (
            [set_("flush.ms", "1"), set_("flush.ms", "2")],
            ConfigRequestError,
            "Error due to duplicate config keys",
        ),
        (
            [set_("min.cleanable.dirty.ratio", "1.5")],
            InvalidConfigError,
            "Value must be no more than 1",
        ),
    ],
)
def test_a_bad_topic_change_is_refused_whole(
    ops: list[AlterOp], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        topic_change({}, ops, STATIC, incremental=True)


def test_broker_changes_accept_dynamic_settings_by_their_kafka_names() -> None:
    change = broker_change(
        {"log.retention.ms": "1"},
        [set_("log.roll.ms", "60000"), AlterOp("log.retention.ms", OpType.DELETE, None)],
        STATIC,
        incremental=True,
    )
    assert change == ConfigChange({"log.roll.ms": "60000"}, ["log.retention.ms"])


@pytest.mark.parametrize(
    ("op", "error", "message"),
    [
        (
            set_("num.partitions", "3"),
            ConfigRequestError,
            "Cannot update these configs dynamically",
        ),
        (set_("log.retention.hours", "3"), InvalidConfigError, "Unknown broker config name"),
        (
            set_("log.segment.bytes", "1"),
            InvalidConfigError,
            "Invalid value 1 for configuration log.segment.bytes: Value must be at least 14",
        ),
    ],
)
def test_bad_broker_changes_are_refused(op: AlterOp, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        broker_change({}, [op], STATIC, incremental=True)


def test_this_brokers_dynamic_values_beat_the_cluster_defaults_which_beat_static_ones() -> None:
    levels = {
        "": {"log.retention.ms": "100", "message.max.bytes": "2000"},
        "3": {"log.retention.ms": "7"},
        "4": {"message.max.bytes": "1"},
    }
    settings = effective_settings(STATIC, levels)
    assert (settings.log_retention_ms, settings.message_max_bytes) == (7, 2000)
    assert effective_settings(STATIC, {}) is STATIC
    ratio = effective_settings(STATIC, {"": {"log.cleaner.min.cleanable.ratio": "0.25"}})
    assert ratio.log_cleaner_min_cleanable_ratio == 0.25


def test_topic_configs_report_their_source_and_every_synonym_in_order() -> None:
    levels = {"": {"log.retention.ms": "100"}, "3": {"log.retention.ms": "7"}}
    described = {c.name: c for c in describe_topic({"segment.bytes": "1024"}, STATIC, levels)}
    assert set(described) == set(CATALOG)
    retention = described["retention.ms"]
    assert (retention.value, retention.source) == ("7", ConfigSource.DYNAMIC_BROKER_CONFIG)
    assert retention.synonyms == (
        Synonym("log.retention.ms", "7", ConfigSource.DYNAMIC_BROKER_CONFIG),
        Synonym("log.retention.ms", "100", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG),
        Synonym("log.retention.ms", "5000", ConfigSource.STATIC_BROKER_CONFIG),
        Synonym("log.retention.ms", "604800000", ConfigSource.DEFAULT_CONFIG),
    )
    segment = described["segment.bytes"]
    assert (segment.value, segment.source) == ("1024", ConfigSource.TOPIC_CONFIG)
    assert segment.synonyms[1] == Synonym(
        "log.segment.bytes", str(2**30), ConfigSource.DEFAULT_CONFIG
    )
    assert described["cleanup.policy"].wire_type is WireType.LIST
    assert not any(config.read_only for config in described.values())


def test_broker_descriptions_per_broker_and_for_the_cluster_default() -> None:
    levels = {"": {"log.retention.ms": "100"}}
    per_broker = {c.name: c for c in describe_broker(STATIC, levels, per_broker=True)}
    assert set(per_broker) == set(BROKER_CONFIGS)
    assert per_broker["num.partitions"].read_only
    assert per_broker["num.partitions"].source is ConfigSource.DEFAULT_CONFIG
    assert per_broker["node.id"].source is ConfigSource.STATIC_BROKER_CONFIG
    assert per_broker["auto.create.topics.enable"].value == "true"
    assert per_broker["auto.create.topics.enable"].wire_type is WireType.BOOLEAN
    assert per_broker["log.retention.ms"].source is ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG
    secret = per_broker["cluster.secret"]
    assert (secret.sensitive, secret.value, secret.wire_type) == (True, None, WireType.PASSWORD)
    default_level = describe_broker(STATIC, levels, per_broker=False)
    assert [(c.name, c.value) for c in default_level] == [("log.retention.ms", "100")]


@pytest.mark.parametrize(
    ("name", "bad", "problem"),
    [
        ("delete.retention.ms", "-1", "Value must be at least 0"),
        ("min.compaction.lag.ms", "-1", "Value must be at least 0"),
        ("max.compaction.lag.ms", "0", "Value must be at least 1"),
        ("min.cleanable.dirty.ratio", "nan", "Not a number of type DOUBLE"),
    ],
)
def test_compaction_configs_are_in_the_catalog_with_kafkas_ranges(
    name: str, bad: str, problem: str
) -> None:
    entry = CATALOG[name]
    assert entry.canonical(entry.default_for(STATIC)) == entry.default_for(STATIC)
    with pytest.raises(InvalidConfigError, match=problem):
        entry.parse(bad)
