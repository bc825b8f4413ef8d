"""Share groups (KIP-932): members, the server-side assignment and the share partitions.

Unlike a consumer group, a share group needs no revocation: members never own records by
partition, so a new assignment applies at once. Partitions are spread with the consumer
groups' `uniform` assignor; a member that gets nothing because there are more members than
partitions then shares the least shared partition it subscribes to, so every member fetches
and many members consume one partition concurrently.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from goqueue.coordinator.group.assignors import MemberSpec, uniform
from goqueue.coordinator.share.partition import SharePartition
from goqueue.coordinator.share.records import Assignment

EMPTY = "Empty"
STABLE = "Stable"
ASSIGNOR = "simple"
TopicPartition = tuple[uuid.UUID, int]


@dataclass(slots=True)
class ShareMember:
    member_id: str
    member_epoch: int
    subscribed_topics: tuple[str, ...]
    assignment: Assignment
    client_id: str = ""
    client_host: str = ""
    rack_id: str | None = None


@dataclass(slots=True)
class ShareGroup:
    group_id: str
    epoch: int = 0
    members: dict[str, ShareMember] = field(default_factory=dict)
    partitions: dict[TopicPartition, SharePartition] = field(default_factory=dict)
    deltas: dict[TopicPartition, int] = field(default_factory=dict)
    """Deltas written per share partition since its last snapshot."""

    @property
    def state(self) -> str:
        return STABLE if self.members else EMPTY

    def subscribed_topics(self) -> set[str]:
        return {topic for m in self.members.values() for topic in m.subscribed_topics}


def share_assignment(
    members: Mapping[str, ShareMember],
    partitions: Mapping[uuid.UUID, int],
    topic_ids: Mapping[str, uuid.UUID],
) -> dict[str, Assignment]:
    """Every member's partitions: `uniform` first, then members left without any share the
    least shared partition among their subscriptions."""
    specs = {
        member_id: MemberSpec(
            frozenset(topic_ids[t] for t in m.subscribed_topics if t in topic_ids),
            m.assignment,
        )
        for member_id, m in members.items()
    }
    spread = uniform(specs, partitions)
    holders: Counter[TopicPartition] = Counter(
        (topic_id, p) for a in spread.values() for topic_id, ps in a.items() for p in ps
    )
    result: dict[str, Assignment] = {}
    for member_id in sorted(specs):
        assignment = {t: ps for t, ps in spread.get(member_id, {}).items() if ps}
        choices = [(t, p) for t in sorted(specs[member_id].topics) for p in range(partitions[t])]
        if not assignment and choices:
            chosen = min(choices, key=lambda tp: (holders[tp], tp))
            holders[chosen] += 1
            assignment = {chosen[0]: frozenset({chosen[1]})}
        result[member_id] = assignment
    return result
