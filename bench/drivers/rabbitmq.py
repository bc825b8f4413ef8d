"""RabbitMQ two ways: a durable classic queue through aio-pika (persistent messages, publisher
confirms, consumer acks), and a stream through rstream (the native stream protocol).

Queue: partition p of a topic is routed by key `topic-p` on a direct exchange `topic`; each
consumer group is its own durable queue `topic-p-group-g` bound with that key (how RabbitMQ
fans out), so one partition and one group is one queue. Stream: a partition is one stream;
consumer groups are independent consumers reading it from the first offset.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import aio_pika
from rstream import (
    ConfirmationStatus,
    Consumer,
    ConsumerOffsetSpecification,
    MessageContext,
    OffsetType,
    Producer,
    RawMessage,
)

from bench.drivers.base import (
    BenchError,
    ConsumeResult,
    ConsumeSpec,
    InFlight,
    Pacer,
    ProduceResult,
    ProduceSpec,
    Receipts,
    chunks,
    wait_until,
)

USER = PASSWORD = "guest"
"""RabbitMQ's default user, which may connect over loopback only."""
CONFIRM_WINDOW = 2_000
"""Publishes awaiting their confirm."""
PREFETCH = 2_000
ACK_EVERY = 500
"""Consumer acks with `multiple` once per this many deliveries (and on the last)."""
STREAM_WINDOW = 50_000
STREAM_BATCH = 500
STREAM_CREDIT = 20
SETUP_CHUNK = 200


def routing_key(topic: str, partition: int) -> str:
    return f"{topic}-{partition}"


def queue_name(topic: str, partition: int, group: int) -> str:
    return f"{topic}-{partition}-group-{group}"


@dataclass(frozen=True, slots=True)
class RabbitQueueClient:
    """Durable classic queues, persistent messages, confirms and acks."""

    host: str
    port: int
    name: str = "aio-pika, durable queue"

    @property
    def url(self) -> str:
        return f"amqp://{USER}:{PASSWORD}@{self.host}:{self.port}/"

    def create(self, topic: str, partitions: int, groups: int) -> None:
        """One queue per partition and group (at least one group, or messages are dropped)."""
        asyncio.run(self._setup(topic, partitions, max(1, groups), create=True))

    def delete(self, topic: str, partitions: int, groups: int) -> None:
        asyncio.run(self._setup(topic, partitions, max(1, groups), create=False))

    async def _setup(self, topic: str, partitions: int, groups: int, create: bool) -> None:
        connection = await aio_pika.connect(self.url)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(
                topic, aio_pika.ExchangeType.DIRECT, durable=True
            )
            pairs = [(p, g) for p in range(partitions) for g in range(groups)]

            async def one(partition: int, group: int) -> None:
                name = queue_name(topic, partition, group)
                if create:
                    queue = await channel.declare_queue(name, durable=True)
                    await queue.bind(exchange, routing_key(topic, partition))
                else:
                    await channel.queue_delete(name)

            for chunk in chunks(pairs, SETUP_CHUNK):
                await asyncio.gather(*(one(p, g) for p, g in chunk))
            if not create:
                await exchange.delete()

    def send(self, spec: ProduceSpec, ready: Callable[[], None]) -> ProduceResult:
        return asyncio.run(self._send(spec, ready))

    async def _send(self, spec: ProduceSpec, ready: Callable[[], None]) -> ProduceResult:
        keys = [routing_key(spec.topic, p) for p in range(spec.partitions)]
        padding = spec.padding()
        connection = await aio_pika.connect(self.url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(spec.topic)
            ready()
            pacer = Pacer(spec, CONFIRM_WINDOW)
            window = InFlight(CONFIRM_WINDOW)
            persistent = aio_pika.DeliveryMode.PERSISTENT
            async for batch in pacer.abatches():
                for seq in batch:
                    message = aio_pika.Message(spec.payload(seq, padding), delivery_mode=persistent)
                    await window.add(exchange.publish(message, keys[spec.partition(seq)]))
            return pacer.result(await window.drain())

    def receive(self, spec: ConsumeSpec, ready: Callable[[], None]) -> ConsumeResult:
        return asyncio.run(self._receive(spec, ready))

    async def _receive(self, spec: ConsumeSpec, ready: Callable[[], None]) -> ConsumeResult:
        connection = await aio_pika.connect(self.url)
        async with connection:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=PREFETCH)
            queue = await channel.get_queue(queue_name(spec.topic, 0, spec.group))
            finished = asyncio.Event()
            ready()
            receipts = Receipts(spec)
            unacked = 0

            async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                nonlocal unacked
                receipts.add([message.body])
                unacked += 1
                if unacked >= ACK_EVERY or receipts.done:
                    unacked = 0
                    await message.ack(multiple=True)
                if receipts.done:
                    finished.set()

            await queue.consume(on_message)
            await wait_until(finished, receipts)
            return receipts.result()


