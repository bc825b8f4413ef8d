"""Producer state snapshot files of one partition: ``<offset>.snapshot`` beside its segments.

Kafka's scheme: a snapshot named by offset X holds the state of every batch below X. One is
written whenever a segment rolls (X is the new segment's base offset) and at clean shutdown (X is
the log end), so a restart reads the newest snapshot at or below the log end and replays only
the batch headers after it. The contents are opaque here; whoever writes them checks them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from goqueue.log.layout import segment_path, write_durably

SNAPSHOT_SUFFIX = ".snapshot"
_SNAPSHOT_NAME = re.compile(r"^(\d{20})\.snapshot$")


class SnapshotFiles:
    """The snapshot files of one partition directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def offsets(self) -> list[int]:
        """Offsets of the snapshots present, in increasing order."""
        found = []
        for name in os.listdir(self.directory):
            match = _SNAPSHOT_NAME.match(name)
            if match:
                found.append(int(match.group(1)))
        return sorted(found)

    def read(self, offset: int) -> bytes:
        return self._path(offset).read_bytes()

    def write(self, offset: int, data: bytes, *, durable: bool) -> None:
        """Replace the snapshot at ``offset``. Without ``durable`` nothing is fsynced: a crash
        may leave a torn file, which the reader detects and passes over for an older one."""
        path = self._path(offset)
        if durable:
            write_durably(path, data)
            return
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def delete(self, offset: int) -> None:
        self._path(offset).unlink(missing_ok=True)

    def delete_above(self, offset: int) -> None:
        """Drop snapshots of offsets the log no longer reaches (it was truncated below them)."""
        for found in self.offsets():
            if found > offset:
                self.delete(found)

    def delete_before(self, log_start_offset: int) -> None:
        """Drop snapshots that retention or DeleteRecords made useless: all below the newest
        one at or below the log start, which replay still starts from."""
        below = [found for found in self.offsets() if found <= log_start_offset]
        for found in below[:-1]:
            self.delete(found)

    def _path(self, offset: int) -> Path:
        return segment_path(self.directory, offset, SNAPSHOT_SUFFIX)
