"""Property tests of the partition log against a model: a list of the batches it must hold.

Random appends, reads, rolls (tiny segments), retention, truncation, flushes, clean reopens and
crashes with torn tails must keep offsets dense and every read exact.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from log_helpers import config, crash, read_all, read_bytes, segment_files

from goqueue.log.partition_log import PartitionLog
from goqueue.records.batch import BatchHeader, iter_batches, scan_batches
from goqueue.records.builder import NewRecord, build_batch
from goqueue.records.reader import iter_records

timestamps = st.integers(min_value=0, max_value=10_000)
batch_specs = st.lists(
    st.tuples(
        st.lists(timestamps, min_size=1, max_size=5),
        st.integers(min_value=0, max_value=200),
    ),
    min_size=1,
    max_size=3,
)


class PartitionLogMachine(RuleBasedStateMachine):
    """Drives one PartitionLog and a model of the batches it should hold."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="goqueue-props-"))
        self.directory = self.tmp / "t-0"
        self.batches: list[tuple[BatchHeader, bytes]] = []
        self.start = 0
        self.end = 0

    @initialize(
        segment_bytes=st.sampled_from([150, 400, 1500]),
        index_interval=st.sampled_from([0, 100, 4096]),
    )
    def open(self, segment_bytes: int, index_interval: int) -> None:
        self.config = config(
            segment_bytes=segment_bytes, index_interval_bytes=index_interval, retention_ms=5_000
        )
        self.log = PartitionLog(self.directory, "t", 0, self.config)

    def teardown(self) -> None:
        if hasattr(self, "log"):
            self.log.close()
        shutil.rmtree(self.tmp)

    # Operations.

    @rule(specs=batch_specs)
    def append(self, specs: list[tuple[list[int], int]]) -> None:
        data = bytearray()
        for record_timestamps, value_size in specs:
            records = [
                NewRecord(b"k", b"v" * value_size, timestamp_ms=t) for t in record_timestamps
            ]
            data += build_batch(records)
        result = self.log.append(data, scan_batches(data), now_ms=max(max(t) for t, _ in specs))
        assert result.base_offset == self.end
        for header, batch in iter_batches(data):
            assert header.base_offset == self.end
            self.batches.append((header, bytes(batch)))
            self.end = header.next_offset
        assert result.last_offset == self.end - 1

    @rule(position=st.floats(min_value=0, max_value=1), max_bytes=st.integers(0, 2000))
    def read(self, position: float, max_bytes: int) -> None:
        offset = self.start + round(position * (self.end - self.start))
        data = read_bytes(self.log, offset, max_bytes)
        if offset == self.end:
            assert data == b""
            return
        expected = [batch for h, batch in self.batches if h.last_offset >= offset]
        got = [bytes(batch) for _, batch in iter_batches(data)]
        assert got == expected[: len(got)]
        assert len(got) == 1 or len(data) <= max_bytes
        assert len(b"".join(got)) == len(data)

    @rule(position=st.floats(min_value=0, max_value=1), bound=st.floats(min_value=0, max_value=1))
    def read_below_bound(self, position: float, bound: float) -> None:
        offset = self.start + round(position * (self.end - self.start))
        upper_bound = offset + round(bound * (self.end - offset))
        got = [
            bytes(b) for _, b in iter_batches(read_bytes(self.log, offset, 1 << 20, upper_bound))
        ]
        allowed = [
            b for h, b in self.batches if h.last_offset >= offset and h.base_offset < upper_bound
        ]
        assert got == allowed[: len(got)]
        assert bool(got) == (offset < upper_bound)

    @rule(retention_bytes=st.integers(min_value=0, max_value=3000))
    def retain_bytes(self, retention_bytes: int) -> None:
        size_before = self.log.size_bytes
        self.log.update_config(config(**{**self._overrides(), "retention_bytes": retention_bytes}))
        deleted = self.log.delete_expired_segments(now_ms=0)
        self.log.update_config(self.config)
        if deleted:
            assert retention_bytes <= self.log.size_bytes < size_before
        self._advance_start()

    @rule(now_ms=st.integers(min_value=0, max_value=20_000))
    def retain_time(self, now_ms: int) -> None:
        self.log.delete_expired_segments(now_ms=now_ms)
        self._advance_start()

    @rule(position=st.floats(min_value=-0.2, max_value=1.2))
    def truncate(self, position: float) -> None:
        offset = max(0, self.start + round(position * (self.end - self.start)))
        self.log.truncate_to(offset)
        if offset >= self.end:
            return
        if offset < self.start:
            self.batches, self.start, self.end = [], offset, offset
            return
        self.batches = [(h, b) for h, b in self.batches if h.last_offset < offset]
        self.end = self.batches[-1][0].next_offset if self.batches else self.start

    @rule()
    def flush(self) -> None:
        self.log.flush()
        assert (self.log.flushed_offset, self.log.unflushed_messages) == (self.end, 0)

    @rule()
    def reopen_clean(self) -> None:
        self.log.close()
        self.log = PartitionLog(self.directory, "t", 0, self.config)

    @rule(tail=st.binary(max_size=100))
    def reopen_after_crash(self, tail: bytes) -> None:
        crash(self.log)
        with open(self.directory / segment_files(self.directory)[-1], "ab") as segment:
            segment.write(tail)
        self.log = PartitionLog(self.directory, "t", 0, self.config, recover=True)

    # Timestamps, against a decode of the model.

    @precondition(lambda self: self.batches)
    @rule(timestamp=timestamps)
    def offset_for_timestamp(self, timestamp: int) -> None:
        records = list(iter_records(b"".join(b for _, b in self.batches)))
        expected = next(
            ((r.timestamp_ms, r.offset) for r in records if r.timestamp_ms >= timestamp), None
        )
        assert self.log.offset_for_timestamp(timestamp) == expected

    @precondition(lambda self: self.batches)
    @rule()
    def max_timestamp(self) -> None:
        records = list(iter_records(b"".join(b for _, b in self.batches)))
        largest = max(r.timestamp_ms for r in records)
        first = next(r.offset for r in records if r.timestamp_ms == largest)
        assert self.log.max_timestamp() == (largest, first)

    # Invariants.

    @invariant()
    def offsets_are_dense_and_reads_exact(self) -> None:
        if not hasattr(self, "log"):
            return
        assert (self.log.log_start_offset, self.log.log_end_offset) == (self.start, self.end)
        stored = read_all(self.log)
        assert stored == b"".join(batch for _, batch in self.batches)
        offsets = [r.offset for r in iter_records(stored)]
        assert offsets == list(range(self.start, self.end))
        assert self.log.size_bytes >= len(stored)

    def _advance_start(self) -> None:
        """Retention deletes whole segments: the new start is a batch boundary of the model."""
        start = self.log.log_start_offset
        assert start >= self.start
        assert start == self.end or start in {h.base_offset for h, _ in self.batches}
        self.batches = [(h, b) for h, b in self.batches if h.base_offset >= start]
        self.start = start
        self.end = max(self.end, start)

    def _overrides(self) -> dict[str, int]:
        return {
            "segment_bytes": self.config.segment_bytes,
            "index_interval_bytes": self.config.index_interval_bytes,
            "retention_ms": -1,
        }


PartitionLogMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=25, deadline=None
)
TestPartitionLog = PartitionLogMachine.TestCase
