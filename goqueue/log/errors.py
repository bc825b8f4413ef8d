"""Errors of the partition log that a protocol front end answers with a Kafka error code."""

from typing import ClassVar

from kio.schema.errors import ErrorCode


class OffsetOutOfRangeError(Exception):
    """A read below the log start offset or beyond the log end offset."""

    error_code: ClassVar[ErrorCode] = ErrorCode.offset_out_of_range
