"""Topic config catalog: Kafka-style validation, defaults from broker settings, typed views."""

import dataclasses

import pytest

from goqueue.config.catalog import (
    CATALOG,
    TOPIC_CONFIGS,
    InvalidConfigError,
    effective_topic_configs,
    log_config_for,
    max_message_bytes_for,
    validate_topic_configs,
)
from goqueue.config.settings import BrokerSettings
from goqueue.log.config import LogConfig

REQUIRED = {
    "cleanup.policy",
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "segment.ms",
    "max.message.bytes",
    "compression.type",
    "min.insync.replicas",
    "message.timestamp.type",
    "flush.messages",
    "flush.ms",
}


def test_catalog_covers_the_contract_and_every_log_config_field() -> None:
    log_fields = {f.name.replace("_", ".") for f in dataclasses.fields(LogConfig)}
    assert REQUIRED | log_fields <= set(CATALOG)
    assert len(CATALOG) == len(TOPIC_CONFIGS)


def test_every_entry_is_documented_and_has_exactly_one_default_source() -> None:
    settings = BrokerSettings()
    for entry in TOPIC_CONFIGS:
        assert entry.doc
        assert (entry.default is None) != (entry.default_setting is None), entry.name
        assert entry.canonical(entry.default_for(settings)) == entry.default_for(settings)


def test_valid_values_come_back_canonical() -> None:
    configs = {
        "retention.ms": " -1 ",
        "cleanup.policy": "compact, delete",
        "compression.type": "zstd",
        "segment.bytes": "14",
    }
    assert validate_topic_configs(configs) == {
        "retention.ms": "-1",
        "cleanup.policy": "compact,delete",
        "compression.type": "zstd",
        "segment.bytes": "14",
    }


@pytest.mark.parametrize(
    ("configs", "message"),
    [
        (
            {"segment.bytes": "-5"},
            "Invalid value -5 for configuration segment.bytes: Value must be at least 14",
        ),
        (
            {"segment.bytes": "big"},
            "Invalid value big for configuration segment.bytes: Not a number of type INT",
        ),
        (
            {"max.message.bytes": str(2**31)},
            f"Invalid value {2**31} for configuration max.message.bytes: Not a number of type INT",
        ),
        (
            {"retention.ms": "-2"},
            "Invalid value -2 for configuration retention.ms: Value must be at least -1",
        ),
        (
            {"compression.type": "brotli"},
            "Invalid value brotli for configuration compression.type: String must be one of: "
            "uncompressed, zstd, lz4, snappy, gzip, producer",
        ),
        (
            {"cleanup.policy": "delete,forever"},
            "Invalid value delete,forever for configuration cleanup.policy: "
            "List items must be one of: compact, delete",
        ),
        ({"retention.hours": "5"}, "Unknown topic config name: retention.hours"),
        ({"flush.ms": None}, "Null value not supported for topic configs: flush.ms"),
    ],
)
def test_invalid_configs_are_rejected_with_kafkas_wording(
    configs: dict[str, str | None], message: str
) -> None:
    with pytest.raises(InvalidConfigError) as info:
        validate_topic_configs(configs)
    assert str(info.value) == message


def test_effective_configs_fill_defaults_from_broker_settings() -> None:
    settings = BrokerSettings(log_retention_ms=1234, message_max_bytes=999)
    effective = effective_topic_configs({"segment.ms": "60000"}, settings)
    assert set(effective) == set(CATALOG)
    assert effective["segment.ms"] == "60000"
    assert effective["retention.ms"] == "1234"
    assert effective["max.message.bytes"] == "999"
    assert effective["cleanup.policy"] == "delete"


def test_log_config_combines_topic_values_and_defaults() -> None:
    settings = BrokerSettings(log_segment_bytes=2048, log_flush_interval_ms=50)
    config = log_config_for({"retention.bytes": "100", "flush.messages": "1"}, settings)
    assert config == LogConfig(
        segment_bytes=2048,
        segment_ms=settings.log_segment_ms,
        retention_ms=settings.log_retention_ms,
        retention_bytes=100,
        flush_messages=1,
        flush_ms=50,
    )


def test_max_message_bytes_prefers_the_topic_value() -> None:
    settings = BrokerSettings()
    assert max_message_bytes_for({}, settings) == 1048588
    assert max_message_bytes_for({"max.message.bytes": "10"}, settings) == 10
