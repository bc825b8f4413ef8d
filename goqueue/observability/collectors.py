"""Broker state read at scrape time: partitions, their logs, cluster health and disk space.

Every value here is already in memory (a log's size is the sum of its segments' tracked sizes,
its offsets are fields), so a scrape costs a walk over the partitions, not over their data.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from goqueue.broker.broker import Broker
from goqueue.broker.errors import BrokerError
from goqueue.broker.partition import Partition
from goqueue.config.catalog import CATALOG
from goqueue.metadata.image import TopicInfo

_PARTITION_LABELS = ["topic", "partition"]


@dataclass(frozen=True, slots=True)
class PartitionState:
    """One partition of the metadata image as this node sees it; `partition` is None when
    the node has no log for it (offline)."""

    topic: TopicInfo
    index: int
    partition: Partition | None
    in_sync_replicas: int
    min_insync_replicas: int

    @property
    def under_replicated(self) -> bool:
        return self.in_sync_replicas < self.topic.replication_factor

    @property
    def under_min_isr(self) -> bool:
        return self.in_sync_replicas < self.min_insync_replicas


def partition_states(broker: Broker) -> Iterator[PartitionState]:
    """Every partition the metadata names. A single node leads all of them, with itself as
    the only in-sync replica; the replication issue replaces this with the real ISR."""
    default_min_isr = CATALOG["min.insync.replicas"].default_for(broker.settings)
    for info in broker.image.topics.values():
        min_isr = int(info.configs.get("min.insync.replicas") or default_min_isr)
        for index in range(info.partitions):
            try:
                partition: Partition | None = broker.partition(info.name, index)
            except BrokerError:
                partition = None
            isr = 1 if partition is not None else 0
            yield PartitionState(info, index, partition, isr, min_isr)


class BrokerCollector(Collector):
    """Per-partition log gauges and the node's view of cluster health."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    def collect(self) -> Iterator[Metric]:
        families = {
            name: GaugeMetricFamily(f"goqueue_partition_{name}", doc, labels=_PARTITION_LABELS)
            for name, doc in (
                ("log_size_bytes", "Bytes in the partition's segment files."),
                ("log_segments", "Segment files of the partition."),
                ("log_start_offset", "First offset still in the partition's log."),
                ("log_end_offset", "Offset the next record appended to the partition gets."),
                ("high_watermark", "Offset up to which records are committed and readable."),
            )
        }
        counts = {"total": 0, "offline": 0, "under_replicated": 0, "under_min_isr": 0}
        for state in partition_states(self._broker):
            counts["under_replicated"] += state.under_replicated
            counts["under_min_isr"] += state.under_min_isr
            partition = state.partition
            if partition is None:
                counts["offline"] += 1
                continue
            counts["total"] += 1
            log = partition.log
            labels = [state.topic.name, str(state.index)]
            families["log_size_bytes"].add_metric(labels, log.size_bytes)
            families["log_segments"].add_metric(labels, log.segment_count)
            families["log_start_offset"].add_metric(labels, log.log_start_offset)
            families["log_end_offset"].add_metric(labels, log.log_end_offset)
            families["high_watermark"].add_metric(labels, partition.high_watermark)
        yield from families.values()
        yield _gauge("goqueue_partitions", "Partitions this node leads.", counts["total"])
        yield _gauge(
            "goqueue_partitions_offline",
            "Partitions without a live leader (here: no log on this node).",
            counts["offline"],
        )
        yield _gauge(
            "goqueue_partitions_under_replicated",
            "Partitions whose in-sync replicas are fewer than their replicas.",
            counts["under_replicated"],
        )
        yield _gauge(
            "goqueue_partitions_under_min_isr",
            "Partitions whose in-sync replicas are fewer than min.insync.replicas: "
            "acks=all produce to them fails.",
            counts["under_min_isr"],
        )
        yield from self._cluster()
        yield from self._disk()

    def _cluster(self) -> Iterator[Metric]:
        image = self._broker.image
        node_id = self._broker.settings.node_id
        yield _gauge(
            "goqueue_controller_active",
            "1 if this node is the active controller (the metadata quorum's leader).",
            int(image.controller_id == node_id),
        )
        yield _gauge("goqueue_brokers", "Brokers registered in the cluster.", len(image.brokers))
        yield _gauge("goqueue_topics", "Topics in the cluster.", len(image.topics))
        yield _gauge(
            "goqueue_metadata_offset",
            "Metadata records applied by this node.",
            image.offset,
        )

    def _disk(self) -> Iterator[Metric]:
        try:
            stats = os.statvfs(self._broker.settings.data_dir)
        except OSError:
            return
        yield _gauge(
            "goqueue_data_dir_free_bytes",
            "Bytes available to the broker on the data directory's filesystem.",
            stats.f_bavail * stats.f_frsize,
        )
        yield _gauge(
            "goqueue_data_dir_capacity_bytes",
            "Size of the data directory's filesystem.",
            stats.f_blocks * stats.f_frsize,
        )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)
