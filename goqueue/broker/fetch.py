"""Fetch with `max.wait.ms` and `min.bytes`: read now, or park until data arrives or time is up.

Consumers (replica id -1) read up to the high watermark; followers (a replica id >= 0) read up
to the log end, and each of their fetches tells the leader how far their log reaches.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from kio.schema.errors import ErrorCode

from goqueue.broker.broker import Broker
from goqueue.broker.errors import BrokerError
from goqueue.log.errors import OffsetOutOfRangeError
from goqueue.log.partition_log import FileSlice


@dataclass(frozen=True, slots=True)
class PartitionFetch:
    topic: str
    partition: int
    offset: int
    max_bytes: int
    current_leader_epoch: int = -1


CONSUMER = -1
"""The replica id of a fetch that is not from a follower."""


@dataclass(frozen=True, slots=True)
class FetchedPartition:
    request: PartitionFetch
    error_code: ErrorCode
    high_watermark: int = -1
    log_start_offset: int = -1
    data: FileSlice | None = None

    @property
    def size(self) -> int:
        return self.data.size if self.data else 0


async def fetch(
    broker: Broker,
    requests: list[PartitionFetch],
    *,
    max_wait_ms: int,
    min_bytes: int,
    max_bytes: int,
    replica_id: int = CONSUMER,
) -> list[FetchedPartition]:
    """Answer at once when `min_bytes` are available or a partition failed, else wait.

    A waiting fetch parks one future on every partition it asked for; the first append to any
    of them (or move of its high watermark) wakes it, so a consumer at the end of the log sees
    new data with no polling delay.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(max_wait_ms, 0) / 1000
    refused = _record_follower(broker, requests, replica_id) if replica_id >= 0 else {}
    while True:
        results = _read_all(broker, requests, max_bytes, replica_id, refused)
        enough = sum(result.size for result in results) >= min_bytes
        failed = any(result.error_code != ErrorCode.none for result in results)
        remaining = deadline - loop.time()
        if enough or failed or remaining <= 0:
            return results
        await _wait_for_data(broker, requests, remaining)


def _record_follower(
    broker: Broker, requests: list[PartitionFetch], replica_id: int
) -> dict[PartitionFetch, FetchedPartition]:
    """Tell each led partition how far the follower's log reaches (once per request: a fetch
    that waits does not repeat it); returns the partitions that refused the follower. An
    offset outside the leader's log proves nothing (the follower must truncate or restart
    first), so it is refused, as Kafka records only fetches it could serve."""
    refused = {}
    now_ms = int(time.time() * 1000)
    fenced = broker.is_fenced(replica_id)
    for request in requests:
        try:
            partition = broker.partition(request.topic, request.partition)
            partition.check_epoch(request.current_leader_epoch)
            log = partition.log
            if not log.log_start_offset <= request.offset <= log.log_end_offset:
                refused[request] = FetchedPartition(
                    request,
                    ErrorCode.offset_out_of_range,
                    partition.high_watermark,
                    log.log_start_offset,
                )
                continue
            partition.record_follower_fetch(replica_id, request.offset, now_ms, fenced=fenced)
        except BrokerError as exc:
            refused[request] = FetchedPartition(request, exc.error_code)
    return refused


def _read_all(
    broker: Broker,
    requests: list[PartitionFetch],
    max_bytes: int,
    replica_id: int,
    refused: dict[PartitionFetch, FetchedPartition],
) -> list[FetchedPartition]:
    """Read each partition within the response budget; the first data may exceed it (KIP-74)."""
    budget = max_bytes
    results = []
    for request in requests:
        answer = refused.get(request)
        if answer is not None:
            results.append(answer)
            continue
        result = _read(
            broker, request, min(request.max_bytes, budget), budget == max_bytes, replica_id
        )
        budget -= result.size
        results.append(result)
    return results


def _read(
    broker: Broker, request: PartitionFetch, max_bytes: int, first: bool, replica_id: int
) -> FetchedPartition:
    try:
        partition = broker.partition(request.topic, request.partition)
        partition.check_leader(request.current_leader_epoch)
    except BrokerError as exc:
        return FetchedPartition(request, exc.error_code)
    log = partition.log
    high_watermark = partition.high_watermark
    upper_bound = None if replica_id >= 0 else high_watermark
    try:
        data = log.read(request.offset, max(max_bytes, 0), upper_bound)
    except OffsetOutOfRangeError:
        return FetchedPartition(
            request, ErrorCode.offset_out_of_range, high_watermark, log.log_start_offset
        )
    if data is not None and not first and data.size > max_bytes:
        data = None
    return FetchedPartition(request, ErrorCode.none, high_watermark, log.log_start_offset, data)


async def _wait_for_data(broker: Broker, requests: list[PartitionFetch], timeout: float) -> None:
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    partitions = []
    for request in requests:
        try:
            partitions.append(broker.partition(request.topic, request.partition))
        except BrokerError:
            continue
    for partition in partitions:
        partition.add_waiter(waiter)
    try:
        await asyncio.wait_for(waiter, timeout)
    except TimeoutError:
        pass
    finally:
        for partition in partitions:
            partition.remove_waiter(waiter)
