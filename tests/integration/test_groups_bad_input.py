"""Bad group requests get Kafka's error codes while a real consumer in the same group keeps its
partitions and keeps consuming, undisturbed by them."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import pytest
from client_compat import wait_for
from group_helpers import (
    HEARTBEAT_MS,
    SESSION_MS,
    Pollers,
    all_partitions,
    create_topic,
    describe_group,
    goqueue,
    group_broker,
    pollers,
    produce,
    unique_group,
)
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import OffsetMetadataTooLargeError
from kafka.structs import OffsetAndMetadata
from kio.schema.errors import ErrorCode

from goqueue.client.admin import Admin
from goqueue.testing.process import BrokerProcess

__all__ = ["group_broker", "pollers"]
OFFSET_COMMIT, JOIN_GROUP, HEARTBEAT, LEAVE_GROUP, SYNC_GROUP = 8, 11, 12, 13, 14
DELETE_GROUPS, OFFSET_DELETE = 42, 47
METADATA_MAX_BYTES = 4096


def join_request(group: str, member_id: str, protocol: str, session_ms: int) -> dict[str, Any]:
    return {
        "group_id": group,
        "session_timeout": datetime.timedelta(milliseconds=session_ms),
        "rebalance_timeout": datetime.timedelta(seconds=10),
        "member_id": member_id,
        "group_instance_id": None,
        "protocol_type": "consumer",
        "protocols": [{"name": protocol, "metadata": b"\x00\x00\x00\x00\x00\x00\xff\xff\xff\xff"}],
        "reason": None,
    }


async def misbehave(bootstrap: str, group: str, topic: str, member_id: str) -> dict[str, Any]:
    """Send every bad request and return what the broker answered to each."""
    async with Admin(bootstrap) as admin:
        (described,) = await admin.describe_topics([topic])
        connection = await admin.cluster.any_connection()

        async def ask(api_key: int, request: dict[str, Any]) -> Any:
            return await connection.request(api_key, request)

        heartbeat = {"group_id": group, "group_instance_id": None}
        commit = {
            "group_id": group,
            "group_instance_id": None,
            "topics": [
                {
                    "name": topic,
                    "topic_id": described.topic_id,
                    "partitions": [
                        {"partition_index": 0, "committed_offset": 1, "committed_metadata": ""}
                    ],
                }
            ],
        }
        sync = {"group_id": group, "generation_id": 1, "group_instance_id": None, "assignments": []}
        return {
            "unknown member heartbeat": (
                await ask(HEARTBEAT, {**heartbeat, "member_id": "intruder", "generation_id": 1})
            ).error_code,
            "stale generation heartbeat": (
                await ask(HEARTBEAT, {**heartbeat, "member_id": member_id, "generation_id": 0})
            ).error_code,
            "unknown member sync": (await ask(SYNC_GROUP, {**sync, "member_id": "x"})).error_code,
            "stale generation commit": (
                await ask(
                    OFFSET_COMMIT,
                    {**commit, "member_id": member_id, "generation_id_or_member_epoch": 0},
                )
            )
            .topics[0]
            .partitions[0]
            .error_code,
            "commit without membership": (
                await ask(
                    OFFSET_COMMIT, {**commit, "member_id": "", "generation_id_or_member_epoch": -1}
                )
            )
            .topics[0]
            .partitions[0]
            .error_code,
            "protocol mismatch": (
                await ask(JOIN_GROUP, join_request(group, "", "no-such-assignor", SESSION_MS))
            ).error_code,
            "session timeout too short": (
                await ask(JOIN_GROUP, join_request(group, "", "range", 1))
            ).error_code,
            "unknown member leave": (
                await ask(
                    LEAVE_GROUP,
                    {
                        "group_id": group,
                        "members": [{"member_id": "nobody", "group_instance_id": None}],
                    },
                )
            )
            .members[0]
            .error_code,
            "delete active group": (await ask(DELETE_GROUPS, {"groups_names": [group]}))
            .results[0]
            .error_code,
            "delete offsets in use": (
                await ask(
                    OFFSET_DELETE,
                    {
                        "group_id": group,
                        "topics": [{"name": topic, "partitions": [{"partition_index": 0}]}],
                    },
                )
            )
            .topics[0]
            .partitions[0]
            .error_code,
        }


def test_bad_requests_are_refused_and_the_group_keeps_working(
    group_broker: BrokerProcess, pollers: Pollers
) -> None:
    bootstrap = group_broker.bootstrap
    topic = create_topic(bootstrap, "bad-groups", partitions=2)
    group = unique_group("bad")
    member = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        session_timeout_ms=SESSION_MS,
        heartbeat_interval_ms=HEARTBEAT_MS,
    )
    pollers.start(member)
    everything = {TopicPartition(t, p) for t, p in all_partitions(topic, 2)}
    wait_for(lambda: member.assignment() == everything or None, "the member's partitions")
    produce(bootstrap, topic, 10, partitions=2)
    wait_for(lambda: pollers.count() >= 10 or None, "the first messages")
    (member_id,) = [m.member_id for m in describe_group(bootstrap, group).members]

    answers = asyncio.run(misbehave(bootstrap, group, topic, member_id))
    reset = goqueue(
        bootstrap, "group", "reset-offsets", group, "--all-topics", "--to-earliest", "--execute"
    )

    assert answers == {
        "unknown member heartbeat": ErrorCode.unknown_member_id,
        "stale generation heartbeat": ErrorCode.illegal_generation,
        "unknown member sync": ErrorCode.unknown_member_id,
        "stale generation commit": ErrorCode.illegal_generation,
        "commit without membership": ErrorCode.unknown_member_id,
        "protocol mismatch": ErrorCode.inconsistent_group_protocol,
        "session timeout too short": ErrorCode.invalid_session_timeout,
        "unknown member leave": ErrorCode.unknown_member_id,
        "delete active group": ErrorCode.non_empty_group,
        "delete offsets in use": ErrorCode.group_subscribed_to_topic,
    }
    assert reset.returncode == 1
    assert "active members" in reset.stderr
    produce(bootstrap, topic, 10, partitions=2, start=10)
    wait_for(lambda: pollers.count() >= 20 or None, "messages after the bad requests")
    assert sorted(pollers.received) == [b"message %06d" % i for i in range(20)]
    after = describe_group(bootstrap, group)
    assert (after.state, [m.member_id for m in after.members]) == ("Stable", [member_id])
    assert member.assignment() == everything


def test_offset_metadata_is_kept_exactly_up_to_the_limit(group_broker: BrokerProcess) -> None:
    topic = create_topic(group_broker.bootstrap, "bad-meta", partitions=1)
    group = unique_group("bad-meta")
    tp = TopicPartition(topic, 0)
    c = KafkaConsumer(bootstrap_servers=group_broker.bootstrap, group_id=group)
    try:
        largest = "é" * METADATA_MAX_BYTES
        with pytest.raises(OffsetMetadataTooLargeError):
            c.commit({tp: OffsetAndMetadata(3, "x" * (METADATA_MAX_BYTES + 1), -1)})
        c.commit({tp: OffsetAndMetadata(5, largest, -1)})
        committed = c.committed(tp, metadata=True)
        assert (committed.offset, committed.metadata) == (5, largest)
    finally:
        c.close()
