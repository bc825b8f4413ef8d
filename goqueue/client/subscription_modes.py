"""Subscription modes, as Pulsar names them, mapped onto Kafka groups.

A subscription is a named group of consumers of some topics; its mode says how they share the
records:

- `shared`: any consumer gets any record, each record is acknowledged on its own and
  redelivered when released or its consumer dies. A share group (KIP-932):
  `ShareConsumer`.
- `key-shared`: like shared, but records with the same key (or `goqueue.message-group`
  header) go one at a time and in order. A share group with `goqueue.share.fifo=true`, set on
  the group before the consumer joins.
- `failover`: each partition has one active consumer, in order, with progress committed as
  offsets; other consumers stand by and take partitions over when a consumer leaves or dies.
  A consumer group with the `cooperative-sticky` assignor, so partitions stay where they
  are while consumers come and go.
- `exclusive`: one consumer has every partition; a second consumer is refused. A consumer
  group with `ExclusiveAssignor`, which gives every partition to the consumer that already
  holds them (else to the one that started first), and nothing to the others: a consumer that
  gets nothing raises `ExclusiveSubscriptionError` from `start()` and leaves.
"""

from __future__ import annotations

import asyncio
import enum
import struct
import time
from collections.abc import Mapping, Sequence
from typing import Any

from goqueue.client.admin import Admin
from goqueue.client.assignors import Assignment, Subscription
from goqueue.client.configs import AlterConfigOp, ConfigResource, OpType
from goqueue.client.consumer import Consumer
from goqueue.client.errors import ClientError, KafkaError
from goqueue.client.metadata import TopicPartition
from goqueue.client.share_consumer import ShareConsumer

FIFO_CONFIG = "goqueue.share.fifo"
_CLAIM = struct.Struct(">?q")
"""Exclusive user data: whether the member holds partitions now, and when it started (ns)."""
ASSIGNMENT_TIMEOUT_S = 60.0
RETRY_BACKOFF_S = 0.1


class SubscriptionMode(enum.Enum):
    EXCLUSIVE = "exclusive"
    FAILOVER = "failover"
    SHARED = "shared"
    KEY_SHARED = "key-shared"


class ExclusiveSubscriptionError(ClientError):
    """Another consumer holds the exclusive subscription."""


class ExclusiveAssignor:
    """Every partition to one member: the one holding partitions (so a newcomer never takes
    them away), else the one that started first; the others get nothing."""

    name = "goqueue-exclusive"
    cooperative = False

    def __init__(self) -> None:
        self.started_ns = time.time_ns()

    def user_data(self, owned: Sequence[TopicPartition], generation: int) -> bytes | None:
        return _CLAIM.pack(bool(owned), self.started_ns)

    def assign(
        self, partitions_per_topic: Mapping[str, int], subscriptions: Mapping[str, Subscription]
    ) -> Assignment:
        result: Assignment = {member: [] for member in subscriptions}
        if not subscriptions:
            return result
        winner = min(subscriptions, key=lambda m: (_claim(subscriptions[m]), m))
        topics = subscriptions[winner].topics
        result[winner] = [
            TopicPartition(topic, p)
            for topic, count in sorted(partitions_per_topic.items())
            if topic in topics
            for p in range(count)
        ]
        return result


def _claim(subscription: Subscription) -> tuple[bool, int]:
    """Sort key of a claim: holders first, then the earliest start; unreadable claims last."""
    try:
        holding, started_ns = _CLAIM.unpack(subscription.user_data or b"")
    except struct.error:
        return (True, 2**63)
    return (not holding, started_ns)


class ExclusiveConsumer(Consumer):
    """A consumer of an exclusive subscription: `start()` returns once it holds every
    partition, or raises `ExclusiveSubscriptionError` (and leaves) if another consumer does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, partition_assignment_strategy=[ExclusiveAssignor()], **kwargs)

    async def start(self) -> None:
        await super().start()
        if not await self.joined(ASSIGNMENT_TIMEOUT_S):
            await self.close()
            raise ExclusiveSubscriptionError(
                f"subscription {self.group_id!r} is exclusive and another consumer holds it"
            )


async def subscribe(
    bootstrap: str | Sequence[str],
    *,
    subscription: str,
    topics: Sequence[str],
    mode: SubscriptionMode | str = SubscriptionMode.SHARED,
    **options: Any,
) -> Consumer | ShareConsumer:
    """A started consumer of `topics` in the subscription (the group) named `subscription`,
    sharing records as `mode` says; `options` go to the consumer's constructor."""
    mode = SubscriptionMode(mode)
    consumer: Consumer | ShareConsumer
    if mode is SubscriptionMode.SHARED or mode is SubscriptionMode.KEY_SHARED:
        if mode is SubscriptionMode.KEY_SHARED:
            await _set_group_config(bootstrap, subscription, FIFO_CONFIG, "true")
        consumer = ShareConsumer(bootstrap, group_id=subscription, topics=topics, **options)
    elif mode is SubscriptionMode.FAILOVER:
        consumer = Consumer(
            bootstrap,
            group_id=subscription,
            topics=topics,
            partition_assignment_strategy=("cooperative-sticky",),
            **options,
        )
        await consumer.start()
        await consumer.joined(ASSIGNMENT_TIMEOUT_S)  # active or standby from here on
        return consumer
    else:
        consumer = ExclusiveConsumer(bootstrap, group_id=subscription, topics=topics, **options)
    await consumer.start()
    return consumer


async def _set_group_config(
    bootstrap: str | Sequence[str], group_id: str, name: str, value: str
) -> None:
    """Set a group config, waiting while the group's coordinator loads (a starting broker)."""
    async with Admin(bootstrap) as admin:
        deadline = time.monotonic() + admin.cluster.request_timeout
        while True:
            try:
                await admin.incremental_alter_configs(
                    ConfigResource.group(group_id), [AlterConfigOp(name, OpType.SET, value)]
                )
                return
            except KafkaError as exc:
                if not exc.retriable or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(RETRY_BACKOFF_S)
