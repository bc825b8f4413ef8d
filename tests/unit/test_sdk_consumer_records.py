"""How the SDK consumer reads fetched batches and hands records out, without sockets:
control batches are never records, read committed skips aborted transactions up to their
markers, positions advance with what the application takes, and paused partitions wait."""

from __future__ import annotations

import struct
from types import SimpleNamespace

import pytest
from kio.schema.errors import ErrorCode

from goqueue.client.errors import InvalidRecordError
from goqueue.client.fetcher import (
    READ_COMMITTED,
    READ_UNCOMMITTED,
    FetchLimits,
    consumer_records,
)
from goqueue.client.metadata import TopicPartition
from goqueue.client.positions import Positions
from goqueue.client.prefetcher import Prefetcher
from goqueue.records.batch import HEADER_SIZE, read_header
from goqueue.records.builder import NewRecord, assemble_batch, build_batch

TP = TopicPartition("t", 0)
TRANSACTIONAL = 0x10
CONTROL = 0x20
ABORT, COMMIT = 0, 1


def batch(base: int, values: list[bytes], *, producer_id: int = -1, attributes: int = 0) -> bytes:
    plain = build_batch(
        [NewRecord(None, v) for v in values], base_offset=base, producer_id=producer_id
    )
    return with_attributes(plain, attributes)


def marker(base: int, producer_id: int, kind: int) -> bytes:
    """A transaction's commit or abort marker: a control batch of one control record."""
    record = NewRecord(struct.pack(">hh", 0, kind), struct.pack(">hi", 0, 0))
    plain = build_batch([record], base_offset=base, producer_id=producer_id)
    return with_attributes(plain, TRANSACTIONAL | CONTROL)


def with_attributes(plain: bytes, attributes: int) -> bytes:
    """The batch again with more attribute bits (and leader epoch 3), its CRC recomputed."""
    header = read_header(plain)
    return assemble_batch(
        plain[HEADER_SIZE:],
        base_offset=header.base_offset,
        leader_epoch=3,
        attributes=header.attributes | attributes,
        last_offset_delta=header.last_offset_delta,
        first_timestamp=header.first_timestamp,
        max_timestamp=header.max_timestamp,
        producer_id=header.producer_id,
        producer_epoch=0,
        base_sequence=0,
        record_count=header.record_count,
    )


def answer(data: bytes, aborted: tuple[tuple[int, int], ...] = ()) -> SimpleNamespace:
    """A fetched partition as the fetcher reads it: batches and the aborted transactions."""
    return SimpleNamespace(
        records=data,
        aborted_transactions=[SimpleNamespace(producer_id=p, first_offset=o) for p, o in aborted],
    )


LOG = (
    batch(0, [b"plain-0", b"plain-1"])
    + batch(2, [b"aborted-2"], producer_id=7, attributes=TRANSACTIONAL)
    + batch(3, [b"committed-3"], producer_id=8, attributes=TRANSACTIONAL)
    + marker(4, 7, ABORT)
    + marker(5, 8, COMMIT)
    + batch(6, [b"after-6"], producer_id=7, attributes=TRANSACTIONAL)
)


def test_read_uncommitted_returns_every_data_record_and_skips_markers() -> None:
    records, next_offset = consumer_records(TP, answer(LOG), 0, READ_UNCOMMITTED)
    assert [(r.offset, r.value) for r in records] == [
        (0, b"plain-0"),
        (1, b"plain-1"),
        (2, b"aborted-2"),
        (3, b"committed-3"),
        (6, b"after-6"),
    ]
    assert next_offset == 7
    assert {r.leader_epoch for r in records} == {3}
    assert records[0].topic_partition == TP


def test_read_committed_skips_aborted_transactions_until_their_marker() -> None:
    fetched = answer(LOG, aborted=((7, 2),))
    records, next_offset = consumer_records(TP, fetched, 0, READ_COMMITTED)
    assert [r.value for r in records] == [b"plain-0", b"plain-1", b"committed-3", b"after-6"]
    assert next_offset == 7


def test_records_before_the_position_are_left_out() -> None:
    records, _ = consumer_records(TP, answer(LOG), 1, READ_UNCOMMITTED)
    assert [r.offset for r in records] == [1, 2, 3, 6]
    only_markers, end = consumer_records(TP, answer(marker(4, 7, ABORT)), 4, READ_COMMITTED)
    assert only_markers == [] and end == 5


def test_positions_advance_with_taken_records_and_paused_partitions_wait() -> None:
    positions = Positions()
    other = TopicPartition("t", 1)
    positions.assign([TP, other])
    for tp in (TP, other):
        state = positions.state(tp)
        state.seek(0)
        records, end = consumer_records(tp, answer(LOG), 0, READ_UNCOMMITTED)
        state.buffer.extend(records)
        state.buffer_end = end
    positions.state(other).paused = True
    taken = positions.take(3)
    assert list(taken) == [TP] and [r.offset for r in taken[TP]] == [0, 1, 2]
    assert positions.consumed()[TP] == (3, 3)
    assert positions.fetchable() == {}
    assert [r.offset for r in positions.take(10)[TP]] == [3, 6]
    assert positions.consumed()[TP] == (7, 3)
    assert positions.fetchable() == {TP: 7}
    positions.state(other).paused = False
    assert [r.offset for r in positions.take(10)[other]] == [0, 1, 2, 3, 6]
    positions.state(TP).reset_to(-2)
    assert positions.to_reset() == {TP: -2} and positions.state(TP).position is None


def test_take_one_serves_a_partition_until_its_buffer_runs_dry() -> None:
    positions = Positions()
    other = TopicPartition("t", 1)
    positions.assign([TP, other])
    for tp in (TP, other):
        state = positions.state(tp)
        state.seek(0)
        records, end = consumer_records(tp, answer(batch(0, [b"a", b"b"])), 0, READ_UNCOMMITTED)
        state.buffer.extend(records)
        state.buffer_end = end
    taken = [positions.take_one() for _ in range(5)]
    assert [(r.partition, r.offset, dry) for r, dry in taken[:4] if r] == [
        (0, 0, False),
        (0, 1, True),
        (1, 0, False),
        (1, 1, True),
    ]
    assert taken[4] == (None, False)
    assert positions.fetchable() == {TP: 2, other: 2}


def test_a_batch_that_does_not_decode_stops_its_partition_until_a_seek() -> None:
    plain = build_batch([NewRecord(None, b"only")])
    header = read_header(plain)
    lying = assemble_batch(
        plain[HEADER_SIZE:],
        base_offset=0,
        leader_epoch=0,
        attributes=0,
        last_offset_delta=1,
        first_timestamp=header.first_timestamp,
        max_timestamp=header.max_timestamp,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        record_count=2,
    )
    positions = Positions()
    positions.assign([TP])
    positions.state(TP).seek(0)
    fetching = Prefetcher(
        SimpleNamespace(),  # type: ignore[arg-type]
        positions,
        limits=FetchLimits(),
        isolation_level=READ_UNCOMMITTED,
        reset_policy=-2,
        initialize=None,  # type: ignore[arg-type]
    )
    fetched = SimpleNamespace(error_code=ErrorCode.none, records=lying, aborted_transactions=None)
    assert fetching._take(TP, 0, fetched) is False
    assert positions.fetchable() == {}
    with pytest.raises(InvalidRecordError, match="malformed"):
        fetching.raise_error()
    positions.state(TP).seek(1)
    assert positions.fetchable() == {TP: 1}
