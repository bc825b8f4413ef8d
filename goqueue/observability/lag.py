"""Consumer group lag for Prometheus and the HTTP API, from whatever serves consumer groups.

The group coordinator computes lag (`LagReader`); this module keeps the latest answer and
exports it: lag per group partition in records and seconds, and each group's largest lag.
A scrape refreshes the snapshot first (one refresh at a time, shared by concurrent scrapes),
so the values are as fresh as the scrape and scraping never walks a log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from goqueue.broker.errors import BrokerError

if TYPE_CHECKING:
    from goqueue.coordinator.group.coordinator import GroupCoordinator


@dataclass(frozen=True, slots=True)
class GroupPartitionLag:
    """How far one group trails one partition; None where the group committed nothing or the
    age of the next record is unknown."""

    group: str
    topic: str
    partition: int
    committed_offset: int | None
    log_end_offset: int
    lag: int | None
    lag_seconds: float | None


LagReader = Callable[[], Awaitable[list[GroupPartitionLag]]]
"""Lag of every partition of every group this broker coordinates."""


@dataclass(frozen=True, slots=True)
class GroupLag:
    """A group's largest lag over its partitions."""

    group: str
    max_lag: int
    max_lag_seconds: float


def largest_lags(lags: list[GroupPartitionLag]) -> list[GroupLag]:
    """Each group's largest lag in records and in seconds (0 when nothing is known)."""
    records: dict[str, int] = {}
    seconds: dict[str, float] = {}
    for lag in lags:
        records[lag.group] = max(records.get(lag.group, 0), lag.lag or 0)
        seconds[lag.group] = max(seconds.get(lag.group, 0.0), lag.lag_seconds or 0.0)
    return [GroupLag(group, records[group], seconds[group]) for group in sorted(records)]


class LagCollector(Collector):
    """The Prometheus view of the latest lag snapshot; `reader` is None until a group
    coordinator provides one, and then every family is exported empty."""

    def __init__(self, reader: LagReader | None = None) -> None:
        self.reader = reader
        self._snapshot: list[GroupPartitionLag] = []
        self._refreshing: asyncio.Future[list[GroupPartitionLag]] | None = None

    async def refresh(self) -> list[GroupPartitionLag]:
        """Read the lag now, joining a refresh already running."""
        if self.reader is None:
            return []
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self.reader())
        self._snapshot = await asyncio.shield(self._refreshing)
        return self._snapshot

    def collect(self) -> Iterator[GaugeMetricFamily]:
        partition_lag = GaugeMetricFamily(
            "goqueue_consumer_group_lag_records",
            "Records between a group's committed offset and the end of the partition.",
            labels=["group", "topic", "partition"],
        )
        partition_seconds = GaugeMetricFamily(
            "goqueue_consumer_group_lag_seconds",
            "Age of the oldest record of the partition the group has not consumed yet.",
            labels=["group", "topic", "partition"],
        )
        for lag in self._snapshot:
            labels = [lag.group, lag.topic, str(lag.partition)]
            if lag.lag is not None:
                partition_lag.add_metric(labels, lag.lag)
            if lag.lag_seconds is not None:
                partition_seconds.add_metric(labels, lag.lag_seconds)
        group_lag = GaugeMetricFamily(
            "goqueue_consumer_group_max_lag_records",
            "A group's largest lag over its partitions, in records.",
            labels=["group"],
        )
        group_seconds = GaugeMetricFamily(
            "goqueue_consumer_group_max_lag_seconds",
            "A group's largest lag over its partitions, in seconds.",
            labels=["group"],
        )
        for group in largest_lags(self._snapshot):
            group_lag.add_metric([group.group], group.max_lag)
            group_seconds.add_metric([group.group], group.max_lag_seconds)
        yield from (partition_lag, partition_seconds, group_lag, group_seconds)


def group_coordinator_lag(groups: GroupCoordinator) -> LagReader:
    """The lag of every group the coordinator serves: each group's committed offsets against
    the logs, the age of the next unconsumed record read from the log by the coordinator."""

    async def read() -> list[GroupPartitionLag]:
        _loading, listed = await groups.list_groups()
        lags: list[GroupPartitionLag] = []
        for group in listed:
            try:
                partitions = await groups.lag(group.group_id)
            except BrokerError:
                continue
            lags.extend(
                GroupPartitionLag(
                    group.group_id,
                    lag.topic,
                    lag.partition,
                    lag.committed_offset,
                    lag.log_end_offset,
                    lag.lag,
                    None if lag.time_lag_ms is None else lag.time_lag_ms / 1000,
                )
                for lag in partitions
            )
        return lags

    return read
