"""Atomic replacement of segments by the log cleaner's output, and its completion after a crash.

Kafka's protocol: the cleaner writes the new segment as ``<base>.log.cleaned`` and fsyncs it.
The swap renames it to ``<base>.log.swap``, deletes the segments it replaces, oldest first,
and renames it to ``<base>.log`` (``<base>`` is the first replaced segment's base offset, so
the new file takes that segment's name). Whenever the process dies, loading the directory
finds one of:

- a ``.cleaned`` file: the swap never started and the old segments are intact; it is deleted;
- a ``.swap`` file: its data is durable, so the swap is completed: every segment file whose
  base offset lies in the offsets it covers is deleted and it is renamed into place. Old
  segments beyond its last batch may survive; they are a suffix of the replaced ones (deletion
  goes oldest first) holding only offsets above the swap file's, so the log stays consistent
  and the next pass compacts them again.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from goqueue.log.layout import INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX, fsync_dir, segment_path
from goqueue.log.segment import iter_headers
from goqueue.records.batch import read_header
from goqueue.records.errors import CorruptRecordError

logger = logging.getLogger(__name__)

CLEANED_SUFFIX = ".cleaned"
SWAP_SUFFIX = ".swap"

_SEGMENT_FILE = re.compile(
    rf"^(\d{{20}})({re.escape(LOG_SUFFIX)}|{re.escape(INDEX_SUFFIX)}|{re.escape(TIME_INDEX_SUFFIX)})$"
)
_SWAP_FILE = re.compile(rf"^(\d{{20}}){re.escape(LOG_SUFFIX + SWAP_SUFFIX)}$")


def cleaned_path(directory: Path, base_offset: int) -> Path:
    return segment_path(directory, base_offset, LOG_SUFFIX + CLEANED_SUFFIX)


def _swap_path(directory: Path, base_offset: int) -> Path:
    return segment_path(directory, base_offset, LOG_SUFFIX + SWAP_SUFFIX)


def begin_swap(directory: Path, base_offset: int) -> None:
    """Mark a fsynced ``.cleaned`` segment as ready to replace the old ones."""
    os.rename(cleaned_path(directory, base_offset), _swap_path(directory, base_offset))


def finish_swap(directory: Path, base_offset: int) -> None:
    """Give the swapped-in segment its final name, once the old segments are deleted."""
    os.rename(_swap_path(directory, base_offset), segment_path(directory, base_offset, LOG_SUFFIX))


def finish_interrupted_swaps(directory: Path) -> None:
    """Bring a partition directory left by a crash mid-clean back to whole segments: delete
    ``.cleaned`` files and complete the swap of ``.swap`` files (see the module docstring)."""
    changed = False
    for name in os.listdir(directory):
        if name.endswith(CLEANED_SUFFIX):
            logger.info("%s: deleting the unfinished cleaner output %s", directory.name, name)
            (directory / name).unlink()
            changed = True
    for name in sorted(os.listdir(directory)):
        match = _SWAP_FILE.match(name)
        if match is None:
            continue
        base = int(match.group(1))
        end = max(_next_offset(directory / name), base + 1)
        for other in os.listdir(directory):
            replaced = _SEGMENT_FILE.match(other)
            if replaced is not None and base <= int(replaced.group(1)) < end:
                (directory / other).unlink()
        finish_swap(directory, base)
        logger.info(
            "%s: completed the interrupted swap of cleaned segment %d", directory.name, base
        )
        changed = True
    if changed:
        fsync_dir(directory)


def _next_offset(path: Path) -> int:
    """The offset after the last intact batch of a segment file (its base if none)."""
    next_offset = int(path.name[:20])
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        for _, chunk, i in iter_headers(fd, 0, os.fstat(fd).st_size, path):
            next_offset = read_header(chunk, i).next_offset
    except CorruptRecordError:
        pass
    finally:
        os.close(fd)
    return next_offset
