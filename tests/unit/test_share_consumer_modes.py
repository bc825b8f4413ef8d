"""The exclusive subscription's assignor: one member gets every partition, an incumbent keeps
them against newcomers, and otherwise the member that started first wins."""

from __future__ import annotations

from goqueue.client.assignors import Subscription
from goqueue.client.metadata import TopicPartition
from goqueue.client.subscription_modes import ExclusiveAssignor, SubscriptionMode


def subscription(assignor: ExclusiveAssignor, owned: list[TopicPartition]) -> Subscription:
    return Subscription(("t", "u"), assignor.user_data(owned, 1))


def test_the_first_started_member_gets_every_partition_the_others_none() -> None:
    early, late = ExclusiveAssignor(), ExclusiveAssignor()
    late.started_ns = early.started_ns + 1
    result = early.assign(
        {"t": 2, "u": 1, "other": 3},
        {"b-late": subscription(late, []), "a-early": subscription(early, [])},
    )
    assert result == {
        "a-early": [TopicPartition("t", 0), TopicPartition("t", 1), TopicPartition("u", 0)],
        "b-late": [],
    }


def test_the_member_holding_the_partitions_keeps_them_against_an_earlier_newcomer() -> None:
    holder, newcomer = ExclusiveAssignor(), ExclusiveAssignor()
    newcomer.started_ns = holder.started_ns - 10**9  # a clock behind, or simply older
    result = holder.assign(
        {"t": 1},
        {
            "holder": subscription(holder, [TopicPartition("t", 0)]),
            "new": subscription(newcomer, []),
        },
    )
    assert result == {"holder": [TopicPartition("t", 0)], "new": []}


def test_unreadable_claims_lose() -> None:
    assignor = ExclusiveAssignor()
    result = assignor.assign(
        {"t": 1}, {"a": Subscription(("t",), b"junk"), "b": subscription(assignor, [])}
    )
    assert result == {"a": [], "b": [TopicPartition("t", 0)]}


def test_modes_are_named_as_pulsar_names_them() -> None:
    assert [m.value for m in SubscriptionMode] == ["exclusive", "failover", "shared", "key-shared"]
