"""Cluster settings: the voters list, a voter's own address, the secret file."""

from __future__ import annotations

from pathlib import Path

import pytest

from goqueue.config.settings import SettingsError, load_settings, parse_voters

VOTERS = "1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293"


def test_voters_parse_as_kafkas_controller_quorum_voters() -> None:
    assert parse_voters(VOTERS) == {1: "127.0.0.1:9093", 2: "127.0.0.1:9193", 3: "127.0.0.1:9293"}
    for bad, problem in (
        ("1@", "HOST:PORT"),
        ("x@h:1", "NODE_ID@HOST:PORT"),
        ("1@h:1,1@h:2", "twice"),
    ):
        with pytest.raises(ValueError, match=problem):
            parse_voters(bad)


def test_a_voter_must_use_its_listed_raft_address(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    cli = {"voters": VOTERS, "cluster_secret_file": str(secret)}
    settings = load_settings({**cli, "node_id": 2, "raft": "127.0.0.1:9193"}, None, {})
    assert settings.is_voter() and settings.is_clustered()
    assert settings.cluster_secret == "s3cret"
    with pytest.raises(SettingsError, match=r"Node 2 is listed in voters at 127\.0\.0\.1:9193"):
        load_settings({**cli, "node_id": 2, "raft": "127.0.0.1:9999"}, None, {})
    broker = load_settings({**cli, "node_id": 7}, None, {})
    assert not broker.is_voter() and broker.is_clustered()


def test_a_cluster_needs_a_readable_secret(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="needs the cluster's secret"):
        load_settings({"voters": VOTERS, "node_id": 7}, None, {})
    with pytest.raises(SettingsError, match="Cannot read the cluster secret file"):
        load_settings({"voters": VOTERS, "node_id": 7, "cluster_secret_file": "/nope"}, None, {})
    empty = tmp_path / "empty"
    empty.write_text("  \n")
    with pytest.raises(SettingsError, match="is empty"):
        load_settings({"voters": VOTERS, "node_id": 7, "cluster_secret_file": str(empty)}, None, {})


def test_cluster_settings_come_from_the_environment_and_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "goqueue.toml"
    config.write_text(f'node.id = 3\nraft = "127.0.0.1:9293"\nvoters = "{VOTERS}"\nrack = "b"\n')
    settings = load_settings({}, config, {"GOQUEUE_CLUSTER_SECRET": "from-env"})
    assert (settings.node_id, settings.rack, settings.cluster_secret) == (3, "b", "from-env")
    with pytest.raises(SettingsError, match="GOQUEUE_VOTERS: expected HOST:PORT"):
        load_settings({}, None, {"GOQUEUE_VOTERS": "1@nowhere"})


def test_a_single_node_needs_no_voters_and_no_secret() -> None:
    settings = load_settings({}, None, {})
    assert settings.is_voter() and not settings.is_clustered()
    assert settings.voter_addresses() == {}
