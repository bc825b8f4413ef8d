"""Subscription modes of the SDK against a real broker: shared and key-shared (share groups),
failover (a consumer group whose standby takes over) and exclusive (a second consumer is
refused)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from group_helpers import GROUP_ENV
from share_helpers import SHARE_ENV, new_topic, produce, set_group_configs, take

from goqueue.client import Admin, ConfigResource, Consumer, ShareConsumer
from goqueue.client.subscription_modes import (
    ExclusiveConsumer,
    ExclusiveSubscriptionError,
    SubscriptionMode,
    subscribe,
)
from goqueue.testing.process import BrokerProcess

GROUP_OPTIONS: dict[str, Any] = {
    "session_timeout_ms": 2000,
    "heartbeat_interval_ms": 200,
    "auto_offset_reset": "earliest",
}


@pytest.fixture(scope="module")
def modes_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    data = tmp_path_factory.mktemp("modes") / "data"
    with BrokerProcess(data, env={**SHARE_ENV, **GROUP_ENV}) as process:
        yield process


def run(main: Any) -> Any:
    return asyncio.run(asyncio.wait_for(main(), 60))


def test_shared_subscriptions_are_share_groups(modes_broker: BrokerProcess) -> None:
    bootstrap = modes_broker.bootstrap
    topic = new_topic(bootstrap, "mode-shared")
    set_group_configs(bootstrap, "mode-shared", {"share.auto.offset.reset": "earliest"})
    produce(bootstrap, topic, [b"a", b"b"])

    async def main() -> list[int]:
        consumer = await subscribe(
            bootstrap, subscription="mode-shared", topics=[topic], mode="shared"
        )
        assert isinstance(consumer, ShareConsumer)
        async with consumer:
            got = await take(consumer, 2)
            await consumer.commit()
            return [m.offset for m in got]

    assert run(main) == [0, 1]


def test_key_shared_subscriptions_turn_on_fifo_message_groups(modes_broker: BrokerProcess) -> None:
    bootstrap = modes_broker.bootstrap
    topic = new_topic(bootstrap, "mode-key-shared")

    async def main() -> str | None:
        consumer = await subscribe(
            bootstrap, subscription="mode-key-shared", topics=[topic], mode="key-shared"
        )
        await consumer.close()
        async with Admin(bootstrap) as admin:
            entries = await admin.describe_configs(
                ConfigResource.group("mode-key-shared"), ["goqueue.share.fifo"]
            )
        return entries[0].value

    assert run(main) == "true"


def test_failover_keeps_one_active_consumer_and_a_standby_takes_over(
    modes_broker: BrokerProcess,
) -> None:
    bootstrap = modes_broker.bootstrap
    topic = new_topic(bootstrap, "mode-failover")
    produce(bootstrap, topic, [b"%d" % i for i in range(4)])

    async def main() -> tuple[set[Any], set[Any], list[int]]:
        active = await subscribe(
            bootstrap, subscription="mode-failover", topics=[topic], mode="failover",
            **GROUP_OPTIONS,
        )  # fmt: skip
        standby = await subscribe(
            bootstrap, subscription="mode-failover", topics=[topic], mode="failover",
            **GROUP_OPTIONS,
        )  # fmt: skip
        assert isinstance(active, Consumer) and isinstance(standby, Consumer)
        first = await asyncio.wait_for(anext(active), 20)
        await active.commit()
        held_active, held_standby = set(active.assignment()), set(standby.assignment())
        await active.close()
        async with standby:
            rest = [await asyncio.wait_for(anext(standby), 20) for _ in range(3)]
        return held_active, held_standby, [first.offset, *(m.offset for m in rest)]

    held_active, held_standby, offsets = run(main)
    assert len(held_active) == 1 and held_standby == set()
    assert offsets == [0, 1, 2, 3]


def test_exclusive_subscriptions_refuse_a_second_consumer(modes_broker: BrokerProcess) -> None:
    bootstrap = modes_broker.bootstrap
    topic = new_topic(bootstrap, "mode-exclusive", partitions=2)

    async def main() -> tuple[set[Any], set[Any]]:
        owner = await subscribe(
            bootstrap, subscription="mode-exclusive", topics=[topic], mode="exclusive",
            **GROUP_OPTIONS,
        )  # fmt: skip
        assert isinstance(owner, ExclusiveConsumer)
        with pytest.raises(ExclusiveSubscriptionError):
            await subscribe(
                bootstrap, subscription="mode-exclusive", topics=[topic],
                mode=SubscriptionMode.EXCLUSIVE, **GROUP_OPTIONS,
            )  # fmt: skip
        kept = set(owner.assignment())
        await owner.close()
        successor = await subscribe(
            bootstrap, subscription="mode-exclusive", topics=[topic], mode="exclusive",
            **GROUP_OPTIONS,
        )  # fmt: skip
        async with successor:
            return kept, set(successor.assignment())

    kept, taken = run(main)
    assert kept == {(topic, 0), (topic, 1)}
    assert taken == kept
