"""Share group administration on a 3-node cluster, asked of brokers that are not the group's
coordinator: DescribeConfigs of the group, `goqueue group describe` with its record counts
(HTTP API), and DeleteGroups (the CLI, kafka-python and confluent-kafka admin clients)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from client_compat import unique_topic
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType
from group_helpers import goqueue
from kafka.admin import KafkaAdminClient
from share_helpers import SHARE_ENV, send_all, set_group_configs, take

from goqueue.client import Admin, Cluster, ShareConsumer
from goqueue.client.groups import find_coordinator
from goqueue.coordinator.runtime import partition_for
from goqueue.testing.cluster import ClusterProcess
from goqueue.testing.process import BrokerProcess

pytestmark = pytest.mark.integration

STATE_TOPIC = "__share_group_state"
OFFSETS_TOPIC = "__consumer_offsets"
FIND_COORDINATOR = 10
DELETE_GROUPS = 42
DESCRIBE_CONFIGS = 32
GROUP_RESOURCE = 32
NOT_COORDINATOR = 16
NON_EMPTY_GROUP = 68
DEADLINE_S = 20.0
ADMIN_ENV = {**SHARE_ENV, "GOQUEUE_SHARE_COORDINATOR_STATE_TOPIC_NUM_PARTITIONS": "3"}
"""Fewer share state partitions than `__consumer_offsets` ones (5 in test clusters): with the
same count the two topics may be placed alike, and then every group id has one broker as both
its coordinators, which would leave these tests nothing to forward."""
LOCK_MS = "12000"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    with ClusterProcess(tmp_path_factory.mktemp("share-admin"), 3, env=ADMIN_ENV) as running:
        yield running


async def leaders(bootstrap: str, topic: str) -> dict[int, int]:
    async with Cluster(bootstrap) as cluster:
        return {p.partition: p.leader for p in (await cluster.topic(topic)).partitions}


async def coordinators(bootstrap: str) -> tuple[str, int, int]:
    """A new share group id whose share coordinator is not its consumer group coordinator
    (so a FindCoordinator on a broker that does not know the group leads elsewhere), with
    the two: (group, share coordinator, consumer group coordinator)."""
    async with Cluster(bootstrap) as cluster:
        connection = await cluster.any_connection()
        await connection.request(FIND_COORDINATOR, {"key": "any", "key_type": 0})
    deadline = time.monotonic() + DEADLINE_S
    found: tuple[dict[int, int], dict[int, int]] = ({}, {})
    while time.monotonic() < deadline:
        try:  # the internal topics are created, and their leaders elected, in the background
            found = await leaders(bootstrap, OFFSETS_TOPIC), await leaders(bootstrap, STATE_TOPIC)
        except Exception:
            await asyncio.sleep(0.1)
            continue
        offsets, state = found
        for _ in range(100):
            group = unique_topic("share-admin")
            share = state[partition_for(group, len(state))]
            consumer = offsets[partition_for(group, len(offsets))]
            if share != consumer and min(share, consumer) >= 0:
                return group, share, consumer
        await asyncio.sleep(0.2)
    raise AssertionError(f"no group id with different coordinators; leaders {found}")


def other_than(cluster: ClusterProcess, node_id: int) -> BrokerProcess:
    return next(node for other, node in cluster.running() if other != node_id)


async def group_with_records(bootstrap: str, group: str, count: int) -> str:
    """A topic of one partition with `count` records and the group reading it from the start
    (held records stay locked for LOCK_MS)."""
    topic = unique_topic("share-admin")
    async with Admin(bootstrap) as admin:
        await admin.create_topic(topic, 1, 3)
    await asyncio.to_thread(
        set_group_configs,
        bootstrap,
        group,
        {"share.auto.offset.reset": "earliest", "share.record.lock.duration.ms": LOCK_MS},
    )
    await send_all(bootstrap, topic, [b"%d" % i for i in range(count)])
    return topic


def http_json(http: str, path: str) -> Any:
    with urllib.request.urlopen(f"http://{http}/api/v1{path}", timeout=DEADLINE_S) as response:
        return json.load(response)


async def delete_groups(broker: BrokerProcess, group: str) -> int:
    """DeleteGroups sent to this very broker: the group's error code."""
    async with Cluster(broker.bootstrap) as cluster:
        connection = await cluster.any_connection()
        response = await connection.request(DELETE_GROUPS, {"groups_names": [group]})
    [result] = response.results
    return int(result.error_code)


