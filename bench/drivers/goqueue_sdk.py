"""Go-Queue through its own Python SDK (`goqueue.client`): asyncio, pure Python batches.

The SDK is still its seed (a batch producer and a fetcher): this driver stays a thin layer over
`produce_batches` and `fetch` so that it measures the SDK, not code of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from bench.drivers.base import (
    ConsumeResult,
    ConsumeSpec,
    InFlight,
    Pacer,
    ProduceResult,
    ProduceSpec,
    Receipts,
)
from goqueue.client import Admin, Cluster, NewTopic, TopicPartition
from goqueue.client.fetcher import FetchLimits, fetch
from goqueue.client.producer import produce_batches
from goqueue.records.builder import NewRecord, build_batch

BATCH_MESSAGES = 900
"""Records per request at full speed: just under the broker's 1 MiB `max.message.bytes`."""
IN_FLIGHT = 4
"""Produce requests pipelined on the connection."""
ACKS = 1


@dataclass(frozen=True, slots=True)
class GoQueueSdkClient:
    """`goqueue.client` against one bootstrap address, acks=1 like the librdkafka driver."""

    bootstrap: str
    name: str = "goqueue.client"

    def create(self, topic: str, partitions: int, groups: int) -> None:
        """Groups need nothing on the broker: the SDK's fetcher keeps its own position."""
        asyncio.run(self._create(topic, partitions))

    async def _create(self, topic: str, partitions: int) -> None:
        async with Admin(self.bootstrap) as admin:
            await admin.create_topics([NewTopic(topic, partitions)])
            await admin.cluster.topic(topic)

    def delete(self, topic: str, partitions: int, groups: int) -> None:
        asyncio.run(self._delete(topic))

    async def _delete(self, topic: str) -> None:
        async with Admin(self.bootstrap) as admin:
            await admin.delete_topics([topic])

    def send(self, spec: ProduceSpec, ready: Callable[[], None]) -> ProduceResult:
        return asyncio.run(self._send(spec, ready))

    async def _send(self, spec: ProduceSpec, ready: Callable[[], None]) -> ProduceResult:
        """One batch per partition per request, a few requests in flight."""
        padding = spec.padding()
        async with Cluster(self.bootstrap) as cluster:
            await cluster.topic(spec.topic)
            ready()
            pacer = Pacer(spec, BATCH_MESSAGES * spec.partitions)
            window = InFlight(IN_FLIGHT)
            async for batch in pacer.abatches():
                records: dict[TopicPartition, list[NewRecord]] = {}
                for seq in batch:
                    tp = TopicPartition(spec.topic, spec.partition(seq))
                    records.setdefault(tp, []).append(NewRecord(None, spec.payload(seq, padding)))
                encoded = {tp: build_batch(rs) for tp, rs in records.items()}
                await window.add(produce_batches(cluster, encoded, acks=ACKS), len(batch))
            return pacer.result(await window.drain())

    def receive(self, spec: ConsumeSpec, ready: Callable[[], None]) -> ConsumeResult:
        return asyncio.run(self._receive(spec, ready))

    async def _receive(self, spec: ConsumeSpec, ready: Callable[[], None]) -> ConsumeResult:
        tp = TopicPartition(spec.topic, 0)
        limits = FetchLimits(max_wait_ms=100, partition_max_bytes=8 * 1024 * 1024)
        async with Cluster(self.bootstrap) as cluster:
            await cluster.topic(spec.topic)
            ready()
            receipts = Receipts(spec)
            position = 0
            while not receipts.done and receipts.remaining_s() > 0:
                fetched = (await fetch(cluster, {tp: position}, limits))[tp]
                receipts.add([r.value for r in fetched.records if r.value is not None])
                position = fetched.next_offset
            return receipts.result()
