"""Redis under test: Debian's redis-server with an append-only file fsynced every second."""

from __future__ import annotations

from pathlib import Path

from bench.systems.server import ServerProcess, ensure_installed, package_version
from goqueue.testing.process import free_port

CONFIG = """\
bind 127.0.0.1
port {port}
protected-mode yes
daemonize no
dir {data}
logfile ""
save ""
appendonly yes
appendfsync everysec
"""


class RedisSystem:
    """One redis-server, AOF on (appendfsync everysec), RDB snapshots off."""

    name = "Redis Streams"
    durability_setting = (
        "appendonly yes, appendfsync everysec: XADD is answered once the command is written to "
        "the append-only file (page cache); fsync every second in a background thread (the "
        "last second can be lost on power failure, nothing on a server crash); no snapshots"
    )

    def __init__(self, data_dir: Path) -> None:
        ensure_installed("redis-server", "redis-server")
        data_dir.mkdir(parents=True)
        self.port = free_port()
        config = data_dir / "redis.conf"
        config.write_text(CONFIG.format(port=self.port, data=data_dir))
        self._server = ServerProcess(
            ["redis-server", str(config)], data_dir / "redis.log", [self.port]
        )

    @property
    def version(self) -> str:
        return package_version("redis-server")

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def pids(self) -> list[int]:
        return self._server.pids()
