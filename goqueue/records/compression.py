"""Kafka's record batch compression codecs, in the exact framings Kafka clients expect.

The broker stores compressed batches verbatim, so these functions only run where a batch is
built or its records are decoded (clients, timestamp lookups, verification).
"""

import enum
import struct

import cramjam

from goqueue.records.buffer import Buffer
from goqueue.records.errors import CorruptRecordError

# xerial snappy-java framing, written by the Java client: magic, version, compatible version,
# then blocks each prefixed with its big-endian compressed length.
_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = struct.Struct(">8sii")
_XERIAL_BLOCK_LENGTH = struct.Struct(">i")
_XERIAL_BLOCK_SIZE = 32 * 1024


class Compression(enum.IntEnum):
    """The codec id stored in the low three bits of a batch's attributes."""

    none = 0
    gzip = 1
    snappy = 2
    lz4 = 3
    zstd = 4


def compress(codec: Compression, data: bytes) -> bytes:
    """Compress a batch's records section.

    Snappy is written xerial-framed because every Kafka client reads that framing, while raw
    snappy relies on a fallback in the Java reader. LZ4 uses independent blocks because Kafka's
    Java LZ4 reader decompresses each block on its own.
    """
    match codec:
        case Compression.none:
            return data
        case Compression.gzip:
            return bytes(cramjam.gzip.compress(data))
        case Compression.snappy:
            return _xerial_compress(data)
        case Compression.lz4:
            compressor = cramjam.lz4.Compressor(content_checksum=False, block_linked=False)
            compressor.compress(data)
            return bytes(compressor.finish())
        case Compression.zstd:
            return bytes(cramjam.zstd.compress(data))
    raise ValueError(f"unknown compression codec {codec!r}")


def decompress(codec: Compression, data: Buffer) -> bytes:
    """Decompress a batch's records section; any codec failure is a corrupt batch."""
    try:
        match codec:
            case Compression.none:
                return bytes(data)
            case Compression.gzip:
                return bytes(cramjam.gzip.decompress(data))
            case Compression.snappy:
                return _snappy_decompress(memoryview(data))
            case Compression.lz4:
                return bytes(cramjam.lz4.decompress(data))
            case Compression.zstd:
                return bytes(cramjam.zstd.decompress(data))
    except cramjam.DecompressionError as exc:
        raise CorruptRecordError(f"cannot decompress {codec.name} records: {exc}") from exc
    raise CorruptRecordError(f"unknown compression codec {codec}")


def _xerial_compress(data: bytes) -> bytes:
    out = bytearray(_XERIAL_HEADER.pack(_XERIAL_MAGIC, 1, 1))
    view = memoryview(data)
    for start in range(0, len(view), _XERIAL_BLOCK_SIZE):
        block = cramjam.snappy.compress_raw(view[start : start + _XERIAL_BLOCK_SIZE])
        out += _XERIAL_BLOCK_LENGTH.pack(len(block))
        out += block
    return bytes(out)


def _snappy_decompress(data: memoryview) -> bytes:
    """Read raw snappy (librdkafka, kafka-python) or xerial-framed snappy (Java)."""
    if data[: len(_XERIAL_MAGIC)] != _XERIAL_MAGIC:
        return bytes(cramjam.snappy.decompress_raw(data))
    out = bytearray()
    pos = _XERIAL_HEADER.size
    while pos < len(data):
        if pos + _XERIAL_BLOCK_LENGTH.size > len(data):
            raise CorruptRecordError("truncated xerial snappy block length")
        (length,) = _XERIAL_BLOCK_LENGTH.unpack_from(data, pos)
        pos += _XERIAL_BLOCK_LENGTH.size
        if length < 0 or pos + length > len(data):
            raise CorruptRecordError("truncated xerial snappy block")
        out += cramjam.snappy.decompress_raw(data[pos : pos + length])
        pos += length
    return bytes(out)
