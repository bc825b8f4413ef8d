"""NATS JetStream through nats-py: asynchronous publish with a window of pending acks, durable
pull consumers acknowledging each fetched batch at once (AckAll). A partition is one stream on
file storage (a JetStream stream is its unit of ordering and storage, like a Kafka partition);
a consumer group is a durable consumer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import nats
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig

from bench.drivers.base import (
    ConsumeResult,
    ConsumeSpec,
    InFlight,
    Pacer,
    ProduceResult,
    ProduceSpec,
    Receipts,
    chunks,
)

MAX_PENDING = 10_000
"""Unacknowledged async publishes (nats-py's own default bound is 4,000)."""
BATCH = 1_000
FETCH = 1_000
FETCH_WAIT_S = 0.1
SETUP_CONCURRENCY = 64


def stream_name(topic: str, partition: int) -> str:
    return f"{topic}-{partition}"


def subject(topic: str, partition: int) -> str:
    return f"{topic}.{partition}"


@dataclass(frozen=True, slots=True)
class NatsJetStreamClient:
    url: str
    name: str = "nats-py"

    def create(self, topic: str, partitions: int, groups: int) -> None:
        asyncio.run(self._each_partition(topic, partitions, groups, create=True))

    def delete(self, topic: str, partitions: int, groups: int) -> None:
        asyncio.run(self._each_partition(topic, partitions, groups, create=False))

    async def _each_partition(self, topic: str, partitions: int, groups: int, create: bool) -> None:
        """Create (file storage, durable consumers from the first message) or delete streams."""
        nc = await nats.connect(self.url)
        js = nc.jetstream(timeout=60)

        async def create_one(partition: int) -> None:
            name = stream_name(topic, partition)
            await js.add_stream(
                StreamConfig(
                    name=name, subjects=[subject(topic, partition)], storage=StorageType.FILE
                )
            )
            for group in range(groups):
                await js.add_consumer(
                    name,
                    ConsumerConfig(
                        durable_name=f"group-{group}",
                        ack_policy=AckPolicy.ALL,
                        deliver_policy=DeliverPolicy.ALL,
                        max_ack_pending=-1,
                    ),
                )

        async def delete_one(partition: int) -> None:
            await js.delete_stream(stream_name(topic, partition))

        try:
            for chunk in chunks(range(partitions), SETUP_CONCURRENCY):
                await asyncio.gather(*(create_one(p) if create else delete_one(p) for p in chunk))
        finally:
            await nc.close()

    def send(self, spec: ProduceSpec, ready: Callable[[], None]) -> ProduceResult:
        return asyncio.run(self._send(spec, ready))

    async def _send(self, spec: ProduceSpec, ready: Callable[[], None]) -> ProduceResult:
        subjects = [subject(spec.topic, p) for p in range(spec.partitions)]
        padding = spec.padding()
        nc = await nats.connect(self.url)
        try:
            js = nc.jetstream(timeout=60, publish_async_max_pending=2 * MAX_PENDING)
            ready()
            pacer = Pacer(spec, BATCH)
            window = InFlight(MAX_PENDING)
            async for batch in pacer.abatches():
                for seq in batch:
                    payload = spec.payload(seq, padding)
                    await window.add(await js.publish_async(subjects[spec.partition(seq)], payload))
            return pacer.result(await window.drain())
        finally:
            await nc.close()

    def receive(self, spec: ConsumeSpec, ready: Callable[[], None]) -> ConsumeResult:
        return asyncio.run(self._receive(spec, ready))

    async def _receive(self, spec: ConsumeSpec, ready: Callable[[], None]) -> ConsumeResult:
        nc = await nats.connect(self.url)
        try:
            js = nc.jetstream(timeout=60)
            pull = await js.pull_subscribe_bind(
                f"group-{spec.group}", stream_name(spec.topic, 0), pending_msgs_limit=-1
            )
            ready()
            receipts = Receipts(spec)
            while not receipts.done and receipts.remaining_s() > 0:
                try:
                    messages = await pull.fetch(FETCH, timeout=FETCH_WAIT_S)
                except NatsTimeout:
                    continue
                if messages:
                    receipts.add([m.data for m in messages])
                    await messages[-1].ack()
            return receipts.result()
        finally:
            await nc.close()
