"""Server-side assignors of KIP-848 consumer groups: `uniform` (the default) and `range`.

An assignor maps each member to the partitions it should own, from the members'
subscriptions (by topic id) and the partition counts. It runs only when the group epoch
moves (a member joins, leaves or changes its subscription, or a subscribed topic changes).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from goqueue.coordinator.group.records import Assignment

Partition = tuple[uuid.UUID, int]


@dataclass(frozen=True, slots=True)
class MemberSpec:
    topics: frozenset[uuid.UUID]
    """The subscribed topics that exist."""
    current: Assignment
    """The member's previous target assignment, which `uniform` keeps where it can."""


Assignor = Callable[[Mapping[str, MemberSpec], Mapping[uuid.UUID, int]], dict[str, Assignment]]


def uniform(
    members: Mapping[str, MemberSpec], partitions: Mapping[uuid.UUID, int]
) -> dict[str, Assignment]:
    """Spread the partitions as evenly as the subscriptions allow while moving as few as
    possible: members keep their previous partitions, the unowned ones go to the eligible
    member owning the fewest, then partitions move from the most to the least loaded eligible
    member until no two eligible members differ by more than one."""
    owner: dict[Partition, str] = {}
    load: dict[str, set[Partition]] = {member_id: set() for member_id in members}
    for member_id, spec in sorted(members.items()):
        for topic_id, parts in spec.current.items():
            if topic_id not in spec.topics:
                continue
            for p in parts:
                partition = (topic_id, p)
                if p < partitions.get(topic_id, 0) and partition not in owner:
                    owner[partition] = member_id
                    load[member_id].add(partition)
    eligible = {
        topic_id: sorted(m for m, spec in members.items() if topic_id in spec.topics)
        for topic_id in partitions
    }
    unowned = [
        (topic_id, p)
        for topic_id, count in sorted(partitions.items())
        for p in range(count)
        if (topic_id, p) not in owner and eligible[topic_id]
    ]
    unowned.sort(key=lambda partition: len(eligible[partition[0]]))
    for partition in unowned:
        chosen = min(eligible[partition[0]], key=lambda m: (len(load[m]), m))
        owner[partition] = chosen
        load[chosen].add(partition)
    moved = True
    while moved:
        moved = False
        for partition in sorted(owner):
            current = owner[partition]
            target = min(eligible[partition[0]], key=lambda m: (len(load[m]), m))
            if len(load[target]) + 1 < len(load[current]):
                load[current].discard(partition)
                load[target].add(partition)
                owner[partition] = target
                moved = True
    return {member_id: _grouped(parts) for member_id, parts in load.items()}


def range_assignor(
    members: Mapping[str, MemberSpec], partitions: Mapping[uuid.UUID, int]
) -> dict[str, Assignment]:
    """For each topic, contiguous ranges of partitions to its subscribers in member id
    order, the first ones getting one more when the count does not divide evenly: members
    subscribed to the same topics get the same partition numbers of each (co-partitioning)."""
    load: dict[str, set[Partition]] = {member_id: set() for member_id in members}
    for topic_id, count in sorted(partitions.items()):
        subscribers = sorted(m for m, spec in members.items() if topic_id in spec.topics)
        if not subscribers:
            continue
        share, extra = divmod(count, len(subscribers))
        start = 0
        for i, member_id in enumerate(subscribers):
            size = share + (1 if i < extra else 0)
            load[member_id].update((topic_id, p) for p in range(start, start + size))
            start += size
    return {member_id: _grouped(parts) for member_id, parts in load.items()}


def _grouped(parts: set[Partition]) -> Assignment:
    grouped: dict[uuid.UUID, set[int]] = {}
    for topic_id, p in parts:
        grouped.setdefault(topic_id, set()).add(p)
    return {topic_id: frozenset(ps) for topic_id, ps in grouped.items()}


ASSIGNORS: Mapping[str, Assignor] = {"uniform": uniform, "range": range_assignor}
