"""The share consumer's protocol state without I/O: acknowledgement batches, share session
epochs and partitions, and which fetched records this member acquired."""

from __future__ import annotations

import uuid

from goqueue.client.share_session import (
    MAX_EPOCH,
    AckBatch,
    AckType,
    ShareSession,
    ack_batches,
    acquired_records,
    next_epoch,
)
from goqueue.records.builder import NewRecord, build_batch

A, R, X, G = AckType.ACCEPT, AckType.RELEASE, AckType.REJECT, AckType.GAP
T = uuid.UUID(int=7)


def test_consecutive_offsets_of_one_type_make_one_batch() -> None:
    assert ack_batches({3: A, 1: A, 2: A}) == [AckBatch(1, 3, (1,))]


def test_a_hole_splits_batches_and_mixed_types_list_one_type_per_offset() -> None:
    assert ack_batches({0: A, 1: R, 2: X, 5: A}) == [
        AckBatch(0, 2, (1, 2, 3)),
        AckBatch(5, 5, (1,)),
    ]
    assert ack_batches({}) == []


def test_epochs_count_up_and_wrap_to_one_never_zero() -> None:
    assert next_epoch(0) == 1
    assert next_epoch(41) == 42
    assert next_epoch(MAX_EPOCH) == 1


def test_a_new_session_names_every_partition_an_open_one_only_changes() -> None:
    session = ShareSession()
    first = session.fetch([(T, 0), (T, 1)])
    assert first.opens and first.added == [(T, 0), (T, 1)] and first.forgotten == []
    session.answered()
    second = session.fetch([(T, 1), (T, 2)])
    assert second.epoch == 1 and not second.opens
    assert second.added == [(T, 2)] and second.forgotten == [(T, 0)]
    session.answered()
    assert session.fetch([(T, 1), (T, 2)]).added == []


def test_restart_goes_back_to_epoch_zero_with_every_partition() -> None:
    session = ShareSession()
    session.fetch([(T, 0)])
    session.answered()
    session.restart()
    assert not session.open
    assert session.fetch([(T, 0)]).added == [(T, 0)]


def batch(base: int, values: list[bytes]) -> bytes:
    return build_batch([NewRecord(None, v) for v in values], base_offset=base)


def test_only_acquired_records_are_delivered_with_their_delivery_counts() -> None:
    data = batch(0, [b"a", b"b", b"c", b"d"])
    delivery = acquired_records(data, [(1, 1, 2), (3, 3, 1)])
    assert [(r.value, count) for r, count in delivery.records] == [(b"b", 2), (b"d", 1)]
    assert delivery.gaps == [] and delivery.corrupt == []


def test_acquired_offsets_without_records_are_gaps() -> None:
    data = batch(0, [b"a"]) + batch(5, [b"f"])
    delivery = acquired_records(data, [(0, 5, 1)])
    assert [r.offset for r, _ in delivery.records] == [0, 5]
    assert delivery.gaps == [1, 2, 3, 4]


def test_control_batches_are_gaps() -> None:
    control = bytearray(batch(1, [b"marker"]))
    control[22] |= 0x20  # attributes, low byte: the control bit
    delivery = acquired_records(batch(0, [b"a"]) + bytes(control), [(0, 1, 1)])
    assert [r.offset for r, _ in delivery.records] == [0]
    assert delivery.gaps == [1]


def test_a_batch_that_fails_its_crc_is_rejected_not_delivered() -> None:
    broken = bytearray(batch(2, [b"c", b"d"]))
    broken[-1] ^= 0xFF
    delivery = acquired_records(batch(0, [b"a", b"b"]) + bytes(broken), [(0, 3, 1)])
    assert [r.offset for r, _ in delivery.records] == [0, 1]
    assert delivery.corrupt == [2, 3] and delivery.gaps == []
