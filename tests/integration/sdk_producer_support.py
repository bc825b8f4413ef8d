"""What the SDK producer's integration tests share: topics to write to, and reading back a
partition exactly as the broker stores it (batch headers included)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from client_compat import DEADLINE_S, unique_topic

from goqueue.client import Admin, Cluster
from goqueue.client.fetcher import FETCH, FetchLimits, fetch_request
from goqueue.client.metadata import TopicPartition
from goqueue.records.batch import BatchHeader, iter_batches
from goqueue.records.reader import ConsumedRecord, batch_records

T = TypeVar("T")
StoredBatch = tuple[BatchHeader, list[ConsumedRecord]]


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


async def new_topic(
    bootstrap: str, partitions: int = 1, replication_factor: int = -1, **configs: str
) -> str:
    name = unique_topic("sdk-producer")
    async with Admin(bootstrap) as admin:
        await admin.create_topic(name, partitions, replication_factor, configs=configs)
    return name


async def stored_batches(
    bootstrap: str, topic: str, partition: int = 0, *, at_least: int = 0
) -> list[StoredBatch]:
    """Every batch of one partition as the broker stores it, with its decoded records; with
    `at_least`, first wait (with a deadline) until the partition holds that many records."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        batches = await _read_partition(bootstrap, topic, partition)
        if sum(len(records) for _, records in batches) >= at_least:
            return batches
        assert time.monotonic() < deadline, f"{topic} holds fewer than {at_least} records"
        await asyncio.sleep(0.05)


async def _read_partition(bootstrap: str, topic: str, partition: int) -> list[StoredBatch]:
    async with Cluster(bootstrap) as cluster:
        metadata = await cluster.topic(topic)
        connection = await cluster.connection(metadata.partitions[partition].leader)
        tp = TopicPartition(topic, partition)
        batches: list[StoredBatch] = []
        position = 0
        limits = FetchLimits(max_wait_ms=0)
        while True:
            request = fetch_request({tp: position}, {topic: metadata.topic_id}, limits)
            response = await connection.request(FETCH, request)
            answer = response.responses[0].partitions[0]
            for header, batch in iter_batches(answer.records or b""):
                batches.append((header, list(batch_records(header, batch))))
                position = header.base_offset + header.last_offset_delta + 1
            if position >= answer.high_watermark:
                return batches


def stored_values(batches: list[StoredBatch]) -> list[bytes | None]:
    return [record.value for _, records in batches for record in records]
