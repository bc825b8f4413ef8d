"""Decoding of the records inside batches, for consumers, timestamp lookups and verification."""

from collections.abc import Iterator
from dataclasses import dataclass

from goqueue.records.batch import HEADER_SIZE, BatchHeader, TimestampType, iter_batches
from goqueue.records.buffer import Buffer
from goqueue.records.compression import Compression, decompress
from goqueue.records.errors import InvalidRecordError
from goqueue.records.varint import read_varint


@dataclass(frozen=True, slots=True)
class ConsumedRecord:
    """One decoded record with its absolute offset and effective timestamp."""

    offset: int
    timestamp_ms: int
    timestamp_type: TimestampType
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


def iter_records(buf: Buffer) -> Iterator[ConsumedRecord]:
    """Records of concatenated batches, skipping control batches and a partial trailing batch."""
    for header, batch in iter_batches(buf):
        if not header.is_control:
            yield from batch_records(header, batch)


def batch_records(header: BatchHeader, batch: memoryview) -> Iterator[ConsumedRecord]:
    """Decode every record of one batch (``batch`` spans the whole batch, header included).

    With log-append time, every record carries the batch's max timestamp, as in Kafka.
    """
    data: Buffer = batch[HEADER_SIZE:]
    if header.compression is not Compression.none:
        data = decompress(header.compression, data)
    timestamp_type = header.timestamp_type
    log_append = timestamp_type is TimestampType.log_append_time
    pos = 0
    for _ in range(header.record_count):
        length, pos = read_varint(data, pos)
        end = pos + length
        if length < 0 or end > len(data):
            raise InvalidRecordError(f"record of {length} bytes overruns its batch")
        record, pos = _decode_record(header, data, pos + 1, log_append, timestamp_type)
        if pos != end:
            raise InvalidRecordError(f"record length {length} does not match its contents")
        yield record
    if pos != len(data):
        raise InvalidRecordError(f"{len(data) - pos} stray bytes after the last record")


def _decode_record(
    header: BatchHeader, data: Buffer, pos: int, log_append: bool, timestamp_type: TimestampType
) -> tuple[ConsumedRecord, int]:
    """Decode one record body starting after its attributes byte."""
    timestamp_delta, pos = read_varint(data, pos)
    offset_delta, pos = read_varint(data, pos)
    key, pos = _read_bytes(data, pos)
    value, pos = _read_bytes(data, pos)
    count, pos = read_varint(data, pos)
    if count < 0:
        raise InvalidRecordError(f"negative header count {count}")
    headers = []
    for _ in range(count):
        name, pos = _read_bytes(data, pos)
        if name is None:
            raise InvalidRecordError("record header with a null name")
        header_value, pos = _read_bytes(data, pos)
        headers.append((name.decode("utf-8", "replace"), header_value))
    timestamp = header.max_timestamp if log_append else header.first_timestamp + timestamp_delta
    record = ConsumedRecord(
        offset=header.base_offset + offset_delta,
        timestamp_ms=timestamp,
        timestamp_type=timestamp_type,
        key=key,
        value=value,
        headers=tuple(headers),
    )
    return record, pos


def _read_bytes(data: Buffer, pos: int) -> tuple[bytes | None, int]:
    length, pos = read_varint(data, pos)
    if length < 0:
        return None, pos
    end = pos + length
    if end > len(data):
        raise InvalidRecordError(f"field of {length} bytes overruns its record")
    return bytes(data[pos:end]), end
