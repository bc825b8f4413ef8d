"""The far future on disk: scheduled messages grouped in files by window of due time.

This is Go-Queue's take on RocketMQ 5's timer log and Pulsar's delayed-delivery buckets: only
messages due within the next window or two are held in memory; every later one is appended to
the file of its window (`<window>.msgs`), and a window's file is read back in one sequential
pass when the window comes near. A side file (`<window>.ids`) lists the ids of a window's
messages, so a cancel or a lookup finds a far message with one substring search per window
instead of a parse.

The files are a cache of the schedule log, not a second source of truth: they are never
fsynced and are rebuilt from the log each time a shard loads, so a crash costs nothing but
that rebuild. Appends are buffered in memory (a few MiB per shard) and written a window at a
time.
"""

from __future__ import annotations

import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_FRAME = struct.Struct(">IqH")
"""length of the rest of the frame, schedule log offset, id length (the id and value follow)."""
MAX_BUFFERED_BYTES = 4 * 1024 * 1024
"""Appends are buffered per window and written out together once this much is buffered (or
before a read): parks and replays arrive in no particular due order, and writing each one to
its window's file as it came cost a file open per message."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One far message as its window's file keeps it."""

    offset: int
    schedule_id: str
    value: bytes


class BucketStore:
    """The window files of one schedule shard, under `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        self._buffers: dict[int, tuple[bytearray, bytearray]] = {}
        self._buffered = 0

    def add(self, window: int, offset: int, schedule_id: str, due_ms: int, value: bytes) -> None:
        """Append one message to its window (buffered: see MAX_BUFFERED_BYTES)."""
        buffers = self._buffers.get(window)
        if buffers is None:
            buffers = self._buffers[window] = (bytearray(), bytearray())
        msgs, ids = buffers
        raw_id = schedule_id.encode()
        size = len(msgs) + len(ids)
        msgs += _FRAME.pack(_FRAME.size - 4 + len(raw_id) + len(value), offset, len(raw_id))
        msgs += raw_id
        msgs += value
        ids += b"%s\t%d\n" % (raw_id, due_ms)
        self._buffered += len(msgs) + len(ids) - size
        if self._buffered > MAX_BUFFERED_BYTES:
            self.flush()

    def seal(self, window: int) -> None:
        """No more appends to this window: write what is buffered, so a thread can read it."""
        buffers = self._buffers.pop(window, None)
        if buffers is not None:
            self._write(window, *buffers)
            self._buffered -= len(buffers[0]) + len(buffers[1])

    def flush(self) -> None:
        """Write every buffered append to its window's files (before a thread reads them)."""
        for window, buffers in self._buffers.items():
            self._write(window, *buffers)
        self._buffers.clear()
        self._buffered = 0

    def close(self) -> None:
        self.flush()

    def windows(self) -> list[int]:
        """Windows that have a file, in due-time order."""
        return sorted(int(path.stem) for path in self.directory.glob("*.msgs"))

    def read(self, window: int) -> list[Frame]:
        """Every message of a window (blocking: run it in a thread); a torn tail is ignored."""
        try:
            data = (self.directory / f"{window}.msgs").read_bytes()
        except FileNotFoundError:
            return []
        return list(_frames(data))

    def remove(self, window: int) -> None:
        """Delete a window's files once its messages are in memory (it is sealed)."""
        for suffix in (".msgs", ".ids"):
            (self.directory / f"{window}{suffix}").unlink(missing_ok=True)

    def find(self, schedule_id: str) -> tuple[int, int] | None:
        """(window, due time) of a far message, None if no window lists it (blocking; flush
        first)."""
        needle = b"\n" + schedule_id.encode() + b"\t"
        for window in self.windows():
            try:
                data = b"\n" + (self.directory / f"{window}.ids").read_bytes()
            except FileNotFoundError:
                continue
            at = data.find(needle)
            if at >= 0:
                start = at + len(needle)
                end = data.find(b"\n", start)
                if end > start:
                    return window, int(data[start:end])
        return None

    def _write(self, window: int, msgs: bytearray, ids: bytearray) -> None:
        for suffix, data in ((".msgs", msgs), (".ids", ids)):
            with (self.directory / f"{window}{suffix}").open("ab") as file:
                file.write(data)


def _frames(data: bytes) -> Iterator[Frame]:
    pos = 0
    while pos + _FRAME.size <= len(data):
        length, offset, id_length = _FRAME.unpack_from(data, pos)
        end = pos + 4 + length
        if end > len(data):
            return
        id_start = pos + _FRAME.size
        value_start = id_start + id_length
        yield Frame(offset, data[id_start:value_start].decode(), data[value_start:end])
        pos = end
