"""Producer ids for InitProducerId: blocks reserved through the metadata quorum (Kafka's
AllocateProducerIds, KIP-730), handed out one by one from memory.

Only the first id of each block costs a quorum round trip. A restarted broker asks for a fresh
block instead of resuming its last one, so an id is never handed out twice, whatever crashed;
the ids left in a block are simply skipped, as in Kafka.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

BLOCK_SIZE = 1000
"""Kafka's ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE."""


class ProducerIdAllocator:
    """Hands out producer ids from the current block, reserving a new block when it runs out.

    `reserve_block(size)` returns the first id of a block of `size` ids nobody else has.
    """

    def __init__(self, reserve_block: Callable[[int], Awaitable[int]]) -> None:
        self._reserve_block = reserve_block
        self._next = 0
        self._end = 0
        self._lock = asyncio.Lock()

    async def next_id(self) -> int:
        async with self._lock:
            if self._next >= self._end:
                self._next = await self._reserve_block(BLOCK_SIZE)
                self._end = self._next + BLOCK_SIZE
            producer_id = self._next
            self._next += 1
            return producer_id
