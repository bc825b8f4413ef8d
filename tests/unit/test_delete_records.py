"""PartitionLog.delete_records_before: the log start offset moves inside a segment, durably."""

from __future__ import annotations

from pathlib import Path

import pytest
from log_helpers import append, config, crash, read_headers, segment_files

from goqueue.log.errors import OffsetOutOfRangeError
from goqueue.log.partition_log import PartitionLog


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "topic-0"


def open_log(directory: Path, *, recover: bool = False, **overrides: int) -> PartitionLog:
    return PartitionLog(directory, "topic", 0, config(**overrides), recover=recover)


def three_segments(directory: Path) -> PartitionLog:
    """Offsets 0-8 in three segments of three one-record batches each."""
    log = open_log(directory, segment_bytes=3 * 160)
    for _ in range(9):
        append(log, [1], value_size=80)
    assert log.segment_count == 3
    return log


def test_segments_wholly_below_go_and_reads_below_fail(directory: Path) -> None:
    log = three_segments(directory)
    assert log.delete_records_before(4) == 1
    assert (log.log_start_offset, log.log_end_offset) == (4, 9)
    assert segment_files(directory) == [f"{3:020d}.log", f"{6:020d}.log"]
    with pytest.raises(OffsetOutOfRangeError):
        log.read(3, 1000)
    assert [h.base_offset for h in read_headers(log, 4)] == [4, 5]
    log.close()


def test_deleting_below_the_current_start_changes_nothing(directory: Path) -> None:
    log = three_segments(directory)
    log.delete_records_before(5)
    assert log.delete_records_before(2) == 0
    assert log.log_start_offset == 5
    log.close()


def test_deleting_beyond_the_log_end_is_refused_and_changes_nothing(directory: Path) -> None:
    log = three_segments(directory)
    with pytest.raises(OffsetOutOfRangeError, match="ends at 9"):
        log.delete_records_before(10)
    assert (log.log_start_offset, log.segment_count) == (0, 3)
    log.close()


def test_deleting_everything_keeps_the_active_segment_until_retention_rolls_it(
    directory: Path,
) -> None:
    log = three_segments(directory)
    assert log.delete_records_before(9) == 2
    assert (log.log_start_offset, log.log_end_offset, log.segment_count) == (9, 9, 1)
    assert log.read(9, 1000) is None
    assert log.delete_expired_segments(now_ms=2000) == 1
    assert segment_files(directory) == [f"{9:020d}.log"]
    assert log.log_start_offset == 9
    log.close()


@pytest.mark.parametrize("clean", [True, False])
def test_the_checkpointed_log_start_survives_reopening(directory: Path, clean: bool) -> None:
    log = three_segments(directory)
    log.delete_records_before(7)
    log.checkpoint_log_start_offset()
    log.flush()
    if clean:
        log.close()
    else:
        crash(log)
    reopened = open_log(directory, recover=not clean, segment_bytes=3 * 160)
    assert (reopened.log_start_offset, reopened.log_end_offset) == (7, 9)
    with pytest.raises(OffsetOutOfRangeError):
        reopened.read(6, 1000)
    reopened.close()


def test_a_log_that_lost_its_tail_below_the_recorded_start_restarts_there(
    directory: Path,
) -> None:
    log = three_segments(directory)
    log.delete_records_before(8)
    log.checkpoint_log_start_offset()
    log.truncate_to(5)
    log.close()
    (directory / "log-start-offset").write_text("8\n")
    reopened = open_log(directory, segment_bytes=3 * 160)
    assert (reopened.log_start_offset, reopened.log_end_offset) == (8, 8)
    assert segment_files(directory) == [f"{8:020d}.log"]
    reopened.close()


def test_truncating_below_the_recorded_start_moves_it_down(directory: Path) -> None:
    log = three_segments(directory)
    log.delete_records_before(5)
    log.truncate_to(2)
    assert (log.log_start_offset, log.log_end_offset) == (2, 2)
    log.close()
    reopened = open_log(directory)
    assert reopened.log_start_offset == 2
    reopened.close()
