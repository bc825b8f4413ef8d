"""Client-side assignors: Java's range and roundrobin layouts, sticky balance and stickiness,
cooperative-sticky never handing over a partition in the round that revokes it, and the
consumer protocol bytes."""

from __future__ import annotations

import itertools

import pytest

from goqueue.client.assignors import (
    Assignment,
    CooperativeStickyAssignor,
    RangeAssignor,
    RoundRobinAssignor,
    StickyAssignor,
    Subscription,
    assignor_for,
    decode_sticky_user_data,
    encode_sticky_user_data,
)
from goqueue.client.metadata import TopicPartition as TP
from goqueue.coordinator.group.consumer_protocol import (
    assigned_partitions,
    decode_subscription,
    encode_assignment,
    encode_subscription,
)


def subs(*members: str, topics: tuple[str, ...] = ("t",)) -> dict[str, Subscription]:
    return {m: Subscription(topics) for m in members}


def owned_once(assignment: Assignment, partitions: dict[str, int]) -> bool:
    flat = [tp for parts in assignment.values() for tp in parts]
    expected = {TP(t, p) for t, n in partitions.items() for p in range(n)}
    return len(flat) == len(set(flat)) and set(flat) == expected


def test_range_gives_contiguous_ranges_the_first_members_one_more() -> None:
    result = RangeAssignor().assign({"t": 7, "u": 2}, subs("c", "a", "b", topics=("t", "u")))
    assert result == {
        "a": [TP("t", 0), TP("t", 1), TP("t", 2), TP("u", 0)],
        "b": [TP("t", 3), TP("t", 4), TP("u", 1)],
        "c": [TP("t", 5), TP("t", 6)],
    }


def test_range_orders_static_members_first_by_instance_id() -> None:
    subscriptions = {
        "a": Subscription(("t",)),
        "z": Subscription(("t",), group_instance_id="i1"),
    }
    result = RangeAssignor().assign({"t": 2}, subscriptions)
    assert result == {"z": [TP("t", 0)], "a": [TP("t", 1)]}


def test_roundrobin_deals_partitions_in_turn_skipping_unsubscribed_members() -> None:
    subscriptions = {"a": Subscription(("t", "u")), "b": Subscription(("u",))}
    result = RoundRobinAssignor().assign({"t": 2, "u": 3}, subscriptions)
    assert result == {
        "a": [TP("t", 0), TP("t", 1), TP("u", 1)],
        "b": [TP("u", 0), TP("u", 2)],
    }


@pytest.mark.parametrize("name", ["range", "roundrobin", "sticky", "cooperative-sticky"])
def test_every_assignor_owns_every_partition_exactly_once(name: str) -> None:
    partitions = {"t": 6, "u": 5}
    result = assignor_for(name).assign(partitions, subs("a", "b", "c", topics=("t", "u")))
    assert owned_once(result, partitions)
    assert all(result.values())


def test_unknown_assignor_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown partition assignor"):
        assignor_for("nope")


def test_sticky_keeps_previous_owners_when_a_member_joins() -> None:
    assignor = StickyAssignor()
    first = assignor.assign({"t": 6}, subs("a", "b"))
    subscriptions = {m: Subscription(("t",), assignor.user_data(first[m], 1)) for m in ("a", "b")}
    subscriptions["c"] = Subscription(("t",))
    second = assignor.assign({"t": 6}, subscriptions)
    assert owned_once(second, {"t": 6})
    assert sorted(len(p) for p in second.values()) == [2, 2, 2]
    for member in ("a", "b"):
        assert set(second[member]) <= set(first[member])


def test_sticky_conflicting_claims_go_to_the_higher_generation() -> None:
    assignor = StickyAssignor()
    subscriptions = {
        "a": Subscription(("t",), assignor.user_data([TP("t", 0)], 3)),
        "b": Subscription(("t",), assignor.user_data([TP("t", 0)], 4)),
    }
    result = assignor.assign({"t": 2}, subscriptions)
    assert result == {"a": [TP("t", 1)], "b": [TP("t", 0)]}


def test_cooperative_sticky_holds_back_partitions_changing_owner() -> None:
    assignor = CooperativeStickyAssignor()
    everything = [TP("t", p) for p in range(4)]
    subscriptions = {
        "a": Subscription(("t",), owned_partitions=tuple(everything), generation_id=1),
        "b": Subscription(("t",)),
    }
    first = assignor.assign({"t": 4}, subscriptions)
    assert len(first["a"]) == 2 and first["b"] == []
    subscriptions["a"] = Subscription(("t",), owned_partitions=tuple(first["a"]), generation_id=2)
    second = assignor.assign({"t": 4}, subscriptions)
    assert second["a"] == first["a"]
    assert set(second["b"]) == set(everything) - set(first["a"])


def test_cooperative_sticky_converges_for_any_join_order() -> None:
    assignor = CooperativeStickyAssignor()
    for order in itertools.permutations("abc"):
        owned: Assignment = {}
        for step in range(1, 4):
            members = order[:step]
            for _round in range(2):
                subscriptions = {
                    m: Subscription(("t",), owned_partitions=tuple(owned.get(m, ())))
                    for m in members
                }
                owned = assignor.assign({"t": 7}, subscriptions)
        assert owned_once(owned, {"t": 7})
        assert sorted(len(p) for p in owned.values()) == [2, 2, 3]


def test_sticky_user_data_round_trips_in_java_layout() -> None:
    data = encode_sticky_user_data([TP("t", 1), TP("t", 0)], 7)
    assert data == (
        b"\x00\x00\x00\x01" + b"\x00\x01t" + b"\x00\x00\x00\x02"
        b"\x00\x00\x00\x00\x00\x00\x00\x01" + b"\x00\x00\x00\x07"
    )
    assert decode_sticky_user_data(data) == ([TP("t", 0), TP("t", 1)], 7)
    assert decode_sticky_user_data(data[:-4]) == ([TP("t", 0), TP("t", 1)], -1)


def test_consumer_protocol_bytes_round_trip() -> None:
    metadata = encode_subscription(["b", "a"], owned={"a": [1]}, generation_id=4)
    decoded = decode_subscription(metadata)
    assert metadata[:2] == b"\x00\x03"
    assert list(decoded.topics) == ["a", "b"] and decoded.generation_id == 4
    assert [(t.topic, list(t.partitions)) for t in decoded.owned_partitions] == [("a", [1])]
    assignment = encode_assignment({"t": [2, 0]})
    assert assignment == (
        b"\x00\x03\x00\x00\x00\x01\x00\x01t\x00\x00\x00\x02"
        b"\x00\x00\x00\x00\x00\x00\x00\x02\xff\xff\xff\xff"
    )
    assert assigned_partitions(assignment) == {"t": [0, 2]}
