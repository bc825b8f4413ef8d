"""The metrics of one broker node: one registry, scraped as Prometheus text at `/metrics`.

Conventions for every metric added here or later:

- names start with `goqueue_` and end with their unit (`_seconds`, `_bytes`, `_records`) and,
  for counters, `_total`;
- labels take values from bounded sets (API names, error codes, topics, partitions, groups):
  never a client id, a peer address or anything a client can make up without limit;
- the request path updates plain counters held by the objects it already looks up
  (`instruments.py`); everything else is computed at scrape time from in-memory state
  (`collectors.py`), never by reading logs.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from goqueue.observability.lag import LagCollector
from goqueue.observability.requests import RequestObserver
from goqueue.observability.traffic import Traffic

FSYNC_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
LOOP_LAG_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


class BrokerMetrics:
    """Every instrument of a node. `enabled` false turns off the request-path counters
    (requests and per-topic traffic) to measure what they cost; the rest stays."""

    def __init__(self, *, enabled: bool = True, slow_request_ms: int = -1) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]
        """No `_created` series: they double the output and no dashboard here reads them."""
        self.registry = CollectorRegistry()
        self.requests = RequestObserver(enabled=enabled, slow_ms=slow_request_ms)
        self.traffic: Traffic | None = Traffic() if enabled else None
        self.lag = LagCollector()
        self.connections = Gauge(
            "goqueue_connections", "Open Kafka client connections.", registry=self.registry
        )
        self.connections_accepted = Counter(
            "goqueue_connections_accepted",
            "Kafka client connections accepted.",
            registry=self.registry,
        )
        self.fsync_seconds = Histogram(
            "goqueue_log_fsync_duration_seconds",
            "Time to fsync one partition log (its segments, indexes and directory).",
            buckets=FSYNC_BUCKETS_S,
            registry=self.registry,
        )
        self.loop_lag_seconds = Histogram(
            "goqueue_event_loop_lag_seconds",
            "How late the event loop ran a callback scheduled for a known time.",
            buckets=LOOP_LAG_BUCKETS_S,
            registry=self.registry,
        )
        Info("goqueue_build", "The running Go-Queue version.", registry=self.registry).info(
            {"version": package_version()}
        )
        ProcessCollector(registry=self.registry)
        self.registry.register(_RequestCollector(self.requests, self.traffic))
        self.registry.register(self.lag)

    def register(self, collector: Collector) -> None:
        self.registry.register(collector)

    async def exposition(self) -> bytes:
        """The Prometheus text of every metric, with consumer lag refreshed first."""
        await self.lag.refresh()
        return generate_latest(self.registry)


def package_version() -> str:
    """The installed version of the goqueue package."""
    try:
        return version("goqueue")
    except PackageNotFoundError:
        return "unknown"


class _RequestCollector(Collector):
    """Exports the request-path counters, which are plain integers (see instruments.py)."""

    def __init__(self, requests: RequestObserver, traffic: Traffic | None) -> None:
        self._requests = requests
        self._traffic = traffic

    def collect(self) -> Iterator[Metric]:
        count = CounterMetricFamily(
            "goqueue_requests", "Kafka requests answered.", labels=["api", "version"]
        )
        for stats in self._requests.versions():
            count.add_metric([stats.api.name, str(stats.version)], stats.count)
        latency = HistogramMetricFamily(
            "goqueue_request_duration_seconds",
            "Time from reading a request to writing its response (a fetch includes its wait).",
            labels=["api"],
        )
        errors = CounterMetricFamily(
            "goqueue_request_errors",
            "Error codes in responses (top level, per topic and per partition).",
            labels=["api", "error"],
        )
        slow = CounterMetricFamily(
            "goqueue_requests_slow",
            "Requests slower than request.slow.log.ms (beyond a fetch's wait), each logged.",
            labels=["api"],
        )
        for api in self._requests.apis():
            latency.add_metric([api.name], api.latency.buckets(), api.latency.sum)
            for code, value in api.errors.items():
                errors.add_metric([api.name, code.name], value)
            slow.add_metric([api.name], api.slow)
        yield from (count, latency, errors, slow)
        yield from _traffic_families(self._traffic)


def _traffic_families(traffic: Traffic | None) -> Iterator[Metric]:
    families = {
        field: CounterMetricFamily(f"goqueue_topic_{field}", doc, labels=["topic"])
        for field, doc in (
            ("bytes_in", "Bytes of record batches produced to the topic."),
            ("records_in", "Records produced to the topic."),
            ("bytes_out", "Bytes of record batches sent to consumers of the topic."),
            ("records_out", "Records (offsets) sent to consumers of the topic."),
        )
    }
    for topic, totals in traffic.items() if traffic is not None else ():
        for field, family in families.items():
            family.add_metric([topic], getattr(totals, field))
    yield from families.values()
