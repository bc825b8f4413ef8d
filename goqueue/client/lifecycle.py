"""`async with` for the SDK's clients, written once."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class AsyncClient(ABC):
    """A client that connects in `start()` and releases everything in `close()`: `async with`
    does both, and closes even when its block raised."""

    @abstractmethod
    async def start(self) -> None:
        """Connect; safe to call again."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections and background tasks; the client is unusable afterwards."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
