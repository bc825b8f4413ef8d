"""RecordBatch v2 header views: parsing, validation and in-place patching.

The broker never re-encodes a batch, so everything here works on the fixed 61-byte header and
leaves the records section alone. Layout (big-endian)::

    base_offset int64 | batch_length int32 | leader_epoch int32 | magic int8 | crc uint32 |
    attributes int16 | last_offset_delta int32 | first_timestamp int64 | max_timestamp int64 |
    producer_id int64 | producer_epoch int16 | base_sequence int32 | record_count int32

``batch_length`` counts the bytes after itself; the CRC32C covers ``attributes`` to the end.
"""

import enum
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import crc32c

from goqueue.records.buffer import Buffer
from goqueue.records.compression import Compression
from goqueue.records.errors import (
    CorruptRecordError,
    InvalidRecordError,
    RecordsError,
    UnsupportedMagicError,
)

HEADER_SIZE = 61
MAGIC = 2
LENGTH_PREFIX = 12
"""Bytes before ``batch_length``'s counted region: base_offset and batch_length themselves."""
MAGIC_POSITION = 16
CRC_START = 21
"""Offset of ``attributes``: the CRC32C covers the batch from here to its end."""

HEADER = struct.Struct(">qiibIhiqqqhii")
_BASE_OFFSET = struct.Struct(">q")
_LEADER_EPOCH = struct.Struct(">i")
_LEADER_EPOCH_POSITION = 12
_CRC = struct.Struct(">I")
_CRC_POSITION = 17
_ATTRIBUTES = struct.Struct(">h")
_MAX_TIMESTAMP = struct.Struct(">q")
_MAX_TIMESTAMP_POSITION = 35

_COMPRESSION_MASK = 0x07
_TIMESTAMP_TYPE_BIT = 0x08
_TRANSACTIONAL_BIT = 0x10
_CONTROL_BIT = 0x20
_MAX_CODEC = max(Compression)


class TimestampType(enum.IntEnum):
    """Whether record timestamps come from the producer or from the broker's clock."""

    create_time = 0
    log_append_time = 1


@dataclass(frozen=True, slots=True)
class BatchHeader:
    """The decoded fixed header of one batch."""

    base_offset: int
    batch_length: int
    leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    first_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def size(self) -> int:
        """Bytes the whole batch occupies."""
        return self.batch_length + LENGTH_PREFIX

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression(self) -> Compression:
        return Compression(self.attributes & _COMPRESSION_MASK)

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & _TRANSACTIONAL_BIT)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & _CONTROL_BIT)

    @property
    def timestamp_type(self) -> TimestampType:
        return TimestampType(bool(self.attributes & _TIMESTAMP_TYPE_BIT))


def read_header(buf: Buffer, pos: int = 0) -> BatchHeader:
    """Parse the header at ``pos`` without validating anything but its presence."""
    if len(buf) - pos < HEADER_SIZE:
        raise CorruptRecordError(f"truncated batch header ({len(buf) - pos} bytes)")
    return BatchHeader(*HEADER.unpack_from(buf, pos))


def check_batch(buf: Buffer, pos: int = 0, *, verify_crc: bool = True) -> BatchHeader:
    """Validate the framing, magic, codec and CRC of the batch at ``pos`` and return its header.

    Raises CorruptRecordError for damaged bytes and UnsupportedMagicError for v0/v1 message sets
    (whose magic byte sits at the same position). Messages leave out the position: callers
    know where the buffer came from and prefix it.
    """
    remaining = len(buf) - pos
    if remaining < HEADER_SIZE:
        if remaining > MAGIC_POSITION and buf[pos + MAGIC_POSITION] != MAGIC:
            raise UnsupportedMagicError(f"message format v{buf[pos + MAGIC_POSITION]}")
        raise CorruptRecordError(f"truncated batch header ({remaining} bytes)")
    fields = HEADER.unpack_from(buf, pos)
    _, batch_length, _, magic, crc, attributes = fields[:6]
    if magic != MAGIC:
        raise UnsupportedMagicError(f"message format v{magic}; only v2 is supported")
    if batch_length < HEADER_SIZE - LENGTH_PREFIX:
        raise CorruptRecordError(f"batch length {batch_length} is too small")
    size = batch_length + LENGTH_PREFIX
    if size > remaining:
        raise CorruptRecordError(f"batch claims {size} bytes but only {remaining} follow")
    if attributes & _COMPRESSION_MASK > _MAX_CODEC:
        raise CorruptRecordError(f"unknown compression codec {attributes & _COMPRESSION_MASK}")
    if verify_crc:
        actual = crc32c.crc32c(memoryview(buf)[pos + CRC_START : pos + size])
        if actual != crc:
            raise CorruptRecordError(f"CRC mismatch: stored {crc:#010x}, computed {actual:#010x}")
    return BatchHeader(*fields)