async def named_coordinators(cluster: ClusterProcess, group: str, expected: int) -> dict[int, int]:
    """What FindCoordinator(GROUP) answers for `group` on each broker, once all name
    `expected` (each broker applies the cluster metadata on its own) or at the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        named = {}
        for node_id, node in cluster.running():
            async with Cluster(node.bootstrap) as one:
                named[node_id] = await find_coordinator(one, group)
        if set(named.values()) == {expected} or time.monotonic() > deadline:
            return named
        await asyncio.sleep(0.1)


def test_every_broker_names_the_share_coordinator_until_the_group_is_deleted(
    cluster: ClusterProcess,
) -> None:
    async def main() -> tuple[int, int, dict[int, int], dict[int, int]]:
        group, share, consumer_coordinator = await coordinators(cluster.bootstrap)
        topic = await group_with_records(cluster.bootstrap, group, 1)
        async with ShareConsumer(cluster.bootstrap, group_id=group, topics=[topic]) as consumer:
            await take(consumer, 1)
            await consumer.commit()
        while_share = await named_coordinators(cluster, group, share)
        assert await delete_groups(cluster.nodes[share], group) == 0
        after_delete = await named_coordinators(cluster, group, consumer_coordinator)
        return share, consumer_coordinator, while_share, after_delete

    share, consumer_coordinator, while_share, after_delete = asyncio.run(
        asyncio.wait_for(main(), 60)
    )
    assert while_share == {node_id: share for node_id, _ in cluster.running()}
    assert after_delete == {node_id: consumer_coordinator for node_id, _ in cluster.running()}


def test_describe_configs_of_a_share_group_on_every_broker(cluster: ClusterProcess) -> None:
    async def main() -> tuple[str, int, dict[int, dict[str, tuple[str, int]]]]:
        group, share, _ = await coordinators(cluster.bootstrap)
        await group_with_records(cluster.bootstrap, group, 1)
        described = {}
        for node_id, node in cluster.running():
            async with Cluster(node.bootstrap) as one:
                connection = await one.any_connection()
                resource = {"resource_type": GROUP_RESOURCE, "resource_name": group}
                request = {
                    "resources": [resource | {"configuration_keys": None}],
                    "include_synonyms": True,
                    "include_documentation": True,
                }
                [result] = (await connection.request(DESCRIBE_CONFIGS, request)).results
            assert result.error_code == 0, result.error_message
            described[node_id] = {c.name: (c.value, c.config_source) for c in result.configs}
            assert all(c.documentation for c in result.configs)
        return group, share, described

    group, share, described = asyncio.run(asyncio.wait_for(main(), 60))
    group_config, default = 8, 5
    for configs in described.values():
        assert configs["share.record.lock.duration.ms"] == (LOCK_MS, group_config)
        assert configs["share.auto.offset.reset"] == ("earliest", group_config)
        assert configs["goqueue.dlq.topic"][1] == default
    assert described[share] == next(d for n, d in described.items() if n != share)
    other = other_than(cluster, share)
    admin = AdminClient({"bootstrap.servers": other.bootstrap})
    [future] = admin.describe_configs([ConfigResource(ResourceType.GROUP, group)]).values()
    entries = future.result(timeout=DEADLINE_S)
    assert entries["share.record.lock.duration.ms"].value == LOCK_MS


def test_group_describe_shows_the_counts_from_a_broker_that_is_not_the_coordinator(
    cluster: ClusterProcess,
) -> None:
    async def main() -> tuple[str, dict[str, Any], list[str]]:
        group, share, _ = await coordinators(cluster.bootstrap)
        topic = await group_with_records(cluster.bootstrap, group, 6)
        other = other_than(cluster, share)
        http = f"127.0.0.1:{other.http_port}"
        async with ShareConsumer(cluster.bootstrap, group_id=group, topics=[topic]) as consumer:
            held = await take(consumer, 6, ack=False)
            await held[0].ack()
            await consumer.commit()
            deadline = time.monotonic() + DEADLINE_S
            while True:
                result = await asyncio.to_thread(
                    goqueue, other.bootstrap, "group", "describe", group, "--http", http, "--json"
                )
                assert result.returncode == 0, result.stderr
                document = json.loads(result.stdout)
                if document.get("acknowledged") == 1:
                    break
                assert time.monotonic() < deadline, document
                await asyncio.sleep(0.1)
        listed = await asyncio.to_thread(http_json, http, "/share-groups")
        return group, document, listed

    group, document, listed = asyncio.run(asyncio.wait_for(main(), 60))
    assert document["type"] == "share" and document["state"] == "Stable"
    assert (document["acknowledged"], document["acquired"], document["in_flight"]) == (1, 5, 5)
    assert (document["available"], document["archived"], document["dead_lettered"]) == (0, 0, 0)
    assert document["oldest_unacknowledged_age_ms"] is not None
    assert document["dlq_topic"] == f"{group}.dlq"
    assert group in listed


def test_deleting_an_empty_share_group_through_other_brokers(cluster: ClusterProcess) -> None:
    async def main() -> tuple[str, int, int, list[int], int]:
        group, share, consumer_coordinator = await coordinators(cluster.bootstrap)
        topic = await group_with_records(cluster.bootstrap, group, 1)
        others = [node for node_id, node in cluster.running() if node_id != share]
        async with ShareConsumer(cluster.bootstrap, group_id=group, topics=[topic]) as consumer:
            await take(consumer, 1)
            await consumer.commit()
            non_empty = [await delete_groups(node, group) for node in others]
        via = cluster.nodes[consumer_coordinator]
        deleted = await asyncio.to_thread(goqueue, via.bootstrap, "group", "delete", group)
        return group, share, deleted.returncode, non_empty, consumer_coordinator

    group, share, returncode, non_empty, consumer_coordinator = asyncio.run(
        asyncio.wait_for(main(), 60)
    )
    assert non_empty == [NON_EMPTY_GROUP, NON_EMPTY_GROUP]
    assert returncode == 0
    admin = KafkaAdminClient(bootstrap_servers=cluster.nodes[consumer_coordinator].bootstrap)
    try:
        results = admin.delete_groups([group])
    finally:
        admin.close()
    assert results == {group: "GroupIdNotFoundError"}
    rdkafka = AdminClient({"bootstrap.servers": cluster.bootstrap})
    [future] = rdkafka.delete_consumer_groups([group]).values()
    with pytest.raises(KafkaException) as again:
        future.result(timeout=DEADLINE_S)
    assert again.value.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND
    # Its former coordinator no longer knows a share group of that id, nor coordinates it.
    assert asyncio.run(delete_groups(cluster.nodes[share], group)) == NOT_COORDINATOR
