"""RecordBatch v2 parsing, validation, building and decoding."""

import struct

import cramjam
import crc32c
import pytest

from goqueue.records.batch import (
    CRC_START,
    HEADER_SIZE,
    TimestampType,
    check_batch,
    iter_batches,
    read_header,
    scan_batches,
    set_base_offset,
    set_leader_epoch,
    set_log_append_time,
)
from goqueue.records.builder import NewRecord, build_batch
from goqueue.records.compression import Compression, compress, decompress
from goqueue.records.errors import CorruptRecordError, InvalidRecordError, UnsupportedMagicError
from goqueue.records.reader import iter_records
from goqueue.records.varint import read_varint, write_varint

RECORDS = [
    NewRecord(key=b"k1", value=b"v1", headers=[("h", b"x"), ("empty", None)], timestamp_ms=1000),
    NewRecord(key=None, value=b"v2" * 500, timestamp_ms=900),
    NewRecord(key=b"k3", value=None, timestamp_ms=1500),
    NewRecord(key=b"", value=b"", headers=[("\u00e9t\u00e9", b"")]),
]
NOW_MS = 2000


def restamp(batch: bytes | bytearray, *, attributes: int | None = None, **fields: int) -> bytes:
    """Rewrite header fields of a batch and fix its CRC, to craft valid but unusual batches."""
    out = bytearray(batch)
    offsets = {"last_offset_delta": (23, ">i"), "record_count": (57, ">i")}
    if attributes is not None:
        struct.pack_into(">h", out, 21, attributes)
    for name, value in fields.items():
        position, fmt = offsets[name]
        struct.pack_into(fmt, out, position, value)
    struct.pack_into(">I", out, 17, crc32c.crc32c(memoryview(out)[CRC_START:]))
    return bytes(out)


def test_header_fields_describe_the_built_batch() -> None:
    batch = build_batch(
        RECORDS,
        compression=Compression.gzip,
        base_offset=42,
        producer_id=7,
        producer_epoch=3,
        base_sequence=11,
        now_ms=NOW_MS,
    )
    header = read_header(batch)
    assert header.base_offset == 42
    assert header.size == len(batch) == header.batch_length + 12
    assert header.magic == 2
    assert header.leader_epoch == -1
    assert header.record_count == 4
    assert header.last_offset_delta == 3
    assert header.last_offset == 45
    assert header.next_offset == 46
    assert header.first_timestamp == 1000
    assert header.max_timestamp == NOW_MS
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (7, 3, 11)
    assert header.compression is Compression.gzip
    assert header.timestamp_type is TimestampType.create_time
    assert not header.is_transactional
    assert not header.is_control


def test_attribute_bits_map_to_flags() -> None:
    batch = restamp(build_batch(RECORDS[:1]), attributes=0x08 | 0x10 | 0x20 | 4)
    header = check_batch(batch)
    assert header.compression is Compression.zstd
    assert header.timestamp_type is TimestampType.log_append_time
    assert header.is_transactional
    assert header.is_control


def test_read_header_rejects_a_short_buffer() -> None:
    with pytest.raises(CorruptRecordError):
        read_header(build_batch(RECORDS)[: HEADER_SIZE - 1])


@pytest.mark.parametrize("position", [CRC_START, 30, HEADER_SIZE + 3, -1])
def test_a_flipped_byte_inside_the_crc_is_rejected(position: int) -> None:
    batch = bytearray(build_batch(RECORDS))
    batch[position] ^= 0x01
    with pytest.raises(CorruptRecordError, match="CRC"):
        scan_batches(batch)
    assert scan_batches(batch, verify_crc=False)[0].record_count == 4


def test_base_offset_and_leader_epoch_are_patched_without_breaking_the_crc() -> None:
    payload = bytearray(build_batch(RECORDS) * 2)
    second = len(payload) // 2
    set_base_offset(payload, second, 1234)
    set_leader_epoch(payload, second, 9)
    headers = scan_batches(payload)
    assert [(h.base_offset, h.leader_epoch) for h in headers] == [(0, -1), (1234, 9)]


def test_log_append_time_is_stamped_with_a_valid_crc() -> None:
    payload = bytearray(build_batch(RECORDS, compression=Compression.gzip, now_ms=NOW_MS) * 2)
    second = len(payload) // 2
    set_log_append_time(payload, second, read_header(payload, second), NOW_MS + 5_000)
    first, stamped = scan_batches(payload)
    assert (first.timestamp_type, first.max_timestamp) == (TimestampType.create_time, NOW_MS)
    assert (stamped.timestamp_type, stamped.max_timestamp) == (
        TimestampType.log_append_time,
        NOW_MS + 5_000,
    )
    assert stamped.compression is Compression.gzip
    records = list(iter_records(payload[second:]))
    assert {r.timestamp_ms for r in records} == {NOW_MS + 5_000}


def test_scan_returns_every_batch_of_a_payload() -> None:
    batches = [build_batch(RECORDS[:n], now_ms=NOW_MS) for n in (1, 2, 3)]
    headers = scan_batches(b"".join(batches))
    assert [h.record_count for h in headers] == [1, 2, 3]
    assert [h.size for h in headers] == [len(b) for b in batches]


def test_scan_rejects_an_empty_payload() -> None:
    with pytest.raises(InvalidRecordError):
        scan_batches(b"")


