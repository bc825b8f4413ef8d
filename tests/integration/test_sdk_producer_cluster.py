"""The SDK producer on a 3-node cluster: when the leader of a partition dies mid-stream, it
finds the new leader (NOT_LEADER_OR_FOLLOWER and lost connections refresh its metadata) and
every record is stored once, in order."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sdk_producer_support import new_topic, run, stored_batches, stored_values

from goqueue.client import Cluster, Producer
from goqueue.testing.cluster import ClusterProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterProcess]:
    with ClusterProcess(tmp_path / "cluster", 3) as running:
        yield running


async def leader_of(bootstrap: str, topic: str) -> int:
    async with Cluster(bootstrap) as cluster:
        return (await cluster.topic(topic)).partitions[0].leader


def test_a_leader_killed_mid_stream_loses_and_duplicates_nothing(
    cluster: ClusterProcess, caplog: pytest.LogCaptureFixture
) -> None:
    values = [b"failover %06d" % i for i in range(10_000)]

    async def scenario() -> list[bytes | None]:
        topic = await new_topic(cluster.bootstrap, 1, 3)
        old_leader = await leader_of(cluster.bootstrap, topic)
        async with Producer(cluster.bootstrap, retry_backoff_max_ms=250, linger_ms=2) as producer:
            futures = [await producer.enqueue(topic, value) for value in values[:2_000]]
            await futures[-1]
            crash = asyncio.create_task(asyncio.to_thread(cluster.nodes[old_leader].kill))
            futures += [await producer.enqueue(topic, value) for value in values[2_000:]]
            await crash
            await producer.flush()
            assert [f.result().offset for f in futures] == list(range(len(values)))
        survivors = ",".join(node.bootstrap for _, node in cluster.running())
        assert await leader_of(survivors, topic) != old_leader
        return stored_values(await stored_batches(survivors, topic))

    with caplog.at_level(logging.INFO, logger="goqueue.client.sender"):
        assert run(scenario()) == values
    assert any("retrying" in m for m in caplog.messages)
