"""The produce path of topics with `goqueue.delayed.enabled=true`: park delayed records.

A record asks for delayed delivery with a `goqueue.deliver-at` (epoch ms) or `goqueue.delay-ms`
header, an ASCII decimal number; a `goqueue.cancel-schedule-id` header instead cancels the
pending message of that id (any Kafka client can cancel this way). A batch in which no record
carries one of these headers is appended as usual; otherwise the whole batch goes to the
scheduler (a record of it without a delay is due at once). Uncompressed batches are searched
for the header names before anything is decoded, so plain batches pay one substring search.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kio.schema.errors import ErrorCode

from goqueue.broker.errors import BrokerError
from goqueue.broker.producer_state import INT32_MAX, NO_PRODUCER_ID, BatchMetadata
from goqueue.config.catalog import delayed_max_delay_ms_for
from goqueue.coordinator.scheduler import forward
from goqueue.coordinator.scheduler.records import (
    CANCEL_HEADER,
    DELAY_MS_HEADER,
    DELIVER_AT_HEADER,
    MAX_SCHEDULE_ID_BYTES,
    SCHEDULE_ID_HEADER,
    SCHEDULE_TOPIC,
    SCHEDULED_AT_HEADER,
    Message,
    ParkRequest,
    ProducerBatch,
)
from goqueue.coordinator.scheduler.shard import CancelOutcome
from goqueue.records.batch import BatchHeader
from goqueue.records.compression import Compression
from goqueue.records.errors import RecordsError
from goqueue.records.reader import ConsumedRecord, iter_records

if TYPE_CHECKING:
    from goqueue.broker.broker import Broker
    from goqueue.broker.partition import Partition

logger = logging.getLogger(__name__)

_SEQUENCES = INT32_MAX + 1
"""Sequence numbers wrap from INT32_MAX to 0."""
_MARKERS = tuple(name.encode() for name in (DELIVER_AT_HEADER, DELAY_MS_HEADER, CANCEL_HEADER))
_DECODE_IN_THREAD_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class DelayedBatch:
    """What a produced batch asks of the scheduler: messages to park, or ids to cancel."""

    messages: tuple[ParkRequest, ...] = ()
    cancels: tuple[str, ...] = ()


async def produce_delayed(
    broker: Broker,
    partition: Partition,
    records: bytes,
    batch: BatchHeader,
    configs: Mapping[str, str],
) -> int | None:
    """Park or cancel what the batch asks for; returns the offset to answer the producer with
    (the schedule log offset of the first parked record, -1 for cancels), or None when the
    batch holds no delayed record and goes to the log as usual.

    An idempotent producer's batch is checked and recorded in the target partition's producer
    state like an appended one, so a retry is answered with the first answer and the producer's
    next batch to the log is in sequence; as nothing reaches that log, the state is snapshotted
    at once (as for a batch that content dedup drops entirely).
    """
    if batch.compression is Compression.none and not any(m in records for m in _MARKERS):
        return None
    now_ms = int(time.time() * 1000)
    max_delay_ms = delayed_max_delay_ms_for(configs, broker.settings)
    target = (partition.topic, partition.index)
    if len(records) > _DECODE_IN_THREAD_BYTES:
        delayed = await asyncio.to_thread(parse_batch, records, target, now_ms, max_delay_ms)
    else:
        delayed = parse_batch(records, target, now_ms, max_delay_ms)
    if delayed is None:
        return None
    if batch.is_transactional:
        raise BrokerError(
            ErrorCode.invalid_record,
            f"Delayed delivery to {partition.topic}-{partition.index} cannot be transactional",
        )
    idempotent = batch.producer_id != NO_PRODUCER_ID
    if idempotent:
        duplicate = partition.producers.check(batch)
        if duplicate is not None:
            return duplicate.first_offset
    where = f"{partition.topic}-{partition.index}"
    with _scheduler_unavailable_is_retriable(where):
        if delayed.cancels:
            first = -1
            for schedule_id in delayed.cancels:
                outcome = await broker.scheduler.cancel(schedule_id)
                if outcome is not CancelOutcome.CANCELLED:
                    raise BrokerError(
                        ErrorCode.invalid_record,
                        f"Cannot cancel scheduled message {schedule_id}: {_REASONS[outcome]}",
                    )
        else:
            producer = _producer_batch(partition, batch) if idempotent else None
            first = await broker.scheduler.park(
                partition.topic, partition.index, delayed.messages, producer
            )
    if idempotent:
        last = first if first < 0 else first + batch.record_count - 1
        partition.producers.record(batch, first, last)
        await partition._save_producer_state_durably()
    return first


async def produce_forwarded(broker: Broker, index: int, records: bytes, batch: BatchHeader) -> int:
    """The produce path of `__goqueue_schedule`: a park or cancel another broker sent on to
    this one, the leader of schedule shard `index` (see `goqueue.coordinator.scheduler.
    forward`). Returns the offset to answer with."""
    request = forward.parse(records, batch)
    with _scheduler_unavailable_is_retriable(f"{SCHEDULE_TOPIC}-{index}"):
        if isinstance(request, forward.ForwardedCancel):
            outcome = await broker.scheduler.cancel_here(index, request.schedule_id)
            return forward.CANCEL_OUTCOMES.index(outcome)
        if isinstance(request, forward.SequenceQuery):
            _check_shard(broker, index, request.producer.topic, request.producer.partition)
            found = broker.scheduler.parked_before_here(index, request.producer)
            return forward.sequence_answer(found)
        target = request.messages[0].message
        _check_shard(broker, index, target.topic, target.partition)
        return await broker.scheduler.park_here(
            index, target.topic, target.partition, request.messages, request.producer
        )


def _check_shard(broker: Broker, index: int, topic: str, partition: int) -> None:
    if broker.scheduler.shard_for(topic, partition) != index:
        raise BrokerError(
            ErrorCode.invalid_record,
            f"{topic}-{partition} is not scheduled in {SCHEDULE_TOPIC}-{index}",
        )


async def adopt_parked_sequence(broker: Broker, partition: Partition, batch: BatchHeader) -> None:
    """Before an idempotent producer's batch to a delayed topic is refused as out of sequence,
    ask its schedule shard whether the producer's newest parked batch for this partition ends
    right before it, and if so take that batch into the partition's producer state: parked
    batches never reach the log, so a leader elected after they were parked does not know
    their sequences. Only this error path pays the question; any failure to answer leaves
    the batch to be refused as before."""
    if batch.producer_id == NO_PRODUCER_ID or batch.is_transactional:
        return
    try:
        partition.producers.check(batch)
        return
    except BrokerError as exc:
        if exc.error_code != ErrorCode.out_of_order_sequence_number:
            return
    entry = partition.producers.entry(batch.producer_id)
    if entry is None or entry.epoch != batch.producer_epoch:
        return
    try:
        found = await broker.scheduler.parked_before(_producer_batch(partition, batch))
    except BrokerError as exc:
        logger.info("cannot ask the scheduler about producer %d: %s", batch.producer_id, exc)
        return
    if found is None:
        return
    first_offset, count = found
    last_seq = (batch.base_sequence - 1) % _SEQUENCES
    parked = BatchMetadata(
        (last_seq - count + 1) % _SEQUENCES,
        last_seq,
        first_offset,
        first_offset + count - 1,
        batch.max_timestamp,
    )
    if partition.producers.adopt(batch.producer_id, batch.producer_epoch, parked):
        logger.info(
            "%s-%d: producer %d continues after its parked batch (sequences %d to %d)",
            partition.topic,
            partition.index,
            batch.producer_id,
            parked.first_seq,
            parked.last_seq,
        )
        await partition._save_producer_state_durably()


def _producer_batch(partition: Partition, batch: BatchHeader) -> ProducerBatch:
    return ProducerBatch(
        partition.topic,
        partition.index,
        batch.producer_id,
        batch.producer_epoch,
        batch.base_sequence,
    )


@contextlib.contextmanager
def _scheduler_unavailable_is_retriable(where: str) -> Iterator[None]:
    """A schedule shard that is loading (after a restart) or led elsewhere gets a coordinator
    error, which Produce may not answer: clients treat unknown codes as fatal. Answer
    NOT_LEADER_OR_FOLLOWER instead, which every client retries after a metadata refresh (and
    `broker.peers` retries when it sends a park or cancel on to a shard's leader)."""
    try:
        yield
    except BrokerError as exc:
        if exc.error_code not in _COORDINATOR_ERRORS:
            raise
        raise BrokerError(
            ErrorCode.not_leader_or_follower,
            f"The scheduler of {where} is not ready: {exc.message}",
        ) from exc


_COORDINATOR_ERRORS = frozenset(
    {
        ErrorCode.coordinator_load_in_progress,
        ErrorCode.coordinator_not_available,
        ErrorCode.not_coordinator,
    }
)
_REASONS = {
    CancelOutcome.NOT_FOUND: "no message with this id is pending",
    CancelOutcome.DELIVERING: "it is being delivered",
}


def parse_batch(
    records: bytes, target: tuple[str, int], now_ms: int, max_delay_ms: int
) -> DelayedBatch | None:
    """The delayed messages or cancels of a batch; None if it has neither. A malformed or too
    distant time, a bad id, or a batch mixing cancels with messages is INVALID_RECORD, with a
    message naming the record, as Kafka's record validation answers."""
    where = f"{target[0]}-{target[1]}"
    try:
        decoded = list(iter_records(records))
    except RecordsError as exc:
        raise BrokerError(exc.error_code, str(exc)) from exc
    messages: list[ParkRequest] = []
    cancels: list[str] = []
    delayed = False
    for position, record in enumerate(decoded):
        headers = dict(record.headers)
        if CANCEL_HEADER in headers:
            cancels.append(_schedule_id(headers[CANCEL_HEADER], position, where))
            continue
        due_ms = _due_ms(headers, position, where, now_ms, max_delay_ms)
        delayed = delayed or due_ms is not None
        messages.append(
            _park_request(record, target, now_ms if due_ms is None else due_ms, headers, position)
        )
    if cancels and messages:
        raise BrokerError(
            ErrorCode.invalid_record,
            f"A batch to {where} mixes {CANCEL_HEADER} records with other records",
        )
    if cancels:
        return DelayedBatch(cancels=tuple(cancels))
    return DelayedBatch(messages=tuple(messages)) if delayed else None


def _park_request(
    record: ConsumedRecord,
    target: tuple[str, int],
    due_ms: int,
    headers: Mapping[str, bytes | None],
    position: int,
) -> ParkRequest:
    """A record to park; one without a delay (in a batch with delayed ones) is due at once."""
    raw_id = headers.get(SCHEDULE_ID_HEADER)
    where = f"{target[0]}-{target[1]}"
    schedule_id = None if raw_id is None else _schedule_id(raw_id, position, where)
    message = Message(
        target[0],
        target[1],
        due_ms,
        record.timestamp_ms,
        record.key,
        record.value,
        record.headers,
    )
    return ParkRequest(schedule_id, message)


def _due_ms(
    headers: Mapping[str, bytes | None],
    position: int,
    where: str,
    now_ms: int,
    max_delay_ms: int,
) -> int | None:
    """The due time a record asks for; None if it asks for none, or was delivered by the
    scheduler (it carries `goqueue.scheduled-at`: its delay headers are spent)."""
    if SCHEDULED_AT_HEADER in headers:
        return None
    if DELIVER_AT_HEADER in headers and DELAY_MS_HEADER in headers:
        raise _invalid(position, where, f"carries both {DELIVER_AT_HEADER} and {DELAY_MS_HEADER}")
    if DELIVER_AT_HEADER in headers:
        due_ms = _decimal(headers[DELIVER_AT_HEADER], DELIVER_AT_HEADER, position, where)
    elif DELAY_MS_HEADER in headers:
        due_ms = now_ms + _decimal(headers[DELAY_MS_HEADER], DELAY_MS_HEADER, position, where)
    else:
        return None
    if due_ms - now_ms > max_delay_ms:
        raise _invalid(
            position,
            where,
            f"asks for delivery {due_ms - now_ms} ms from now, beyond the topic's "
            f"goqueue.delayed.max.delay.ms={max_delay_ms}",
        )
    return max(due_ms, now_ms)


def _decimal(value: bytes | None, name: str, position: int, where: str) -> int:
    text = (value or b"").decode("ascii", "replace")
    if not text.isdigit() or len(text) > 18:
        raise _invalid(
            position, where, f"has {name}={text!r}: expected a non-negative decimal number"
        )
    return int(text)


def _schedule_id(value: bytes | None, position: int, where: str) -> str:
    raw = value or b""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        text = ""
    if not text or len(raw) > MAX_SCHEDULE_ID_BYTES or not text.isprintable() or "\t" in text:
        raise _invalid(
            position,
            where,
            f"has a schedule id that is not 1 to {MAX_SCHEDULE_ID_BYTES} bytes of printable UTF-8",
        )
    return text


def _invalid(position: int, where: str, problem: str) -> BrokerError:
    return BrokerError(
        ErrorCode.invalid_record, f"Record {position} of the batch to {where} {problem}"
    )
