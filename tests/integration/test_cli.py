"""`goqueue topic`, `goqueue produce` and `goqueue consume` as a user runs them: subprocesses
against a real broker, checked by their output and exit status."""

from __future__ import annotations

import asyncio
import datetime
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from goqueue.client.cluster import Cluster
from goqueue.client.metadata import TopicPartition
from goqueue.client.partitioner import partition_for_key
from goqueue.client.producer import produce
from goqueue.records.builder import NewRecord
from goqueue.testing.process import BrokerProcess, free_port

pytestmark = pytest.mark.integration

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
COMMAND_TIMEOUT_S = 60.0


def goqueue(
    broker: BrokerProcess | None, *args: str, stdin: bytes = b""
) -> subprocess.CompletedProcess[str]:
    """Run one CLI command to completion (against `broker` unless None)."""
    bootstrap = ["--bootstrap", broker.bootstrap] if broker else []
    result = subprocess.run(
        [sys.executable, "-m", "goqueue.cli.main", *args, *bootstrap],
        input=stdin,
        capture_output=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )


def ok(broker: BrokerProcess | None, *args: str, stdin: bytes = b"") -> str:
    """Run a command that must succeed; its stdout."""
    result = goqueue(broker, *args, stdin=stdin)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def failing(broker: BrokerProcess | None, *args: str, stdin: bytes = b"") -> str:
    """Run a command that must fail with status 1 and no traceback; its stderr."""
    result = goqueue(broker, *args, stdin=stdin)
    assert result.returncode == 1, f"{args} exited {result.returncode}:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stderr


def new_topic(broker: BrokerProcess, partitions: int = 1) -> str:
    name = f"cli-{uuid.uuid4().hex[:10]}"
    ok(broker, "topic", "create", name, "--partitions", str(partitions))
    return name


def test_topic_lifecycle_create_list_describe_delete(shared_broker: BrokerProcess) -> None:
    name = f"cli-{uuid.uuid4().hex[:10]}"
    created = ok(
        shared_broker, "topic", "create", name, "-p", "3", "--config", "retention.ms=3600000"
    )
    assert f"Created topic '{name}' with 3 partitions, replication factor 1." in created

    listed = [line.split("│") for line in ok(shared_broker, "topic", "list").splitlines()]
    row = next(cells for cells in listed if len(cells) > 2 and cells[1].strip() == name)
    assert [cell.strip() for cell in row[2:4]] == ["3", "1"]

    described = ok(shared_broker, "topic", "describe", name)
    assert f"Topic {name}" in described
    partition_rows = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in described.splitlines()
        if line.startswith("│")
    ]
    assert [r[0] for r in partition_rows[:3]] == ["0", "1", "2"]
    assert all(r[4:6] == ["0", "0"] for r in partition_rows[:3])  # start and end offsets

    assert f"Deleted topic '{name}'." in ok(shared_broker, "topic", "delete", name)
    assert name not in ok(shared_broker, "topic", "list")
    assert f"topic '{name}' does not exist" in failing(shared_broker, "topic", "describe", name)


def test_topic_create_validate_only_creates_nothing(shared_broker: BrokerProcess) -> None:
    name = f"cli-{uuid.uuid4().hex[:10]}"
    checked = ok(shared_broker, "topic", "create", name, "-p", "2", "--validate-only")
    assert f"Topic '{name}' can be created with 2 partitions" in checked
    assert name not in ok(shared_broker, "topic", "list")


def test_topic_errors_are_one_clear_line(shared_broker: BrokerProcess) -> None:
    name = new_topic(shared_broker)
    assert f"topic '{name}' already exists" in failing(shared_broker, "topic", "create", name)
    assert "does not exist" in failing(shared_broker, "topic", "delete", f"{name}-missing")
    assert "retention.ms" in failing(
        shared_broker, "topic", "create", f"{name}-bad", "--config", "retention.ms=soon"
    )
    assert "--config expects KEY=VALUE" in failing(
        shared_broker, "topic", "create", f"{name}-bad", "--config", "retention.ms"
    )


def test_no_broker_means_a_hint_to_start_one() -> None:
    port = free_port()
    stderr = failing(None, "topic", "list", "--bootstrap", f"127.0.0.1:{port}")
    assert f"cannot connect to 127.0.0.1:{port}" in stderr
    assert "is `goqueue serve` running?" in stderr
    assert "invalid broker address 'nowhere'" in failing(
        None, "topic", "list", "--bootstrap", "nowhere"
    )


def test_produce_keys_and_headers_then_consume_them_formatted(
    shared_broker: BrokerProcess,
) -> None:
    name = new_topic(shared_broker, partitions=3)
    lines = [f"user-{i}:event {i}" for i in range(30)]
    produced = goqueue(
        shared_broker,
        "produce",
        name,
        "--key-separator",
        ":",
        "--header",
        "source=cli",
        "--header",
        "team=a=b",
        stdin="\n".join(lines).encode(),
    )
    assert produced.returncode == 0, produced.stderr
    assert f"Produced 30 messages to topic '{name}'." in produced.stderr

    out = ok(
        shared_broker,
        "consume",
        name,
        "--from-beginning",
        "--format",
        "{partition}|{offset}|{key}|{value}|{headers}|{timestamp}",
    )
    rows = [line.split("|") for line in out.splitlines()]
    assert sorted(f"{key}:{value}" for _, _, key, value, _, _ in rows) == sorted(lines)
    for partition, _, key, _, headers, timestamp in rows:
        assert int(partition) == partition_for_key(key.encode(), 3)  # Kafka's own placement
        assert headers == "source=cli,team=a=b"
        assert abs(int(timestamp) - time.time() * 1000) < 600_000
    for partition in range(3):
        offsets = [int(r[1]) for r in rows if int(r[0]) == partition]
        assert offsets == list(range(len(offsets)))


