"""Bad input next to live SDK share consumers: acknowledging records another member holds, an
unknown acknowledge type, and a heartbeat with a wrong member epoch get Kafka's error codes,
and the consumers' records and membership are unchanged."""

from __future__ import annotations

import asyncio
from typing import Any

from kio.schema.errors import ErrorCode
from share_helpers import new_topic, produce, share_broker, share_group, take

from goqueue.client import AcknowledgementError, ShareConsumer, ShareMessage
from goqueue.client.groups import with_coordinator
from goqueue.client.share_consumer import SHARE_GROUP_HEARTBEAT
from goqueue.testing.process import BrokerProcess

__all__ = ["share_broker"]


def impostor(consumer: ShareConsumer, message: ShareMessage) -> ShareMessage:
    """A message for `consumer` naming a record it does not hold."""
    return ShareMessage(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=None,
        value=None,
        headers=(),
        timestamp=0,
        delivery_count=1,
        lock_expires_at=0.0,
        _consumer=consumer,
    )


def test_acknowledging_records_another_member_holds_is_refused_and_changes_nothing(
    share_broker: BrokerProcess,
) -> None:
    bootstrap = share_broker.bootstrap
    topic = new_topic(bootstrap, "not-held")
    group = share_group(bootstrap, "not-held")
    produce(bootstrap, topic, [b"a", b"b"])

    async def main() -> tuple[AcknowledgementError, AcknowledgementError, list[int]]:
        async with (
            ShareConsumer(bootstrap, group_id=group, topics=[topic]) as holder,
            ShareConsumer(bootstrap, group_id=group, topics=[topic]) as other,
        ):
            held = await take(holder, 2, ack=False)
            assert await other.poll(timeout=0.5) == []  # opens its share session
            await impostor(other, held[0]).ack()
            try:
                await other.commit()
            except AcknowledgementError as exc:
                refused = exc
            other._queue(held[1].topic_partition, {held[1].offset: 9})  # type: ignore[dict-item]
            try:
                await other.commit()
            except AcknowledgementError as exc:
                invalid = exc
            await holder.acknowledge(held)
            await holder.commit()
            return refused, invalid, [m.offset for m in held]

    refused, invalid, accepted = asyncio.run(asyncio.wait_for(main(), 30))
    (failure,) = refused.failures
    assert (failure.offsets, failure.error.code) == ((0,), ErrorCode.invalid_record_state)
    (failure,) = invalid.failures
    assert (failure.offsets, failure.error.code) == ((1,), ErrorCode.invalid_request)
    assert accepted == [0, 1]


def test_a_wrong_member_epoch_is_fenced_and_the_member_carries_on(
    share_broker: BrokerProcess,
) -> None:
    bootstrap = share_broker.bootstrap
    topic = new_topic(bootstrap, "stale-epoch")
    group = share_group(bootstrap, "stale-epoch", {"goqueue.retry.backoff.ms": ""})
    produce(bootstrap, topic, [b"a", b"b"])

    async def main() -> tuple[Any, list[ShareMessage]]:
        async with ShareConsumer(bootstrap, group_id=group, topics=[topic]) as consumer:
            (first,) = await take(consumer, 1)

            async def stale(connection: Any) -> Any:
                request = {
                    "group_id": group,
                    "member_id": consumer.member_id,
                    "member_epoch": consumer.member_epoch + 7,
                    "subscribed_topic_names": None,
                }
                return await connection.request(SHARE_GROUP_HEARTBEAT, request)

            answer = await with_coordinator(consumer.cluster, group, stale)
            (second,) = await take(consumer, 1)
            await consumer.commit()
            return answer, [first, second]

    answer, messages = asyncio.run(asyncio.wait_for(main(), 30))
    assert answer.error_code == ErrorCode.fenced_member_epoch
    assert [(m.offset, m.delivery_count) for m in messages] == [(0, 1), (1, 1)]
