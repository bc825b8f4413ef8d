"""A real `goqueue serve` subprocess on free loopback ports, for integration tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

READY_LINE = "Go-Queue broker listening on"
START_TIMEOUT_S = 30.0


def free_port() -> int:
    """A port the OS just handed out on 127.0.0.1 (free unless someone races for it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BrokerProcess:
    """Starts, stops, kills and restarts one broker on a fixed data directory and ports."""

    def __init__(self, data_dir: Path, *extra_args: str, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.raft_port = free_port()
        self.http_port = free_port()
        self.extra_args = extra_args
        self.env = env or {}
        self.start_timeout = START_TIMEOUT_S
        self.log_path = data_dir.parent / f"{data_dir.name}-broker.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self) -> None:
        """Start the broker and return once it prints its ready line."""
        self._log = self.log_path.open("ab")
        offset = self._log.tell()
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "goqueue.cli.main",
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--listen",
                self.bootstrap,
                "--raft",
                f"127.0.0.1:{self.raft_port}",
                "--http",
                f"127.0.0.1:{self.http_port}",
                *self.extra_args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
        )
        deadline = time.monotonic() + self.start_timeout
        while READY_LINE not in self.log_text(offset):
            if self._process.poll() is not None:
                raise RuntimeError(f"broker exited during start:\n{self.log_text(offset)}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"broker not ready in {self.start_timeout}s:\n{self.log_text(offset)}"
                )
            time.sleep(0.05)

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_text(self, offset: int = 0) -> str:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def stop(self, timeout: float = 30.0, sig: signal.Signals = signal.SIGTERM) -> int:
        """Ask for a clean shutdown (SIGTERM as an operator would, or SIGINT as Ctrl-C does);
        returns the exit code."""
        return self._end(sig, timeout)

    def kill(self) -> None:
        """SIGKILL: the unclean shutdown crash tests need."""
        self._end(signal.SIGKILL, 10.0)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _end(self, sig: signal.Signals, timeout: float) -> int:
        process, self._process = self._process, None
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(sig)
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            # Never leave a hung broker behind: kill it, then report the hang.
            process.kill()
            process.wait()
            raise
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None
        return code

    def __enter__(self) -> BrokerProcess:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
