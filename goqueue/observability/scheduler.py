"""Metrics of the delayed-message scheduler, computed at scrape time from its shards."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

LATENESS_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class SchedulerStats(Protocol):
    def pending_count(self) -> int: ...

    def due_count(self) -> int: ...


class SchedulerCollector(Collector):
    """Pending and due-but-undelivered delayed messages (the lateness histogram is observed
    by the scheduler as it delivers)."""

    def __init__(self, scheduler: SchedulerStats) -> None:
        self._scheduler = scheduler

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "goqueue_delayed_pending_records",
            "Delayed messages parked and not yet delivered or cancelled (memory and disk).",
            value=self._scheduler.pending_count(),
        )
        yield GaugeMetricFamily(
            "goqueue_delayed_due_records",
            "Delayed messages whose time has come but that are not yet appended to their topic.",
            value=self._scheduler.due_count(),
        )
