"""Encoding of new RecordBatch v2 batches, for producers and tests (never the broker's hot path)."""

import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

import crc32c

from goqueue.records.batch import CRC_START, HEADER, HEADER_SIZE, LENGTH_PREFIX, MAGIC
from goqueue.records.compression import Compression, compress
from goqueue.records.varint import write_varint

_CRC = struct.Struct(">I")
_CRC_POSITION = 17
_NO_LEADER_EPOCH = -1


@dataclass(frozen=True, slots=True)
class NewRecord:
    """One record to encode; a None timestamp means the batch's build time."""

    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]] = ()
    timestamp_ms: int | None = None


def build_batch(
    records: Sequence[NewRecord],
    *,
    compression: Compression = Compression.none,
    base_offset: int = 0,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    now_ms: int | None = None,
) -> bytes:
    """Encode ``records`` as one v2 batch with a correct CRC32C.

    As in Kafka's builder, the first record's timestamp is the batch's base timestamp and the
    others are stored as deltas from it.
    """
    if not records:
        raise ValueError("a record batch needs at least one record")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    timestamps = [now if r.timestamp_ms is None else r.timestamp_ms for r in records]
    first_timestamp = timestamps[0]
    body = bytearray()
    for offset_delta, (record, timestamp) in enumerate(zip(records, timestamps, strict=True)):
        _encode_record(body, record, timestamp - first_timestamp, offset_delta)
    return assemble_batch(
        compress(compression, bytes(body)),
        base_offset=base_offset,
        leader_epoch=_NO_LEADER_EPOCH,
        attributes=int(compression),
        last_offset_delta=len(records) - 1,
        first_timestamp=first_timestamp,
        max_timestamp=max(timestamps),
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        record_count=len(records),
    )


def assemble_batch(
    records_section: bytes,
    *,
    base_offset: int,
    leader_epoch: int,
    attributes: int,
    last_offset_delta: int,
    first_timestamp: int,
    max_timestamp: int,
    producer_id: int,
    producer_epoch: int,
    base_sequence: int,
    record_count: int,
) -> bytes:
    """Put the v2 header with its length and CRC32C in front of an encoded records section."""
    batch = bytearray(HEADER_SIZE)
    batch += records_section
    HEADER.pack_into(
        batch,
        0,
        base_offset,
        len(batch) - LENGTH_PREFIX,
        leader_epoch,
        MAGIC,
        0,
        attributes,
        last_offset_delta,
        first_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        record_count,
    )
    _CRC.pack_into(batch, _CRC_POSITION, crc32c.crc32c(memoryview(batch)[CRC_START:]))
    return bytes(batch)


def _encode_record(
    out: bytearray, record: NewRecord, timestamp_delta: int, offset_delta: int
) -> None:
    # One join of pre-encoded pieces: producers encode every record they send, so this avoids
    # a bytearray and several varint loops per record.
    key, value = record.key, record.value
    parts = [
        b"\x00",
        _varint(timestamp_delta),
        _varint(offset_delta),
        _NULL if key is None else _varint(len(key)),
        key or b"",
        _NULL if value is None else _varint(len(value)),
        value or b"",
        _varint(len(record.headers)),
    ]
    for name, header_value in record.headers:
        encoded_name = name.encode()
        parts += (
            _varint(len(encoded_name)),
            encoded_name,
            _NULL if header_value is None else _varint(len(header_value)),
            header_value or b"",
        )
    body = b"".join(parts)
    out += _varint(len(body))
    out += body


def _varint(value: int) -> bytes:
    """``value`` as a zigzag varint; small non-negative values (lengths, deltas) from a table."""
    if 0 <= value < _SMALL_VARINT_LIMIT:
        return _SMALL_VARINTS[value]
    return _encoded_varint(value)


def _encoded_varint(value: int) -> bytes:
    encoded = bytearray()
    write_varint(encoded, value)
    return bytes(encoded)


_SMALL_VARINT_LIMIT = 1 << 14
_SMALL_VARINTS = tuple(_encoded_varint(value) for value in range(_SMALL_VARINT_LIMIT))
_NULL = _encoded_varint(-1)
