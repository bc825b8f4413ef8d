"""A follower's log: the leader's batches appended with the leader's offsets, and restarts."""

from __future__ import annotations

from pathlib import Path

import pytest
from log_helpers import config, payload, read_all

from goqueue.log.errors import OffsetOutOfRangeError
from goqueue.log.partition_log import PartitionLog
from goqueue.records.batch import iter_batches, scan_batches, set_base_offset


def leader_batches(offsets_and_counts: list[tuple[int, int]]) -> bytearray:
    """Batches as a leader serves them: each at its own base offset, gaps allowed."""
    data = payload([count for _, count in offsets_and_counts])
    position = 0
    for (offset, _), header in zip(offsets_and_counts, scan_batches(data), strict=True):
        set_base_offset(data, position, offset)
        position += header.size
    return data


def open_log(tmp_path: Path, **overrides: int) -> PartitionLog:
    return PartitionLog(tmp_path / "topic-0", "topic", 0, config(**overrides))


def test_replicated_batches_keep_the_leaders_offsets_across_gaps(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    data = leader_batches([(0, 2), (2, 3), (9, 1), (10, 2)])
    log.append_replicated(data, scan_batches(data), now_ms=1000)
    assert log.log_end_offset == 12
    assert read_all(log) == bytes(data), "stored verbatim"
    more = leader_batches([(20, 1)])
    log.append_replicated(more, scan_batches(more), now_ms=1000)
    assert log.log_end_offset == 21
    bases = [header.base_offset for header, _ in iter_batches(read_all(log))]
    assert bases == [0, 2, 9, 10, 20]


def test_replicated_batches_roll_segments_at_their_own_offsets(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_bytes=200)
    data = leader_batches([(0, 3), (5, 3), (9, 3)])
    log.append_replicated(data, scan_batches(data), now_ms=1000)
    assert [segment.base_offset for segment in log.segments] == [0, 5, 9]


def test_a_batch_below_the_log_end_is_refused(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    data = leader_batches([(0, 3)])
    log.append_replicated(data, scan_batches(data), now_ms=1000)
    again = leader_batches([(2, 1)])
    with pytest.raises(OffsetOutOfRangeError):
        log.append_replicated(again, scan_batches(again), now_ms=1000)


def test_truncate_fully_and_start_at_continues_empty_there(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    data = leader_batches([(0, 3)])
    log.append_replicated(data, scan_batches(data), now_ms=1000)
    log.truncate_fully_and_start_at(50)
    assert (log.log_start_offset, log.log_end_offset) == (50, 50)
    log.close()
    reopened = open_log(tmp_path)
    assert (reopened.log_start_offset, reopened.log_end_offset) == (50, 50)
    reopened.close()
