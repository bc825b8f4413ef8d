"""`max_poll_interval_ms` as Kafka's Java consumer enforces it, for both group protocols: a
consumer whose application stops polling leaves the group from its background loop (classic:
LeaveGroup; KIP-848: a heartbeat with epoch -1), its partitions are lost (`on_lost`, no
commit) and go to the member that still polls, which consumes them; when the application
polls again the consumer rejoins and gets a share back. Static members too."""

from __future__ import annotations

import asyncio
import logging

import pytest
from client_compat import wait_for
from group_helpers import (
    TP,
    all_partitions,
    create_topic,
    group_broker,
    produce,
    shared_fairly,
    unique_group,
)
from sdk_consumer_helpers import FAST_GROUP, Polling, eventually, owned

from goqueue.client import Consumer, TopicPartition
from goqueue.client.sync import Consumer as SyncConsumer
from goqueue.testing.process import BrokerProcess

__all__ = ["group_broker"]

POLL_INTERVAL_MS = 1500
PARTITIONS = 4


class Listener:
    """Rebalance events, in order."""

    def __init__(self) -> None:
        self.log: list[tuple[str, set[TP]]] = []

    def on_assign(self, partitions: list[TopicPartition]) -> None:
        self.log.append(("assign", {(tp.topic, tp.partition) for tp in partitions}))

    def on_revoke(self, partitions: list[TopicPartition]) -> None:
        self.log.append(("revoke", {(tp.topic, tp.partition) for tp in partitions}))

    def on_lost(self, partitions: list[TopicPartition]) -> None:
        self.log.append(("lost", {(tp.topic, tp.partition) for tp in partitions}))


def split_between(consumers: list[Consumer], topic: str) -> list[set[TP]] | None:
    """The consumers' shares once they own every partition once, evenly (a KIP-848 group
    passes through uneven splits while partitions move one at a time)."""
    shares = owned(consumers)
    even = all(len(share) == PARTITIONS // len(consumers) for share in shares)
    return shares if even and shared_fairly(shares, all_partitions(topic, PARTITIONS)) else None


@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_a_consumer_that_stops_polling_loses_its_partitions_until_it_polls_again(
    group_broker: BrokerProcess, protocol: str, static: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """A static member leaves too: KIP-848 with epoch -2, classic without a LeaveGroup; either
    way the broker keeps its partitions for it until its session expires, then they move."""
    bootstrap = group_broker.bootstrap
    topic = create_topic(bootstrap, f"sdk-poll-{protocol}", PARTITIONS)
    group = unique_group(f"sdk-poll-{protocol}")
    caplog.set_level(logging.WARNING, logger="goqueue.client.group_member")

    async def scenario() -> None:
        polling = Polling()
        events = Listener()
        slow, busy = (
            Consumer(
                bootstrap,
                group_id=group,
                topics=[topic],
                group_protocol=protocol,
                max_poll_interval_ms=POLL_INTERVAL_MS,
                auto_offset_reset="earliest",
                listener=listener,
                group_instance_id=instance_id,
                **FAST_GROUP,
            )
            for listener, instance_id in ((events, "slow" if static else None), (None, None))
        )
        try:
            for consumer in (slow, busy):
                await consumer.start()
                polling.start(consumer)
            first = await eventually(lambda: split_between([slow, busy], topic), "a split")
            await polling.stop(slow)  # the application is busy elsewhere: no more polls
            before = len(events.log)

            await eventually(
                lambda: len(busy.assignment()) == PARTITIONS or None,
                "the polling consumer to take every partition",
            )
            assert slow.assignment() == set()
            assert events.log[before:] == [("lost", first[0])]  # lost, not revoked
            assert "consumer poll timeout has expired" in caplog.text
            sent = produce(bootstrap, topic, 20, PARTITIONS)
            expected = sorted(v for values in sent.values() for v in values)
            await eventually(
                lambda: sorted(r.value for r in polling.by_consumer[id(busy)]) == expected or None,
                "the polling consumer to consume every partition",
            )

            polling.start(slow)  # it polls again: it rejoins and gets a share back
            await eventually(lambda: split_between([slow, busy], topic), "a split again")
            assert events.log[-1][0] == "assign"
        finally:
            await polling.stop_all()
            for consumer in (slow, busy):
                await consumer.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_the_blocking_consumer_leaves_while_its_thread_does_not_poll(
    group_broker: BrokerProcess,
) -> None:
    """`goqueue.client.sync.Consumer`: the loop thread heartbeats, but time spent in the
    caller's thread between `getmany` calls counts against `max_poll_interval_ms`."""
    bootstrap = group_broker.bootstrap
    topic = create_topic(bootstrap, "sdk-poll-sync", PARTITIONS)
    lost: list[TopicPartition] = []
    with SyncConsumer(
        bootstrap,
        group_id=unique_group("sdk-poll-sync"),
        topics=[topic],
        max_poll_interval_ms=POLL_INTERVAL_MS,
        on_lost=lost.extend,
        **FAST_GROUP,
    ) as consumer:
        everything = {TopicPartition(topic, p) for p in range(PARTITIONS)}
        assert consumer.joined(20) == everything
        consumer.getmany(timeout_ms=100)
        # The thread does not poll (`assignment()` is no poll): the member leaves the group.
        wait_for(lambda: not consumer.assignment() or None, "the partitions lost", timeout=20)
        assert set(lost) == everything
        consumer.getmany(timeout_ms=100)  # polling again rejoins
        assert consumer.joined(20) == everything
