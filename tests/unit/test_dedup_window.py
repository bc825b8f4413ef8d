"""Content dedup without sockets: message ids, the window and how a batch is rebuilt."""

from __future__ import annotations

import pytest

from goqueue.broker.dedup import MSG_ID_HEADER, DedupWindow, message_id, plan_batch
from goqueue.records.batch import BatchHeader, check_batch, read_header
from goqueue.records.builder import NewRecord, build_batch
from goqueue.records.compression import Compression
from goqueue.records.reader import iter_records
from goqueue.records.recompress import iter_raw_records

NOW = 1_000_000
LOG_APPEND_TIME_BIT = 0x08
WINDOW = 10_000


def batch(*records: NewRecord, compression: Compression = Compression.none) -> bytes:
    return build_batch(
        records, compression=compression, producer_id=7, producer_epoch=1, base_sequence=20
    )


def ids(data: bytes) -> list[bytes]:
    return [message_id(record) for record in iter_raw_records(read_header(data), data)]


def record(value: bytes, key: bytes | None = b"k", headers: tuple = (), ts: int = NOW) -> NewRecord:
    return NewRecord(key, value, headers, timestamp_ms=ts)


def test_equal_content_has_equal_ids_and_any_difference_changes_them() -> None:
    first, same, other_value, other_key, no_key, header = ids(
        batch(
            record(b"v"),
            record(b"v", ts=NOW + 5),
            record(b"w"),
            record(b"v", key=b"j"),
            record(b"v", key=None),
            record(b"v", headers=(("h", b"1"),)),
        )
    )
    assert first == same
    assert len({first, other_value, other_key, no_key, header}) == 5


def test_field_boundaries_are_part_of_the_id() -> None:
    assert len(set(ids(batch(record(b"bc", key=b"a"), record(b"c", key=b"ab"))))) == 2


def test_the_msg_id_header_is_the_id_whatever_the_content() -> None:
    a, b, c, null_id = ids(
        batch(
            record(b"one", headers=((MSG_ID_HEADER, b"order-1"),)),
            record(b"two", key=None, headers=(("x", b"y"), (MSG_ID_HEADER, b"order-1"))),
            record(b"one", headers=((MSG_ID_HEADER, b"order-2"),)),
            record(b"one", headers=((MSG_ID_HEADER, None),)),
        )
    )
    assert a == b != c
    assert null_id == ids(batch(record(b"one", headers=((MSG_ID_HEADER, None),))))[0]


def test_the_window_matches_only_ids_written_since_the_cutoff() -> None:
    window = DedupWindow()
    window.add(b"a", 5, NOW - 100)
    window.add(b"b", 6, NOW)
    assert window.original(b"a", NOW - 100) == 5
    assert window.original(b"a", NOW - 99) is None
    window.expire(NOW - 50)
    assert len(window) == 1 and window.original(b"b", NOW - 50) == 6


def test_rewriting_an_id_moves_it_to_the_back_of_the_window() -> None:
    window = DedupWindow()
    window.add(b"a", 1, NOW)
    window.add(b"b", 2, NOW + 1)
    window.add(b"a", 3, NOW + 2)
    window.expire(NOW + 2)
    assert window.original(b"a", NOW + 2) == 3 and window.original(b"b", NOW) is None


def test_a_new_batch_is_appended_as_sent() -> None:
    data = batch(record(b"1"), record(b"2"))
    plan = plan_batch(data, read_header(data), DedupWindow(), NOW - WINDOW)
    assert plan.records is data and plan.originals == ()
    assert [delta for _, delta in plan.kept] == [0, 1]


def remember(window: DedupWindow, data: bytes, first_offset: int, time_ms: int) -> None:
    """Put a batch's records in the window as if appended at `first_offset`."""
    for msg_id, delta in plan_batch(data, read_header(data), DedupWindow(), 0).kept:
        window.add(msg_id, first_offset + delta, time_ms)


def test_a_batch_that_only_repeats_is_answered_with_the_originals() -> None:
    data = batch(record(b"1"), record(b"2"))
    window = DedupWindow()
    remember(window, data, 40, NOW)
    plan = plan_batch(data, read_header(data), window, NOW - WINDOW)
    assert plan.records is None and plan.kept == () and plan.originals == (40, 41)


@pytest.mark.parametrize("codec", [Compression.none, Compression.zstd, Compression.gzip])
def test_repeats_leave_holes_where_they_were(codec: Compression) -> None:
    """Kept records keep their offset deltas (the offsets the producer was told), the batch
    keeps its last offset delta and producer fields, and its CRC is valid."""
    window = DedupWindow()
    remember(window, batch(record(b"b"), record(b"d")), 100, NOW)
    data = batch(
        record(b"a"), record(b"b"), record(b"c"), record(b"a"), record(b"d"), compression=codec
    )
    header = read_header(data)
    plan = plan_batch(data, header, window, NOW - WINDOW)
    assert plan.records is not None and plan.originals == (100, 101)
    rebuilt: BatchHeader = check_batch(plan.records)
    assert rebuilt.record_count == 2
    assert rebuilt.last_offset_delta == header.last_offset_delta == 4
    assert (rebuilt.producer_id, rebuilt.producer_epoch, rebuilt.base_sequence) == (7, 1, 20)
    assert rebuilt.compression is codec
    assert [(r.offset, r.value) for r in iter_records(plan.records)] == [(0, b"a"), (2, b"c")]
    assert [delta for _, delta in plan.kept] == [0, 2]


def test_an_expired_id_is_written_again() -> None:
    window = DedupWindow()
    data = batch(record(b"x"))
    remember(window, data, 3, NOW - WINDOW - 1)
    plan = plan_batch(data, read_header(data), window, NOW - WINDOW)
    assert plan.records is data


def test_loading_from_the_log_keeps_records_inside_the_window() -> None:
    logged = bytearray(batch(record(b"old", ts=NOW - WINDOW - 1), record(b"new", ts=NOW - 5)))
    logged[0:8] = (500).to_bytes(8, "big")
    window = DedupWindow()
    window.load(bytes(logged), NOW - WINDOW, NOW)
    old_id, new_id = ids(bytes(logged))
    assert window.original(new_id, NOW - WINDOW) == 501
    assert window.original(old_id, 0) is None


def test_loading_takes_log_append_time_and_caps_future_timestamps() -> None:
    appended = bytearray(batch(record(b"late", ts=NOW - 2 * WINDOW)))
    appended[21:23] = (read_header(appended).attributes | LOG_APPEND_TIME_BIT).to_bytes(2, "big")
    appended[35:43] = (NOW - 5).to_bytes(8, "big")
    future = batch(record(b"future", ts=NOW + 60_000))
    window = DedupWindow()
    window.load(bytes(appended) + future, NOW - WINDOW, NOW)
    (appended_id,), (future_id,) = ids(bytes(appended)), ids(future)
    assert window.original(appended_id, NOW - 5) == 0
    assert window.original(future_id, NOW) == 0
    assert window.original(future_id, NOW + 1) is None