def scan_batches(buf: Buffer, *, verify_crc: bool = True) -> list[BatchHeader]:
    """Validate a produce payload: one or more complete, consecutive v2 batches.

    Beyond framing and CRC, each batch must hold at least one record and its offset range must
    match its record count, as Kafka requires of batches coming from clients.
    """
    if not len(buf):
        raise InvalidRecordError("no record batches")
    headers = []
    pos = 0
    while pos < len(buf):
        try:
            header = check_batch(buf, pos, verify_crc=verify_crc)
        except RecordsError as exc:
            raise type(exc)(f"batch at byte {pos}: {exc}") from None
        if header.record_count <= 0:
            raise InvalidRecordError(f"batch at byte {pos} holds {header.record_count} records")
        if header.last_offset_delta != header.record_count - 1:
            raise InvalidRecordError(
                f"batch at byte {pos} has last offset delta {header.last_offset_delta} "
                f"for {header.record_count} records"
            )
        headers.append(header)
        pos += header.size
    return headers


def iter_batches(buf: Buffer) -> Iterator[tuple[BatchHeader, memoryview]]:
    """Walk concatenated batches, stopping silently at a partial trailing batch.

    Fetch responses cut the last batch at the byte limit, so a short tail is normal here; CRCs
    are not checked.
    """
    view = memoryview(buf)
    pos = 0
    while len(view) - pos >= HEADER_SIZE:
        magic = view[pos + MAGIC_POSITION]
        if magic != MAGIC:
            raise UnsupportedMagicError(f"message format v{magic} at byte {pos}")
        header = read_header(view, pos)
        if header.batch_length < HEADER_SIZE - LENGTH_PREFIX:
            raise CorruptRecordError(f"batch length {header.batch_length} at byte {pos}")
        end = pos + header.size
        if end > len(view):
            return
        yield header, view[pos:end]
        pos = end


def set_base_offset(buf: bytearray | memoryview, pos: int, base_offset: int) -> None:
    """Assign the batch's offsets; the field lies outside the CRC, so the CRC stays valid."""
    _BASE_OFFSET.pack_into(buf, pos, base_offset)


def set_leader_epoch(buf: bytearray | memoryview, pos: int, epoch: int) -> None:
    """Stamp the leader epoch; like the base offset it is outside the CRC."""
    _LEADER_EPOCH.pack_into(buf, pos + _LEADER_EPOCH_POSITION, epoch)


def set_log_append_time(
    buf: bytearray | memoryview, pos: int, header: BatchHeader, append_time_ms: int
) -> None:
    """Give the batch the broker's append time (Kafka's LogAppendTime, as its
    `DefaultRecordBatch.setMaxTimestamp` does): set the timestamp type bit and the max
    timestamp, which readers then report for every record. Both lie inside the CRC, so it is
    computed again; the records themselves are untouched."""
    _ATTRIBUTES.pack_into(buf, pos + CRC_START, header.attributes | _TIMESTAMP_TYPE_BIT)
    _MAX_TIMESTAMP.pack_into(buf, pos + _MAX_TIMESTAMP_POSITION, append_time_ms)
    crc = crc32c.crc32c(memoryview(buf)[pos + CRC_START : pos + header.size])
    _CRC.pack_into(buf, pos + _CRC_POSITION, crc)
