"""Share group metrics: records by state, what the groups finished (counters that survive
restarts, being persisted with the share partitions), members and the age of the oldest
unacknowledged record, computed at scrape time from the share coordinator's in-memory state
(never by reading logs)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from goqueue.coordinator.share.messages import ShareGroupStats

STATES = ("available", "acquired", "backing_off", "dead_lettering")
TOTALS = (
    ("acknowledged", "Records the group acknowledged (accepted)."),
    ("archived", "Records the group archived: gaps, records gone from the log, and dead letters."),
    ("dead_lettered", "Records the group copied to its dead-letter topic."),
)


class ShareGroupCollector(Collector):
    def __init__(self, stats: Callable[[], list[ShareGroupStats]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        groups = self._stats()
        members = GaugeMetricFamily(
            "goqueue_share_group_members", "Members of a share group.", labels=["group"]
        )
        records = GaugeMetricFamily(
            "goqueue_share_group_records",
            "Records of a share partition by state: available (including those the group has "
            "not read yet), acquired, backing_off (released, waiting for their retry backoff), "
            "dead_lettering (being copied to the dead-letter topic).",
            labels=["group", "topic", "partition", "state"],
        )
        in_flight = GaugeMetricFamily(
            "goqueue_share_group_in_flight_records",
            "Records of a share group delivered and not yet finished: acquired, backing off "
            "or being dead-lettered.",
            labels=["group"],
        )
        oldest = GaugeMetricFamily(
            "goqueue_share_group_oldest_unacknowledged_age_seconds",
            "Age of the oldest in-flight record of a share group.",
            labels=["group"],
        )
        totals = {
            name: CounterMetricFamily(
                f"goqueue_share_group_{name}_records", doc, labels=["group", "topic", "partition"]
            )
            for name, doc in TOTALS
        }
        for group in groups:
            members.add_metric([group.group_id], group.members)
            in_flight.add_metric([group.group_id], group.total("in_flight"))
            if group.oldest_unacknowledged_age_ms is not None:
                oldest.add_metric([group.group_id], group.oldest_unacknowledged_age_ms / 1000)
            for p in group.partitions:
                labels = [group.group_id, p.topic, str(p.partition)]
                for state in STATES:
                    records.add_metric([*labels, state], getattr(p, state))
                for name, family in totals.items():
                    family.add_metric(labels, getattr(p, name))
        yield from (members, records, in_flight, oldest, *totals.values())
