"""Rewriting stored RecordBatch v2 batches: recompression to a topic's ``compression.type`` and
the record filtering of log compaction. Neither is on the hot path: they run in worker threads.

A rewrite keeps what identifies the records: the base offset and the last offset delta (so
offsets, and the sequence range a producer's batch covers, stay as assigned), each record's
offset delta, timestamp, key, value and headers, the producer id, epoch and base sequence, the
leader epoch and the transactional and control bits.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

from goqueue.records.batch import HEADER_SIZE, BatchHeader, TimestampType, read_header
from goqueue.records.buffer import Buffer
from goqueue.records.builder import assemble_batch
from goqueue.records.compression import Compression, compress, decompress
from goqueue.records.errors import InvalidRecordError
from goqueue.records.varint import read_varint, write_varint

DELETE_HORIZON_BIT = 0x40
"""KIP-534: the batch's base timestamp is the time after which the cleaner may drop its
tombstones; record timestamps stay correct because they are deltas from that base."""
_COMPRESSION_MASK = 0x07


class RawRecord(NamedTuple):
    """One record of a batch as stored, split where a rewrite needs to look or change."""

    attributes: int
    timestamp_delta: int
    offset_delta: int
    key: bytes | None
    is_tombstone: bool
    """Its value is null: a deletion marker for its key in a compacted topic."""
    tail: memoryview
    """The encoded offset delta, key, value and headers: copied verbatim by a rewrite."""


def delete_horizon_ms(header: BatchHeader) -> int | None:
    """When the cleaner may drop the batch's tombstones, if it has decided that yet."""
    return header.first_timestamp if header.attributes & DELETE_HORIZON_BIT else None


def records_section(header: BatchHeader, batch: Buffer) -> bytes:
    """The batch's records, decompressed (``batch`` spans the whole batch)."""
    return decompress(header.compression, memoryview(batch)[HEADER_SIZE : header.size])


def iter_raw_records(header: BatchHeader, batch: Buffer) -> Iterator[RawRecord]:
    """The records of one batch, in order; malformed encodings raise InvalidRecordError."""
    data = memoryview(records_section(header, batch))
    pos = 0
    for _ in range(header.record_count):
        length, pos = read_varint(data, pos)
        end = pos + length
        if length < 1 or end > len(data):
            raise InvalidRecordError(f"record of {length} bytes overruns its batch")
        timestamp_delta, tail_start = read_varint(data, pos + 1)
        offset_delta, key_start = read_varint(data, tail_start)
        key, value_start = _bytes_field(data, key_start, end)
        value_length, _ = read_varint(data, value_start)
        yield RawRecord(
            data[pos],
            timestamp_delta,
            offset_delta,
            None if key is None else bytes(key),
            value_length < 0,
            data[tail_start:end],
        )
        pos = end
    if pos != len(data):
        raise InvalidRecordError(f"{len(data) - pos} stray bytes after the last record")


def _bytes_field(data: memoryview, pos: int, end: int) -> tuple[memoryview | None, int]:
    length, pos = read_varint(data, pos)
    if length < 0:
        return None, pos
    if pos + length > end:
        raise InvalidRecordError(f"field of {length} bytes overruns its record")
    return data[pos : pos + length], pos + length


TOPIC_CODECS = {
    "uncompressed": Compression.none,
    "gzip": Compression.gzip,
    "snappy": Compression.snappy,
    "lz4": Compression.lz4,
    "zstd": Compression.zstd,
}
"""The codec each ``compression.type`` but ``producer`` (keep the producer's) imposes."""


def has_keyless_record(header: BatchHeader, batch: Buffer) -> bool:
    """Whether any record lacks a key, which a compacted topic refuses."""
    return any(record.key is None for record in iter_raw_records(header, batch))


def recompress(batch: Buffer, codec: Compression) -> bytes:
    """The batch with its records section compressed by ``codec`` instead. The records
    section is the same byte sequence under every codec, so the records are not decoded."""
    header = read_header(batch)
    return _assemble(
        header,
        compress(codec, records_section(header, batch)),
        attributes=(header.attributes & ~_COMPRESSION_MASK) | codec,
        first_timestamp=header.first_timestamp,
        max_timestamp=header.max_timestamp,
        record_count=header.record_count,
    )


def rebuild(
    header: BatchHeader, records: Sequence[RawRecord], *, delete_horizon: int | None
) -> bytes:
    """A batch holding ``records``, a subset of ``header``'s batch in order, compressed with
    the original codec. ``delete_horizon`` becomes its KIP-534 delete horizon; without one the
    base timestamp is the first record's, as Kafka's builder sets it.

    As Kafka's cleaner does, the batch keeps its base offset and last offset delta even when
    its first or last records are gone, and a batch left without records keeps only its
    header (uncompressed, both timestamps set to the original maximum).
    """
    if not records:
        return _assemble(
            header,
            b"",
            attributes=header.attributes & ~(_COMPRESSION_MASK | DELETE_HORIZON_BIT),
            first_timestamp=header.max_timestamp,
            max_timestamp=header.max_timestamp,
            record_count=0,
        )
    old_base = header.first_timestamp
    new_base = old_base + records[0].timestamp_delta if delete_horizon is None else delete_horizon
    body = bytearray()
    for record in records:
        encoded = bytearray((record.attributes,))
        write_varint(encoded, record.timestamp_delta + old_base - new_base)
        encoded += record.tail
        write_varint(body, len(encoded))
        body += encoded
    attributes = header.attributes & ~DELETE_HORIZON_BIT
    if delete_horizon is not None:
        attributes |= DELETE_HORIZON_BIT
    if header.timestamp_type is TimestampType.log_append_time:
        max_timestamp = header.max_timestamp
    else:
        max_timestamp = old_base + max(record.timestamp_delta for record in records)
    return _assemble(
        header,
        compress(header.compression, bytes(body)),
        attributes=attributes,
        first_timestamp=new_base,
        max_timestamp=max_timestamp,
        record_count=len(records),
    )


def _assemble(
    header: BatchHeader,
    section: bytes,
    *,
    attributes: int,
    first_timestamp: int,
    max_timestamp: int,
    record_count: int,
) -> bytes:
    """A batch with ``header``'s offsets, leader epoch and producer fields."""
    return assemble_batch(
        section,
        base_offset=header.base_offset,
        leader_epoch=header.leader_epoch,
        attributes=attributes,
        last_offset_delta=header.last_offset_delta,
        first_timestamp=first_timestamp,
        max_timestamp=max_timestamp,
        producer_id=header.producer_id,
        producer_epoch=header.producer_epoch,
        base_sequence=header.base_sequence,
        record_count=record_count,
    )
