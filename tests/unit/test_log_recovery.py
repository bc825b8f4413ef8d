"""Recovery after unclean shutdowns, the log manager's clean-shutdown protocol, offline verify."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from log_helpers import append, config, crash, payload, read_all, segment_files
from typer.testing import CliRunner

from goqueue.cli.log import app
from goqueue.log.config import LogConfig
from goqueue.log.manager import LogManager
from goqueue.log.partition_log import PartitionLog
from goqueue.log.verify import VerifyStats, verify_data_dir
from goqueue.records.batch import HEADER_SIZE

SEGMENT_0 = f"{0:020d}.log"


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "topic-0"


def open_log(directory: Path, *, recover: bool, **overrides: int) -> PartitionLog:
    return PartitionLog(directory, "topic", 0, config(**overrides), recover=recover)


def fill(directory: Path, batches: int, **overrides: int) -> tuple[PartitionLog, bytes]:
    """A log with ``batches`` two-record batches whose timestamps grow, and its stored bytes."""
    log = open_log(directory, recover=False, **overrides)
    for i in range(batches):
        append(log, [2], timestamp=1000 + i, value_size=40)
    return log, read_all(log)


def index_state(log: PartitionLog) -> list[tuple[object, ...]]:
    return [
        (s.base_offset, s.next_offset, s.max_timestamp, s.offset_index.entries())
        for s in log._segments
    ]


def last_segment(directory: Path) -> Path:
    return directory / segment_files(directory)[-1]


@pytest.mark.parametrize(
    "tail",
    [b"\x00" * 7, b"garbage that is longer than a batch header" * 3, b"half"],
    ids=["zeros", "garbage", "half-batch"],
)
def test_recovery_truncates_a_torn_tail_and_rebuilds_indexes(directory: Path, tail: bytes) -> None:
    log, stored = fill(directory, 30, index_interval_bytes=200)
    expected = index_state(log)
    crash(log)
    if tail == b"half":
        tail = bytes(payload([3], value_size=40))[:-20]
    with open(last_segment(directory), "ab") as segment:
        segment.write(tail)
    recovered = open_log(directory, recover=True, index_interval_bytes=200)
    assert recovered.log_end_offset == 60
    assert index_state(recovered) == expected
    assert read_all(recovered) == stored
    assert recovered.flushed_offset == 60
    assert append(recovered, [1], timestamp=5000)[0].base_offset == 60
    recovered.close()


def test_recovery_cuts_at_a_corrupt_batch_and_drops_later_segments(directory: Path) -> None:
    log, stored = fill(directory, 12, segment_bytes=800)
    batch_size = len(stored) // 12
    assert log.segment_count == 3
    crash(log)
    with open(directory / SEGMENT_0, "r+b") as segment:
        segment.seek(2 * batch_size + HEADER_SIZE + 3)
        segment.write(b"X")
    recovered = open_log(directory, recover=True, segment_bytes=800)
    assert (recovered.log_end_offset, recovered.segment_count) == (4, 1)
    assert read_all(recovered) == stored[: 2 * batch_size]
    assert segment_files(directory) == [SEGMENT_0]
    recovered.close()


def test_recovery_skips_segments_below_the_recovery_point(directory: Path) -> None:
    log, stored = fill(directory, 12, segment_bytes=800)
    batch_size = len(stored) // 12
    log.flush()
    bases = [s.base_offset for s in log._segments]
    crash(log)
    with open(directory / SEGMENT_0, "r+b") as segment:
        segment.seek(HEADER_SIZE + 3)
        segment.write(b"X")
    with open(last_segment(directory), "ab") as segment:
        segment.write(b"torn")
    recovered = open_log(directory, recover=True, segment_bytes=800)
    assert [s.base_offset for s in recovered._segments] == bases
    assert recovered.log_end_offset == 24, "the corrupt byte below the recovery point is not seen"
    assert os.path.getsize(last_segment(directory)) == len(stored) - bases[-1] // 2 * batch_size
    recovered.close()


def test_a_clean_open_rebuilds_missing_or_broken_index_files(directory: Path) -> None:
    log, stored = fill(directory, 12, segment_bytes=800, index_interval_bytes=100)
    expected = index_state(log)
    log.close()
    (directory / f"{0:020d}.index").unlink()
    (directory / f"{8:020d}.timeindex").write_bytes(b"\x00" * 5)
    (directory / f"{16:020d}.index").write_bytes(struct.pack(">ii", 1, 10**6))
    reopened = open_log(directory, recover=False, segment_bytes=800, index_interval_bytes=100)
    assert index_state(reopened) == expected
    assert read_all(reopened) == stored
    reopened.close()


def test_a_clean_open_truncates_a_torn_tail_it_finds(directory: Path) -> None:
    log, stored = fill(directory, 5)
    log.close()
    with open(last_segment(directory), "ab") as segment:
        segment.write(b"\x01" * 100)
    reopened = open_log(directory, recover=False)
    assert read_all(reopened) == stored
    reopened.close()


def test_stray_files_are_removed_on_open(directory: Path) -> None:
    log, _ = fill(directory, 2)
    log.close()
    (directory / f"{99:020d}.index").write_bytes(b"")
    (directory / "recovery-point.tmp").write_bytes(b"1")
    open_log(directory, recover=False).close()
    assert sorted(os.listdir(directory)) == [
        f"{0:020d}.index",
        SEGMENT_0,
        f"{0:020d}.timeindex",
        "recovery-point",
    ]


# The log manager.


def topic_config(_: str) -> LogConfig:
    return config()


def test_manager_reopens_without_recovery_after_close(tmp_path: Path) -> None:
    manager = LogManager(tmp_path)
    manager.load(topic_config)
    assert not manager.recovered_unclean, "an empty data directory has nothing to recover"
    log = manager.create("my-topic-name", 3, config())
    append(log, [2])
    manager.close()
    assert (tmp_path / ".clean-shutdown").exists()

    reloaded = LogManager(tmp_path)
    reloaded.load(topic_config)
    assert not reloaded.recovered_unclean
    assert not (tmp_path / ".clean-shutdown").exists()
    assert reloaded.topics() == {"my-topic-name"}
    reopened = reloaded.get("my-topic-name", 3)
    assert reopened is not None and reopened.log_end_offset == 2
    assert reloaded.create("my-topic-name", 3, config(segment_bytes=1234)) is reopened
    assert reopened.config.segment_bytes == 1234
    reloaded.close()


def test_manager_recovers_after_a_crash(tmp_path: Path) -> None:
    manager = LogManager(tmp_path)
    manager.load(topic_config)
    log = manager.create("t", 0, config())
    _, stored = append(log, [2])
    crash(log)
    with open(last_segment(tmp_path / "t-0"), "ab") as segment:
        segment.write(b"torn")
    recovered = LogManager(tmp_path)
    recovered.load(topic_config)
    assert recovered.recovered_unclean
    reopened = recovered.get("t", 0)
    assert reopened is not None and read_all(reopened) == stored
    recovered.close()


def test_manager_ignores_metadata_and_finishes_interrupted_deletes(tmp_path: Path) -> None:
    (tmp_path / "__metadata").mkdir()
    (tmp_path / "old-0.abc-delete").mkdir()
    (tmp_path / "old-0.abc-delete" / SEGMENT_0).write_bytes(b"")
    (tmp_path / "not a partition").mkdir()
    manager = LogManager(tmp_path)
    manager.load(topic_config)
    assert manager.all_logs() == []
    assert sorted(os.listdir(tmp_path)) == ["__metadata", "not a partition"]
    manager.close()


def test_manager_deletes_every_partition_of_a_topic(tmp_path: Path) -> None:
    manager = LogManager(tmp_path)
    manager.load(topic_config)
    for partition in range(3):
        manager.create("doomed", partition, config())
    manager.create("kept", 0, config())
    manager.delete_topic("doomed")
    assert manager.topics() == {"kept"}
    assert [log.topic for log in manager.all_logs()] == ["kept"]
    assert sorted(os.listdir(tmp_path)) == ["kept-0"]
    manager.close()


# Offline verification.


def test_verify_passes_intact_logs(tmp_path: Path) -> None:
    log, _ = fill(tmp_path / "a-0", 12, segment_bytes=800, index_interval_bytes=100)
    log.close()
    stats = VerifyStats()
    assert verify_data_dir(tmp_path, stats=stats) == []
    assert (stats.logs, stats.segments, stats.batches, stats.records) == (1, 3, 12, 24)


def test_verify_finds_a_corrupted_byte(tmp_path: Path) -> None:
    log, stored = fill(tmp_path / "a-0", 4)
    log.close()
    with open(tmp_path / "a-0" / SEGMENT_0, "r+b") as segment:
        segment.seek(len(stored) // 4 + HEADER_SIZE + 1)
        segment.write(b"X")
    (problem,) = verify_data_dir(tmp_path)
    assert problem.startswith(f"a-0/{SEGMENT_0}: batch at byte {len(stored) // 4}: CRC mismatch")


def test_verify_finds_a_gap_between_segments(tmp_path: Path) -> None:
    log, _ = fill(tmp_path / "a-0", 12, segment_bytes=800)
    log.close()
    second = segment_files(tmp_path / "a-0")[1]
    base = int(second.removesuffix(".log"))
    os.rename(tmp_path / "a-0" / second, tmp_path / "a-0" / f"{base - 1:020d}.log")
    problems = verify_data_dir(tmp_path)
    expected = f"starts at offset {base - 1}, previous segment ends at {base}"
    assert f"a-0/{base - 1:020d}.log: {expected}" in problems


def test_verify_finds_index_entries_off_batch_starts(tmp_path: Path) -> None:
    log, _ = fill(tmp_path / "a-0", 4)
    log.close()
    (tmp_path / "a-0" / f"{0:020d}.index").write_bytes(struct.pack(">ii", 2, 7))
    (tmp_path / "a-0" / f"{0:020d}.timeindex").write_bytes(struct.pack(">qi", 1001, 1))
    problems = verify_data_dir(tmp_path)
    assert [p.split(": ")[1].split(" (")[0] for p in problems] == [
        "index entry",
        "time index entry",
    ]


def test_verify_reports_a_torn_tail(tmp_path: Path) -> None:
    log, _ = fill(tmp_path / "a-0", 2)
    crash(log)
    with open(tmp_path / "a-0" / SEGMENT_0, "ab") as segment:
        segment.write(b"torn")
    (problem,) = verify_data_dir(tmp_path)
    assert "4 bytes" in problem and "less than a batch header" in problem


def test_cli_verify_summarises_and_exits_zero(tmp_path: Path) -> None:
    log, _ = fill(tmp_path / "a-0", 3)
    log.close()
    result = CliRunner().invoke(app, ["verify", str(tmp_path)])
    assert result.exit_code == 0
    assert "OK: 1 logs, 1 segments, 3 batches, 6 records checked" in result.stdout


def test_cli_verify_lists_problems_and_exits_one(tmp_path: Path) -> None:
    log, _ = fill(tmp_path / "a-0", 3)
    crash(log)
    with open(tmp_path / "a-0" / SEGMENT_0, "ab") as segment:
        segment.write(b"[torn]")
    result = CliRunner().invoke(app, ["verify", str(tmp_path)])
    assert result.exit_code == 1
    assert "problem: a-0/" in result.output
    assert "1 problems found" in result.output
