"""NATS under test: Debian's nats-server with JetStream on file storage."""

from __future__ import annotations

from pathlib import Path

from bench.systems.server import ServerProcess, ensure_installed, package_version
from goqueue.testing.process import free_port

CONFIG = """\
listen: 127.0.0.1:{port}
max_payload: 8MB
jetstream {{
  store_dir: "{data}/jetstream"
  max_file_store: 64GB
  max_memory_store: 1GB
}}
"""


class NatsSystem:
    """One nats-server with JetStream; streams are created with file storage, one replica."""

    name = "NATS JetStream"
    durability_setting = (
        "file storage, one replica, default sync: a publish is acknowledged once the file store "
        "has written it (page cache); the server fsyncs every 2 minutes (its default "
        "sync_interval, not configurable before 2.10), so a power failure can lose up to "
        "2 minutes, a server crash nothing"
    )

    def __init__(self, data_dir: Path) -> None:
        ensure_installed("nats-server", "nats-server")
        data_dir.mkdir(parents=True)
        self.port = free_port()
        config = data_dir / "nats.conf"
        config.write_text(CONFIG.format(port=self.port, data=data_dir))
        self._server = ServerProcess(
            ["nats-server", "-c", str(config)], data_dir / "nats.log", [self.port]
        )

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def version(self) -> str:
        return package_version("nats-server")

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def pids(self) -> list[int]:
        return self._server.pids()
