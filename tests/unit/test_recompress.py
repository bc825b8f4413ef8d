"""Batch rewrites: recompression for compression.type and the record subsets of compaction."""

import pytest
from test_records import restamp

from goqueue.records.batch import TimestampType, check_batch, read_header
from goqueue.records.builder import NewRecord, build_batch
from goqueue.records.compression import Compression
from goqueue.records.errors import InvalidRecordError
from goqueue.records.reader import iter_records
from goqueue.records.recompress import (
    DELETE_HORIZON_BIT,
    delete_horizon_ms,
    has_keyless_record,
    iter_raw_records,
    rebuild,
    recompress,
)

RECORDS = [
    NewRecord(
        f"k{i}".encode(),
        None if i == 2 else f"value-{i}".encode() * 20,
        headers=[("h", f"{i}".encode()), ("null", None)],
        timestamp_ms=1000 + 7 * i,
    )
    for i in range(6)
]
PRODUCER = {"producer_id": 42, "producer_epoch": 3, "base_sequence": 17}


def producer_batch(codec: Compression = Compression.none) -> bytes:
    return build_batch(RECORDS, compression=codec, base_offset=500, **PRODUCER)


def identity(header_batch: bytes) -> tuple[int, int, int, int, int, int, int]:
    """The header fields a rewrite must keep."""
    h = check_batch(header_batch)
    return (
        h.base_offset,
        h.last_offset_delta,
        h.leader_epoch,
        h.producer_id,
        h.producer_epoch,
        h.base_sequence,
        h.attributes & 0x30,
    )


@pytest.mark.parametrize("source", list(Compression))
@pytest.mark.parametrize("target", list(Compression))
def test_recompress_changes_only_the_codec(source: Compression, target: Compression) -> None:
    original = restamp(producer_batch(source), attributes=int(source) | 0x10)
    rewritten = recompress(original, target)
    header = check_batch(rewritten)
    assert header.compression is target
    assert header.is_transactional
    assert identity(rewritten) == identity(original)
    assert (header.first_timestamp, header.max_timestamp, header.record_count) == (1000, 1035, 6)
    assert list(iter_records(rewritten)) == list(iter_records(original))


def test_raw_records_expose_keys_tombstones_and_offset_deltas() -> None:
    batch = producer_batch(Compression.lz4)
    raw = list(iter_raw_records(read_header(batch), batch))
    assert [r.key for r in raw] == [f"k{i}".encode() for i in range(6)]
    assert [r.is_tombstone for r in raw] == [i == 2 for i in range(6)]
    assert [r.offset_delta for r in raw] == list(range(6))
    assert [r.timestamp_delta for r in raw] == [7 * i for i in range(6)]


@pytest.mark.parametrize("codec", list(Compression))
def test_rebuild_keeps_offsets_timestamps_headers_and_codec(codec: Compression) -> None:
    batch = producer_batch(codec)
    header = read_header(batch)
    raw = list(iter_raw_records(header, batch))
    subset = rebuild(header, [raw[1], raw[4]], delete_horizon=None)
    rebuilt = check_batch(subset)
    assert rebuilt.compression is codec
    assert identity(subset) == identity(batch)
    assert (rebuilt.first_timestamp, rebuilt.max_timestamp, rebuilt.record_count) == (1007, 1028, 2)
    originals = list(iter_records(batch))
    assert list(iter_records(subset)) == [originals[1], originals[4]]


def test_a_delete_horizon_moves_the_base_timestamp_but_not_the_records() -> None:
    batch = producer_batch()
    header = read_header(batch)
    raw = list(iter_raw_records(header, batch))
    marked = rebuild(header, raw[2:4], delete_horizon=90_000)
    rebuilt = check_batch(marked)
    assert rebuilt.attributes & DELETE_HORIZON_BIT
    assert delete_horizon_ms(rebuilt) == 90_000
    assert delete_horizon_ms(header) is None
    assert rebuilt.max_timestamp == 1021
    assert list(iter_records(marked)) == list(iter_records(batch))[2:4]
    again = rebuild(rebuilt, list(iter_raw_records(rebuilt, marked))[1:], delete_horizon=None)
    assert delete_horizon_ms(check_batch(again)) is None
    assert list(iter_records(again)) == list(iter_records(batch))[3:4]


def test_an_emptied_batch_keeps_its_offset_range_and_producer_fields() -> None:
    batch = producer_batch(Compression.zstd)
    header = read_header(batch)
    empty = rebuild(header, [], delete_horizon=None)
    rebuilt = check_batch(empty)
    assert identity(empty) == identity(batch)
    assert rebuilt.record_count == 0
    assert rebuilt.compression is Compression.none
    assert rebuilt.first_timestamp == rebuilt.max_timestamp == header.max_timestamp
    assert list(iter_records(empty)) == []


def test_log_append_time_batches_keep_their_max_timestamp() -> None:
    batch = restamp(producer_batch(), attributes=0x08)
    header = read_header(batch)
    assert header.timestamp_type is TimestampType.log_append_time
    raw = list(iter_raw_records(header, batch))
    rebuilt = check_batch(rebuild(header, raw[:1], delete_horizon=None))
    assert rebuilt.max_timestamp == header.max_timestamp


def test_keyless_records_are_found() -> None:
    keyed = producer_batch(Compression.snappy)
    assert not has_keyless_record(read_header(keyed), keyed)
    keyless = build_batch([RECORDS[0], NewRecord(None, b"v")], compression=Compression.gzip)
    assert has_keyless_record(read_header(keyless), keyless)


def test_truncated_records_are_invalid() -> None:
    batch = restamp(producer_batch(), record_count=7)
    with pytest.raises(InvalidRecordError):
        list(iter_raw_records(read_header(batch), batch))
