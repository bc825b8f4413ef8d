"""The share-partition state machine: acquisition, locks, acknowledgements, delivery counts,
the in-flight bound, retry backoff, dead-lettering and FIFO message groups (no sockets; the
clock is a number the tests move)."""

from __future__ import annotations

import pytest
from kio.schema.errors import ErrorCode

from goqueue.coordinator.share.partition import (
    REASON_DELIVERY_LIMIT,
    REASON_EXPIRED,
    REASON_REJECTED,
    AckBatch,
    AckType,
    Acquired,
    Candidate,
    Limits,
    RecordState,
    ShareError,
    SharePartition,
)

NOW = 1_000_000
LIMITS = Limits(lock_duration_ms=1000, delivery_count_limit=3, max_record_locks=100)


def records(first: int, last: int, group: bytes = b"") -> list[Candidate]:
    return [Candidate(o, NOW, group) for o in range(first, last + 1)]


def acquire(
    partition: SharePartition,
    member: str,
    candidates: list[Candidate],
    now: int = NOW,
    limits: Limits = LIMITS,
    max_records: int = 500,
) -> list[Acquired]:
    return partition.acquire(member, candidates, now, limits, max_records)


def ack(partition: SharePartition, member: str, first: int, last: int, kind: AckType) -> None:
    partition.acknowledge(member, [AckBatch(first, last, (int(kind),))], NOW, LIMITS)


def test_competing_members_acquire_distinct_records() -> None:
    partition = SharePartition.starting_at(0)
    assert acquire(partition, "a", records(0, 9), max_records=4) == [Acquired(0, 3, 1)]
    assert acquire(partition, "b", records(0, 9), max_records=4) == [Acquired(4, 7, 1)]
    assert acquire(partition, "c", records(0, 9)) == [Acquired(8, 9, 1)]
    assert acquire(partition, "d", records(0, 9)) == []
    assert partition.held_by("b") == [4, 5, 6, 7]
    assert (partition.start_offset, partition.end_offset) == (0, 10)


def test_accept_moves_the_start_offset_past_acknowledged_records() -> None:
    partition = SharePartition.starting_at(5)
    acquire(partition, "a", records(0, 9))
    assert partition.held_by("a") == [5, 6, 7, 8, 9]
    ack(partition, "a", 6, 7, AckType.ACCEPT)
    assert partition.start_offset == 5
    ack(partition, "a", 5, 5, AckType.ACCEPT)
    assert partition.start_offset == 8
    assert partition.totals.acknowledged == 3


def test_lock_expiry_releases_records_for_redelivery_with_a_higher_count() -> None:
    partition = SharePartition.starting_at(0)
    acquire(partition, "a", records(0, 1))
    assert partition.expire_locks(NOW + 999, LIMITS) == 0
    assert partition.expire_locks(NOW + 1000, LIMITS) == 2
    assert acquire(partition, "b", records(0, 1), now=NOW + 1000) == [Acquired(0, 1, 2)]


def test_acknowledging_records_not_held_is_refused_without_any_change() -> None:
    partition = SharePartition.starting_at(0)
    acquire(partition, "a", records(0, 3))
    before = {o: (e.state, e.holder) for o, e in partition.entries.items()}
    with pytest.raises(ShareError) as refused:
        partition.acknowledge("b", [AckBatch(0, 0, (1,)), AckBatch(1, 1, (1,))], NOW, LIMITS)
    assert refused.value.error == ErrorCode.invalid_record_state
    with pytest.raises(ShareError) as beyond:
        partition.acknowledge("a", [AckBatch(0, 1, (1,)), AckBatch(9, 9, (1,))], NOW, LIMITS)
    assert beyond.value.error == ErrorCode.invalid_record_state
    assert {o: (e.state, e.holder) for o, e in partition.entries.items()} == before


@pytest.mark.parametrize(
    "batch",
    [AckBatch(0, 0, (7,)), AckBatch(0, 1, (1, 1, 1)), AckBatch(2, 1, (1,)), AckBatch(0, 0, ())],
)
def test_invalid_acknowledgements_are_invalid_requests(batch: AckBatch) -> None:
    partition = SharePartition.starting_at(0)
    acquire(partition, "a", records(0, 3))
    with pytest.raises(ShareError) as refused:
        partition.acknowledge("a", [batch], NOW, LIMITS)
    assert refused.value.error == ErrorCode.invalid_request
    assert partition.held_by("a") == [0, 1, 2, 3]


def test_per_record_types_and_gaps() -> None:
    partition = SharePartition.starting_at(0)
    acquire(partition, "a", [Candidate(0, NOW), Candidate(2, NOW)])
    partition.acknowledge("a", [AckBatch(0, 2, (1, 0, 2))], NOW, LIMITS)
    assert partition.entries[2].state is RecordState.AVAILABLE
    assert 0 not in partition.entries


def test_release_reject_and_the_delivery_limit_dead_letter_records() -> None:
    partition = SharePartition.starting_at(0)
    acquire(partition, "a", records(0, 1))
    ack(partition, "a", 1, 1, AckType.REJECT)
    assert partition.entries[1].state is RecordState.DEAD_LETTERING
    assert partition.entries[1].reason == REASON_REJECTED
    for delivery in (1, 2):
        ack(partition, "a", 0, 0, AckType.RELEASE)
        assert acquire(partition, "a", records(0, 1)) == [Acquired(0, 0, delivery + 1)]
    ack(partition, "a", 0, 0, AckType.RELEASE)
    assert partition.entries[0].reason == REASON_DELIVERY_LIMIT
    assert [o for o, _ in partition.dead_lettering()] == [0, 1]
    assert partition.archive_dead_letters([0, 1]) == 2
    assert partition.totals.dead_lettered == 2
    assert partition.start_offset == 2


