"""Client-side partition assignors of classic consumer groups, as the Java client has them.

The group leader runs the assignor the members agreed on (the first of the leader's list that
every member supports) over every member's subscription and sends each member its share in
SyncGroup. `range` and `roundrobin` hand out exactly what Java's assignors do, so mixed groups
(an SDK consumer next to a Java or librdkafka one) agree; `sticky` keeps members' previous
partitions while balancing (its user data carries the previous assignment and generation, in
Java's StickyAssignorUserDataV1 layout); `cooperative-sticky` is sticky without handing over a
partition in the same rebalance that revokes it (KIP-429).
"""

import struct
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from goqueue.client.metadata import TopicPartition
from goqueue.coordinator.group.assignors import MemberSpec, uniform

Assignment = dict[str, list[TopicPartition]]
"""Member id to the partitions it gets."""


@dataclass(frozen=True, slots=True)
class Subscription:
    """One member's JoinGroup metadata, decoded."""

    topics: tuple[str, ...]
    user_data: bytes | None = None
    owned_partitions: tuple[TopicPartition, ...] = ()
    generation_id: int = -1
    group_instance_id: str | None = None


class Assignor(Protocol):
    """What the group member needs of an assignor."""

    name: str
    cooperative: bool
    """Whether members keep their partitions through a rebalance (KIP-429) rather than
    revoking all of them before joining."""

    def user_data(self, owned: Sequence[TopicPartition], generation: int) -> bytes | None:
        """The user data this member puts in its subscription."""

    def assign(
        self, partitions_per_topic: Mapping[str, int], subscriptions: Mapping[str, Subscription]
    ) -> Assignment:
        """Every member's partitions (members subscribed to nothing that exists get none)."""


def member_order(subscriptions: Mapping[str, Subscription]) -> list[str]:
    """Members as Java's MemberInfo sorts them: static members by instance id first, then the
    others by member id."""
    return sorted(
        subscriptions,
        key=lambda m: (
            subscriptions[m].group_instance_id is None,
            subscriptions[m].group_instance_id or "",
            m,
        ),
    )


class _NoUserData:
    def user_data(self, owned: Sequence[TopicPartition], generation: int) -> bytes | None:
        return None


class RangeAssignor(_NoUserData):
    """Per topic, contiguous ranges to the topic's subscribers in member order; the first
    `count % members` get one partition more."""

    name = "range"
    cooperative = False

    def assign(
        self, partitions_per_topic: Mapping[str, int], subscriptions: Mapping[str, Subscription]
    ) -> Assignment:
        result: Assignment = {m: [] for m in subscriptions}
        ordered = member_order(subscriptions)
        for topic, count in sorted(partitions_per_topic.items()):
            members = [m for m in ordered if topic in subscriptions[m].topics]
            if not members:
                continue
            share, extra = divmod(count, len(members))
            for i, member in enumerate(members):
                start = share * i + min(i, extra)
                size = share + (1 if i < extra else 0)
                result[member].extend(TopicPartition(topic, p) for p in range(start, start + size))
        return result


class RoundRobinAssignor(_NoUserData):
    """Every partition of every topic (topics by name), dealt in turn to the members (in
    member order), skipping members not subscribed to the partition's topic."""

    name = "roundrobin"
    cooperative = False

    def assign(
        self, partitions_per_topic: Mapping[str, int], subscriptions: Mapping[str, Subscription]
    ) -> Assignment:
        result: Assignment = {m: [] for m in subscriptions}
        ordered = member_order(subscriptions)
        if not ordered:
            return result
        turn = 0
        for topic, count in sorted(partitions_per_topic.items()):
            if not any(topic in subscriptions[m].topics for m in ordered):
                continue
            for p in range(count):
                while topic not in subscriptions[ordered[turn % len(ordered)]].topics:
                    turn += 1
                result[ordered[turn % len(ordered)]].append(TopicPartition(topic, p))
                turn += 1
        return result


@dataclass(slots=True)
class _Owned:
    """A member's previous partitions and the generation it owned them in."""

    partitions: list[TopicPartition] = field(default_factory=list)
    generation: int = -1


class StickyAssignor:
    """Balanced like `roundrobin` where subscriptions allow, moving as few partitions as
    possible from their previous owners. When two members claim a partition (one missed a
    rebalance), the claim of the higher generation wins."""

    name = "sticky"
    cooperative = False

    def user_data(self, owned: Sequence[TopicPartition], generation: int) -> bytes | None:
        return encode_sticky_user_data(owned, generation)

    def owned(self, subscription: Subscription) -> _Owned:
        """What the member owned, from its user data (the eager protocol sends no owned
        partitions in the subscription)."""
        if subscription.user_data:
            try:
                partitions, generation = decode_sticky_user_data(subscription.user_data)
            except (struct.error, UnicodeDecodeError):
                return _Owned()
            return _Owned(partitions, generation)
        return _Owned(list(subscription.owned_partitions), subscription.generation_id)

    def assign(
        self, partitions_per_topic: Mapping[str, int], subscriptions: Mapping[str, Subscription]
    ) -> Assignment:
        return sticky_assign(
            partitions_per_topic,
            subscriptions,
            {m: self.owned(s) for m, s in subscriptions.items()},
        )


