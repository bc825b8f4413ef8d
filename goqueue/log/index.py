"""Sparse offset and time indexes of one segment, held in memory as arrays.

Lookups bisect the arrays; the files (Kafka's formats: big-endian (int32 relative offset, int32
position) and (int64 timestamp, int32 relative offset) entries) are written only when a segment
is sealed or the log closes, so the append path never touches them.
"""

from __future__ import annotations

import struct
import sys
from array import array
from bisect import bisect_left, bisect_right
from itertools import chain, pairwise
from pathlib import Path

OFFSET_ENTRY_SIZE = 8
TIME_ENTRY_SIZE = 12
_TIME_ENTRY = struct.Struct(">qi")
_SWAP = sys.byteorder == "little"


class IndexFormatError(ValueError):
    """An index file that is not a sequence of well-formed, increasing entries."""


class OffsetIndex:
    """Maps the base offsets of some batches to their byte positions in the segment."""

    __slots__ = ("base_offset", "positions", "relative_offsets")

    def __init__(self, base_offset: int) -> None:
        self.base_offset = base_offset
        self.relative_offsets = array("i")
        self.positions = array("i")

    def __len__(self) -> int:
        return len(self.positions)

    def append(self, offset: int, position: int) -> None:
        self.relative_offsets.append(offset - self.base_offset)
        self.positions.append(position)

    def entries(self) -> list[tuple[int, int]]:
        """(absolute offset, position) pairs."""
        return [
            (self.base_offset + r, p)
            for r, p in zip(self.relative_offsets, self.positions, strict=True)
        ]

    def floor_position(self, offset: int) -> int:
        """Position of the last indexed batch starting at or before ``offset`` (0 if none)."""
        i = bisect_right(self.relative_offsets, offset - self.base_offset) - 1
        return self.positions[i] if i >= 0 else 0

    def floor_entry_before(self, position_limit: int, offset_limit: int | None) -> int:
        """Position of the last indexed batch starting at or before ``position_limit`` whose base
        offset is below ``offset_limit`` (0 if none): where a bounded read can start walking."""
        i = bisect_right(self.positions, position_limit)
        if offset_limit is not None:
            i = min(i, bisect_left(self.relative_offsets, offset_limit - self.base_offset))
        return self.positions[i - 1] if i > 0 else 0

    def last_position(self) -> int:
        return self.positions[-1] if self.positions else 0

    def clear(self) -> None:
        del self.relative_offsets[:]
        del self.positions[:]

    def write(self, path: Path) -> None:
        pairs = array("i", bytes(OFFSET_ENTRY_SIZE * len(self.positions)))
        pairs[0::2] = self.relative_offsets
        pairs[1::2] = self.positions
        if _SWAP:
            pairs.byteswap()
        path.write_bytes(pairs.tobytes())

    def load(self, path: Path, segment_size: int) -> None:
        """Replace the entries with the file's, checking that they are strictly increasing and
        point inside a segment of ``segment_size`` bytes."""
        data = path.read_bytes()
        if len(data) % OFFSET_ENTRY_SIZE:
            raise IndexFormatError(
                f"{path.name}: {len(data)} bytes is not a whole number of entries"
            )
        pairs = array("i")
        pairs.frombytes(data)
        if _SWAP:
            pairs.byteswap()
        relative_offsets, positions = pairs[0::2], pairs[1::2]
        _check_increasing(path, relative_offsets, strict=True)
        _check_increasing(path, positions, strict=True)
        if positions and (positions[0] < 0 or positions[-1] >= segment_size):
            raise IndexFormatError(f"{path.name}: positions outside the segment")
        self.relative_offsets, self.positions = relative_offsets, positions


class TimeIndex:
    """Records the running maximum timestamp of a segment with the (last) offset of the batch
    that first reached it; timestamps strictly increase, so entries can be bisected."""

    __slots__ = ("base_offset", "relative_offsets", "timestamps")

    def __init__(self, base_offset: int) -> None:
        self.base_offset = base_offset
        self.timestamps = array("q")
        self.relative_offsets = array("i")

    def maybe_append(self, timestamp: int, offset: int) -> None:
        """Add an entry if ``timestamp`` is a new maximum."""
        if timestamp > (self.timestamps[-1] if self.timestamps else -1):
            self.timestamps.append(timestamp)
            self.relative_offsets.append(offset - self.base_offset)

    def entries(self) -> list[tuple[int, int]]:
        """(timestamp, absolute offset) pairs."""
        return [
            (t, self.base_offset + r)
            for t, r in zip(self.timestamps, self.relative_offsets, strict=True)
        ]

    def floor_offset(self, timestamp: int) -> int | None:
        """Offset of the last entry whose timestamp is at most ``timestamp``.

        Every batch before that entry's batch has only smaller timestamps, so a search for the
        first record at or after ``timestamp`` can start there.
        """
        i = bisect_right(self.timestamps, timestamp) - 1
        return self.base_offset + self.relative_offsets[i] if i >= 0 else None

    def last(self) -> tuple[int, int] | None:
        """(timestamp, offset) of the last entry."""
        if not self.timestamps:
            return None
        return self.timestamps[-1], self.base_offset + self.relative_offsets[-1]

    def clear(self) -> None:
        del self.timestamps[:]
        del self.relative_offsets[:]

    def write(self, path: Path) -> None:
        entries = len(self.timestamps)
        pairs = chain.from_iterable(zip(self.timestamps, self.relative_offsets, strict=True))
        path.write_bytes(struct.pack(">" + "qi" * entries, *pairs))

    def load(self, path: Path, offset_limit: int) -> None:
        """Replace the entries with the file's, checking their order and that their offsets lie
        below ``offset_limit`` (the segment's next offset)."""
        data = path.read_bytes()
        if len(data) % TIME_ENTRY_SIZE:
            raise IndexFormatError(
                f"{path.name}: {len(data)} bytes is not a whole number of entries"
            )
        timestamps, relative_offsets = array("q"), array("i")
        for timestamp, relative_offset in _TIME_ENTRY.iter_unpack(data):
            timestamps.append(timestamp)
            relative_offsets.append(relative_offset)
        _check_increasing(path, timestamps, strict=True)
        _check_increasing(path, relative_offsets, strict=False)
        if relative_offsets and (
            relative_offsets[0] < 0 or self.base_offset + relative_offsets[-1] >= offset_limit
        ):
            raise IndexFormatError(f"{path.name}: offsets outside the segment")
        self.timestamps, self.relative_offsets = timestamps, relative_offsets


def _check_increasing(path: Path, values: array[int], *, strict: bool) -> None:
    for previous, current in pairwise(values):
        if current < previous or (strict and current == previous):
            raise IndexFormatError(f"{path.name}: entries out of order ({previous}, {current})")
