"""Peer servers under test: installed from Debian if missing, run from a temp dir on loopback,
stopped by PID. Everything the harness starts it also stops, whatever happens in between."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO, Protocol

from bench.drivers.base import BenchError
from bench.machine import process_tree

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
"""Debian's hook that tells package scripts not to start services: the harness starts its own."""


class System(Protocol):
    """A server under test for `python -m bench compare`."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def durability_setting(self) -> str: ...

    def start(self) -> None: ...

    def stop(self) -> object:
        """Stop every process the system started; what it returns (an exit code) is unused."""

    def pids(self) -> list[int]: ...


def ensure_installed(binary: str, package: str) -> None:
    """`apt-get install` the Debian package when its binary is missing, without letting the
    package start its own service (a temporary policy-rc.d when the machine has none)."""
    if shutil.which(binary) is not None:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    guard = not POLICY_RC_D.exists()
    if guard:
        POLICY_RC_D.write_text("#!/bin/sh\nexit 101\n")
        POLICY_RC_D.chmod(0o755)
    try:
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, timeout=600)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", package], check=True, env=env, timeout=1200
        )
    finally:
        if guard:
            POLICY_RC_D.unlink()
    if shutil.which(binary) is None:
        raise BenchError(f"{package} installed but {binary} is not on PATH")


def package_version(package: str) -> str:
    """The installed Debian package version, as `dpkg-query` reports it."""
    answer = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False
    )
    return answer.stdout.strip() or "unknown"


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class ServerProcess:
    """One server command run in the foreground, its output in a log file.

    `stop_comm` names the process in the tree that must get SIGTERM when the started command
    is a wrapper script that does not forward signals (RabbitMQ's runs `beam.smp`).
    """

    def __init__(
        self,
        argv: list[str],
        log_path: Path,
        ports: list[int],
        env: dict[str, str] | None = None,
        stop_comm: str | None = None,
    ) -> None:
        self.argv = argv
        self.log_path = log_path
        self.ports = ports
        self.env = env
        self.stop_comm = stop_comm
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self) -> None:
        """Start and return once every port accepts connections."""
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(self.env or {})},
            cwd=self.log_path.parent,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not all(port_open(port) for port in self.ports):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log_path.read_text(errors="replace")[-3000:]
                raise BenchError(f"{self.argv[0]} did not start:\n{tail}")
            time.sleep(0.1)

    def pids(self) -> list[int]:
        return process_tree(self.pid) if self.running else []

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> int | None:
        """SIGTERM (to `stop_comm` if set), wait, then SIGKILL whatever of the tree is left."""
        process = self._process
        if process is None:
            return None
        tree = process_tree(process.pid) if process.poll() is None else []
        target = next((pid for pid in tree if _comm(pid) == self.stop_comm), process.pid)
        if process.poll() is None:
            os.kill(target, signal.SIGTERM)
        try:
            code = process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            code = None
        for pid in tree:
            if _comm(pid) is not None:
                os.kill(pid, signal.SIGKILL)
        if code is None:
            code = process.wait(STOP_TIMEOUT_S)
        if self._log is not None:
            self._log.close()
        self._process = None
        return code


def _comm(pid: int) -> str | None:
    """The process name, or None once it has exited (zombies count as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    if stat[stat.rindex(")") + 2] == "Z":
        return None
    return stat[stat.index("(") + 1 : stat.rindex(")")]
