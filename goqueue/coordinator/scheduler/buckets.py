"""The far future on disk: scheduled messages grouped in files by window of due time.

This is Go-Queue's take on RocketMQ 5's timer log and Pulsar's delayed-delivery buckets: only
messages due within the next window or two are held in memory; every later one is appended to
the file of its window (`<window>.msgs`), and a window's file is read back in one sequential
pass when the window comes near. A side file (`<window>.ids`) lists the ids of a window's
messages, so a cancel or a lookup finds a far message with one substring search per window
instead of a parse.

The files are a cache of the schedule log, not a second source of truth: they are never
fsynced and are rebuilt from the log each time a shard loads, so a crash costs nothing but
that rebuild.
"""

from __future__ import annotations

import shutil
import struct
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_FRAME = struct.Struct(">IqH")
"""length of the rest of the frame, schedule log offset, id length (the id and value follow)."""
MAX_OPEN_FILES = 32
"""Windows with an open file handle; appends to others reopen theirs (rare: parks arrive
roughly in due-time order per producer)."""


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
        self._open: OrderedDict[int, tuple[BinaryIO, BinaryIO]] = OrderedDict()

    def add(self, window: int, offset: int, schedule_id: str, due_ms: int, value: bytes) -> None:
        """Append one message to its window's files (buffered: see the module docstring)."""
        msgs, ids = self._files(window)
        raw_id = schedule_id.encode()
        msgs.write(_FRAME.pack(_FRAME.size - 4 + len(raw_id) + len(value), offset, len(raw_id)))
        msgs.write(raw_id)
        msgs.write(value)
        ids.write(b"%s\t%d\n" % (raw_id, due_ms))

    def seal(self, window: int) -> None:
        """No more appends to this window: close its files so a thread can read them."""
        files = self._open.pop(window, None)
        if files is not None:
            for file in files:
                file.close()

    def flush(self) -> None:
        """Push buffered appends to the files, before a thread searches them."""
        for files in self._open.values():
            for file in files:
                file.flush()

    def close(self) -> None:
        for window in list(self._open):
            self.seal(window)

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
        """Delete a window's files once its messages are in memory."""
        self.seal(window)
        for suffix in (".msgs", ".ids"):
            (self.directory / f"{window}{suffix}").unlink(missing_ok=True)

    def find(self, schedule_id: str) -> tuple[int, int] | None:
        """(window, due time) of a far message, None if no window lists it (blocking)."""
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

    def _files(self, window: int) -> tuple[BinaryIO, BinaryIO]:
        files = self._open.get(window)
        if files is not None:
            self._open.move_to_end(window)
            return files
        if len(self._open) >= MAX_OPEN_FILES:
            self.seal(next(iter(self._open)))
        files = (
            (self.directory / f"{window}.msgs").open("ab"),
            (self.directory / f"{window}.ids").open("ab"),
        )
        self._open[window] = files
        return files


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
