"""The log cleaner on real partition logs in temporary directories: what a pass keeps, where
it stops, tombstones, producers' last batches, and crashes at every step of the swap."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from log_helpers import config, crash, read_all, segment_files
from test_records import restamp

from goqueue.log import cleaner_manager
from goqueue.log.cleaner import CleanerConfig
from goqueue.log.cleaner_manager import CHECKPOINT_FILE, LogCleaner, PassResult
from goqueue.log.partition_log import PartitionLog
from goqueue.log.swap import finish_interrupted_swaps
from goqueue.log.verify import verify_data_dir
from goqueue.records.batch import iter_batches, read_header, scan_batches
from goqueue.records.builder import NewRecord, build_batch
from goqueue.records.compression import Compression
from goqueue.records.reader import ConsumedRecord, iter_records
from goqueue.records.recompress import delete_horizon_ms

KEYS = [b"apple", b"banana", b"cherry", b"damson", b"elder"]
NOW = 1_000_000
COMPACT = CleanerConfig(min_cleanable_ratio=0.0, delete_retention_ms=5_000)
Record = tuple[int, bytes | None, bytes | None]
"""offset, key, value"""


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "table-0"


def open_log(directory: Path, *, recover: bool = False) -> PartitionLog:
    return PartitionLog(
        directory, "table", 0, config(segment_bytes=600, index_interval_bytes=100), recover=recover
    )


def put(
    log: PartitionLog,
    pairs: Sequence[tuple[bytes | None, bytes | None]],
    *,
    timestamp: int = NOW - 100_000,
    compression: Compression = Compression.none,
    producer_id: int = -1,
    attributes: int | None = None,
) -> int:
    """Append one batch of (key, value) records; returns its base offset."""
    batch = build_batch(
        [
            NewRecord(key, value, headers=[("h", key)], timestamp_ms=timestamp)
            for key, value in pairs
        ],
        compression=compression,
        producer_id=producer_id,
        producer_epoch=0 if producer_id >= 0 else -1,
        base_sequence=0 if producer_id >= 0 else -1,
    )
    if attributes is not None:
        batch = restamp(batch, attributes=attributes)
    data = bytearray(batch)
    return log.append(data, scan_batches(data), now_ms=timestamp).base_offset


def fill(log: PartitionLog, updates: int) -> list[Record]:
    """Many updates to a few keys, three records a batch, codecs varying, enough to fill
    several segments; returns every record written."""
    written: list[Record] = []
    codecs = list(Compression)
    for n in range(0, updates, 3):
        pairs = [(KEYS[(n + i) % len(KEYS)], b"v%d" % (n + i)) for i in range(3)]
        base = put(log, pairs, compression=codecs[n % len(codecs)])
        written += [(base + i, key, value) for i, (key, value) in enumerate(pairs)]
    return written


def records(log: PartitionLog) -> list[Record]:
    return [(r.offset, r.key, r.value) for r in consumed(log)]


def consumed(log: PartitionLog) -> list[ConsumedRecord]:
    return list(iter_records(read_all(log)))


def newest_per_key(written: Sequence[Record], below: int) -> list[Record]:
    """What compaction of offsets below ``below`` must leave, followed by everything above."""
    newest = {key: offset for offset, key, _ in written if offset < below}
    return [r for r in written if r[0] >= below or newest[r[1]] == r[0]]


def clean(
    log: PartitionLog, cleaner_config: CleanerConfig = COMPACT, *, now: int = NOW, **kwargs: int
) -> PassResult | None:
    cleaner = LogCleaner(kwargs.get("dedupe_bytes", 1 << 20))
    return asyncio.run(cleaner.clean_dirtiest([(log, cleaner_config)], now))


def active_base(log: PartitionLog) -> int:
    return log.segments[-1].base_offset


def test_a_pass_keeps_the_newest_record_per_key_at_its_offset(directory: Path) -> None:
    log = open_log(directory)
    written = fill(log, 120)
    size = log.size_bytes
    result = clean(log)
    assert result is not None
    assert result.first_dirty == 0
    assert result.end_offset == active_base(log)
    assert records(log) == newest_per_key(written, active_base(log))
    assert log.size_bytes < size
    assert result.stats.records_read == active_base(log)
    assert result.stats.records_kept == len(KEYS)
    assert (directory / CHECKPOINT_FILE).read_text() == f"{active_base(log)}\n"
    log.close()
    assert verify_data_dir(directory.parent) == []
    reopened = open_log(directory)
    assert records(reopened) == newest_per_key(written, active_base(reopened))
    reopened.close()


def test_later_passes_merge_small_cleaned_segments(directory: Path) -> None:
    log = open_log(directory)
    written = fill(log, 120)
    clean(log)
    segments = len(log.segments)
    written += fill(log, 30)
    result = clean(log)
    assert result is not None and result.first_dirty < result.end_offset
    assert len(log.segments) < segments
    assert records(log) == newest_per_key(written, active_base(log))
    log.close()


def test_keys_headers_timestamps_and_codecs_survive(directory: Path) -> None:
    log = open_log(directory)
    fill(log, 60)
    before = {r.offset: r for r in consumed(log)}
    codecs = {h.base_offset: h.compression for h, _ in iter_batches(read_all(log))}
    clean(log)
    after = consumed(log)
    assert after and all(before[r.offset] == r for r in after)
    for header, _ in iter_batches(read_all(log)):
        assert header.compression is codecs[header.base_offset]
    log.close()


def test_the_active_segment_is_never_touched(directory: Path) -> None:
    log = open_log(directory)
    fill(log, 60)
    active = log.segments[-1]
    content = os.pread(active.fd, active.size, 0)
    clean(log)
    assert log.segments[-1] is active
    assert os.pread(active.fd, active.size, 0) == content
    log.close()


def test_a_second_pass_with_nothing_dirty_does_not_run(directory: Path) -> None:
    log = open_log(directory)
    fill(log, 60)
    assert clean(log) is not None
    cleaner = LogCleaner(1 << 20)
    assert asyncio.run(cleaner.clean_dirtiest([(log, COMPACT)], NOW)) is None
    log.close()


def test_min_cleanable_dirty_ratio_gates_a_pass(directory: Path) -> None:
    log = open_log(directory)
    fill(log, 60)
    assert clean(log, CleanerConfig(min_cleanable_ratio=1.0)) is None
    overdue = CleanerConfig(min_cleanable_ratio=1.0, max_compaction_lag_ms=1000)
    assert clean(log, overdue) is not None
    log.close()


def test_records_younger_than_min_compaction_lag_stay(directory: Path) -> None:
    log = open_log(directory)
    written = fill(log, 60)
    young = [(key, b"young") for key in KEYS]
    first_young = log.log_end_offset
    while len({s.base_offset for s in log.segments if s.base_offset >= first_young}) < 2:
        base = put(log, young, timestamp=NOW - 10)
        written += [(base + i, key, value) for i, (key, value) in enumerate(young)]
    old_end = max(s.base_offset for s in log.segments if s.base_offset <= first_young)
    assert old_end < active_base(log)
    result = clean(log, CleanerConfig(min_cleanable_ratio=0.0, min_compaction_lag_ms=1000))
    assert result is not None
    assert result.end_offset == old_end
    assert records(log) == newest_per_key(written, old_end)
    log.close()


def test_nothing_is_mapped_past_a_young_segment_holding_the_checkpoint(directory: Path) -> None:
    log = open_log(directory)
    fill(log, 30)
    young = put(log, [(KEYS[0], b"young"), (KEYS[1], b"young")], timestamp=NOW - 10)
    for _ in range(20):
        put(log, [(KEYS[0], b"younger")], timestamp=NOW - 5)
    assert log.segments[-1].base_offset > young + 2
    (directory / CHECKPOINT_FILE).write_text(f"{young + 1}\n")
    before = records(log)
    lagging = CleanerConfig(min_cleanable_ratio=0.0, min_compaction_lag_ms=1000)
    assert clean(log, lagging) is None
    assert records(log) == before
    log.close()


def test_tombstones_stay_for_delete_retention_then_go(directory: Path) -> None:
    log = open_log(directory)
    put(log, [(b"gone-1", b"old"), (b"gone-2", b"old")])
    fill(log, 30)
    tombstones = put(log, [(b"gone-1", None), (b"gone-2", None)])
    fill(log, 60)
    clean(log, now=NOW)
    kept = {key: value for _, key, value in records(log)}
    assert kept[b"gone-1"] is None and kept[b"gone-2"] is None
    assert [o for o, key, _ in records(log) if key and key.startswith(b"gone")] == [
        tombstones,
        tombstones + 1,
    ]
    batch = next(h for h, _ in iter_batches(read_all(log)) if h.base_offset == tombstones)
    assert delete_horizon_ms(batch) == NOW + COMPACT.delete_retention_ms
    cleaner = LogCleaner(1 << 20)
    fill(log, 30)
    assert asyncio.run(cleaner.clean_dirtiest([(log, COMPACT)], NOW + 4_999)) is not None
    assert b"gone-1" in {key for _, key, _ in records(log)}
    fill(log, 30)
    assert asyncio.run(cleaner.clean_dirtiest([(log, COMPACT)], NOW + 5_000)) is not None
    assert not [key for _, key, _ in records(log) if key and key.startswith(b"gone")]
    assert all(value is not None for _, _, value in records(log))
    log.close()


def test_a_tombstone_due_pass_is_chosen_without_dirty_data(directory: Path) -> None:
    log = open_log(directory)
    put(log, [(b"gone", b"old")])
    fill(log, 30)
    put(log, [(b"gone", None)])
    fill(log, 30)
    cleaner = LogCleaner(1 << 20)
    first = asyncio.run(cleaner.clean_dirtiest([(log, COMPACT)], NOW))
    assert first is not None
    assert first.stats.tombstone_horizon == NOW + COMPACT.delete_retention_ms
    assert asyncio.run(cleaner.clean_dirtiest([(log, COMPACT)], NOW + 1_000)) is None
    second = asyncio.run(cleaner.clean_dirtiest([(log, COMPACT)], NOW + 5_000))
    assert second is not None
    assert all(value is not None for _, _, value in records(log))
    log.close()


def test_a_small_offset_map_cleans_in_several_passes(directory: Path) -> None:
    log = open_log(directory)
    written: list[Record] = []
    for n in range(40):
        pairs = [(b"key-%d" % ((n * 2 + i) % 20), b"v%d" % n) for i in range(2)]
        base = put(log, pairs)
        written += [(base + i, key, value) for i, (key, value) in enumerate(pairs)]
    end = active_base(log)
    cleaner = LogCleaner(24 * 12)
    assert cleaner.capacity == 10
    first = asyncio.run(cleaner.clean_dirtiest([(log, COMPACT)], NOW))
    assert first is not None and first.end_offset < end
    while cleaner.checkpoint(log) < end:
        assert asyncio.run(cleaner.clean_dirtiest([(log, COMPACT)], NOW)) is not None
    assert records(log) == newest_per_key(written, end)
    log.close()


def test_transactional_and_control_batches_are_left_as_they_are(directory: Path) -> None:
    log = open_log(directory)
    fill(log, 9)
    txn = put(log, [(KEYS[0], b"in-a-transaction")], producer_id=7, attributes=0x10)
    marker = put(log, [(b"\x00\x00\x00\x00", b"\x00\x00")], producer_id=7, attributes=0x30)
    fill(log, 60)
    before = {h.base_offset: bytes(b) for h, b in iter_batches(read_all(log))}
    assert clean(log) is not None
    after = {h.base_offset: bytes(b) for h, b in iter_batches(read_all(log))}
    assert after[txn] == before[txn]
    assert after[marker] == before[marker]
    assert read_header(after[marker]).is_control
    log.close()


def test_each_producers_last_batch_stays_even_when_emptied(directory: Path) -> None:
    log = open_log(directory)
    first = put(log, [(KEYS[0], b"a")], producer_id=5)
    last = put(log, [(KEYS[0], b"b"), (KEYS[1], b"c")], producer_id=5)
    other = put(log, [(KEYS[2], b"d")], producer_id=6)
    fill(log, 60)
    clean(log)
    headers = {h.base_offset: h for h, _ in iter_batches(read_all(log))}
    assert first not in headers
    assert headers[last].record_count == 0
    assert headers[last].last_offset == last + 1
    assert (headers[last].producer_id, headers[last].base_sequence) == (5, 0)
    assert other in headers
    log.close()


def test_records_without_keys_are_dropped(directory: Path) -> None:
    log = open_log(directory)
    put(log, [(None, b"no key"), (KEYS[0], b"keyed")])
    fill(log, 60)
    clean(log)
    assert all(key is not None for _, key, _ in records(log))
    log.close()


def test_a_read_in_a_removed_range_continues_at_the_next_batch(directory: Path) -> None:
    log = open_log(directory)
    written = fill(log, 120)
    clean(log)
    survivors = [offset for offset, _, _ in newest_per_key(written, active_base(log))]
    for offset in range(0, active_base(log)):
        expected = next(o for o in survivors if o >= offset)
        data = read_all_from(log, offset)
        first = next(r for r in iter_records(data) if r.offset >= offset)
        assert first.offset == expected
    log.close()


def read_all_from(log: PartitionLog, offset: int) -> bytes:
    file_slice = log.read(offset, 1 << 20)
    assert file_slice is not None
    return os.pread(file_slice.fd, file_slice.size, file_slice.position)


def test_a_pass_gives_up_when_the_log_changes_under_it(
    directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = open_log(directory)
    fill(log, 120)
    expected = records(log)
    original = cleaner_manager.clean_group

    def truncating(*args: object) -> object:
        result = original(*args)  # type: ignore[arg-type]
        log._generation += 1
        return result

    monkeypatch.setattr(cleaner_manager, "clean_group", truncating)
    assert clean(log) is None
    assert records(log) == expected
    assert not [name for name in os.listdir(directory) if name.endswith((".cleaned", ".swap"))]
    log.close()


def test_a_stopping_cleaner_leaves_no_output(directory: Path) -> None:
    log = open_log(directory)
    fill(log, 120)
    expected = records(log)
    cleaner = LogCleaner(1 << 20)
    cleaner.stop()
    assert asyncio.run(cleaner.clean_dirtiest([(log, COMPACT)], NOW)) is None
    assert records(log) == expected
    assert not [name for name in os.listdir(directory) if name.endswith(".cleaned")]
    log.close()


class Crash(Exception):
    """The process dies here."""


@pytest.fixture
def crash_after(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Let the given number of renames and unlinks happen, then 'kill' the process."""
    budget = [10**9]

    def limited(name: str) -> None:
        real = getattr(os, name)

        def call(*args: object, **kwargs: object) -> object:
            if budget[0] <= 0:
                raise Crash(name)
            budget[0] -= 1
            return real(*args, **kwargs)

        monkeypatch.setattr(os, name, call)

    for name in ("rename", "replace", "unlink"):
        limited(name)
    yield budget


