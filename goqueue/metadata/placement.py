"""Replica placement: Kafka's round robin, rack-aware when every broker declares a rack.

The first replica of successive partitions walks the brokers from a random start, so leaders
spread evenly; the other replicas follow at a shift that grows each time the walk wraps, so
the followers of one broker's leaders are spread too. With racks, the brokers are listed
alternating between racks and a replica goes to a rack without one until every rack has one
(Kafka's AdminUtils.assignReplicasToBrokers). Pure: the caller passes the random generator.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from kio.schema.errors import ErrorCode

from goqueue.metadata.errors import MetadataError
from goqueue.metadata.image import BrokerInfo


class PlacementError(MetadataError):
    error_code = ErrorCode.invalid_replication_factor


def assign_replicas(
    brokers: Sequence[BrokerInfo],
    partitions: int,
    replication_factor: int,
    rng: random.Random,
    *,
    start_partition: int = 0,
    start_index: int = -1,
) -> list[tuple[int, ...]]:
    """Replica lists of partitions `start_partition ..` (`partitions` of them) over `brokers`
    (the unfenced ones); `start_index` >= 0 fixes where the walk starts (Kafka uses the
    first replica of partition 0 when partitions are added)."""
    if replication_factor > len(brokers):
        raise PlacementError(
            f"Replication factor: {replication_factor} larger than available brokers: "
            f"{len(brokers)}."
        )
    if replication_factor < 1:
        raise PlacementError("Replication factor must be larger than 0.")
    racks = {b.node_id: b.rack for b in brokers}
    rack_aware = all(racks.values())
    ordered = _rack_alternated(brokers) if rack_aware else sorted(b.node_id for b in brokers)
    count = len(ordered)
    start = start_index if start_index >= 0 else rng.randrange(count)
    shift = start_index if start_index >= 0 else rng.randrange(count)
    rack_count = len(set(racks.values())) if rack_aware else 1
    result = []
    for partition in range(start_partition, start_partition + partitions):
        if partition > 0 and partition % count == 0:
            shift += 1
        first = (partition + start) % count
        replicas = [ordered[first]]
        used_racks = {racks[ordered[first]]}
        k = 0
        while len(replicas) < replication_factor:
            node = ordered[_replica_index(first, shift * rack_count, k, count)]
            k += 1
            rack_ok = (
                not rack_aware or racks[node] not in used_racks or len(used_racks) == rack_count
            )
            if rack_ok and node not in replicas:
                replicas.append(node)
                used_racks.add(racks[node])
        result.append(tuple(replicas))
    return result


def start_index_of(brokers: Sequence[BrokerInfo], first_replica: int) -> int:
    """Where Kafka resumes the walk when partitions are added: at partition 0's leader."""
    ordered = (
        _rack_alternated(brokers)
        if all(b.rack for b in brokers)
        else sorted(b.node_id for b in brokers)
    )
    return ordered.index(first_replica) if first_replica in ordered else -1


def _replica_index(first: int, shift: int, replica: int, count: int) -> int:
    return (first + 1 + (shift + replica) % (count - 1)) % count


def _rack_alternated(brokers: Sequence[BrokerInfo]) -> list[int]:
    """Brokers taking one from each rack in turn (racks and brokers in sorted order)."""
    by_rack: dict[str, list[int]] = {}
    for broker in sorted(brokers, key=lambda b: b.node_id):
        by_rack.setdefault(broker.rack or "", []).append(broker.node_id)
    queues = [by_rack[rack] for rack in sorted(by_rack)]
    result: list[int] = []
    while len(result) < len(brokers):
        for queue in queues:
            if queue:
                result.append(queue.pop(0))
    return result