def test_scan_rejects_a_truncated_batch() -> None:
    batch = build_batch(RECORDS)
    with pytest.raises(CorruptRecordError, match="claims"):
        scan_batches(batch + batch[:-1])
    with pytest.raises(CorruptRecordError, match="truncated"):
        scan_batches(batch + batch[:10])


def test_scan_rejects_old_message_formats() -> None:
    batch = bytearray(build_batch(RECORDS))
    batch[16] = 1
    with pytest.raises(UnsupportedMagicError):
        scan_batches(batch)


def test_scan_rejects_a_batch_length_shorter_than_the_header() -> None:
    batch = bytearray(build_batch(RECORDS))
    struct.pack_into(">i", batch, 8, 20)
    with pytest.raises(CorruptRecordError, match="too small"):
        scan_batches(batch)


def test_scan_rejects_an_unknown_codec() -> None:
    with pytest.raises(CorruptRecordError, match="codec"):
        scan_batches(restamp(build_batch(RECORDS), attributes=6))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"record_count": 0, "last_offset_delta": -1}, "holds 0 records"),
        ({"last_offset_delta": 7}, "last offset delta 7"),
    ],
)
def test_scan_rejects_inconsistent_counts(fields: dict[str, int], message: str) -> None:
    with pytest.raises(InvalidRecordError, match=message):
        scan_batches(restamp(build_batch(RECORDS), **fields))


def test_iter_batches_stops_at_a_partial_trailing_batch() -> None:
    batch = build_batch(RECORDS)
    for tail in (batch[:10], batch[: HEADER_SIZE + 5], batch[:-1]):
        seen = [(h.record_count, bytes(view)) for h, view in iter_batches(batch * 2 + tail)]
        assert seen == [(4, batch), (4, batch)]


def test_iter_records_ignores_a_partial_trailing_batch() -> None:
    batch = build_batch(RECORDS, now_ms=NOW_MS)
    assert len(list(iter_records(batch + batch[:-5]))) == len(RECORDS)


@pytest.mark.parametrize("codec", list(Compression))
def test_build_then_iter_round_trips_every_codec(codec: Compression) -> None:
    batch = build_batch(RECORDS, compression=codec, base_offset=100, now_ms=NOW_MS)
    assert scan_batches(batch)[0].compression is codec
    records = list(iter_records(batch))
    assert [r.offset for r in records] == [100, 101, 102, 103]
    assert [r.timestamp_ms for r in records] == [1000, 900, 1500, NOW_MS]
    assert [r.key for r in records] == [r.key for r in RECORDS]
    assert [r.value for r in records] == [r.value for r in RECORDS]
    assert [r.headers for r in records] == [tuple(r.headers) for r in RECORDS]
    assert {r.timestamp_type for r in records} == {TimestampType.create_time}


def test_log_append_time_gives_every_record_the_max_timestamp() -> None:
    batch = restamp(build_batch(RECORDS, now_ms=NOW_MS), attributes=0x08)
    assert {r.timestamp_ms for r in iter_records(batch)} == {NOW_MS}


def test_iter_records_skips_control_batches() -> None:
    control = restamp(build_batch([NewRecord(b"\x00\x00\x00\x00", b"")]), attributes=0x30)
    data = build_batch(RECORDS[:1], base_offset=1)
    assert [r.offset for r in iter_records(control + data)] == [1]


def test_records_that_overrun_their_batch_are_invalid() -> None:
    batch = restamp(build_batch(RECORDS), record_count=5, last_offset_delta=4)
    with pytest.raises(InvalidRecordError):
        list(iter_records(batch))


def test_stray_bytes_after_the_last_record_are_invalid() -> None:
    batch = bytearray(build_batch(RECORDS[:1])) + b"\x00"
    struct.pack_into(">i", batch, 8, len(batch) - 12)
    with pytest.raises(InvalidRecordError, match="stray"):
        list(iter_records(restamp(batch)))


def test_snappy_writes_xerial_frames_and_reads_raw_snappy_too() -> None:
    data = bytes(range(256)) * 400
    framed = compress(Compression.snappy, data)
    assert framed.startswith(b"\x82SNAPPY\x00")
    assert decompress(Compression.snappy, framed) == data
    assert decompress(Compression.snappy, bytes(cramjam.snappy.compress_raw(data))) == data


def test_lz4_writes_independent_blocks_in_the_frame_format() -> None:
    frame = compress(Compression.lz4, b"x" * 200_000)
    assert frame[:4] == b"\x04\x22\x4d\x18"
    assert frame[4] & 0x20, "block independence flag"
    assert decompress(Compression.lz4, frame) == b"x" * 200_000


@pytest.mark.parametrize("codec", [c for c in Compression if c is not Compression.none])
def test_garbage_fails_to_decompress_as_corrupt(codec: Compression) -> None:
    with pytest.raises(CorruptRecordError):
        decompress(codec, b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x09garbage")


@pytest.mark.parametrize(
    "value", [0, 1, -1, 63, -64, 64, 300, -300, 2**31 - 1, -(2**63), 2**63 - 1]
)
def test_varints_round_trip(value: int) -> None:
    out = bytearray()
    write_varint(out, value)
    assert read_varint(bytes(out) + b"tail", 0) == (value, len(out))


def test_a_truncated_varint_is_invalid() -> None:
    with pytest.raises(InvalidRecordError):
        read_varint(b"\x80\x80", 0)