@pytest.mark.parametrize("operations", range(12))
@pytest.mark.parametrize("earlier_pass", [False, True], ids=["first-pass", "merging-pass"])
def test_a_crash_at_any_step_leaves_a_readable_log_with_every_newest_value(
    directory: Path, crash_after: list[int], operations: int, earlier_pass: bool
) -> None:
    """Each group's swap is a rename, the deletion of every file of the old segments and a
    rename; the merging pass replaces several segments at once."""
    log = open_log(directory)
    written = fill(log, 120)
    if earlier_pass:
        clean(log)
        written += fill(log, 60)
    end = active_base(log)
    segments = len(log.segments)
    log.flush()
    crash_after[0] = operations
    with pytest.raises(Crash):
        clean(log)
    crash_after[0] = 10**9
    crash(log)
    leftovers = [n for n in os.listdir(directory) if n.endswith((".cleaned", ".swap"))]
    if operations < 2:
        assert leftovers == [f"{0:020d}.log" + (".cleaned", ".swap")[operations]]
    reopened = open_log(directory, recover=True)
    survivors = records(reopened)
    offsets = [offset for offset, _, _ in survivors]
    assert offsets == sorted(set(offsets))
    assert set(survivors) >= set(newest_per_key(written, end))
    assert set(survivors) <= set(written)
    newest = {key: value for _, key, value in written}
    assert {key: value for _, key, value in survivors} == newest
    assert len(reopened.segments) <= segments
    assert not [n for n in os.listdir(directory) if n.endswith((".cleaned", ".swap"))]
    reopened.close()
    assert verify_data_dir(directory.parent) == []


def test_leftover_cleaner_files_are_resolved_on_load(directory: Path) -> None:
    """The exact files a crash leaves: a `.cleaned` file is dropped; a `.swap` file replaces
    the segments in its offset range."""
    log = open_log(directory)
    written = fill(log, 120)
    log.close()
    bases = [int(name[:20]) for name in segment_files(directory)]
    first = directory / segment_files(directory)[0]
    cleaned_copy = first.read_bytes()
    (directory / (first.name + ".cleaned")).write_bytes(cleaned_copy)
    finish_interrupted_swaps(directory)
    assert segment_files(directory) == [f"{b:020d}.log" for b in bases]
    assert not (directory / (first.name + ".cleaned")).exists()

    second = directory / segment_files(directory)[1]
    merged = first.read_bytes() + second.read_bytes()
    (directory / (first.name + ".swap")).write_bytes(merged)
    first.unlink()
    finish_interrupted_swaps(directory)
    assert segment_files(directory) == [f"{b:020d}.log" for b in bases if b != bases[1]]
    assert (directory / first.name).read_bytes() == merged
    assert not (directory / (second.name[:-4] + ".index")).exists()
    reopened = open_log(directory)
    assert records(reopened) == written
    reopened.close()
