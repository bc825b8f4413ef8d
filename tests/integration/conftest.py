"""Integration tests run against real `goqueue serve` processes on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from goqueue.testing.process import BrokerProcess


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    """A fresh broker of its own, for tests that restart, kill or misuse it."""
    with BrokerProcess(tmp_path / "data") as process:
        yield process


@pytest.fixture(scope="module")
def shared_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One broker for a whole module of tests that only produce and consume."""
    with BrokerProcess(tmp_path_factory.mktemp("shared") / "data") as process:
        yield process
