"""The SDK's `Admin` against a real broker: every operation, and the errors it raises."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest
from client_compat import now_ms, unique_topic, wait_for
from group_helpers import HEARTBEAT_MS, SESSION_MS, group_broker, produce, unique_group
from kafka import KafkaConsumer

from goqueue.client import (
    Admin,
    BrokerConnectionError,
    Consumer,
    GroupSubscribedToTopicError,
    InvalidConfigError,
    InvalidPartitionsError,
    NonEmptyGroupError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)
from goqueue.client.admin import HIGH_WATERMARK
from goqueue.client.configs import AlterConfigOp, ConfigResource, ConfigSource, OpType
from goqueue.client.groups import Committed, OffsetMove, OffsetReset
from goqueue.client.metadata import TopicPartition
from goqueue.client.offsets import EARLIEST, LATEST
from goqueue.testing.process import BrokerProcess

pytestmark = pytest.mark.integration
__all__ = ["group_broker"]

T = TypeVar("T")


def admin_run(broker: BrokerProcess, call: Callable[[Admin], Awaitable[T]]) -> T:
    async def main() -> T:
        async with Admin(broker.bootstrap) as admin:
            return await call(admin)

    return asyncio.run(main())


def test_topics_create_describe_grow_and_delete(group_broker: BrokerProcess) -> None:
    name = unique_topic("sdk-admin")

    async def scenario(admin: Admin) -> None:
        checked = await admin.create_topic(name, 2, validate_only=True)
        assert checked.name == name
        assert name not in [t.name for t in await admin.list_topics()]
        created = await admin.create_topic(name, 2, 1, {"cleanup.policy": "compact"})
        assert (created.num_partitions, created.replication_factor) == (2, 1)
        assert created.configs["cleanup.policy"] == "compact"
        with pytest.raises(TopicAlreadyExistsError):
            await admin.create_topic(name)
        (described,) = await admin.describe_topics([name])
        assert [p.partition for p in described.partitions] == [0, 1]
        assert described.replication_factor == 1
        await admin.create_partitions(name, 5)
        (grown,) = await admin.describe_topics([name])
        assert len(grown.partitions) == 5
        with pytest.raises(InvalidPartitionsError):
            await admin.create_partitions(name, 3)
        assert (await admin.describe_topic_configs(name))["cleanup.policy"] == "compact"
        await admin.delete_topics([name])
        assert name not in [t.name for t in await admin.list_topics()]
        with pytest.raises(UnknownTopicOrPartitionError):
            await admin.describe_topics([name])

    admin_run(group_broker, scenario)


def test_topic_configs_describe_alter_and_incremental_alter(group_broker: BrokerProcess) -> None:
    name = unique_topic("sdk-configs")
    topic = ConfigResource.topic(name)

    async def values(admin: Admin) -> dict[str, tuple[str | None, ConfigSource]]:
        return {e.name: (e.value, e.source) for e in await admin.describe_configs(topic)}

    async def scenario(admin: Admin) -> None:
        await admin.create_topic(name, 1, configs={"retention.ms": "60000"})
        assert (await values(admin))["retention.ms"] == ("60000", ConfigSource.TOPIC_CONFIG)
        set_bytes = AlterConfigOp("retention.bytes", OpType.SET, "1048576")
        await admin.incremental_alter_configs(topic, [set_bytes])
        after = await values(admin)
        assert after["retention.bytes"] == ("1048576", ConfigSource.TOPIC_CONFIG)
        assert after["retention.ms"] == ("60000", ConfigSource.TOPIC_CONFIG)
        # AlterConfigs replaces the whole set: what it does not name returns to its default.
        await admin.alter_configs(topic, {"segment.ms": "3600000"})
        replaced = await values(admin)
        assert replaced["segment.ms"] == ("3600000", ConfigSource.TOPIC_CONFIG)
        assert replaced["retention.ms"][1] is not ConfigSource.TOPIC_CONFIG
        assert replaced["retention.bytes"][1] is not ConfigSource.TOPIC_CONFIG
        await admin.incremental_alter_configs(topic, [AlterConfigOp("segment.ms", OpType.DELETE)])
        assert (await values(admin))["segment.ms"][1] is not ConfigSource.TOPIC_CONFIG
        with pytest.raises(InvalidConfigError):
            await admin.incremental_alter_configs(
                topic, [AlterConfigOp("retention.ms", OpType.SET, "soon")]
            )
        (only,) = await admin.describe_configs(topic, ["retention.ms"], documentation=True)
        assert only.name == "retention.ms"
        assert only.documentation

    admin_run(group_broker, scenario)


def test_broker_configs_and_cluster_description(group_broker: BrokerProcess) -> None:
    async def scenario(admin: Admin) -> None:
        cluster = await admin.describe_cluster()
        assert cluster.cluster_id
        (broker,) = cluster.brokers
        assert (broker.host, broker.port) == ("127.0.0.1", group_broker.port)
        assert cluster.controller_id == broker.node_id
        own = ConfigResource.broker(broker.node_id)
        entries = {e.name: e for e in await admin.describe_configs(own)}
        assert "log.retention.ms" in entries or "log.retention.hours" in entries
        change = AlterConfigOp("log.retention.ms", OpType.SET, "7200000")
        await admin.incremental_alter_configs(ConfigResource.broker(), [change])
        (defaults,) = await admin.describe_configs(ConfigResource.broker(), ["log.retention.ms"])
        assert (defaults.value, defaults.source) == (
            "7200000",
            ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG,
        )
        reset = AlterConfigOp("log.retention.ms", OpType.DELETE)
        await admin.incremental_alter_configs(ConfigResource.broker(), [reset])
        (back,) = await admin.describe_configs(own, ["log.retention.ms"])
        assert back.source is not ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG

    admin_run(group_broker, scenario)


def test_offsets_and_delete_records(group_broker: BrokerProcess) -> None:
    name = unique_topic("sdk-records")
    tp = TopicPartition(name, 0)
    admin_run(group_broker, lambda admin: admin.create_topic(name, 1))
    produce(group_broker.bootstrap, name, 10, 1)

    async def scenario(admin: Admin) -> None:
        ends = await admin.list_offsets({tp: LATEST})
        assert ends[tp].offset == 10
        assert await admin.delete_records({tp: 4}) == {tp: 4}
        assert (await admin.list_offsets({tp: EARLIEST}))[tp].offset == 4
        assert await admin.delete_records({tp: HIGH_WATERMARK}) == {tp: 10}

    admin_run(group_broker, scenario)


def test_group_offsets_list_alter_reset_lag_and_delete(group_broker: BrokerProcess) -> None:
    """An inactive group (offsets committed by the admin alone): every offset operation."""
    name = unique_topic("sdk-group")
    group = unique_group("sdk-admin")
    tp0, tp1 = TopicPartition(name, 0), TopicPartition(name, 1)
    admin_run(group_broker, lambda admin: admin.create_topic(name, 2))
    hour_ago = now_ms() - 3_600_000
    produce(group_broker.bootstrap, name, 10, 2, timestamp_ms=hour_ago)
    produce(group_broker.bootstrap, name, 10, 2, start=10)

    async def scenario(admin: Admin) -> None:
        await admin.alter_group_offsets(group, {tp0: 2, tp1: Committed(3, metadata="note")})
        assert await admin.list_group_offsets(group) == {
            tp0: Committed(2),
            tp1: Committed(3, metadata="note"),
        }
        assert [g.group_id for g in await admin.list_groups() if g.group_id == group] == [group]
        described = await admin.describe_group(group)
        assert (described.state, described.members) == ("Empty", ())
        lags = {(lag.topic, lag.partition): lag for lag in await admin.group_lag(group)}
        assert (lags[name, 0].lag, lags[name, 1].lag) == (8, 7)
        assert lags[name, 0].log_end_offset == 10
        assert lags[name, 0].time_lag_ms is not None and lags[name, 0].time_lag_ms >= 3_000_000

        planned = await admin.reset_group_offsets(group, OffsetReset.shift(-5), dry_run=True)
        assert planned == {tp0: OffsetMove(2, 0), tp1: OffsetMove(3, 0)}
        assert (await admin.list_group_offsets(group))[tp0].offset == 2
        await admin.reset_group_offsets(group, OffsetReset.latest())
        assert {tp: c.offset for tp, c in (await admin.list_group_offsets(group)).items()} == {
            tp0: 10,
            tp1: 10,
        }
        assert all(lag.lag == 0 for lag in await admin.group_lag(group))
        moved = await admin.reset_group_offsets(group, OffsetReset.timestamp(hour_ago + 1), [tp0])
        assert moved == {tp0: OffsetMove(10, 5)}
        await admin.reset_group_offsets(group, OffsetReset.earliest(), [tp1])
        await admin.reset_group_offsets(group, OffsetReset.offset(99), [tp0])
        offsets = await admin.list_group_offsets(group)
        assert (offsets[tp0].offset, offsets[tp1].offset) == (10, 0)

        await admin.delete_group_offsets(group, [tp1])
        assert list(await admin.list_group_offsets(group)) == [tp0]
        await admin.delete_groups([group])
        assert await admin.list_group_offsets(group) == {}
        assert (await admin.describe_group(group)).state == "Dead"

    admin_run(group_broker, scenario)


@pytest.fixture
def member(group_broker: BrokerProcess) -> Iterator[tuple[str, str]]:
    """A topic and a group with one live kafka-python member that owns its partition."""
    name = unique_topic("sdk-active")
    group = unique_group("sdk-active")
    admin_run(group_broker, lambda admin: admin.create_topic(name, 1))
    produce(group_broker.bootstrap, name, 5, 1)
    consumer = KafkaConsumer(
        name,
        bootstrap_servers=group_broker.bootstrap,
        group_id=group,
        session_timeout_ms=SESSION_MS,
        heartbeat_interval_ms=HEARTBEAT_MS,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        wait_for(lambda: consumer.poll(timeout_ms=100) or None, "the first messages")
        consumer.commit()
        yield name, group
    finally:
        consumer.close()


def test_an_active_group_is_described_and_protected(
    group_broker: BrokerProcess, member: tuple[str, str]
) -> None:
    name, group = member
    tp = TopicPartition(name, 0)

    async def scenario(admin: Admin) -> None:
        described = await admin.describe_group(group)
        assert described.state == "Stable"
        (owner,) = described.members
        assert owner.partitions == (tp,)
        (lag,) = await admin.group_lag(group)
        assert (lag.committed_offset, lag.lag) == (5, 0)
        with pytest.raises(NonEmptyGroupError, match="stop its consumers first"):
            await admin.reset_group_offsets(group, OffsetReset.earliest())
        with pytest.raises(NonEmptyGroupError, match="still has active members"):
            await admin.delete_groups([group])
        with pytest.raises(GroupSubscribedToTopicError):
            await admin.delete_group_offsets(group, [tp])

    admin_run(group_broker, scenario)


def test_a_kip_848_group_of_sdk_consumers_is_listed_and_described(
    group_broker: BrokerProcess,
) -> None:
    name = unique_topic("sdk-848")
    group = unique_group("sdk-848")
    admin_run(group_broker, lambda admin: admin.create_topic(name, 2))

    async def scenario(admin: Admin) -> None:
        async with Consumer(
            group_broker.bootstrap, group_id=group, topics=[name], group_protocol="consumer"
        ) as consumer:
            deadline = asyncio.get_running_loop().time() + 30
            while len(consumer.assignment()) < 2:
                assert asyncio.get_running_loop().time() < deadline, "no assignment in 30 s"
                await consumer.getmany(timeout_ms=100)
            listed = await admin.list_groups(types=["consumer"])
            assert (group, "consumer") in [(g.group_id, g.group_type) for g in listed]
            described = await admin.describe_group(group)
            assert (described.group_type, described.state) == ("consumer", "Stable")
            (owner,) = described.members
            assert set(owner.partitions) == {TopicPartition(name, 0), TopicPartition(name, 1)}
            assert {(lag.topic, lag.partition) for lag in await admin.group_lag(group)} == {
                (name, 0),
                (name, 1),
            }

    admin_run(group_broker, scenario)


def test_the_admin_reconnects_after_a_broker_restart(broker: BrokerProcess) -> None:
    """A call while the broker is down fails with the connection error; once the broker is
    back the same admin opens a new connection by itself."""
    name = unique_topic("sdk-restart")

    async def scenario(admin: Admin) -> None:
        await admin.create_topic(name, 1)
        broker.kill()
        with pytest.raises(BrokerConnectionError):
            await admin.list_topics()
        broker.start()
        assert name in [t.name for t in await admin.list_topics()]
        assert (await admin.describe_cluster()).brokers[0].port == broker.port

    admin_run(broker, scenario)
