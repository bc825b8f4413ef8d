"""A TCP proxy that can cut the link it carries, for network-partition tests.

Chaos tests put one proxy on every link between broker nodes (and between clients and a node)
and cut it to partition the cluster, all on loopback and without privileges. A cut either
black-holes the link (connections stay open and bytes vanish, as when packets are dropped, so
peers notice only by timeouts) or resets it (connections close and new ones are closed at once,
as with a refused or reset connection). Healing closes the black-holed connections, so both
sides reconnect from a clean state, as they would after a real partition ends.

The proxy runs its own event loop on a daemon thread, so a synchronous test can drive it.
"""

from __future__ import annotations

import asyncio
import enum
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from goqueue.testing.process import free_port

T = TypeVar("T")
CHUNK = 65536
TARGET_POLL_S = 0.05


class LinkState(enum.Enum):
    """What the proxy does with the bytes of its link."""

    OPEN = "open"
    BLACKHOLE = "blackhole"
    RESET = "reset"


class FaultProxy:
    """Forwards 127.0.0.1:`port` to `target_host`:`target_port` until told to cut the link."""

    def __init__(self, target_host: str, target_port: int, port: int | None = None) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = port if port is not None else free_port()
        self.state = LinkState.OPEN
        self.cuts = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, *, when_target_listens: bool = False) -> FaultProxy:
        """Listen, and return once the port accepts connections; or (`when_target_listens`)
        return at once and listen only from when the target first accepts a connection, so
        that until then a connection is refused exactly as it would be without the proxy."""
        self._thread.start()
        if when_target_listens:
            asyncio.run_coroutine_threadsafe(self._listen_when_target_listens(), self._loop)
        else:
            self._call(self._listen())
        return self

    def close(self) -> None:
        """Stop listening, close every connection and end the thread."""
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def cut(self, state: LinkState = LinkState.BLACKHOLE) -> None:
        """Partition the link: bytes vanish (BLACKHOLE) or connections close (RESET)."""
        if state is LinkState.OPEN:
            raise ValueError("cut() takes BLACKHOLE or RESET; heal() opens the link")
        self.cuts += 1
        self._call(self._set_state(state))

    def heal(self) -> None:
        """End the partition; connections that lived through it are closed, so peers reconnect."""
        self._call(self._set_state(LinkState.OPEN))

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _listen_when_target_listens(self) -> None:
        while True:
            try:
                _, writer = await asyncio.open_connection(self.target_host, self.target_port)
            except OSError:
                await asyncio.sleep(TARGET_POLL_S)
                continue
            writer.close()
            break
        await self._listen()

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _set_state(self, state: LinkState) -> None:
        previous, self.state = self.state, state
        if state is LinkState.RESET or previous is LinkState.BLACKHOLE:
            self._drop_all()

    def _drop_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        self._drop_all()

    def _refusing(self) -> bool:
        return self.state is LinkState.RESET

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing():
            writer.transport.abort()
            return
        try:
            target_reader, target_writer = await asyncio.open_connection(
                self.target_host, self.target_port
            )
        except OSError:
            writer.transport.abort()
            return
        if self._refusing():  # cut while this connection was being made
            writer.transport.abort()
            target_writer.transport.abort()
            return
        self._writers.update((writer, target_writer))
        await asyncio.gather(self._pump(reader, target_writer), self._pump(target_reader, writer))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy one direction; while black-holed, read and discard so the sender never blocks."""
        try:
            while chunk := await reader.read(CHUNK):
                if self.state is LinkState.OPEN:
                    writer.write(chunk)
                    await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
