"""An SDK consumer of the KIP-848 protocol subscribed by pattern: the pattern goes to the
broker as SubscribedTopicRegex, so a matching topic created after the consumer joined is
assigned at the broker's next rebalance (the client's metadata refresh is far off), and a
topic that does not match is not."""

from __future__ import annotations

import asyncio
import re

import pytest
from group_helpers import create_topic, group_broker, produce, unique_group
from sdk_consumer_helpers import FAST_GROUP, Polling, eventually

from goqueue.client import Consumer
from goqueue.testing.process import BrokerProcess

__all__ = ["group_broker"]


def test_a_matching_topic_created_later_is_consumed_and_another_is_not(
    group_broker: BrokerProcess,
) -> None:
    bootstrap = group_broker.bootstrap
    prefix = unique_group("sdk-regex")

    async def scenario() -> None:
        polling = Polling()
        consumer = Consumer(
            bootstrap,
            group_id=prefix,
            pattern=rf"{prefix}-match-.*",
            group_protocol="consumer",
            metadata_max_age_ms=300_000,  # only the broker can notice the new topic in time
            auto_offset_reset="earliest",
            **FAST_GROUP,
        )
        try:
            await consumer.start()
            polling.start(consumer)
            assert await consumer.joined(timeout=20) == set()
            other = create_topic(bootstrap, f"{prefix}-other", 2)
            matching = create_topic(bootstrap, f"{prefix}-match", 2)
            await eventually(
                lambda: {tp.topic for tp in consumer.assignment()} == {matching} or None,
                "the matching topic's partitions",
            )
            produce(bootstrap, other, 4, 2)
            sent = produce(bootstrap, matching, 6, 2)
            await eventually(
                lambda: len(polling.received) >= 6 or None, "the matching topic's messages"
            )
            assert {r.topic for r in polling.received} == {matching}
            assert sorted(r.value for r in polling.received) == sorted(
                v for values in sent.values() for v in values
            )
            assert {tp.topic for tp in consumer.assignment()} == {matching}
        finally:
            await polling.stop_all()
            await consumer.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_the_pattern_must_carry_its_flags_inline() -> None:
    """The broker gets the pattern's text: flags of a compiled pattern would be dropped."""
    with pytest.raises(ValueError, match="inline"):
        Consumer(
            "127.0.0.1:9",
            group_id="g",
            pattern=re.compile("orders", re.IGNORECASE),
            group_protocol="consumer",
        )
    Consumer("127.0.0.1:9", group_id="g", pattern="(?i)orders", group_protocol="consumer")
