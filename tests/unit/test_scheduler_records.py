"""The scheduler's record formats, its window files, and how a produced batch's delay headers
are read (and refused when malformed)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from kio.schema.errors import ErrorCode
from log_helpers import config

from goqueue.broker.delayed import parse_batch
from goqueue.broker.errors import BrokerError
from goqueue.coordinator.scheduler.buckets import BucketStore
from goqueue.coordinator.scheduler.coordinator import appended_ids
from goqueue.coordinator.scheduler.records import (
    Intent,
    Message,
    RecordFormatError,
    decode_cancel,
    decode_intent,
    decode_message,
    encode_cancel,
    encode_intent,
    encode_message,
    intent_key,
    parse_intent_key,
    peek_message,
)
from goqueue.log.partition_log import PartitionLog
from goqueue.records.batch import scan_batches
from goqueue.records.builder import NewRecord, build_batch

NOW_MS = 1_700_000_000_000
TARGET = ("orders", 3)
YEAR_MS = 365 * 24 * 3600 * 1000


def test_a_message_round_trips_with_null_key_and_header_values() -> None:
    message = Message("t", 7, NOW_MS, NOW_MS - 5, None, b"v" * 300, (("a", b"1"), ("b", None)))
    encoded = encode_message(message)
    assert decode_message(encoded) == message
    assert peek_message(encoded) == ("t", 7, NOW_MS)


def test_truncated_messages_are_format_errors() -> None:
    encoded = encode_message(Message("t", 0, NOW_MS, NOW_MS, b"k", b"value", ()))
    with pytest.raises(RecordFormatError):
        decode_message(encoded[:-3])
    with pytest.raises(RecordFormatError):
        peek_message(b"\x00\x01")


def test_intents_and_cancels_round_trip() -> None:
    assert decode_intent(encode_intent(Intent(12, ("a", "b")))) == Intent(12, ("a", "b"))
    assert decode_cancel(encode_cancel(NOW_MS)) == NOW_MS
    assert parse_intent_key(intent_key("my.topic", 11)) == ("my.topic", 11)


def test_window_files_keep_frames_and_find_ids(tmp_path: Path) -> None:
    store = BucketStore(tmp_path / "b")
    store.add(5, 100, "id-1", NOW_MS, b"one")
    store.add(5, 101, "id-2", NOW_MS + 1, b"two")
    store.add(9, 102, "id-3", NOW_MS + 2, b"three")
    store.flush()
    assert store.windows() == [5, 9]
    assert store.find("id-2") == (5, NOW_MS + 1)
    assert store.find("id-3") == (9, NOW_MS + 2)
    assert store.find("id") is None
    store.seal(5)
    assert [(f.offset, f.schedule_id, f.value) for f in store.read(5)] == [
        (100, "id-1", b"one"),
        (101, "id-2", b"two"),
    ]
    store.remove(5)
    assert store.windows() == [9]


def test_a_torn_window_file_reads_up_to_its_last_whole_frame(tmp_path: Path) -> None:
    store = BucketStore(tmp_path / "b")
    store.add(1, 1, "a", NOW_MS, b"x" * 50)
    store.add(1, 2, "b", NOW_MS, b"y" * 50)
    store.seal(1)
    path = tmp_path / "b" / "1.msgs"
    path.write_bytes(path.read_bytes()[:-10])
    assert [f.schedule_id for f in store.read(1)] == ["a"]


def test_the_store_starts_empty_as_it_is_a_cache(tmp_path: Path) -> None:
    BucketStore(tmp_path / "b").add(1, 1, "a", NOW_MS, b"x")
    assert BucketStore(tmp_path / "b").windows() == []


def batch(*headers: list[tuple[str, bytes | None]]) -> bytes:
    return build_batch([NewRecord(b"k", b"v", h) for h in headers], now_ms=NOW_MS)


def parse(data: bytes, max_delay_ms: int = YEAR_MS) -> object:
    return parse_batch(data, TARGET, NOW_MS, max_delay_ms)


def test_a_batch_without_delay_headers_goes_to_the_log() -> None:
    assert parse(batch([("other", b"1")], [])) is None


def test_delay_and_deliver_at_headers_give_due_times() -> None:
    parsed = parse(
        batch(
            [("goqueue.delay-ms", b"1500")],
            [("goqueue.deliver-at", str(NOW_MS + 9000).encode())],
            [],
            [("goqueue.deliver-at", b"5")],
        )
    )
    dues = [m.message.due_ms for m in parsed.messages]  # type: ignore[attr-defined]
    assert dues == [NOW_MS + 1500, NOW_MS + 9000, NOW_MS, NOW_MS]


def test_the_schedule_id_header_names_the_message() -> None:
    parsed = parse(batch([("goqueue.delay-ms", b"10"), ("goqueue.schedule-id", b"order-1")]))
    assert [m.schedule_id for m in parsed.messages] == ["order-1"]  # type: ignore[attr-defined]


def test_cancel_headers_make_a_cancel_batch() -> None:
    parsed = parse(batch([("goqueue.cancel-schedule-id", b"order-1")]))
    assert parsed.cancels == ("order-1",)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ([("goqueue.delay-ms", b"soon")], "expected a non-negative decimal number"),
        ([("goqueue.delay-ms", b"-5")], "expected a non-negative decimal number"),
        ([("goqueue.deliver-at", None)], "expected a non-negative decimal number"),
        ([("goqueue.delay-ms", b"1"), ("goqueue.deliver-at", b"1")], "carries both"),
        ([("goqueue.delay-ms", str(YEAR_MS + 1).encode())], "beyond the topic's"),
        ([("goqueue.delay-ms", b"1"), ("goqueue.schedule-id", b"")], "schedule id"),
        ([("goqueue.delay-ms", b"1"), ("goqueue.schedule-id", b"\xff")], "schedule id"),
        ([("goqueue.delay-ms", b"1"), ("goqueue.schedule-id", b"a\tb")], "schedule id"),
    ],
)
def test_malformed_headers_are_invalid_record(
    headers: list[tuple[str, bytes | None]], problem: str
) -> None:
    with pytest.raises(BrokerError) as caught:
        parse(batch([], headers))
    assert caught.value.error_code == ErrorCode.invalid_record
    assert problem in (caught.value.message or "")
    assert "Record 1 of the batch to orders-3" in (caught.value.message or "")


def test_cancels_mixed_with_messages_are_invalid_record() -> None:
    with pytest.raises(BrokerError, match="mixes"):
        parse(batch([("goqueue.cancel-schedule-id", b"x")], [("goqueue.delay-ms", b"5")]))


def test_recovery_finds_which_in_flight_ids_reached_the_target_log(tmp_path: Path) -> None:
    """After a crash between an intent and its tombstones, the ids found in the target
    partition from the intent's offset on were appended; the others must be delivered."""
    log = PartitionLog(tmp_path / "orders-0", "orders", 0, config())
    try:
        for records in (
            [NewRecord(b"k", b"before", [("goqueue.schedule-id", b"old")])],
            [
                NewRecord(b"k", b"plain", [("app", b"1")]),
                NewRecord(b"k", b"ours", [("goqueue.schedule-id", b"a")]),
            ],
            [NewRecord(b"k", b"ours too", [("goqueue.schedule-id", b"b")])],
        ):
            data = bytearray(build_batch(records, now_ms=NOW_MS))
            log.append(data, scan_batches(data), NOW_MS)
        wanted = {"old", "a", "b", "c"}
        assert asyncio.run(appended_ids(log, 1, wanted)) == {"a", "b"}
        assert asyncio.run(appended_ids(log, log.log_end_offset, wanted)) == set()
    finally:
        log.close()
