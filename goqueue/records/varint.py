"""Zigzag varints, the length and delta encoding inside v2 records (protobuf style)."""

from goqueue.records.buffer import Buffer
from goqueue.records.errors import InvalidRecordError

_MAX_VARINT_BYTES = 10


def write_varint(out: bytearray, value: int) -> None:
    """Append ``value`` zigzag-encoded, seven bits per byte, low bits first."""
    encoded = (value << 1) ^ (value >> 63)
    while encoded > 0x7F:
        out.append((encoded & 0x7F) | 0x80)
        encoded >>= 7
    out.append(encoded)


def read_varint(buf: Buffer, pos: int) -> tuple[int, int]:
    """Decode the varint at ``pos``; return it and the position after it."""
    encoded = 0
    shift = 0
    end = min(len(buf), pos + _MAX_VARINT_BYTES)
    while pos < end:
        byte = buf[pos]
        pos += 1
        encoded |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (encoded >> 1) ^ -(encoded & 1), pos
        shift += 7
    raise InvalidRecordError(f"malformed varint ending at byte {pos}")
