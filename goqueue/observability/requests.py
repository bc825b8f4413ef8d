"""Per-request metrics and the slow-request log, fed by the Kafka connection.

The request path does one dict lookup per request, keyed by (API key, version), to reach
counters bound to that API and version; the first request of a kind creates them. Latency and
errors are kept per API (not per version) to bound the number of series.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from kio.schema.errors import ErrorCode

from goqueue.observability.error_codes import count_errors
from goqueue.observability.instruments import LoopHistogram
from goqueue.observability.logs import fields

logger = logging.getLogger("goqueue.requests")


class ApiStats:
    """One API's latency histogram, error counts by code and slow-request count."""

    __slots__ = ("errors", "latency", "name", "slow")

    def __init__(self, name: str) -> None:
        self.name = name
        self.latency = LoopHistogram()
        self.errors: dict[ErrorCode, int] = {}
        self.slow = 0

    def count_error(self, code: ErrorCode) -> None:
        self.errors[code] = self.errors.get(code, 0) + 1


class VersionStats:
    """Requests of one API version, and the stats of its API."""

    __slots__ = ("api", "count", "version")

    def __init__(self, api: ApiStats, version: int) -> None:
        self.api = api
        self.version = version
        self.count = 0


class RequestObserver:
    """Counts every answered request and logs those slower than the threshold.

    With `enabled` false only the slow log runs: that is the baseline the metrics overhead
    benchmark compares against.
    """

    def __init__(self, *, enabled: bool, slow_ms: int) -> None:
        self._enabled = enabled
        self._slow_s = slow_ms / 1000 if slow_ms >= 0 else float("inf")
        self._versions: dict[tuple[int, int], VersionStats] = {}
        self._apis: dict[str, ApiStats] = {}

    def finished(
        self, api: str, key: int, version: int, request: Any, response: Any, started: float
    ) -> None:
        """Account for a request answered `started` (a `time.perf_counter()`) ago; `response`
        is the response body, None when none was sent (Produce with acks=0)."""
        elapsed = time.perf_counter() - started
        if self._enabled:
            stats = self._versions.get((key, version))
            if stats is None:
                stats = self._add(api, key, version)
            stats.count += 1
            stats.api.latency.observe(elapsed)
            if response is not None:
                count_errors(response, stats.api.count_error)
        if elapsed > self._slow_s:
            self._check_slow(api, version, request, elapsed)

    def _add(self, api: str, key: int, version: int) -> VersionStats:
        api_stats = self._apis.get(api)
        if api_stats is None:
            api_stats = self._apis[api] = ApiStats(api)
        stats = self._versions[(key, version)] = VersionStats(api_stats, version)
        return stats

    def _check_slow(self, api: str, version: int, request: Any, elapsed: float) -> None:
        """A fetch may wait up to its max.wait for data by design: only time beyond it is slow."""
        max_wait = getattr(request, "max_wait", None)
        waited = max_wait.total_seconds() if max_wait is not None else 0.0
        if elapsed - waited <= self._slow_s:
            return
        api_stats = self._apis.get(api)
        if api_stats is not None:
            api_stats.slow += 1
        logger.warning(
            "slow request: %s v%d took %.0f ms",
            api,
            version,
            elapsed * 1000,
            extra=fields(duration_ms=round(elapsed * 1000, 1)),
        )

    def versions(self) -> Iterator[VersionStats]:
        return iter(list(self._versions.values()))

    def apis(self) -> Iterator[ApiStats]:
        return iter(list(self._apis.values()))
