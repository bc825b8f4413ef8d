"""The leader epoch cache of one partition: which leader epoch began at which offset.

Kafka's LeaderEpochFileCache (KIP-101, KIP-279). A leader records `(epoch, log end)` when it
takes over; a follower records the epoch of every batch it copies whose epoch is new. With it a
leader answers OffsetForLeaderEpoch ("where did my epoch E end in your log?"), and a replica that
returns after a leader change truncates exactly the suffix the new leader does not have, instead
of trusting its high watermark.

The entries are written to ``leader-epoch-checkpoint`` in the partition directory before the
data they describe is appended (the callers await `write`), so after a crash the file may name
an epoch whose batches were lost, never the reverse; opening truncates such entries away.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from pathlib import Path
from typing import NamedTuple

from goqueue.log.layout import write_durably

CHECKPOINT_FILE = "leader-epoch-checkpoint"
CHECKPOINT_VERSION = 0
UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1


class EpochEntry(NamedTuple):
    epoch: int
    start_offset: int


class LeaderEpochCache:
    """Entries in increasing epoch and start offset; changed on the event loop, written from a
    worker thread (`write` copies them under a lock, so the newest state is what lands last)."""

    def __init__(self, path: Path, entries: list[EpochEntry] | None = None) -> None:
        self.path = path
        self._entries: list[EpochEntry] = list(entries or [])
        self._lock = threading.Lock()
        self._dirty = False

    @classmethod
    def load(cls, directory: Path, log_start_offset: int, log_end_offset: int) -> LeaderEpochCache:
        """Read the checkpoint (a missing or malformed one is empty) and drop what lies past the
        log end or before the log start."""
        cache = cls(directory / CHECKPOINT_FILE, _read(directory / CHECKPOINT_FILE))
        cache.truncate_from_end(log_end_offset)
        cache.truncate_from_start(log_start_offset)
        return cache

    @property
    def entries(self) -> tuple[EpochEntry, ...]:
        return tuple(self._entries)

    @property
    def latest_epoch(self) -> int:
        return self._entries[-1].epoch if self._entries else UNDEFINED_EPOCH

    @property
    def dirty(self) -> bool:
        """Whether the file lags the entries."""
        return self._dirty

    def assign(self, epoch: int, start_offset: int) -> bool:
        """Record that `epoch` starts at `start_offset`; entries it contradicts (same or higher
        epoch, same or higher start) are removed first, as in Kafka. True if anything changed."""
        if epoch < 0 or start_offset < 0:
            raise ValueError(f"invalid leader epoch entry ({epoch}, {start_offset})")
        if self._entries:
            latest = self._entries[-1]
            if latest.epoch == epoch and latest.start_offset <= start_offset:
                return False
        self._entries = [
            entry
            for entry in self._entries
            if entry.epoch < epoch and entry.start_offset < start_offset
        ]
        self._entries.append(EpochEntry(epoch, start_offset))
        self._dirty = True
        return True

    def end_offset_for(self, requested: int, log_end_offset: int) -> tuple[int, int]:
        """(epoch, end offset) answering OffsetForLeaderEpoch for `requested`: the largest epoch
        at or below it and the start offset of the first epoch above it (the log end for the
        latest epoch); (-1, -1) for an epoch above every known one or an undefined one."""
        if requested == UNDEFINED_EPOCH or not self._entries:
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        if requested == self._entries[-1].epoch:
            return requested, log_end_offset
        epochs = [entry.epoch for entry in self._entries]
        higher = bisect_right(epochs, requested)
        if higher == len(self._entries):
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        end = self._entries[higher].start_offset
        if higher == 0:
            return requested, end
        return self._entries[higher - 1].epoch, end

    def truncate_from_end(self, end_offset: int) -> None:
        """The log was truncated to `end_offset`: forget epochs that start at or after it."""
        kept = [entry for entry in self._entries if entry.start_offset < end_offset]
        if len(kept) != len(self._entries):
            self._entries = kept
            self._dirty = True

    def truncate_from_start(self, start_offset: int) -> None:
        """The log now starts at `start_offset`: epochs that ended before it go, and the one
        holding it starts there."""
        below = [entry for entry in self._entries if entry.start_offset <= start_offset]
        if not below or (len(below) == 1 and below[0].start_offset == start_offset):
            return
        holder = EpochEntry(below[-1].epoch, start_offset)
        self._entries = [holder, *self._entries[len(below) :]]
        self._dirty = True

    def write(self) -> None:
        """Write the entries durably (fsyncs: call from a worker thread)."""
        with self._lock:
            entries = list(self._entries)
            self._dirty = False
            lines = [str(CHECKPOINT_VERSION), str(len(entries))]
            lines += [f"{entry.epoch} {entry.start_offset}" for entry in entries]
            write_durably(self.path, ("\n".join(lines) + "\n").encode())


def _read(path: Path) -> list[EpochEntry]:
    """Kafka's checkpoint format: version, count, then one `epoch offset` line per entry."""
    try:
        lines = path.read_text().split("\n")
        if int(lines[0]) != CHECKPOINT_VERSION:
            return []
        count = int(lines[1])
        entries = [EpochEntry(*map(int, line.split())) for line in lines[2 : 2 + count]]
    except (OSError, ValueError, TypeError, IndexError):
        return []
    return entries if len(entries) == count else []
