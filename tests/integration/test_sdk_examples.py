"""Every script in `examples/` runs against a real broker and prints what it promises."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from client_compat import unique_topic
from group_helpers import group_broker

from goqueue.testing.process import BrokerProcess

pytestmark = pytest.mark.integration
__all__ = ["group_broker"]
"""The group broker fixture: rebalances in 100 ms rather than the default 3 s."""

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
TIMEOUT_S = 60


def run_example(name: str, broker: BrokerProcess, *args: str) -> str:
    """Run `examples/<name>` to completion; its stdout, or a failure with its stderr."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--bootstrap", broker.bootstrap, *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"{name} exited {done.returncode}:\n{done.stderr}"
    return done.stdout


def test_every_example_has_a_test() -> None:
    tested = {"produce.py", "consume.py", "admin.py", "sync_usage.py"}
    assert {path.name for path in EXAMPLES.glob("*.py")} == tested


def test_produce_example(group_broker: BrokerProcess) -> None:
    topic = unique_topic("example-produce")
    out = run_example("produce.py", group_broker, "--topic", topic, "--count", "5")
    lines = out.splitlines()
    assert len(lines) == 5
    assert all(line.startswith(f"sent {topic}[") for line in lines)


def test_admin_example(group_broker: BrokerProcess) -> None:
    topic = unique_topic("example-admin")
    out = run_example("admin.py", group_broker, "--topic", topic)
    assert f"topic {topic}: 3 partitions" in out
    assert "retention.ms = 7200000" in out
    assert f"topic {topic}: now 4 partitions" in out
    assert f"lag {topic}[0]: 0 message(s)" in out
    assert out.rstrip().endswith(f"deleted {topic}")


def test_consume_example_reads_and_commits_in_a_group(group_broker: BrokerProcess) -> None:
    topic = unique_topic("example-consume")
    run_example("produce.py", group_broker, "--topic", topic, "--count", "7")
    group = unique_topic("example-group")
    out = run_example(
        "consume.py", group_broker, "--topic", topic, "--group", group, "--count", "7"
    )
    lines = out.splitlines()
    assert lines[0].startswith("assigned [")
    assert len([line for line in lines if line.startswith(f"got {topic}[")]) == 7
    assert lines[-1] == "committed 7 message(s)"


def test_sync_usage_example(group_broker: BrokerProcess) -> None:
    topic = unique_topic("example-sync")
    out = run_example("sync_usage.py", group_broker, "--topic", topic)
    assert "sent 9 more, last at offset" in out
    assert "received 10 message(s), 1 hello" in out
    assert sorted(line for line in out.splitlines() if line.startswith("lag ")) == [
        f"lag {topic}[0]: 0",
        f"lag {topic}[1]: 0",
    ]


def test_the_sdk_page_snippets_run_in_order(group_broker: BrokerProcess) -> None:
    """docs/client.md promises runnable examples: each Python block runs, in page order, on
    one broker (the address swapped for the test broker's); the first block only imports."""
    page = (ROOT / "docs" / "client.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    assert len(blocks) >= 6
    for number, block in enumerate(blocks):
        done = subprocess.run(
            [sys.executable, "-c", block.replace(DEFAULT_BOOTSTRAP, group_broker.bootstrap)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
        assert done.returncode == 0, f"block {number} failed:\n{block}\n{done.stderr}"
