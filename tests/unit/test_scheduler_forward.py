"""Scheduler requests between brokers (a park or cancel sent on to a shard's leader as a
produce to the schedule log), the shard's memory of idempotent producers' parked batches,
which makes a park sent again after an uncertain failure a no-op and expires with
`producer.id.expiration.ms`, and the messages a shard
sets aside while their target's last delivery is not settled."""

from __future__ import annotations

from pathlib import Path

import pytest
from kio.schema.errors import ErrorCode
from test_scheduler_shard import EXPIRATION, START_MS, Driver

from goqueue.broker.errors import BrokerError
from goqueue.coordinator.runtime import Record
from goqueue.coordinator.scheduler import forward
from goqueue.coordinator.scheduler.records import (
    Message,
    ParkRequest,
    ProducerBatch,
    encode_message,
    message_key,
    producer_key,
)
from goqueue.coordinator.scheduler.shard import EXPIRED_PER_RUN, CancelOutcome
from goqueue.records.batch import read_header
from goqueue.records.builder import NewRecord, build_batch


def message(partition: int = 0, value: bytes = b"v") -> Message:
    return Message("orders", partition, START_MS + 5000, START_MS, b"k", value, (("h", b"1"),))


def parse(batch: bytes) -> forward.ForwardedPark | forward.ForwardedCancel:
    return forward.parse(batch, read_header(batch))


def test_a_park_travels_with_its_ids_and_its_producer() -> None:
    producer = ProducerBatch("orders", 0, 7, 2, 40)
    requests = (ParkRequest("given", message()), ParkRequest(None, message(value=b"w")))
    assert parse(forward.park_batch(requests, producer)) == forward.ForwardedPark(
        requests, producer
    )
    assert parse(forward.park_batch(requests, None)) == forward.ForwardedPark(requests, None)


def test_a_cancel_travels_and_its_outcome_is_a_position() -> None:
    assert parse(forward.cancel_batch("a/1")) == forward.ForwardedCancel("a/1")
    assert forward.CANCEL_OUTCOMES.index(CancelOutcome.DELIVERING) > 0


def test_a_park_for_two_partitions_or_anything_else_is_refused() -> None:
    mixed = (ParkRequest(None, message(0)), ParkRequest(None, message(1)))
    with pytest.raises(BrokerError) as refused:
        parse(forward.park_batch(mixed, None))
    assert refused.value.error_code == ErrorCode.invalid_record
    with pytest.raises(BrokerError):
        parse(build_batch([NewRecord(b"x:1", b"raw")]))


def park(driver: Driver, schedule_id: str, producer: ProducerBatch | None) -> int:
    record = Record(message_key(schedule_id), encode_message(message()))
    answer: int = driver.run(driver.shard.park([record], len(driver.log), producer))
    return answer


def test_an_idempotent_batch_parked_again_is_answered_where_it_was_parked(
    tmp_path: Path,
) -> None:
    driver = Driver(tmp_path / "buckets")
    first = park(driver, "a", ProducerBatch("orders", 0, 7, 0, 0))
    assert park(driver, "b", ProducerBatch("orders", 0, 7, 0, 1)) == len(driver.log) - 2
    written = len(driver.log)
    assert park(driver, "a-again", ProducerBatch("orders", 0, 7, 0, 0)) == first
    assert len(driver.log) == written, "a retried batch was parked twice"
    reloaded = driver.reload(START_MS)
    assert park(reloaded, "a-again", ProducerBatch("orders", 0, 7, 0, 0)) == first
    assert park(reloaded, "a-new-epoch", ProducerBatch("orders", 0, 7, 1, 0)) == written
    assert park(reloaded, "other-target", ProducerBatch("orders", 1, 7, 1, 0)) > written


def test_messages_set_aside_wait_for_their_target_to_settle_and_stay_cancellable(
    tmp_path: Path,
) -> None:
    driver = Driver(tmp_path / "buckets")
    driver.park("a", START_MS + 100)
    driver.park("b", START_MS + 200)
    due = driver.shard.take_due(START_MS + 1000, 10)
    driver.shard.release(due)
    due = driver.shard.take_due(START_MS + 1000, 10)
    driver.shard.set_aside(due)
    driver.shard.release(due)
    assert driver.shard.take_due(START_MS + 1000, 10) == []
    assert driver.shard.next_due_ms() is None
    assert driver.cancel("a") is CancelOutcome.CANCELLED
    driver.shard.restore(("orders", 0))
    assert [e.schedule_id for e in driver.shard.take_due(START_MS + 1000, 10)] == ["b"]