def test_produce_from_a_file_with_every_codec(shared_broker: BrokerProcess, tmp_path: Path) -> None:
    for codec in CODECS:
        name = new_topic(shared_broker)
        lines = [f"{codec} line {i} " + "x" * (i % 50) for i in range(3000)]
        source = tmp_path / f"{codec}.txt"
        source.write_text("\n".join(lines) + "\n")
        ok(shared_broker, "produce", name, "--file", str(source), "--compression", codec)
        consumed = ok(shared_broker, "consume", name, "--from-beginning")
        assert consumed.splitlines() == lines, codec


def test_consume_from_an_offset_or_counting_back_from_the_end(
    shared_broker: BrokerProcess,
) -> None:
    name = new_topic(shared_broker)
    ok(shared_broker, "produce", name, stdin=b"m0\nm1\nm2\nm3\nm4\n")
    from_two = ok(shared_broker, "consume", name, "--offset", "2", "--format", "{offset}={value}")
    assert from_two.splitlines() == ["2=m2", "3=m3", "4=m4"]
    last_two = ok(shared_broker, "consume", name, "--offset", "-2", "--partition", "0")
    assert last_two.splitlines() == ["m3", "m4"]
    first_two = ok(shared_broker, "consume", name, "--from-beginning", "--max-messages", "2")
    assert first_two.splitlines() == ["m0", "m1"]
    assert "offset 9 is out of range" in failing(shared_broker, "consume", name, "--offset", "9")


def test_consume_from_a_timestamp_in_ms_or_iso_8601(shared_broker: BrokerProcess) -> None:
    name = new_topic(shared_broker)
    base = int(time.time() * 1000) - 60_000
    records = [NewRecord(None, f"t{i}".encode(), timestamp_ms=base + i * 1000) for i in range(4)]

    async def send() -> None:
        async with Cluster(shared_broker.bootstrap) as cluster:
            await produce(cluster, {TopicPartition(name, 0): records})

    asyncio.run(send())
    by_ms = ok(shared_broker, "consume", name, "--timestamp", str(base + 1000))
    assert by_ms.splitlines() == ["t1", "t2", "t3"]
    iso = (
        datetime.datetime.fromtimestamp((base + 2500) / 1000, datetime.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
    by_iso = ok(
        shared_broker, "consume", name, "--timestamp", iso, "--format", "{value} {timestamp}"
    )
    assert by_iso.splitlines() == [f"t3 {base + 3000}"]
    assert ok(shared_broker, "consume", name, "--timestamp", str(base + 60_000)) == ""


def test_follow_prints_messages_produced_after_it_started(shared_broker: BrokerProcess) -> None:
    name = new_topic(shared_broker)
    consumer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "goqueue.cli.main",
            "consume",
            name,
            "--offset",
            "0",
            "--follow",
            "--max-messages",
            "3",
            "--timeout",
            "30",
            "--bootstrap",
            shared_broker.bootstrap,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        ok(shared_broker, "produce", name, stdin=b"late 1\nlate 2\nlate 3\nlate 4\n")
        stdout, stderr = consumer.communicate(timeout=COMMAND_TIMEOUT_S)
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()
    assert consumer.returncode == 0, stderr.decode()
    assert stdout.decode().splitlines() == ["late 1", "late 2", "late 3"]


def test_consume_at_the_end_waits_and_the_idle_timeout_ends_it(
    shared_broker: BrokerProcess,
) -> None:
    name = new_topic(shared_broker)
    ok(shared_broker, "produce", name, stdin=b"old\n")
    started = time.monotonic()
    assert ok(shared_broker, "consume", name, "--timeout", "1") == ""
    assert time.monotonic() - started >= 1.0


def test_produce_creates_a_missing_topic_when_the_broker_allows(
    shared_broker: BrokerProcess,
) -> None:
    name = f"cli-auto-{uuid.uuid4().hex[:10]}"
    ok(shared_broker, "produce", name, stdin=b"first\n")
    assert name in ok(shared_broker, "topic", "list")
    assert ok(shared_broker, "consume", name, "--from-beginning") == "first\n"


def test_produce_and_consume_errors_exit_1_with_a_message(shared_broker: BrokerProcess) -> None:
    name = new_topic(shared_broker)
    missing = f"{name}-missing"
    assert f"topic '{missing}' does not exist" in failing(shared_broker, "consume", missing)
    no_key = failing(shared_broker, "produce", name, "-K", ":", stdin=b"a:1\nno key here\n")
    assert "line 2 has no key separator ':'" in no_key
    assert f"topic '{name}' has no partition 4" in failing(
        shared_broker, "produce", name, "--partition", "4", stdin=b"x\n"
    )
    assert "unknown placeholder {nope}" in failing(
        shared_broker, "consume", name, "--format", "{nope}"
    )
    assert "choose one of" in failing(
        shared_broker, "consume", name, "--from-beginning", "--offset", "1"
    )
    assert "ISO 8601" in failing(shared_broker, "consume", name, "--timestamp", "noon")


def test_produce_with_acks_0_sends_without_confirmation(shared_broker: BrokerProcess) -> None:
    name = new_topic(shared_broker)
    sent = goqueue(shared_broker, "produce", name, "--acks", "0", stdin=b"x\ny\nz\n")
    assert sent.returncode == 0, sent.stderr
    assert "Sent 3 messages" in sent.stderr and "not confirmed" in sent.stderr
    # Unacknowledged: wait for the messages instead of assuming they are there yet.
    consumed = ok(
        shared_broker, "consume", name, "--offset", "0", "--follow", "-n", "3", "--timeout", "20"
    )
    assert consumed.splitlines() == ["x", "y", "z"]
