"""Broker settings: source precedence, name spellings, conversion and helpful errors."""

from pathlib import Path

import pytest

from goqueue.config.settings import (
    BrokerSettings,
    SettingsError,
    load_settings,
    parse_host_port,
)


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "goqueue.toml"
    path.write_text(text)
    return path


def test_defaults_match_the_embedded_single_node_broker() -> None:
    settings = load_settings({}, None, {})
    assert settings == BrokerSettings()
    assert settings.data_dir == Path("goqueue-data")
    assert settings.listen == "127.0.0.1:9092"
    assert settings.http == "127.0.0.1:8080"
    assert settings.raft == "127.0.0.1:9093"
    assert settings.log_retention_ms == 7 * 24 * 3600 * 1000
    assert settings.log_segment_bytes == 1024**3
    assert settings.advertised_host_port() == ("127.0.0.1", 9092)


def test_cli_beats_environment_beats_file_beats_default(tmp_path: Path) -> None:
    config = write_toml(
        tmp_path,
        'listen = "127.0.0.1:1001"\nhttp = "127.0.0.1:2001"\nraft = "127.0.0.1:3001"\n',
    )
    environ = {"GOQUEUE_LISTEN": "127.0.0.1:1002", "GOQUEUE_HTTP": "127.0.0.1:2002"}
    settings = load_settings({"listen": "127.0.0.1:1003"}, config, environ)
    assert settings.listen == "127.0.0.1:1003"
    assert settings.http == "127.0.0.1:2002"
    assert settings.raft == "127.0.0.1:3001"
    assert settings.node_id == 0


def test_cli_none_means_not_given() -> None:
    settings = load_settings({"data_dir": None}, None, {"GOQUEUE_DATA_DIR": "/srv/gq"})
    assert settings.data_dir == Path("/srv/gq")


def test_file_accepts_kafka_dotted_names_and_tables(tmp_path: Path) -> None:
    config = write_toml(
        tmp_path,
        "log.retention.ms = 1000\n"
        '"log.segment.bytes" = 4096\n'
        "auto_create_topics_enable = false\n"
        "[log.flush.interval]\nmessages = 7\n",
    )
    settings = load_settings({}, config, {})
    assert settings.log_retention_ms == 1000
    assert settings.log_segment_bytes == 4096
    assert settings.auto_create_topics_enable is False
    assert settings.log_flush_interval_messages == 7


def test_environment_values_are_converted() -> None:
    environ = {
        "GOQUEUE_LOG_RETENTION_MS": "-1",
        "GOQUEUE_AUTO_CREATE_TOPICS_ENABLE": "off",
        "GOQUEUE_DATA_DIR": "~/gq",
        "GOQUEUE_ADVERTISED": "localhost:19092",
        "GOQUEUE_LOG_ROLL_MS": "60000",
    }
    settings = load_settings({}, None, environ)
    assert settings.log_retention_ms == -1
    assert settings.auto_create_topics_enable is False
    assert settings.data_dir == Path("~/gq").expanduser()
    assert settings.advertised_host_port() == ("localhost", 19092)
    assert settings.log_segment_ms == 60000


def test_unrelated_goqueue_environment_variables_are_ignored() -> None:
    assert load_settings({}, None, {"GOQUEUE_BOOTSTRAP": "x:1"}) == BrokerSettings()


def test_empty_optional_string_means_unset() -> None:
    assert load_settings({}, None, {"GOQUEUE_ADVERTISED": ""}).advertised is None


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"GOQUEUE_LOG_RETENTION_MS": "soon"},
            "Invalid value 'soon' for environment variable GOQUEUE_LOG_RETENTION_MS: "
            "expected a whole number",
        ),
        (
            {"GOQUEUE_LOG_SEGMENT_BYTES": "5"},
            "Invalid value 5 for environment variable GOQUEUE_LOG_SEGMENT_BYTES: "
            "Value must be at least 14",
        ),
        (
            {"GOQUEUE_LOG_SEGMENT_BYTES": str(2**31)},
            "Value must be no more than 2147483647",
        ),
        ({"GOQUEUE_NUM_PARTITIONS": "0"}, "Value must be at least 1"),
        ({"GOQUEUE_LISTEN": "9092"}, "expected HOST:PORT, for example 127.0.0.1:9092"),
        ({"GOQUEUE_LISTEN": "127.0.0.1:99999"}, "the port must be between 0 and 65535"),
        ({"GOQUEUE_RAFT": "::1:9093"}, "write an IPv6 host in brackets"),
        ({"GOQUEUE_AUTO_CREATE_TOPICS_ENABLE": "maybe"}, "expected true or false"),
        (
            {"GOQUEUE_LISTEN": "0.0.0.0:9092"},
            "set the advertised address (--advertised HOST:PORT or GOQUEUE_ADVERTISED)",
        ),
    ],
)
def test_bad_environment_values_are_explained(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({}, None, environ)
    assert message in str(info.value)


def test_wildcard_listen_is_fine_with_an_advertised_address() -> None:
    settings = load_settings({"listen": "0.0.0.0:9092", "advertised": "127.0.0.1:9092"}, None, {})
    assert settings.advertised_host_port() == ("127.0.0.1", 9092)


def test_bad_cli_value_names_the_option() -> None:
    with pytest.raises(SettingsError, match=r"option --node-id: expected a whole number"):
        load_settings({"node_id": True}, None, {})


def test_unknown_file_setting_lists_the_known_ones(tmp_path: Path) -> None:
    config = write_toml(tmp_path, "log.retention.hours = 5\n")
    with pytest.raises(SettingsError) as info:
        load_settings({}, config, {})
    assert f"Unknown setting log.retention.hours in config file {config}" in str(info.value)
    assert "log_retention_ms" in str(info.value)


def test_wrong_type_in_file_names_the_key_and_file(tmp_path: Path) -> None:
    config = write_toml(tmp_path, 'num_partitions = "three"\n')
    with pytest.raises(SettingsError, match=f"num_partitions in config file {config}"):
        load_settings({}, config, {})


def test_unreadable_and_malformed_files_are_reported(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="Cannot read config file"):
        load_settings({}, tmp_path / "missing.toml", {})
    with pytest.raises(SettingsError, match="is not valid TOML"):
        load_settings({}, write_toml(tmp_path, "listen = \n"), {})


def test_parse_host_port_handles_ipv6_brackets() -> None:
    assert parse_host_port("[::1]:9092") == ("::1", 9092)
    assert parse_host_port("localhost:0") == ("localhost", 0)