def test_a_producer_idle_for_the_expiration_time_is_forgotten_and_a_live_one_kept(
    tmp_path: Path,
) -> None:
    """Producer records expire as Kafka's producer state does: the idle producer's record is
    tombstoned by the shard's timer (and stays gone after a reload), while a producer that
    parked within `producer.id.expiration.ms` still gets its first answer for a retry."""
    driver = Driver(tmp_path / "buckets")
    driver.shard.on_loaded()
    timer = driver.harness.timer
    idle, live = ProducerBatch("orders", 0, 7, 0, 0), ProducerBatch("orders", 0, 8, 0, 0)
    park(driver, "idle", idle)
    timer.advance(EXPIRATION.expiration_ms - 2 * EXPIRATION.check_interval_ms)
    live_first = park(driver, "live", live)
    timer.advance(2 * EXPIRATION.check_interval_ms)
    assert Record(producer_key("orders", 0, 7), None) in driver.log
    assert Record(producer_key("orders", 0, 8), None) not in driver.log
    written = len(driver.log)
    assert park(driver, "live-again", live) == live_first
    assert len(driver.log) == written, "a live producer's retry was parked twice"

    reloaded = driver.reload(START_MS)
    assert park(reloaded, "idle-back", idle) == written, "an expired record came back on reload"
    assert park(reloaded, "live-again", live) == live_first


def test_producer_records_expire_in_bounded_runs(tmp_path: Path) -> None:
    """One run tombstones at most EXPIRED_PER_RUN records (one small batch); the rest are
    expired by a run that follows at once."""
    driver = Driver(tmp_path / "buckets")
    timer = driver.harness.timer
    many = EXPIRED_PER_RUN + 3
    for producer_id in range(many):
        park(driver, f"m{producer_id}", ProducerBatch("orders", 0, producer_id, 0, 0))
    timer.now += EXPIRATION.expiration_ms
    written = len(driver.log)
    driver.run(driver.shard.expire_producers())
    assert len(driver.log) - written == EXPIRED_PER_RUN
    timer.advance(0)
    assert len(driver.log) - written == many
    assert park(driver, "again", ProducerBatch("orders", 0, 0, 0, 0)) == len(driver.log) - 2


def test_a_sequence_query_travels_and_its_answer_packs_offset_and_count() -> None:
    producer = ProducerBatch("orders", 3, 7, 2, 40)
    assert parse(forward.sequence_query_batch(producer)) == forward.SequenceQuery(producer)
    found = (123_456_789, 5)
    assert forward.parse_sequence_answer(forward.sequence_answer(found)) == found
    assert forward.parse_sequence_answer(forward.sequence_answer(None)) is None


def test_the_parked_batch_right_before_a_refused_one_is_found(tmp_path: Path) -> None:
    """A target's new leader learns the newest parked batch only when the refused batch
    directly follows it, in the same epoch; a reload keeps what the shard knows."""
    driver = Driver(tmp_path / "buckets")
    park(driver, "a", ProducerBatch("orders", 0, 7, 0, 3))
    records = [Record(message_key(f"b{i}"), encode_message(message())) for i in range(4)]
    first = driver.run(
        driver.shard.park(records, len(driver.log), ProducerBatch("orders", 0, 7, 0, 4))
    )
    assert driver.shard.parked_before(ProducerBatch("orders", 0, 7, 0, 8)) == (first, 4)
    assert driver.shard.parked_before(ProducerBatch("orders", 0, 7, 0, 9)) is None
    assert driver.shard.parked_before(ProducerBatch("orders", 0, 7, 1, 8)) is None
    assert driver.shard.parked_before(ProducerBatch("orders", 1, 7, 0, 8)) is None
    reloaded = driver.reload(START_MS)
    assert reloaded.shard.parked_before(ProducerBatch("orders", 0, 7, 0, 8)) == (first, 4)