@dataclass(frozen=True, slots=True)
class RabbitStreamClient:
    """RabbitMQ streams over the stream protocol (port 5552), confirms counted per message.
    Values go out as raw bytes (no AMQP 1.0 envelope), as the other drivers send them."""

    host: str
    port: int
    name: str = "rstream, stream"

    def create(self, topic: str, partitions: int, groups: int) -> None:
        asyncio.run(self._setup(topic, partitions, create=True))

    def delete(self, topic: str, partitions: int, groups: int) -> None:
        asyncio.run(self._setup(topic, partitions, create=False))

    async def _setup(self, topic: str, partitions: int, create: bool) -> None:
        async with Producer(self.host, self.port, username=USER, password=PASSWORD) as producer:
            for chunk in chunks(range(partitions), SETUP_CHUNK):
                names = [routing_key(topic, p) for p in chunk]
                if create:
                    await asyncio.gather(*(producer.create_stream(n) for n in names))
                else:
                    await asyncio.gather(*(producer.delete_stream(n) for n in names))

    def send(self, spec: ProduceSpec, ready: Callable[[], None]) -> ProduceResult:
        return asyncio.run(self._send(spec, ready))

    async def _send(self, spec: ProduceSpec, ready: Callable[[], None]) -> ProduceResult:
        """Batches of `send_batch`, at most STREAM_WINDOW messages unconfirmed."""
        streams = [routing_key(spec.topic, p) for p in range(spec.partitions)]
        padding = spec.padding()
        confirmed = 0
        failed: list[int] = []
        progress = asyncio.Event()

        async def on_confirm(status: ConfirmationStatus) -> None:
            nonlocal confirmed
            if status.is_confirmed:
                confirmed += 1
            else:
                failed.append(status.response_code)
            progress.set()

        async with Producer(self.host, self.port, username=USER, password=PASSWORD) as producer:
            ready()
            pacer = Pacer(spec, STREAM_BATCH)
            async for batch in pacer.abatches():
                by_stream: dict[str, list[RawMessage]] = {}
                for seq in batch:
                    body = RawMessage(spec.payload(seq, padding))
                    by_stream.setdefault(streams[spec.partition(seq)], []).append(body)
                for stream, messages in by_stream.items():
                    await producer.send_batch(stream, messages, on_publish_confirm=on_confirm)
                while pacer.sent - confirmed - len(failed) > STREAM_WINDOW:
                    progress.clear()
                    await progress.wait()
            deadline = asyncio.get_running_loop().time() + spec.time_limit_s
            while confirmed + len(failed) < pacer.sent:
                progress.clear()
                remaining = deadline - asyncio.get_running_loop().time()
                await asyncio.wait_for(progress.wait(), max(0.0, remaining))
        if failed:
            raise BenchError(f"{len(failed)} stream publishes failed, first code {failed[0]}")
        return pacer.result(confirmed)

    def receive(self, spec: ConsumeSpec, ready: Callable[[], None]) -> ConsumeResult:
        return asyncio.run(self._receive(spec, ready))

    async def _receive(self, spec: ConsumeSpec, ready: Callable[[], None]) -> ConsumeResult:
        """Subscribes after the start signal, as every driver starts reading only then."""
        finished = asyncio.Event()
        async with Consumer(self.host, self.port, username=USER, password=PASSWORD) as consumer:
            ready()
            receipts = Receipts(spec)

            async def on_message(message: bytes, context: MessageContext) -> None:
                receipts.add([message])
                if receipts.done:
                    finished.set()

            await consumer.subscribe(
                routing_key(spec.topic, 0),
                on_message,
                offset_specification=ConsumerOffsetSpecification(OffsetType.FIRST, None),
                initial_credit=STREAM_CREDIT,
            )
            await wait_until(finished, receipts)
            return receipts.result()
