"""Errors raised while validating or decoding record batches, each carrying its Kafka error code
so a protocol front end can answer without a mapping table of its own."""

from typing import ClassVar

from kio.schema.errors import ErrorCode


class RecordsError(Exception):
    """Base class: a batch that the broker must refuse."""

    error_code: ClassVar[ErrorCode] = ErrorCode.corrupt_message


class CorruptRecordError(RecordsError):
    """Framing or CRC damage: the bytes are not what the producer sent."""

    error_code = ErrorCode.corrupt_message


class InvalidRecordError(RecordsError):
    """An intact batch that breaks a rule (bad counts, offsets or record encoding)."""

    error_code = ErrorCode.invalid_record


class UnsupportedMagicError(RecordsError):
    """A message set older than RecordBatch v2 (magic 0 or 1), which Go-Queue does not store."""

    error_code = ErrorCode.unsupported_for_message_format
