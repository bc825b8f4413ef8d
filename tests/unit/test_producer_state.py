"""Idempotent producer state transitions (Kafka's ProducerStateManager rules), without sockets."""

from __future__ import annotations

import pytest
from kio.schema.errors import ErrorCode

from goqueue.broker.errors import BrokerError
from goqueue.broker.producer_state import (
    BATCHES_RETAINED,
    INT32_MAX,
    BatchMetadata,
    ProducerStateManager,
    SnapshotError,
    last_sequence,
)
from goqueue.records.batch import BatchHeader, read_header
from goqueue.records.builder import NewRecord, build_batch

PID = 1000


def header(
    seq: int, count: int = 1, *, epoch: int = 0, pid: int = PID, ts: int = 5000
) -> BatchHeader:
    records = [NewRecord(None, b"v%d" % i, timestamp_ms=ts) for i in range(count)]
    return read_header(
        build_batch(records, producer_id=pid, producer_epoch=epoch, base_sequence=seq)
    )


def append(state: ProducerStateManager, batch: BatchHeader, offset: int) -> None:
    """Check then record, as the partition does for an append at `offset`."""
    assert state.check(batch) is None
    state.record(batch, offset, offset + batch.last_offset_delta)


def refused(state: ProducerStateManager, batch: BatchHeader) -> ErrorCode:
    with pytest.raises(BrokerError) as caught:
        state.check(batch)
    return caught.value.error_code


def test_an_unknown_producer_may_start_at_any_sequence() -> None:
    state = ProducerStateManager()
    append(state, header(42, 3), 0)
    entry = state.entry(PID)
    assert entry is not None and entry.last_seq == 44


def test_in_sequence_batches_are_accepted_and_gaps_refused() -> None:
    state = ProducerStateManager()
    append(state, header(0, 3), 0)
    append(state, header(3, 2), 3)
    assert refused(state, header(6)) is ErrorCode.out_of_order_sequence_number
    assert refused(state, header(4)) is ErrorCode.out_of_order_sequence_number
    append(state, header(5), 5)


def test_a_retry_of_any_of_the_last_five_batches_gets_its_original_offsets() -> None:
    state = ProducerStateManager()
    for n in range(BATCHES_RETAINED + 1):
        append(state, header(2 * n, 2), 10 * n)
    for n in range(1, BATCHES_RETAINED + 1):
        duplicate = state.check(header(2 * n, 2))
        assert duplicate is not None
        assert (duplicate.first_offset, duplicate.last_offset) == (10 * n, 10 * n + 1)
    assert refused(state, header(0, 2)) is ErrorCode.out_of_order_sequence_number


def test_a_retry_must_match_the_whole_sequence_range() -> None:
    state = ProducerStateManager()
    append(state, header(0, 3), 0)
    assert refused(state, header(0, 2)) is ErrorCode.out_of_order_sequence_number


def test_a_stale_epoch_is_fenced() -> None:
    state = ProducerStateManager()
    append(state, header(0, epoch=3), 0)
    assert refused(state, header(1, epoch=2)) is ErrorCode.invalid_producer_epoch
    assert refused(state, header(0, epoch=2)) is ErrorCode.invalid_producer_epoch


def test_a_new_epoch_starts_at_sequence_zero_and_forgets_the_old_batches() -> None:
    state = ProducerStateManager()
    append(state, header(0, 4), 0)
    assert refused(state, header(4, epoch=1)) is ErrorCode.out_of_order_sequence_number
    append(state, header(0, 2, epoch=1), 4)
    entry = state.entry(PID)
    assert entry is not None and entry.epoch == 1 and len(entry.batches) == 1
    assert state.check(header(0, 2, epoch=1)) is not None


def test_a_batch_without_a_sequence_is_invalid() -> None:
    assert refused(ProducerStateManager(), header(-1)) is ErrorCode.invalid_record


def test_sequences_wrap_after_int32_max() -> None:
    assert last_sequence(INT32_MAX - 1, 3) == 1
    state = ProducerStateManager()
    append(state, header(INT32_MAX - 1, 2), 0)
    append(state, header(0, 1), 2)


def test_producers_are_independent() -> None:
    state = ProducerStateManager()
    append(state, header(0, pid=1), 0)
    append(state, header(7, pid=2), 1)
    append(state, header(1, pid=1), 2)
    assert refused(state, header(9, pid=2)) is ErrorCode.out_of_order_sequence_number


def test_producers_expire_by_the_timestamp_of_their_last_batch() -> None:
    state = ProducerStateManager()
    append(state, header(0, pid=1, ts=1000), 0)
    append(state, header(0, pid=2, ts=5000), 1)
    assert state.remove_expired(now_ms=6000, expiration_ms=5000) == 1
    assert state.entry(1) is None and state.entry(2) is not None
    append(state, header(99, pid=1, ts=6000), 2)


def test_snapshot_round_trip_keeps_epochs_and_batches() -> None:
    state = ProducerStateManager()
    for n in range(7):
        append(state, header(n, pid=1), n)
    append(state, header(0, 2, pid=2, epoch=4), 7)
    restored = ProducerStateManager.decode(state.encode())
    assert len(restored) == 2
    for pid in (1, 2):
        assert restored.entry(pid) == state.entry(pid)
    assert restored.check(header(6, pid=1)) is not None
    assert refused(restored, header(8, pid=1)) is ErrorCode.out_of_order_sequence_number


def test_an_empty_state_round_trips() -> None:
    assert len(ProducerStateManager.decode(ProducerStateManager().encode())) == 0


@pytest.mark.parametrize("damage", ["flip", "truncate", "extend", "empty"])
def test_a_damaged_snapshot_is_rejected(damage: str) -> None:
    state = ProducerStateManager()
    append(state, header(0, 3), 0)
    data = bytearray(state.encode())
    if damage == "flip":
        data[-1] ^= 1
    elif damage == "truncate":
        del data[-5:]
    elif damage == "extend":
        data += b"\0"
    else:
        data = bytearray()
    with pytest.raises(SnapshotError):
        ProducerStateManager.decode(bytes(data))


def test_a_parked_batch_after_the_last_one_is_adopted_and_answers_its_retry() -> None:
    """A leader that never saw the producer's parked batches takes in the newest one (after
    the log's last batch, same epoch): the next batch is in sequence, a retry of the parked
    batch gets its parked offsets; an older or other-epoch batch is not adopted."""
    state = ProducerStateManager()
    append(state, header(0, 3), 0)
    assert refused(state, header(8)) is ErrorCode.out_of_order_sequence_number
    assert not state.adopt(PID, 1, BatchMetadata(5, 7, 900, 902, 5000))
    assert not state.adopt(PID, 0, BatchMetadata(1, 2, 900, 901, 5000))
    assert not state.adopt(PID + 1, 0, BatchMetadata(5, 7, 900, 902, 5000))
    assert state.adopt(PID, 0, BatchMetadata(5, 7, 900, 902, 5000))
    retried = state.check(header(5, 3))
    assert retried is not None and retried.first_offset == 900
    append(state, header(8), 3)
