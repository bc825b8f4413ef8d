"""File and directory naming of a data directory, shared by the log, its manager and verify.

Kafka's layout: ``<data_dir>/<topic>-<partition>/`` holds segments named by their base offset
(``%020d.log``) with ``.index`` and ``.timeindex`` files of the same name.
"""

import os
import re
from pathlib import Path

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
RECOVERY_POINT_FILE = "recovery-point"
"""Per partition: offsets below it lie in segments whose data and indexes are fsynced."""
LOG_START_OFFSET_FILE = "log-start-offset"
"""Per partition: the log start offset set by DeleteRecords, when it lies inside a segment."""
CLEAN_SHUTDOWN_MARKER = ".clean-shutdown"
METADATA_DIR = "__metadata"
DELETE_SUFFIX = "-delete"
"""A partition directory being deleted is renamed first, so a crash cannot revive half of it."""

_SEGMENT_NAME = re.compile(r"^(\d{20})\.log$")
_PARTITION_DIR = re.compile(r"^(.+)-(\d+)$")


def segment_path(directory: Path, base_offset: int, suffix: str) -> Path:
    return directory / f"{base_offset:020d}{suffix}"


def segment_bases(directory: Path) -> list[int]:
    """Base offsets of the segment files in a partition directory, in order."""
    bases = []
    for name in os.listdir(directory):
        match = _SEGMENT_NAME.match(name)
        if match:
            bases.append(int(match.group(1)))
    return sorted(bases)


def partition_dir_name(topic: str, partition: int) -> str:
    return f"{topic}-{partition}"


def parse_partition_dir(name: str) -> tuple[str, int] | None:
    """(topic, partition) of a partition directory name, or None for anything else."""
    if name == METADATA_DIR or name.startswith("."):
        return None
    match = _PARTITION_DIR.match(name)
    return (match.group(1), int(match.group(2))) if match else None


def partition_dirs(data_dir: Path) -> list[tuple[Path, str, int]]:
    """(directory, topic, partition) for every partition log in a data directory, sorted."""
    found = []
    for entry in sorted(data_dir.iterdir()):
        parsed = parse_partition_dir(entry.name)
        if parsed is not None and entry.is_dir():
            found.append((entry, *parsed))
    return found


def fsync_dir(directory: Path) -> None:
    """Make file creations, renames and removals in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically: a crash leaves either the old or the new contents."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)
