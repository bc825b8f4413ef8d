"""docs/share-groups.md promises runnable SDK examples: each Python block that uses
`goqueue.client` runs, in page order, on one broker (the address swapped for the test
broker's)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from group_helpers import GROUP_ENV
from share_helpers import SHARE_ENV

from goqueue.testing.process import BrokerProcess

PAGE = Path(__file__).resolve().parents[2] / "docs" / "share-groups.md"
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
TIMEOUT_S = 60


@pytest.fixture
def docs_broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    with BrokerProcess(tmp_path / "data", env={**SHARE_ENV, **GROUP_ENV}) as process:
        yield process


def test_the_sdk_snippets_of_the_share_groups_page_run_in_order(
    docs_broker: BrokerProcess,
) -> None:
    blocks = [
        block
        for block in re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)
        if "goqueue.client" in block
    ]
    assert len(blocks) >= 4
    outputs = []
    for number, block in enumerate(blocks):
        done = subprocess.run(
            [sys.executable, "-c", block.replace(DEFAULT_BOOTSTRAP, docs_broker.bootstrap)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
        assert done.returncode == 0, f"block {number} failed:\n{block}\n{done.stderr}"
        outputs.append(done.stdout)
    assert outputs[0].splitlines()[3] == "3 b'email 3' delivery 1"
    assert "exclusive" in outputs[3]