def test_without_dead_letters_records_are_archived_as_in_kafka() -> None:
    limits = Limits(dead_letter=False)
    partition = SharePartition.starting_at(0)
    acquire(partition, "a", records(0, 0), limits=limits)
    partition.acknowledge("a", [AckBatch(0, 0, (3,))], NOW, limits)
    assert partition.entries == {}
    assert partition.totals.archived == 1


def test_retry_backoff_grows_with_the_delivery_count() -> None:
    limits = Limits(lock_duration_ms=1000, delivery_count_limit=10, backoff_ms=(100, 500))
    partition = SharePartition.starting_at(0)
    acquire(partition, "a", records(0, 0), limits=limits)
    partition.acknowledge("a", [AckBatch(0, 0, (2,))], NOW, limits)
    assert acquire(partition, "a", records(0, 0), now=NOW + 99, limits=limits) == []
    assert partition.next_ready_ms() == NOW + 100
    assert acquire(partition, "a", records(0, 0), now=NOW + 100, limits=limits) == [
        Acquired(0, 0, 2)
    ]
    assert partition.expire_locks(NOW + 1100, limits) == 1
    assert partition.entries[0].ready_at_ms == NOW + 1600
    partition.entries[0].ready_at_ms = 0
    acquire(partition, "a", records(0, 0), now=NOW + 1600, limits=limits)
    partition.expire_locks(NOW + 2600, limits)
    assert partition.entries[0].ready_at_ms == NOW + 3100, "the last delay repeats"


def test_a_member_leaving_releases_its_records_at_once() -> None:
    limits = Limits(backoff_ms=(60_000,))
    partition = SharePartition.starting_at(0)
    acquire(partition, "a", records(0, 1), limits=limits)
    assert partition.release_member("a", NOW, limits) == 2
    assert acquire(partition, "b", records(0, 1), limits=limits) == [Acquired(0, 1, 2)]


def test_the_in_flight_window_is_bounded() -> None:
    limits = Limits(max_record_locks=3)
    partition = SharePartition.starting_at(0)
    assert acquire(partition, "a", records(0, 9), limits=limits) == [Acquired(0, 2, 1)]
    assert partition.window_full(3)
    ack(partition, "a", 0, 0, AckType.ACCEPT)
    assert acquire(partition, "a", records(0, 9), limits=limits) == [Acquired(3, 3, 1)]


def test_expired_records_are_never_delivered() -> None:
    partition = SharePartition.starting_at(0)
    candidates = [Candidate(0, 0, expired=True), Candidate(1, NOW)]
    assert acquire(partition, "a", candidates) == [Acquired(1, 1, 1)]
    assert partition.entries[0].state is RecordState.DEAD_LETTERING
    assert partition.entries[0].reason == REASON_EXPIRED
    assert partition.entries[0].delivery_count == 0


def test_fifo_delivers_one_record_per_message_group_at_a_time_in_order() -> None:
    limits = Limits(fifo=True, backoff_ms=(100,))
    partition = SharePartition.starting_at(0)
    candidates = [
        Candidate(0, NOW, b"x"),
        Candidate(1, NOW, b"x"),
        Candidate(2, NOW, b"y"),
        Candidate(3, NOW, b""),
        Candidate(4, NOW, b""),
        Candidate(5, NOW, b"y"),
    ]
    assert acquire(partition, "a", candidates, limits=limits) == [
        Acquired(0, 0, 1),
        Acquired(2, 4, 1),
    ]
    assert acquire(partition, "b", candidates, limits=limits) == []
    partition.acknowledge("a", [AckBatch(0, 0, (2,))], NOW, limits)
    assert acquire(partition, "b", candidates, now=NOW + 50, limits=limits) == [], (
        "x's first record backs off; its second must wait"
    )
    partition.acknowledge("a", [AckBatch(2, 2, (1,))], NOW, limits)
    assert acquire(partition, "b", candidates, now=NOW + 50, limits=limits) == [Acquired(5, 5, 1)]
    assert acquire(partition, "b", candidates, now=NOW + 100, limits=limits) == [Acquired(0, 0, 2)]


def test_records_gone_from_the_log_leave_the_window() -> None:
    partition = SharePartition.starting_at(0)
    acquire(partition, "a", records(0, 4))
    partition.skip_to(3)
    assert sorted(partition.entries) == [3, 4]
    assert partition.totals.archived == 3


def test_renew_extends_the_acquisition_lock() -> None:
    partition = SharePartition.starting_at(0)
    acquire(partition, "a", records(0, 0))
    partition.acknowledge("a", [AckBatch(0, 0, (int(AckType.RENEW),))], NOW + 900, LIMITS)
    assert partition.expire_locks(NOW + 1000, LIMITS) == 0
    assert partition.held_by("a") == [0]
    assert partition.expire_locks(NOW + 1900, LIMITS) == 1
