"""Bad share group requests on the wire get Kafka's error codes and change nothing: stale
member epochs, unknown share sessions and session epochs, acknowledging offsets not held,
invalid acknowledge types; the broker keeps serving the member that behaves."""

from __future__ import annotations

import asyncio
import datetime
import uuid
from collections.abc import Sequence
from typing import Any

from kio.schema.errors import ErrorCode
from share_helpers import new_topic, produce, share_broker, share_group

from goqueue.client.cluster import Cluster
from goqueue.client.connection import Connection
from goqueue.testing.process import BrokerProcess

__all__ = ["share_broker"]

SHARE_GROUP_HEARTBEAT = 76
SHARE_FETCH = 78
SHARE_ACKNOWLEDGE = 79
ACCEPT = 1
Acks = Sequence[tuple[int, int, int]]
"""Acknowledgement batches as (first offset, last offset, type)."""


class Member:
    """One share group member speaking the protocol by hand."""

    def __init__(self, connection: Connection, group: str, topic_id: uuid.UUID) -> None:
        self.connection = connection
        self.group = group
        self.topic_id = topic_id
        self.member_id = uuid.uuid4().hex[:22]
        self.epoch = 0
        self.session_epoch = 0

    async def heartbeat(self, epoch: int, topics: list[str] | None = None) -> Any:
        return await self.connection.request(
            SHARE_GROUP_HEARTBEAT,
            {
                "group_id": self.group,
                "member_id": self.member_id,
                "member_epoch": epoch,
                "rack_id": None,
                "subscribed_topic_names": topics,
            },
        )

    async def fetch(self, acks: Acks = (), epoch: int | None = None) -> Any:
        response = await self.connection.request(
            SHARE_FETCH,
            {
                "group_id": self.group,
                "member_id": self.member_id,
                "share_session_epoch": self.session_epoch if epoch is None else epoch,
                "max_wait": datetime.timedelta(milliseconds=500),
                "min_bytes": 1,
                "max_bytes": 1 << 20,
                "max_records": 100,
                "batch_size": 100,
                "topics": [
                    {
                        "topic_id": self.topic_id,
                        "partitions": [
                            {"partition_index": 0, "acknowledgement_batches": _batches(acks)}
                        ],
                    }
                ],
                "forgotten_topics_data": [],
            },
        )
        if epoch is None and response.error_code == ErrorCode.none:
            self.session_epoch += 1
        return response

    async def acknowledge(self, acks: Acks, epoch: int | None = None) -> Any:
        response = await self.connection.request(
            SHARE_ACKNOWLEDGE,
            {
                "group_id": self.group,
                "member_id": self.member_id,
                "share_session_epoch": self.session_epoch if epoch is None else epoch,
                "topics": [
                    {
                        "topic_id": self.topic_id,
                        "partitions": [
                            {"partition_index": 0, "acknowledgement_batches": _batches(acks)}
                        ],
                    }
                ],
            },
        )
        if epoch is None and response.error_code == ErrorCode.none:
            self.session_epoch += 1
        return response


def _batches(acks: Acks) -> list[dict[str, Any]]:
    return [
        {"first_offset": first, "last_offset": last, "acknowledge_types": [kind]}
        for first, last, kind in acks
    ]


def acquired(response: Any) -> list[tuple[int, int]]:
    return [
        (r.first_offset, r.last_offset)
        for topic in response.responses
        for partition in topic.partitions
        for r in partition.acquired_records
    ]


def partition_error(response: Any, field: str = "error_code") -> ErrorCode:
    [topic] = response.responses
    [partition] = topic.partitions
    return ErrorCode(getattr(partition, field))


