"""A partition this node leads: its log, its high watermark and the fetches waiting on it."""

from __future__ import annotations

import asyncio

from goqueue.log.partition_log import AppendResult, PartitionLog
from goqueue.records.batch import BatchHeader, set_leader_epoch


class Partition:
    """Wraps a PartitionLog with what the request path needs beyond storage.

    Fetches that found too little data park a future here; every append resolves them, so a
    waiting consumer is answered as soon as data arrives instead of when its wait expires.
    """

    def __init__(self, topic: str, index: int, log: PartitionLog, leader_epoch: int = 0) -> None:
        self.topic = topic
        self.index = index
        self.log = log
        self.leader_epoch = leader_epoch
        self._waiters: set[asyncio.Future[None]] = set()

    @property
    def high_watermark(self) -> int:
        """On a single replica everything appended is committed."""
        return self.log.log_end_offset

    def append(self, records: bytearray, batches: list[BatchHeader], now_ms: int) -> AppendResult:
        """Stamp each batch with the leader epoch, as Kafka does, then append it."""
        position = 0
        for batch in batches:
            set_leader_epoch(records, position, self.leader_epoch)
            position += batch.size
        result = self.log.append(records, batches, now_ms)
        self._wake_waiters()
        return result

    def add_waiter(self, waiter: asyncio.Future[None]) -> None:
        self._waiters.add(waiter)

    def remove_waiter(self, waiter: asyncio.Future[None]) -> None:
        self._waiters.discard(waiter)

    def _wake_waiters(self) -> None:
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
