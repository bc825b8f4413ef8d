"""The SDK producer when things go wrong: lost answers and a broker crash are retried without
duplicates (idempotence), a full buffer holds `send` back and `max_block_ms` bounds that wait,
and records the broker never takes fail after `delivery_timeout_ms`."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import Any

import pytest
from client_compat import DEADLINE_S, unique_topic
from sdk_producer_support import new_topic, run, stored_batches, stored_values

from goqueue.client import Producer
from goqueue.client.connection import DEFAULT_REQUEST_TIMEOUT, Connection
from goqueue.client.errors import BrokerConnectionError, KafkaTimeoutError
from goqueue.client.produce_protocol import PRODUCE
from goqueue.client.protocol import Fields
from goqueue.testing.process import BrokerProcess

pytestmark = pytest.mark.integration


async def values_in(bootstrap: str, topic: str) -> list[bytes | None]:
    return stored_values(await stored_batches(bootstrap, topic))


def lose_produce_answers(monkeypatch: pytest.MonkeyPatch, lost: set[int]) -> None:
    """Produce requests number `lost` (from 0) reach the broker, which writes them, but their
    answers are lost with the connection: what a network failure after the write looks like."""
    original = Connection.request
    produce_requests = itertools.count()

    async def request(
        self: Connection,
        api_key: int,
        fields: Fields,
        *,
        timeout: float | None = DEFAULT_REQUEST_TIMEOUT,
    ) -> Any:
        response = await original(self, api_key, fields, timeout=timeout)
        if api_key == PRODUCE and next(produce_requests) in lost:
            await self.close()
            raise BrokerConnectionError(self.host, self.port, "answer lost (test)")
        return response

    monkeypatch.setattr(Connection, "request", request)


VALUES = [b"record %05d" % i for i in range(3000)]


async def produce_with_lost_answers(bootstrap: str, idempotent: bool) -> list[bytes | None]:
    topic = await new_topic(bootstrap)
    async with Producer(
        bootstrap, enable_idempotence=idempotent, batch_size=2048, linger_ms=1
    ) as producer:
        futures = [await producer.enqueue(topic, value) for value in VALUES]
        await producer.flush()
        offsets = [f.result().offset for f in futures]
    if idempotent:
        # Each retried batch got the offsets of its first write back, not new ones.
        assert offsets == list(range(len(VALUES)))
    return await values_in(bootstrap, topic)


def test_lost_answers_are_retried_without_duplicates(
    shared_broker: BrokerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    lose_produce_answers(monkeypatch, {2, 5, 6, 11})
    assert run(produce_with_lost_answers(shared_broker.bootstrap, idempotent=True)) == VALUES


def test_without_idempotence_lost_answers_duplicate_records(
    shared_broker: BrokerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The contrast that shows the fault above is real: the same retries write twice."""
    lose_produce_answers(monkeypatch, {2, 5, 6, 11})
    stored = run(produce_with_lost_answers(shared_broker.bootstrap, idempotent=False))
    assert len(stored) > len(VALUES)
    assert set(stored) == set(VALUES)


def test_a_broker_crash_mid_stream_loses_and_duplicates_nothing(
    broker: BrokerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    values = [b"crash %06d" % i for i in range(20_000)]
    before, after = values[:5_000], values[5_000:]

    async def scenario() -> list[bytes | None]:
        topic = await new_topic(broker.bootstrap)
        async with Producer(broker.bootstrap, retry_backoff_max_ms=200, linger_ms=2) as producer:
            futures = [await producer.enqueue(topic, value) for value in before]
            await futures[-1]
            crash = asyncio.create_task(asyncio.to_thread(broker.kill))
            futures += [await producer.enqueue(topic, value) for value in after]
            await crash  # the sender sends while the broker dies
            await asyncio.to_thread(broker.start)
            await producer.flush()
            assert [f.result().offset for f in futures] == list(range(len(values)))
        return await values_in(broker.bootstrap, topic)

    with caplog.at_level(logging.INFO, logger="goqueue.client.sender"):
        assert run(scenario()) == values
    assert any("retrying" in m or "cannot reach" in m for m in caplog.messages)


def test_a_full_buffer_holds_send_back_until_batches_are_delivered(
    shared_broker: BrokerProcess,
) -> None:
    buffer_memory = 32 * 1024
    values = [b"%04d" % i + b"v" * 996 for i in range(1000)]

    async def scenario() -> tuple[int, list[int]]:
        topic = await new_topic(shared_broker.bootstrap)
        async with Producer(
            shared_broker.bootstrap, buffer_memory=buffer_memory, batch_size=8192, linger_ms=0
        ) as producer:
            futures: list[asyncio.Future[Any]] = []
            most_pending = 0
            for value in values:
                futures.append(await producer.enqueue(topic, value))
                most_pending = max(most_pending, sum(not f.done() for f in futures[-64:]))
            await producer.flush()
            return most_pending, [f.result().offset for f in futures]

    most_pending, offsets = run(scenario())
    assert offsets == list(range(len(values)))
    # Each record takes its ~1 KiB from the buffer until its batch is acknowledged.
    assert most_pending <= buffer_memory // 1000


def test_max_block_ms_bounds_the_wait_and_undeliverable_records_expire(
    broker: BrokerProcess,
) -> None:
    async def scenario() -> tuple[float, list[BaseException | None]]:
        topic = await new_topic(broker.bootstrap)
        async with Producer(
            broker.bootstrap,
            buffer_memory=16 * 1024,
            max_block_ms=300,
            linger_ms=0,
            request_timeout_ms=1000,
            delivery_timeout_ms=3000,
        ) as producer:
            await producer.send(topic, b"broker is up")
            await asyncio.to_thread(broker.stop)
            futures = []
            deadline = time.monotonic() + DEADLINE_S
            while True:
                assert time.monotonic() < deadline, "send never blocked"
                start = time.monotonic()
                try:
                    futures.append(await producer.enqueue(topic, b"v" * 1000))
                except KafkaTimeoutError:
                    blocked = time.monotonic() - start
                    break
            await asyncio.wait(futures)
            return blocked, [f.exception() for f in futures]

    blocked, errors = run(scenario())
    assert 0.3 <= blocked < 3
    assert errors and all(isinstance(e, KafkaTimeoutError) for e in errors)
    assert all("3000 ms has passed" in str(e) for e in errors)


def test_a_topic_that_never_appears_times_out_after_max_block_ms(
    shared_broker: BrokerProcess,
) -> None:
    async def scenario() -> float:
        async with Producer(
            shared_broker.bootstrap, allow_auto_create_topics=False, max_block_ms=500
        ) as producer:
            start = time.monotonic()
            with pytest.raises(KafkaTimeoutError, match="not present in metadata after 500 ms"):
                await producer.send(unique_topic("missing"), b"v")
            return time.monotonic() - start

    assert 0.4 <= run(scenario()) < 5
