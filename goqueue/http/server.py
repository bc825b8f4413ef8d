"""uvicorn embedded in the broker's event loop, started and stopped with the node."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

logger = logging.getLogger(__name__)
SHUTDOWN_GRACE_S = 5.0


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signals to the node: it stops when told, not on SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    """Binds the HTTP port itself (so a port in use is an error the node reports, not an
    exit inside uvicorn) and runs uvicorn on it as a task of the running loop."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self._host = host
        self._port = port
        self._server = _EmbeddedServer(
            uvicorn.Config(
                app,
                lifespan="off",
                log_config=None,
                access_log=False,
                server_header=False,
                ws="none",
                timeout_graceful_shutdown=int(SHUTDOWN_GRACE_S),
            )
        )
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when asked to listen on port 0)."""
        assert self._socket is not None
        return int(self._socket.getsockname()[1])

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        self._socket = socket.create_server((self._host, self._port), family=family)
        self._socket.setblocking(False)
        self._task = asyncio.create_task(
            self._server.serve(sockets=[self._socket]), name="goqueue-http"
        )
        self._task.add_done_callback(_report_failure)

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish, close idle keep-alive connections."""
        if self._task is None:
            return
        self._server.should_exit = True
        try:
            await self._task
        except Exception:
            logger.debug("the HTTP server had failed", exc_info=True)
        finally:
            self._task = None
            if self._socket is not None:
                self._socket.close()


def _report_failure(task: asyncio.Task[None]) -> None:
    """The HTTP server should only end when stopped; say so at once if it dies instead."""
    if not task.cancelled() and task.exception() is not None:
        logger.error("the HTTP server stopped", exc_info=task.exception())
