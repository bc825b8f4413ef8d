"""RabbitMQ under test: Debian's rabbitmq-server run as the current user from a temp dir.

RabbitMQ finds everything through environment variables: node name, cookie (HOME), config,
enabled plugins, data (mnesia) and log locations. The harness starts its own epmd on a free port
first, so it can stop exactly the epmd it started, by PID.
"""

from __future__ import annotations

from pathlib import Path

from bench.systems.server import ServerProcess, ensure_installed, package_version
from goqueue.testing.process import free_port

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
CONFIG = """\
listeners.tcp.1 = 127.0.0.1:{amqp}
stream.listeners.tcp.1 = 127.0.0.1:{stream}
stream.advertised_host = 127.0.0.1
stream.advertised_port = {stream}
disk_free_limit.absolute = 100MB
"""


class RabbitMqSystem:
    """One RabbitMQ node with the stream plugin, on loopback, data in the temp dir."""

    name = "RabbitMQ"
    durability_setting = (
        "queue: durable classic queue, persistent messages, publisher confirms: a confirm comes "
        "after the message store has written and fsynced the message (fsyncs are batched); "
        "stream: a confirm comes once the message is written to the stream's segment file, "
        "with no fsync (the OS flushes it), one replica"
    )

    def __init__(self, data_dir: Path) -> None:
        ensure_installed(SERVER, "rabbitmq-server")
        data_dir.mkdir(parents=True)
        self.port, self.stream_port = free_port(), free_port()
        epmd_port, dist_port = free_port(), free_port()
        (data_dir / "rabbitmq.conf").write_text(
            CONFIG.format(amqp=self.port, stream=self.stream_port)
        )
        (data_dir / "enabled_plugins").write_text("[rabbitmq_stream].\n")
        env = {
            "HOME": str(data_dir),
            "RABBITMQ_NODENAME": f"bench{self.port}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_DIST_PORT": str(dist_port),
            "ERL_EPMD_PORT": str(epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_CONFIG_FILE": str(data_dir / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(data_dir / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(data_dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(data_dir / "log"),
            "RABBITMQ_PID_FILE": str(data_dir / "rabbitmq.pid"),
        }
        self._epmd = ServerProcess(
            ["epmd", "-port", str(epmd_port), "-address", "127.0.0.1"],
            data_dir / "epmd.log",
            [epmd_port],
        )
        self._server = ServerProcess(
            [SERVER],
            data_dir / "rabbitmq.log",
            [self.port, self.stream_port],
            env=env,
            stop_comm="beam.smp",
        )

    @property
    def version(self) -> str:
        return package_version("rabbitmq-server")

    def start(self) -> None:
        self._epmd.start()
        try:
            self._server.start()
        except BaseException:
            self._epmd.stop()
            raise

    def stop(self) -> None:
        try:
            self._server.stop()
        finally:
            self._epmd.stop()

    def pids(self) -> list[int]:
        return self._server.pids()
