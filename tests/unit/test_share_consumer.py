"""ShareConsumer against an in-memory share broker: joining, share session epochs,
piggybacked and committed acknowledgements, session resets, renewal and close."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from kio.schema.errors import ErrorCode
from share_fakes import TOPIC, FakeShareBroker, consumer

from goqueue.client.errors import UnsupportedVersionError
from goqueue.client.share_consumer import (
    SHARE_ACKNOWLEDGE,
    SHARE_FETCH,
    SHARE_GROUP_HEARTBEAT,
    AcknowledgementError,
    ShareConsumer,
    new_member_id,
)
from goqueue.client.share_session import AckType


def run(
    broker: FakeShareBroker, body: Callable[[ShareConsumer], Awaitable[Any]], **options: Any
) -> Any:
    async def main() -> Any:
        async with consumer(broker, **options) as c:
            return await body(c)

    return asyncio.run(main())


def batches(request: Any) -> list[tuple[int, int, tuple[int, ...]]]:
    return [
        (b.first_offset, b.last_offset, tuple(b.acknowledge_types))
        for t in request.topics
        for p in t.partitions
        for b in p.acknowledgement_batches
    ]


def test_member_id_is_a_client_made_uuid_kept_across_requests() -> None:
    assert len(new_member_id()) == 22
    broker = FakeShareBroker([b"a"])

    async def body(c: ShareConsumer) -> None:
        assert c.assignment == {(TOPIC, 0)}
        await anext(c)

    run(broker, body)
    joins = broker.of(SHARE_GROUP_HEARTBEAT)
    assert joins[0].member_epoch == 0
    assert list(joins[0].subscribed_topic_names) == [TOPIC]
    assert joins[-1].member_epoch == -1
    members = {r.member_id for key in (SHARE_GROUP_HEARTBEAT, SHARE_FETCH) for r in broker.of(key)}
    assert len(members) == 1


def test_first_fetch_opens_the_session_and_acks_ride_on_the_next() -> None:
    broker = FakeShareBroker([b"a", b"b", b"c", b"d"])

    async def body(c: ShareConsumer) -> list[bytes | None]:
        values = []
        for _ in range(4):
            message = await anext(c)
            values.append(message.value)
            assert message.delivery_count == 1
            await message.ack()
        broker.values.append(b"e")
        broker.available.add(4)
        await anext(c)
        return values

    assert run(broker, body, max_records=4, ack_linger=60) == [b"a", b"b", b"c", b"d"]
    first, second = broker.of(SHARE_FETCH)[:2]
    assert first.share_session_epoch == 0
    assert batches(first) == []
    assert second.share_session_epoch == 1
    assert batches(second) == [(0, 3, (AckType.ACCEPT,))]
    assert broker.accepted == {0, 1, 2, 3}


def test_mixed_outcomes_go_as_one_batch_with_a_type_per_offset() -> None:
    broker = FakeShareBroker([b"a", b"b", b"c"])

    async def body(c: ShareConsumer) -> None:
        first, second, third = [await anext(c) for _ in range(3)]
        await first.ack()
        await second.release()
        await third.reject(reason="bad payload")
        await c.commit()

    run(broker, body, max_records=3, ack_linger=60)
    (ack,) = broker.of(SHARE_ACKNOWLEDGE)[:1]
    assert ack.share_session_epoch == 1
    assert batches(ack) == [(0, 2, (1, 2, 3))]
    assert broker.accepted == {0} and broker.rejected == {2}


def test_commit_reports_acknowledgements_the_broker_refused() -> None:
    broker = FakeShareBroker([b"a", b"b"])

    async def body(c: ShareConsumer) -> AcknowledgementError:
        message = await anext(c)
        broker.acquired.pop(message.offset)  # the lock ran out on the broker
        await message.ack()
        with pytest.raises(AcknowledgementError) as refused:
            await c.commit()
        await c.commit()  # reported once
        return refused.value

    error = run(broker, body, max_records=1, ack_linger=60)
    (failure,) = error.failures
    assert failure.offsets == (0,)
    assert failure.error.code == ErrorCode.invalid_record_state


def test_a_lost_session_starts_over_and_keeps_the_acknowledgements() -> None:
    broker = FakeShareBroker([b"a", b"b"])

    async def body(c: ShareConsumer) -> None:
        message = await anext(c)
        await message.ack()
        broker.fail_next = ErrorCode.share_session_not_found
        broker.sessions.clear()
        second = await anext(c)
        await second.ack()
        await c.commit()

    run(broker, body, max_records=1, ack_linger=60)
    epochs = [r.share_session_epoch for r in broker.of(SHARE_FETCH)]
    assert epochs[:3] == [0, 1, 0]
    assert broker.accepted == {0, 1}


def test_gaps_in_acquired_ranges_are_acknowledged_as_gaps() -> None:
    broker = FakeShareBroker([b"a"])

    async def body(c: ShareConsumer) -> None:
        broker.values = [b"a"]
        broker.available = {0, 1}
        message = await anext(c)
        await message.ack()
        await c.commit()

    run(broker, body, max_records=2, ack_linger=60)
    assert batches(broker.of(SHARE_ACKNOWLEDGE)[0]) == [(0, 1, (1, 0))]
    assert broker.accepted == {0, 1}


def test_close_releases_held_records_and_closes_the_session() -> None:
    broker = FakeShareBroker([b"a", b"b", b"c"])

    async def body(c: ShareConsumer) -> None:
        message = await anext(c)
        await message.ack()

    run(broker, body, max_records=3, ack_linger=60)
    final = broker.of(SHARE_ACKNOWLEDGE)[-1]
    assert final.share_session_epoch == -1
    assert batches(final) == [(0, 0, (1,))]
    assert broker.accepted == {0}
    assert broker.available == {1, 2}
    assert broker.sessions == {}


def test_implicit_mode_accepts_a_message_when_the_next_is_asked_for() -> None:
    broker = FakeShareBroker([b"a", b"b"])

    async def body(c: ShareConsumer) -> None:
        await anext(c)
        await anext(c)

    run(broker, body, max_records=2, ack_linger=60, acknowledgement_mode="implicit")
    assert broker.accepted == {0, 1}


def test_a_message_is_acknowledged_once() -> None:
    broker = FakeShareBroker([b"a"])

    async def body(c: ShareConsumer) -> None:
        message = await anext(c)
        await message.ack()
        with pytest.raises(Exception, match="already acknowledged"):
            await message.reject()

    run(broker, body, ack_linger=60)


def test_renew_sends_renew_acknowledgements_and_extends_the_lock() -> None:
    broker = FakeShareBroker([b"a"])

    async def body(c: ShareConsumer) -> None:
        message = await anext(c)
        before = message.lock_expires_at
        assert await message.renew() >= before
        assert message.outcome is None
        await message.ack()

    run(broker, body, ack_linger=60)
    renew = broker.of(SHARE_ACKNOWLEDGE)[0]
    assert renew.is_renew_ack
    assert batches(renew) == [(0, 0, (AckType.RENEW,))]
    assert broker.accepted == {0}


def test_renew_needs_a_broker_that_serves_share_acknowledge_v2() -> None:
    broker = FakeShareBroker([b"a"], share_versions=(1, 1))

    async def body(c: ShareConsumer) -> None:
        message = await anext(c)
        with pytest.raises(UnsupportedVersionError):
            await message.renew()

    run(broker, body, ack_linger=60)


def test_acknowledgements_linger_briefly_then_go_without_a_fetch() -> None:
    broker = FakeShareBroker([b"a", b"b"])

    async def body(c: ShareConsumer) -> None:
        message = await anext(c)
        await message.ack()
        for _ in range(200):
            if broker.accepted:
                return
            await asyncio.sleep(0.01)

    run(broker, body, max_records=2, ack_linger=0.01)
    assert broker.accepted == {0}
    assert batches(broker.of(SHARE_ACKNOWLEDGE)[0]) == [(0, 0, (1,))]


def test_commit_names_acknowledgements_that_got_no_answer() -> None:
    broker = FakeShareBroker([b"a", b"b"])

    async def body(c: ShareConsumer) -> AcknowledgementError:
        first, second = await anext(c), await anext(c)
        await first.ack()
        await c.commit()
        await second.ack()
        broker.crash()
        await asyncio.sleep(0)  # the connection sees the hang-up
        with pytest.raises(AcknowledgementError) as unanswered:
            await c.commit()
        return unanswered.value

    error = run(broker, body, max_records=2, ack_linger=60)
    (failure,) = error.failures
    assert failure.offsets == (1,)
    assert failure.error.code == ErrorCode.network_exception
    assert broker.accepted == {0}


def test_a_fetch_for_a_member_the_broker_forgot_rejoins_instead_of_failing() -> None:
    broker = FakeShareBroker([b"a"])

    async def body(c: ShareConsumer) -> bytes | None:
        broker.fail_next = ErrorCode.unknown_member_id
        return (await anext(c)).value

    assert run(broker, body, ack_linger=60) == b"a"
    heartbeats = broker.of(SHARE_GROUP_HEARTBEAT)
    assert len(heartbeats) >= 3  # join, the rejoin the failed fetch asked for, leave
