"""The Kafka listener: accepts connections and stops them gracefully on shutdown."""

from __future__ import annotations

import asyncio
import logging
import socket

from goqueue.broker.broker import Broker
from goqueue.protocol.kafka.connection import KafkaConnection

logger = logging.getLogger(__name__)
SHUTDOWN_GRACE_S = 10.0


class KafkaServer:
    """Owns the listening socket and the task of every open connection."""

    def __init__(self, broker: Broker, host: str, port: int) -> None:
        self._broker = broker
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], KafkaConnection] = {}

    @property
    def port(self) -> int:
        """The bound port (useful when asked to listen on port 0)."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self._host, self._port, reuse_address=True, limit=2**20
        )

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = KafkaConnection(
            self._broker, reader, writer, self._broker.settings.socket_request_max_bytes
        )
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = connection
        try:
            await connection.serve()
        finally:
            self._connections.pop(task, None)

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish, then close every connection."""
        if self._server is None:
            return
        self._server.close()
        for connection in self._connections.values():
            connection.close_when_idle()
        tasks = list(self._connections)
        if tasks:
            _done, busy = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_S)
            if busy:
                logger.warning("shutdown grace period over: closing %d busy connections", len(busy))
            for task in busy:
                task.cancel()
            await asyncio.gather(*busy, return_exceptions=True)
        await self._server.wait_closed()
