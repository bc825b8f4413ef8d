"""Go-Queue under test: a `goqueue serve` process with its data in the benchmark's temp dir."""

from __future__ import annotations

import os
import signal
import subprocess
from importlib.metadata import version
from pathlib import Path

from goqueue.config.settings import BrokerSettings
from goqueue.testing.process import BrokerProcess

STOP_TIMEOUT_S = 300.0


class GoQueueSystem:
    """One single-node broker on free loopback ports, on its default (embedded) settings."""

    name = "Go-Queue"

    def __init__(self, data_dir: Path) -> None:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._process = BrokerProcess(data_dir)

    @property
    def bootstrap(self) -> str:
        return self._process.bootstrap

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def log_path(self) -> Path:
        return self._process.log_path

    @property
    def version(self) -> str:
        return version("goqueue")

    @property
    def durability_setting(self) -> str:
        return self.durability(acks=1)

    def pids(self) -> list[int]:
        return [self.pid]

    def start(self) -> None:
        self._process.start()

    def stop(self) -> int:
        """SIGTERM and wait: a clean shutdown is part of what a run checks. Closing thousands
        of partitions takes long (10,000 take about 100 s here); past STOP_TIMEOUT_S, SIGKILL."""
        pid = self._process.pid
        try:
            return self._process.stop(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.kill(pid, signal.SIGKILL)
            return os.waitpid(pid, 0)[1]

    @staticmethod
    def flush_interval_ms() -> int:
        """The default `flush.ms`: how often the broker fsyncs data acknowledged with acks=1."""
        return BrokerSettings().log_flush_interval_ms

    @staticmethod
    def durability(acks: int) -> str:
        """What an acknowledgement promises with the settings the runs use."""
        defaults = BrokerSettings()
        messages = defaults.log_flush_interval_messages
        return (
            f"acks={acks}, single node (replication factor 1); topic defaults "
            f"flush.messages={'unlimited' if messages >= 2**63 - 1 else messages}, "
            f"flush.ms={defaults.log_flush_interval_ms}: a produce is acknowledged once written "
            f"to the page cache (survives a broker crash), fsynced in the background at most "
            f"{defaults.log_flush_interval_ms} ms later (the last second can be lost on power "
            f"failure)"
        )
