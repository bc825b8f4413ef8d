"""Hot-path instruments: plain counters updated on the event loop, exported at scrape time.

prometheus-client's own types take a lock on every update so that any thread may use them. The
request path runs on the broker's single event-loop thread, so its counters need no lock: an
observation is a `bisect` and two additions. The collector that reads them runs on the same
loop (the `/metrics` handler), so it always sees a consistent value. Metrics updated from other
threads (fsync timings) use prometheus-client's types instead.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
"""Request latency buckets: a produce to the page cache takes well under a millisecond, a fetch
waiting for data up to its max.wait (500 ms by default), a slow disk seconds."""


class LoopHistogram:
    """A Prometheus histogram for one thread: counts per bucket (the last is +Inf) and a sum."""

    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS_S) -> None:
        self._bounds = tuple(bounds)
        self.counts = [0] * (len(self._bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count `value` in the first bucket whose upper bound it does not exceed."""
        self.counts[bisect_left(self._bounds, value)] += 1
        self.sum += value

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative (le, count) pairs as Prometheus expects them, ending with +Inf."""
        result = []
        total = 0
        for bound, count in zip((*self._bounds, float("inf")), self.counts, strict=True):
            total += count
            result.append((_le(bound), float(total)))
        return result


def _le(bound: float) -> str:
    """A bucket bound as Prometheus writes it: `+Inf`, `0.005`, `1.0`."""
    return "+Inf" if bound == float("inf") else repr(float(bound))
