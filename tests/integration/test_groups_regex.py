"""KIP-848 regular expression subscriptions: confluent-kafka with `group.protocol=consumer`
subscribes with `^prefix-.*`, the broker resolves the expression against its topics, the group
consumes the matching topics (also one created after it joined) and nothing else; a bad
expression gets INVALID_REGULAR_EXPRESSION, ConsumerGroupDescribe reports the expression and
the expression survives a crash of the broker."""

from __future__ import annotations

import asyncio
import datetime
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from client_compat import unique_topic, wait_for
from confluent_kafka import Consumer
from group_helpers import GROUP_ENV, group_broker, produce, unique_group
from kafka.admin import KafkaAdminClient, NewTopic
from kio.schema.errors import ErrorCode

from goqueue.client.admin import Admin
from goqueue.testing.process import BrokerProcess

__all__ = ["group_broker"]
CONSUMER_GROUP_HEARTBEAT, CONSUMER_GROUP_DESCRIBE = 68, 69
PARTITIONS = 2


def create_topics(bootstrap: str, names: Iterable[str]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, PARTITIONS, 1) for name in names])
    finally:
        admin.close()


def expected(bootstrap: str, topics: Iterable[str], count: int) -> set[tuple[str, bytes]]:
    """Produce `count` messages to each topic; returns them as (topic, value)."""
    return {
        (topic, value)
        for topic in topics
        for values in produce(bootstrap, topic, count, PARTITIONS).values()
        for value in values
    }


@pytest.fixture
def crashing_broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    """A broker of the test's own, with sessions long enough to outlast a restart."""
    env = {**GROUP_ENV, "GOQUEUE_GROUP_CONSUMER_SESSION_TIMEOUT_MS": "60000"}
    with BrokerProcess(tmp_path / "data", env=env) as process:
        yield process


async def describe_group(bootstrap: str, group: str) -> Any:
    async with Admin(bootstrap) as admin:
        connection = await admin.cluster.any_connection()
        response = await connection.request(
            CONSUMER_GROUP_DESCRIBE, {"group_ids": [group], "include_authorized_operations": False}
        )
    return response.groups[0]


async def described_regex(bootstrap: str, group: str) -> list[str | None]:
    described = await describe_group(bootstrap, group)
    return [m.subscribed_topic_regex for m in described.members]


async def join_with_regex(bootstrap: str, group: str, member_id: str, regex: str) -> Any:
    async with Admin(bootstrap) as admin:
        connection = await admin.cluster.any_connection()
        return await connection.request(
            CONSUMER_GROUP_HEARTBEAT,
            {
                "group_id": group,
                "member_id": member_id,
                "member_epoch": 0,
                "instance_id": None,
                "rack_id": None,
                "rebalance_timeout": datetime.timedelta(seconds=10),
                "subscribed_topic_names": None,
                "subscribed_topic_regex": regex,
                "server_assignor": None,
                "topic_partitions": [],
            },
        )


def test_a_regex_group_consumes_the_matching_topics_and_one_created_later(
    group_broker: BrokerProcess,
) -> None:
    bootstrap = group_broker.bootstrap
    prefix = unique_topic("rx")
    first, second, later = f"{prefix}-a", f"{prefix}-b", f"{prefix}-later"
    unrelated = f"not-{prefix}-a"
    create_topics(bootstrap, [first, second, unrelated])
    wanted = expected(bootstrap, [first, second], 10)
    expected(bootstrap, [unrelated], 10)
    group = unique_group("rx")
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "group.protocol": "consumer",
            "auto.offset.reset": "earliest",
            "topic.metadata.refresh.interval.ms": 500,
        }
    )
    consumer.subscribe([f"^{prefix}-.*"])
    got: set[tuple[str, bytes]] = set()

    def received(count: int) -> bool | None:
        message = consumer.poll(0.2)
        if message is not None and message.error() is None:
            got.add((message.topic(), message.value()))
        return len(got) >= count or None

    try:
        wait_for(lambda: received(len(wanted)), "the matching topics' messages")
        assert got == wanted
        # librdkafka joins its expressions as `(a)|(b)`.
        assert asyncio.run(described_regex(bootstrap, group)) == [f"(^{prefix}-.*)"]
        create_topics(bootstrap, [later])
        wanted |= expected(bootstrap, [later], 6)
        wait_for(lambda: received(len(wanted)), "the messages of the topic created later")
        assert got == wanted
        assert not any(topic == unrelated for topic, _ in got)
    finally:
        consumer.close()


def test_a_regex_that_does_not_compile_is_refused(group_broker: BrokerProcess) -> None:
    group, member_id = unique_group("rx-bad"), str(uuid.uuid4())
    refused = asyncio.run(join_with_regex(group_broker.bootstrap, group, member_id, "orders-("))
    assert refused.error_code == ErrorCode.invalid_regular_expression
    assert refused.error_message is not None and "orders-(" in refused.error_message


def test_a_members_regex_survives_a_crash_of_the_broker(crashing_broker: BrokerProcess) -> None:
    """The expression is in the member's record: after SIGKILL and a restart the coordinator
    reloads the member with it, and the group still owns the matching topic."""
    bootstrap = crashing_broker.bootstrap
    prefix = unique_topic("rx-crash")
    create_topics(bootstrap, [f"{prefix}-a"])
    group, member_id, regex = unique_group("rx-crash"), str(uuid.uuid4()), f"{prefix}-.*"
    joined = asyncio.run(join_with_regex(bootstrap, group, member_id, regex))
    assert joined.error_code == ErrorCode.none
    assert {p for tp in joined.assignment.topic_partitions for p in tp.partitions} == {0, 1}
    crashing_broker.kill()
    crashing_broker.start()

    def reloaded() -> Any:
        described = asyncio.run(describe_group(bootstrap, group))
        return described if described.error_code == ErrorCode.none else None

    described = wait_for(reloaded, "the group to be reloaded")
    (member,) = described.members
    assert (member.member_id, member.subscribed_topic_regex) == (member_id, regex)
    assert [t.topic_name for t in member.assignment.topic_partitions] == [f"{prefix}-a"]
