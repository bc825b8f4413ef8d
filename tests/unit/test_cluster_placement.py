"""Replica placement: Kafka's round robin and its rack-aware variant, deterministic here."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from goqueue.metadata.image import BrokerInfo
from goqueue.metadata.placement import PlacementError, assign_replicas, start_index_of


def brokers(count: int, racks: list[str] | None = None) -> list[BrokerInfo]:
    return [
        BrokerInfo(node, "127.0.0.1", 9000 + node, racks[node] if racks else None)
        for node in range(count)
    ]


def test_round_robin_matches_kafkas_assignment() -> None:
    """AdminUtilsTest.testReplicaAssignment: 5 brokers, 10 partitions, 3 replicas, start 0."""
    assigned = assign_replicas(brokers(5), 10, 3, random.Random(), start_index=0)
    assert assigned == [
        (0, 1, 2),
        (1, 2, 3),
        (2, 3, 4),
        (3, 4, 0),
        (4, 0, 1),
        (0, 2, 3),
        (1, 3, 4),
        (2, 4, 0),
        (3, 0, 1),
        (4, 1, 2),
    ]


def test_rack_aware_placement_puts_replicas_on_different_racks_and_spreads_leaders() -> None:
    racks = ["rack1", "rack2", "rack2", "rack3", "rack3", "rack1"]
    assigned = assign_replicas(brokers(6, racks), 12, 3, random.Random(1))
    for replicas in assigned:
        assert len({racks[node] for node in replicas}) == 3, replicas
        assert len(set(replicas)) == 3
    assert set(Counter(replicas[0] for replicas in assigned).values()) == {2}


def test_more_replicas_than_racks_fill_every_rack_first() -> None:
    racks = ["a", "a", "b", "b"]
    for replicas in assign_replicas(brokers(4, racks), 8, 3, random.Random(2)):
        assert {racks[node] for node in replicas} == {"a", "b"}


def test_replication_factor_above_the_live_brokers_is_refused_in_kafkas_words() -> None:
    with pytest.raises(
        PlacementError, match="Replication factor: 4 larger than available brokers: 3"
    ):
        assign_replicas(brokers(3), 1, 4, random.Random())


def test_added_partitions_continue_the_walk_from_partition_zeros_leader() -> None:
    first = assign_replicas(brokers(3), 3, 2, random.Random(), start_index=1)
    start = start_index_of(brokers(3), first[0][0])
    more = assign_replicas(brokers(3), 3, 2, random.Random(), start_partition=3, start_index=start)
    assert Counter(replicas[0] for replicas in first + more) == {0: 2, 1: 2, 2: 2}
