"""`goqueue topic alter|add-partitions|delete-records` and `goqueue config get|set|delete`
against a real broker: the effect, the output and the refusals.

The commands run in this process (typer's runner), since a Python start per command would make
these tests slow; test_cli.py already runs the entry point as a subprocess.
"""

from __future__ import annotations

import uuid

import pytest
from typer.testing import CliRunner

from goqueue.cli.main import app
from goqueue.testing.process import BrokerProcess

pytestmark = pytest.mark.integration
RUNNER = CliRunner()


def ok(broker: BrokerProcess, *args: str, stdin: bytes = b"") -> str:
    """Run a command that must succeed; its stdout."""
    result = RUNNER.invoke(app, [*args, "--bootstrap", broker.bootstrap], input=stdin)
    assert result.exit_code == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def failing(broker: BrokerProcess, *args: str) -> str:
    """Run a command that must fail with status 1 and a message; its stderr."""
    result = RUNNER.invoke(app, [*args, "--bootstrap", broker.bootstrap])
    assert result.exit_code == 1, f"{args} exited {result.exit_code}:\n{result.stderr}"
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.stderr


def new_topic(broker: BrokerProcess, partitions: int = 1) -> str:
    name = f"cli-{uuid.uuid4().hex[:10]}"
    ok(broker, "topic", "create", name, "--partitions", str(partitions))
    return name


def config_rows(output: str) -> dict[str, list[str]]:
    """Table rows of `goqueue config get`, by config name: [value, source, read-only, ...]."""
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if cells:
            rows[cells[0]] = cells[1:]
    return rows


def test_topic_alter_sets_and_resets_configs_shown_by_config_get(
    shared_broker: BrokerProcess,
) -> None:
    name = new_topic(shared_broker)
    altered = ok(
        shared_broker, "topic", "alter", name, "-c", "retention.ms=3600000", "-c", "flush.ms=50"
    )
    assert f"Updated topic '{name}': set retention.ms=3600000; set flush.ms=50." in altered
    rows = config_rows(ok(shared_broker, "config", "get", "--topic", name))
    assert rows["retention.ms"][:2] == ["3600000", "TOPIC_CONFIG"]
    assert rows["flush.ms"][:2] == ["50", "TOPIC_CONFIG"]
    assert rows["segment.bytes"][1] == "DEFAULT_CONFIG"

    ok(shared_broker, "topic", "alter", name, "--delete-config", "flush.ms")
    rows = config_rows(ok(shared_broker, "config", "get", "--topic", name, "flush.ms"))
    assert rows == {"flush.ms": ["1000", "DEFAULT_CONFIG", ""]}

    refused = failing(
        shared_broker, "topic", "alter", name, "-c", "flush.ms=5", "-c", "segment.bytes=1"
    )
    assert "Invalid value 1 for configuration segment.bytes: Value must be at least 14" in refused
    assert config_rows(ok(shared_broker, "config", "get", "--topic", name, "flush.ms")) == rows
    assert "Unknown topic config name: retention.weeks" in failing(
        shared_broker, "config", "set", "--topic", name, "retention.weeks=2"
    )
    assert "does not exist" in failing(
        shared_broker, "config", "set", "--topic", f"{name}-missing", "flush.ms=5"
    )


def test_config_set_and_delete_for_brokers_and_the_cluster_default(
    shared_broker: BrokerProcess,
) -> None:
    name = new_topic(shared_broker)
    set_default = ok(shared_broker, "config", "set", "--broker-default", "log.retention.ms=5000000")
    assert "Updated the cluster-wide broker defaults: set log.retention.ms=5000000." in set_default
    try:
        assert config_rows(ok(shared_broker, "config", "get", "--broker-default")) == {
            "log.retention.ms": ["5000000", "DYNAMIC_DEFAULT_BROKER_CONFIG", ""]
        }
        ok(shared_broker, "config", "set", "--broker", "0", "log.retention.ms=6000000")
        topic = config_rows(ok(shared_broker, "config", "get", "-t", name, "--synonyms"))
        assert topic["retention.ms"][:2] == ["6000000", "DYNAMIC_BROKER_CONFIG"]
        assert "DYNAMIC_DEFAULT_BROKER_CONFIG: log.retention.ms=5000000" in topic["retention.ms"][3]
        ok(shared_broker, "config", "delete", "--broker", "0", "log.retention.ms")
    finally:
        ok(shared_broker, "config", "delete", "--broker-default", "log.retention.ms")
    topic = config_rows(ok(shared_broker, "config", "get", "-t", name, "retention.ms"))
    assert topic["retention.ms"][:2] == ["604800000", "DEFAULT_CONFIG"]
    assert ok(shared_broker, "config", "get", "--broker-default").strip() == (
        "No configs set for the cluster-wide broker defaults."
    )

    read_only = failing(shared_broker, "config", "set", "--broker", "0", "num.partitions=4")
    assert "Cannot update these configs dynamically: num.partitions" in read_only
    assert "name exactly one of" in failing(
        shared_broker, "config", "get", "--topic", name, "--broker-default"
    )


def test_add_partitions_then_use_the_new_ones(shared_broker: BrokerProcess) -> None:
    name = new_topic(shared_broker, partitions=2)
    ok(shared_broker, "produce", name, "--partition", "0", stdin=b"a\nb\n")
    checked = ok(shared_broker, "topic", "add-partitions", name, "--total", "3", "--validate-only")
    assert f"Topic '{name}' can grow to 3 partitions (validate only)." in checked
    assert "Topic currently has 2 partitions, which is higher than the requested 1" in failing(
        shared_broker, "topic", "add-partitions", name, "--total", "1"
    )
    grown = ok(shared_broker, "topic", "add-partitions", name, "--total", "3")
    assert f"Topic '{name}' now has 3 partitions." in grown
    ok(shared_broker, "produce", name, "--partition", "2", stdin=b"on the new one\n")
    new = ok(shared_broker, "consume", name, "--partition", "2", "--from-beginning")
    assert new.splitlines() == ["on the new one"]
    old = ok(shared_broker, "consume", name, "--partition", "0", "--from-beginning")
    assert old.splitlines() == ["a", "b"]


def test_delete_records_moves_the_start_offset(shared_broker: BrokerProcess) -> None:
    name = new_topic(shared_broker)
    ok(shared_broker, "produce", name, stdin=b"m0\nm1\nm2\nm3\nm4\n")
    assert "offset 9 is beyond the high watermark" in failing(
        shared_broker, "topic", "delete-records", name, "--partition", "0", "--before", "9"
    )
    deleted = ok(shared_broker, "topic", "delete-records", name, "-p", "0", "--before", "3")
    assert f"Topic '{name}' partition 0 now starts at offset 3." in deleted
    remaining = ok(shared_broker, "consume", name, "--from-beginning", "--format", "{offset}")
    assert remaining.splitlines() == ["3", "4"]
    everything = ok(shared_broker, "topic", "delete-records", name, "-p", "0", "--before", "-1")
    assert "now starts at offset 5" in everything