class CooperativeStickyAssignor(StickyAssignor):
    """`sticky` for cooperative rebalancing: a partition moving from one member to another
    is left out of this round (its owner revokes it, rejoins, and the next round gives it to
    the new owner)."""

    name = "cooperative-sticky"
    cooperative = True

    def user_data(self, owned: Sequence[TopicPartition], generation: int) -> bytes | None:
        return None

    def owned(self, subscription: Subscription) -> _Owned:
        return _Owned(list(subscription.owned_partitions), subscription.generation_id)

    def assign(
        self, partitions_per_topic: Mapping[str, int], subscriptions: Mapping[str, Subscription]
    ) -> Assignment:
        assignment = super().assign(partitions_per_topic, subscriptions)
        revoked = {
            tp
            for member, s in subscriptions.items()
            for tp in set(s.owned_partitions).difference(assignment[member])
        }
        for member, partitions in assignment.items():
            owned = set(subscriptions[member].owned_partitions)
            assignment[member] = [tp for tp in partitions if tp in owned or tp not in revoked]
        return assignment


def sticky_assign(
    partitions_per_topic: Mapping[str, int],
    subscriptions: Mapping[str, Subscription],
    owned: Mapping[str, _Owned],
) -> Assignment:
    """Resolve conflicting claims by generation, then balance with the broker's `uniform`
    algorithm (the same one KIP-848 groups use), which keeps valid previous owners."""
    claims: dict[TopicPartition, tuple[int, str]] = {}
    for member in member_order(subscriptions):
        for tp in owned[member].partitions:
            generation = owned[member].generation
            if tp not in claims or generation > claims[tp][0]:
                claims[tp] = (generation, member)
    ids = {topic: uuid.uuid5(uuid.NAMESPACE_URL, topic) for topic in partitions_per_topic}
    names = {topic_id: topic for topic, topic_id in ids.items()}
    current: dict[str, dict[uuid.UUID, set[int]]] = {m: {} for m in subscriptions}
    for tp, (_generation, member) in claims.items():
        if tp.topic in ids:
            current[member].setdefault(ids[tp.topic], set()).add(tp.partition)
    specs = {
        member: MemberSpec(
            topics=frozenset(ids[t] for t in s.topics if t in ids),
            current={topic_id: frozenset(ps) for topic_id, ps in current[member].items()},
        )
        for member, s in subscriptions.items()
    }
    counts = {ids[topic]: count for topic, count in partitions_per_topic.items()}
    return {
        member: sorted(
            TopicPartition(names[topic_id], p) for topic_id, ps in parts.items() for p in ps
        )
        for member, parts in uniform(specs, counts).items()
    }


_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")


def encode_sticky_user_data(owned: Iterable[TopicPartition], generation: int) -> bytes:
    """Java's StickyAssignorUserDataV1: [topic (int16 string), [partition int32]] then the
    generation as int32."""
    by_topic: dict[str, list[int]] = {}
    for tp in owned:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    out = bytearray(_I32.pack(len(by_topic)))
    for topic, parts in sorted(by_topic.items()):
        name = topic.encode()
        out += _I16.pack(len(name)) + name + _I32.pack(len(parts))
        out += b"".join(_I32.pack(p) for p in sorted(parts))
    out += _I32.pack(generation)
    return bytes(out)


def decode_sticky_user_data(data: bytes) -> tuple[list[TopicPartition], int]:
    """The previous assignment and generation of StickyAssignorUserData (V0, without the
    generation, reads as generation -1); raises struct.error on truncated bytes."""
    pos = 0

    def read(fmt: struct.Struct) -> int:
        nonlocal pos
        (value,) = fmt.unpack_from(data, pos)
        pos += fmt.size
        return int(value)

    partitions: list[TopicPartition] = []
    for _ in range(read(_I32)):
        size = read(_I16)
        topic = data[pos : pos + size].decode()
        pos += size
        partitions.extend(TopicPartition(topic, read(_I32)) for _ in range(read(_I32)))
    generation = read(_I32) if pos + _I32.size <= len(data) else -1
    return partitions, generation


ASSIGNORS: Mapping[str, type[Assignor]] = {
    a.name: a
    for a in (RangeAssignor, RoundRobinAssignor, StickyAssignor, CooperativeStickyAssignor)
}


def assignor_for(name: str) -> Assignor:
    """The assignor Kafka's clients call `name`; ValueError for an unknown one."""
    try:
        return ASSIGNORS[name]()
    except KeyError:
        known = ", ".join(ASSIGNORS)
        raise ValueError(f"unknown partition assignor {name!r}: expected one of {known}") from None