def test_bad_share_requests_get_kafka_errors_and_change_nothing(
    share_broker: BrokerProcess,
) -> None:
    bootstrap = share_broker.bootstrap
    topic = new_topic(bootstrap, "bad")
    group = share_group(bootstrap, "bad", {"share.record.lock.duration.ms": "60000"})
    produce(bootstrap, topic, [b"%d" % i for i in range(4)])

    async def run() -> None:
        async with Cluster(bootstrap) as cluster:
            connection = await cluster.any_connection()
            topic_id = (await cluster.topic(topic)).topic_id
            member = Member(connection, group, topic_id)
            other = Member(connection, group, topic_id)
            joined = await member.heartbeat(0, [topic])
            assert joined.error_code == ErrorCode.none
            member.epoch = joined.member_epoch
            assert (await other.heartbeat(0, [topic])).error_code == ErrorCode.none

            stale = await member.heartbeat(member.epoch + 5)
            assert stale.error_code == ErrorCode.fenced_member_epoch
            assert (await member.heartbeat(member.epoch)).error_code == ErrorCode.none
            assert (await Member(connection, group, topic_id).heartbeat(3)).error_code == (
                ErrorCode.unknown_member_id
            )

            assert (await member.acknowledge([(0, 0, ACCEPT)], epoch=1)).error_code == (
                ErrorCode.share_session_not_found
            )
            assert (await member.acknowledge([(0, 0, ACCEPT)], epoch=0)).error_code == (
                ErrorCode.invalid_share_session_epoch
            )
            assert (await member.fetch(epoch=5)).error_code == ErrorCode.share_session_not_found
            assert (await member.fetch([(0, 0, ACCEPT)])).error_code == ErrorCode.invalid_request

            first = await member.fetch()
            assert first.error_code == ErrorCode.none
            assert acquired(first) == [(0, 3)]
            assert (await member.fetch(epoch=member.session_epoch + 3)).error_code == (
                ErrorCode.invalid_share_session_epoch
            )

            await other.fetch()
            not_held = await other.acknowledge([(0, 1, ACCEPT)])
            assert partition_error(not_held) == ErrorCode.invalid_record_state
            beyond = await member.acknowledge([(3, 9, ACCEPT)])
            assert partition_error(beyond) == ErrorCode.invalid_record_state
            bad_type = await member.acknowledge([(0, 0, 7)])
            assert partition_error(bad_type) == ErrorCode.invalid_request

            accepted = await member.acknowledge([(0, 3, ACCEPT)])
            assert partition_error(accepted) == ErrorCode.none, "nothing above changed state"
            again = await member.acknowledge([(0, 0, ACCEPT)])
            assert partition_error(again) == ErrorCode.invalid_record_state

    asyncio.run(run())
    assert "share request from" in share_broker.log_text()


INCREMENTAL_ALTER_CONFIGS = 44
DESCRIBE_CONFIGS = 32
GROUP_RESOURCE = 32


def test_bad_group_configs_are_refused_and_good_ones_described(
    share_broker: BrokerProcess,
) -> None:
    group = "configured"

    async def alter(name: str, value: str) -> Any:
        async with Cluster(share_broker.bootstrap) as cluster:
            connection = await cluster.any_connection()
            response = await connection.request(
                INCREMENTAL_ALTER_CONFIGS,
                {
                    "resources": [
                        {
                            "resource_type": GROUP_RESOURCE,
                            "resource_name": group,
                            "configs": [{"name": name, "config_operation": 0, "value": value}],
                        }
                    ],
                    "validate_only": False,
                },
            )
            return response.responses[0]

    async def describe() -> dict[str, str]:
        async with Cluster(share_broker.bootstrap) as cluster:
            connection = await cluster.any_connection()
            response = await connection.request(
                DESCRIBE_CONFIGS,
                {
                    "resources": [
                        {
                            "resource_type": GROUP_RESOURCE,
                            "resource_name": group,
                            "configuration_keys": None,
                        }
                    ],
                    "include_synonyms": False,
                    "include_documentation": False,
                },
            )
            return {c.name: c.value for c in response.results[0].configs}

    for name, value in [
        ("share.auto.offset.reset", "sideways"),
        ("share.delivery.count.limit", "0"),
        ("goqueue.retry.backoff.ms", "1s,2s"),
        ("no.such.config", "1"),
    ]:
        refused = asyncio.run(alter(name, value))
        assert refused.error_code == ErrorCode.invalid_config, name
    assert asyncio.run(describe())["goqueue.share.fifo"] == "false"
    assert asyncio.run(alter("goqueue.share.fifo", "true")).error_code == ErrorCode.none
    assert asyncio.run(describe())["goqueue.share.fifo"] == "true"


FIND_COORDINATOR = 10
SHARE_KEY = 2


def test_find_coordinator_answers_share_keys(share_broker: BrokerProcess) -> None:
    async def find() -> Any:
        async with Cluster(share_broker.bootstrap) as cluster:
            connection = await cluster.any_connection()
            return await connection.request(
                FIND_COORDINATOR,
                {"key_type": SHARE_KEY, "coordinator_keys": [f"workers:{uuid.uuid4()}:0"]},
            )

    [coordinator] = asyncio.run(find()).coordinators
    assert coordinator.error_code == ErrorCode.none
    assert f"{coordinator.host}:{coordinator.port}" == share_broker.bootstrap
