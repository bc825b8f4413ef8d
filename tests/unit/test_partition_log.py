"""PartitionLog: append, read, roll, timestamps, retention, truncation, flush and reopen."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from log_helpers import append, config, payload, read_all, read_bytes, read_headers, segment_files

from goqueue.log.errors import OffsetOutOfRangeError
from goqueue.log.partition_log import PartitionLog
from goqueue.log.reaper import FdReaper
from goqueue.log.segment import Segment
from goqueue.records.batch import iter_batches, scan_batches
from goqueue.records.builder import NewRecord, build_batch
from goqueue.records.reader import iter_records


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "topic-0"


def open_log(directory: Path, **overrides: int) -> PartitionLog:
    return PartitionLog(directory, "topic", 0, config(**overrides))


def test_a_new_log_is_empty(directory: Path) -> None:
    log = open_log(directory)
    assert (log.log_start_offset, log.log_end_offset, log.size_bytes) == (0, 0, 0)
    assert log.read(0, 100) is None
    with pytest.raises(OffsetOutOfRangeError):
        log.read(1, 100)
    assert log.max_timestamp() == (-1, -1)
    assert log.offset_for_timestamp(0) is None
    assert segment_files(directory) == ["00000000000000000000.log"]
    log.close()


def test_append_assigns_dense_offsets_by_patching_base_offsets(directory: Path) -> None:
    log = open_log(directory)
    first, _ = append(log, [3])
    data = payload([2, 1, 4], timestamp=2000)
    second = log.append(data, scan_batches(data), now_ms=2000)
    assert (first.base_offset, first.last_offset) == (0, 2)
    assert (second.base_offset, second.last_offset) == (3, 9)
    assert [h.base_offset for h, _ in iter_batches(data)] == [3, 5, 6]
    assert (second.max_timestamp, second.offset_of_max_timestamp) == (2000, 4)
    assert log.log_end_offset == 10
    assert [r.offset for r in iter_records(read_all(log))] == list(range(10))
    log.close()


def test_append_refuses_an_empty_batch_list(directory: Path) -> None:
    log = open_log(directory)
    with pytest.raises(ValueError):
        log.append(bytearray(), [], now_ms=0)
    log.close()


def test_read_starts_at_the_batch_containing_the_offset(directory: Path) -> None:
    log = open_log(directory, index_interval_bytes=0)
    _, stored = append(log, [3, 3, 3])
    assert [h.base_offset for h in read_headers(log, 4)] == [3, 6]
    assert read_bytes(log, 0, 1 << 20) == stored
    assert read_bytes(log, 8, 1 << 20) == stored[2 * len(stored) // 3 :]
    assert log.read(9, 100) is None
    log.close()


def test_read_returns_at_most_max_bytes_but_at_least_one_batch(directory: Path) -> None:
    log = open_log(directory, index_interval_bytes=200)
    for _ in range(20):
        append(log, [1], value_size=100)
    size = read_headers(log, 0)[0].size
    assert [h.base_offset for h in read_headers(log, 5, max_bytes=1)] == [5]
    assert [h.base_offset for h in read_headers(log, 5, max_bytes=3 * size)] == [5, 6, 7]
    assert [h.base_offset for h in read_headers(log, 5, max_bytes=3 * size - 1)] == [5, 6]
    log.close()


def test_read_stops_below_the_upper_bound(directory: Path) -> None:
    log = open_log(directory, index_interval_bytes=0)
    for _ in range(10):
        append(log, [2])
    assert [h.base_offset for h in read_headers(log, 3, upper_bound=8)] == [2, 4, 6]
    assert [h.base_offset for h in read_headers(log, 3, upper_bound=7)] == [2, 4, 6]
    assert log.read(8, 1 << 20, upper_bound=8) is None
    assert log.read(19, 1 << 20, upper_bound=20) is not None
    log.close()


def test_read_outside_the_log_raises(directory: Path) -> None:
    log = open_log(directory)
    append(log, [2])
    with pytest.raises(OffsetOutOfRangeError):
        log.read(3, 100)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(-1, 100)
    log.close()


def test_segments_roll_by_segment_bytes_and_reads_stay_in_one_segment(directory: Path) -> None:
    log = open_log(directory, segment_bytes=1000)
    stored = b"".join(append(log, [2], value_size=150)[1] for _ in range(12))
    batch_size = len(stored) // 12
    per_segment = 1000 // batch_size
    assert log.segment_count == -(-12 // per_segment)
    assert segment_files(directory)[1] == f"{per_segment * 2:020d}.log"
    assert all(os.path.getsize(directory / name) <= 1000 for name in segment_files(directory))
    first_read = read_headers(log, 0)
    assert [h.base_offset for h in first_read] == [2 * i for i in range(per_segment)]
    assert read_all(log) == stored
    log.close()


def test_an_append_larger_than_segment_bytes_gets_a_segment_of_its_own(directory: Path) -> None:
    log = open_log(directory, segment_bytes=100)
    append(log, [5], value_size=100)
    append(log, [5], value_size=100)
    assert segment_files(directory) == [f"{0:020d}.log", f"{5:020d}.log"]
    log.close()


def test_segments_roll_by_segment_ms_between_batch_timestamps(directory: Path) -> None:
    log = open_log(directory, segment_ms=1000)
    append(log, [1], timestamp=10_000)
    append(log, [1], timestamp=11_000)
    assert log.segment_count == 1
    append(log, [1], timestamp=11_001)
    assert log.segment_count == 2
    log.close()


def test_segments_without_timestamps_roll_by_wall_clock(directory: Path) -> None:
    log = open_log(directory, segment_ms=1000)
    data = bytearray(build_batch([NewRecord(b"k", b"v", timestamp_ms=-1)]))
    created_ms = log._segments[-1].created_ms
    log.append(data, scan_batches(data), now_ms=created_ms + 500)
    again = bytearray(data)
    log.append(again, scan_batches(again), now_ms=created_ms + 1000)
    assert log.segment_count == 1
    again = bytearray(data)
    log.append(again, scan_batches(again), now_ms=created_ms + 1001)
    assert log.segment_count == 2
    log.close()


def test_the_offset_index_is_sparse_and_written_when_sealed(directory: Path) -> None:
    log = open_log(directory, index_interval_bytes=1000)
    for _ in range(50):
        append(log, [1], value_size=200)
    segment = log._segments[-1]
    batch_size = segment.size // 50
    assert len(segment.offset_index) == 50 // (1000 // batch_size + 1)
    log.close()
    assert os.path.getsize(directory / f"{0:020d}.index") == 8 * len(segment.offset_index)


def test_offset_for_timestamp_finds_the_exact_record(directory: Path) -> None:
    log = open_log(directory, segment_bytes=300, index_interval_bytes=0)
    for base in range(0, 30, 3):
        records = [NewRecord(None, b"x", timestamp_ms=1000 + 10 * (base + i)) for i in range(3)]
        data = bytearray(build_batch(records))
        log.append(data, scan_batches(data), now_ms=0)
    assert log.segment_count > 2
    assert log.offset_for_timestamp(0) == (1000, 0)
    assert log.offset_for_timestamp(1010) == (1010, 1)
    assert log.offset_for_timestamp(1011) == (1020, 2)
    assert log.offset_for_timestamp(1245) == (1250, 25)
    assert log.offset_for_timestamp(1290) == (1290, 29)
    assert log.offset_for_timestamp(1291) is None
    log.close()


def test_offset_for_timestamp_with_timestamps_out_of_order(directory: Path) -> None:
    log = open_log(directory, index_interval_bytes=0)
    for timestamp in (5000, 1000, 3000, 7000, 2000):
        append(log, [2], timestamp=timestamp)
    assert log.offset_for_timestamp(2500) == (5000, 0)
    assert log.offset_for_timestamp(6000) == (7000, 6)
    log.close()


def test_max_timestamp_names_the_first_record_carrying_it(directory: Path) -> None:
    log = open_log(directory)
    records = [NewRecord(None, b"x", timestamp_ms=t) for t in (100, 900, 300, 900)]
    data = bytearray(build_batch(records))
    log.append(data, scan_batches(data), now_ms=0)
    append(log, [2], timestamp=500)
    assert log.max_timestamp() == (900, 1)
    log.close()


def test_retention_ms_deletes_old_segments_and_advances_the_log_start(directory: Path) -> None:
    log = open_log(directory, segment_bytes=300, retention_ms=10_000)
    for timestamp in range(1000, 6000, 1000):
        append(log, [1], timestamp=timestamp, value_size=200)
    assert log.segment_count == 5
    assert log.delete_expired_segments(now_ms=13_500) == 3
    assert log.log_start_offset == 3
    assert segment_files(directory) == [f"{3:020d}.log", f"{4:020d}.log"]
    assert segment_files(directory, ".index") == [f"{3:020d}.index"]
    with pytest.raises(OffsetOutOfRangeError):
        log.read(2, 100)
    assert [h.base_offset for h in read_headers(log, 3)] == [3]
    log.close()


def test_retention_rolls_and_deletes_an_expired_active_segment(directory: Path) -> None:
    log = open_log(directory, retention_ms=10_000)
    append(log, [4], timestamp=1000)
    assert log.delete_expired_segments(now_ms=11_000) == 0
    assert log.delete_expired_segments(now_ms=11_001) == 1
    assert (log.log_start_offset, log.log_end_offset, log.size_bytes) == (4, 4, 0)
    assert log.read(4, 100) is None
    assert append(log, [1], timestamp=20_000)[0].base_offset == 4
    assert log.delete_expired_segments(now_ms=20_000) == 0
    log.close()


def test_retention_bytes_keeps_the_newest_segments_within_the_limit(directory: Path) -> None:
    log = open_log(directory, segment_bytes=300)
    for _ in range(6):
        append(log, [1], value_size=200)
    segment_size = log.size_bytes // 6
    log.update_config(config(segment_bytes=300, retention_bytes=2 * segment_size + 10))
    assert log.delete_expired_segments(now_ms=0) == 3, "deleting a 4th would go below the limit"
    assert (log.log_start_offset, log.segment_count) == (3, 3)
    assert log.delete_expired_segments(now_ms=0) == 0
    log.close()


def test_deleted_segments_stay_readable_until_the_delete_delay(directory: Path) -> None:
    now = [0.0]
    reaper = FdReaper(clock=lambda: now[0])
    log = PartitionLog(
        directory, "topic", 0, config(segment_bytes=100, file_delete_delay_ms=5000), reaper=reaper
    )
    _, stored = append(log, [1], timestamp=1000)
    append(log, [1], timestamp=2000)
    file_slice = log.read(0, 1 << 20)
    assert file_slice is not None
    log.update_config(config(segment_bytes=100, file_delete_delay_ms=5000, retention_ms=1))
    assert log.delete_expired_segments(now_ms=1500) == 1
    assert os.pread(file_slice.fd, file_slice.size, file_slice.position) == stored
    now[0] = 4.9
    log.delete_expired_segments(now_ms=1500)
    assert len(reaper) == 1
    now[0] = 5.0
    log.delete_expired_segments(now_ms=1500)
    assert len(reaper) == 0
    with pytest.raises(OSError):
        os.fstat(file_slice.fd)
    log.close()


def test_truncate_drops_the_batch_holding_the_offset_and_later_segments(directory: Path) -> None:
    segment_bytes = 2 * len(payload([2], value_size=100))
    log = open_log(directory, segment_bytes=segment_bytes, index_interval_bytes=0)
    stored = [append(log, [2], timestamp=1000 * (i + 1), value_size=100)[1] for i in range(6)]
    assert log.segment_count == 3
    log.truncate_to(5)
    assert (log.log_end_offset, log.segment_count) == (4, 2)
    assert read_all(log) == b"".join(stored[:2])
    assert log.max_timestamp() == (2000, 2)
    assert log.offset_for_timestamp(2500) is None
    assert append(log, [1], timestamp=9000)[0].base_offset == 4
    log.truncate_to(100)
    assert log.log_end_offset == 5
    log.close()
    reopened = open_log(directory, segment_bytes=segment_bytes)
    assert reopened.log_end_offset == 5
    assert reopened.max_timestamp() == (9000, 4)
    reopened.close()


def test_truncate_at_a_segment_boundary_leaves_an_empty_active_segment(directory: Path) -> None:
    log = open_log(directory, segment_bytes=200)
    for _ in range(3):
        append(log, [1], value_size=150)
    log.truncate_to(1)
    assert (log.log_end_offset, log.segment_count, log.size_bytes) == (1, 2, len(read_all(log)))
    assert segment_files(directory) == [f"{0:020d}.log", f"{1:020d}.log"]
    log.close()


def test_truncate_below_the_log_start_restarts_the_log_there(directory: Path) -> None:
    log = open_log(directory, segment_bytes=200, retention_ms=1)
    for _ in range(3):
        append(log, [1], value_size=150)
    log.delete_expired_segments(now_ms=10_000)
    assert log.log_start_offset == 3
    log.truncate_to(2)
    assert (log.log_start_offset, log.log_end_offset) == (2, 2)
    assert segment_files(directory) == [f"{2:020d}.log"]
    log.close()


def test_flush_advances_the_flushed_offset(directory: Path) -> None:
    log = open_log(directory)
    append(log, [3])
    assert (log.flushed_offset, log.unflushed_messages) == (0, 3)
    before = log.last_flush_monotonic
    log.flush()
    assert (log.flushed_offset, log.unflushed_messages) == (3, 0)
    assert log.last_flush_monotonic > before
    log.close()


def test_flush_after_a_roll_moves_the_recovery_point(directory: Path) -> None:
    log = open_log(directory, segment_bytes=200)
    append(log, [1], value_size=150)
    log.flush()
    assert not (directory / "recovery-point").exists()
    append(log, [1], value_size=150)
    log.flush()
    assert (directory / "recovery-point").read_text() == "2\n"
    log.close()


def test_reopen_after_a_clean_close_restores_state_without_scanning(
    directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = open_log(directory, segment_bytes=600, index_interval_bytes=100)
    for i in range(20):
        append(log, [2], timestamp=1000 + i, value_size=50)
    stored = read_all(log)
    segments = [
        (s.base_offset, s.next_offset, s.size, s.max_timestamp, s.offset_of_max_timestamp)
        for s in log._segments
    ]
    indexes = [s.offset_index.entries() for s in log._segments]
    log.close()

    def refuse_to_scan(*_: object) -> None:
        raise AssertionError("a clean reopen must not scan segments")

    monkeypatch.setattr(Segment, "recover", refuse_to_scan)
    monkeypatch.setattr(Segment, "rebuild", refuse_to_scan)
    reopened = open_log(directory, segment_bytes=600, index_interval_bytes=100)
    assert [
        (s.base_offset, s.next_offset, s.size, s.max_timestamp, s.offset_of_max_timestamp)
        for s in reopened._segments
    ] == segments
    assert [s.offset_index.entries() for s in reopened._segments] == indexes
    assert read_all(reopened) == stored
    assert reopened.offset_for_timestamp(1010) == (1010, 20)
    assert append(reopened, [1], timestamp=5000)[0].base_offset == 40
    reopened.close()


def test_delete_removes_the_directory(directory: Path) -> None:
    log = open_log(directory)
    append(log, [1])
    log.delete()
    assert not directory.exists()
    assert os.listdir(directory.parent) == []


def test_a_flush_arriving_after_close_or_delete_does_nothing(tmp_path: Path) -> None:
    closed = open_log(tmp_path / "a-0")
    append(closed, [1])
    closed.close()
    closed.flush()
    deleted = open_log(tmp_path / "b-0")
    append(deleted, [1])
    deleted.delete()
    deleted.flush()
    assert (closed.flushed_offset, deleted.flushed_offset) == (1, 0)
    assert os.listdir(tmp_path) == ["a-0"]
