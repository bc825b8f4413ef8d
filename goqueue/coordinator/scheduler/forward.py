"""Scheduler requests between brokers, carried by Produce to `__goqueue_schedule`.

The broker that leads a target partition (where a delayed record is produced) may not lead
the schedule shard the partition hashes to, and a cancel may be produced to any broker: both
are sent on to the shard's leader as a produce to that shard (through `broker.peers`, so they
retry what leadership moves refuse and wait for acks=all). The shard leader's produce path for
`__goqueue_schedule` decodes them and runs them through its scheduler; nothing produced to
the schedule log is appended as is.

- park: the messages as records keyed `m:<id>` (`m:` alone: the shard leader derives the id
  from where it parks the message), valued with the encoded message. An idempotent
  producer's id, epoch and base sequence ride in the batch header, so that a forward sent
  again after an uncertain failure parks nothing twice. Answered with the schedule log offset
  of the first record, as on one node.
- cancel: one record keyed `c:<id>` without a value; answered with the outcome's position
  in `CancelOutcome` as the base offset (nothing is appended at that offset).
- sequence query: one record keyed `s:<topic>:<partition>` without a value, the producer's
  id, epoch and the base sequence of a batch the target refused as out of sequence in the
  batch header; answered with the producer's newest parked batch for the target if it ends
  right before that sequence, packed into the base offset as
  `first offset << COUNT_BITS | record count - 1`, else -1 (nothing is appended).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kio.schema.errors import ErrorCode

from goqueue.broker.errors import BrokerError
from goqueue.coordinator.scheduler.records import (
    MESSAGE_PREFIX,
    ParkRequest,
    ProducerBatch,
    RecordFormatError,
    decode_message,
    encode_message,
    message_key,
)
from goqueue.coordinator.scheduler.shard import CancelOutcome
from goqueue.records.batch import BatchHeader
from goqueue.records.builder import NewRecord, build_batch
from goqueue.records.errors import RecordsError
from goqueue.records.reader import iter_records

CANCEL_PREFIX = b"c:"
SEQUENCE_PREFIX = b"s:"
COUNT_BITS = 20
"""Bits of a sequence query's answer for the parked batch's record count: a parked batch fits
in 8 MiB and each parked record takes more than 30 bytes, so fewer than 2**18 records."""
CANCEL_OUTCOMES = tuple(CancelOutcome)
NO_PRODUCER = -1


@dataclass(frozen=True, slots=True)
class ForwardedPark:
    messages: tuple[ParkRequest, ...]
    producer: ProducerBatch | None


@dataclass(frozen=True, slots=True)
class ForwardedCancel:
    schedule_id: str


@dataclass(frozen=True, slots=True)
class SequenceQuery:
    """Which parked batch ends right before `producer`'s (see `ScheduleShard.parked_before`)."""

    producer: ProducerBatch


def park_batch(messages: Sequence[ParkRequest], producer: ProducerBatch | None) -> bytes:
    records = [
        NewRecord(message_key(m.schedule_id or ""), encode_message(m.message)) for m in messages
    ]
    if producer is None:
        return build_batch(records)
    return build_batch(
        records,
        producer_id=producer.producer_id,
        producer_epoch=producer.producer_epoch,
        base_sequence=producer.base_sequence,
    )


def cancel_batch(schedule_id: str) -> bytes:
    return build_batch([NewRecord(CANCEL_PREFIX + schedule_id.encode(), None)])


def sequence_query_batch(producer: ProducerBatch) -> bytes:
    key = SEQUENCE_PREFIX + f"{producer.topic}:{producer.partition}".encode()
    return build_batch(
        [NewRecord(key, None)],
        producer_id=producer.producer_id,
        producer_epoch=producer.producer_epoch,
        base_sequence=producer.base_sequence,
    )


def sequence_answer(found: tuple[int, int] | None) -> int:
    if found is None or found[1] > 1 << COUNT_BITS:
        return -1
    first_offset, count = found
    return first_offset << COUNT_BITS | (count - 1)


def parse_sequence_answer(answer: int) -> tuple[int, int] | None:
    """(first offset, record count) of the parked batch, None if the shard had none."""
    if answer < 0:
        return None
    return answer >> COUNT_BITS, (answer & ((1 << COUNT_BITS) - 1)) + 1


def parse(records: bytes, header: BatchHeader) -> ForwardedPark | ForwardedCancel | SequenceQuery:
    """The request a produce to the schedule log carries; INVALID_RECORD if it is none, or
    parks messages for more than one target partition."""
    try:
        decoded = list(iter_records(records))
        key = (decoded[0].key or b"") if len(decoded) == 1 else b""
        if key.startswith(CANCEL_PREFIX):
            return ForwardedCancel(key[len(CANCEL_PREFIX) :].decode())
        if key.startswith(SEQUENCE_PREFIX):
            asked, _, index = key[len(SEQUENCE_PREFIX) :].decode().rpartition(":")
            query = _producer(header, asked, int(index))
            if query is None:
                raise RecordFormatError("a sequence query without a producer")
            return SequenceQuery(query)
        messages = []
        for record in decoded:
            key = record.key or b""
            if not key.startswith(MESSAGE_PREFIX) or record.value is None:
                raise RecordFormatError("not a scheduler request")
            schedule_id = key[len(MESSAGE_PREFIX) :].decode() or None
            messages.append(ParkRequest(schedule_id, decode_message(record.value)))
    except (RecordsError, RecordFormatError, ValueError) as exc:
        raise BrokerError(
            ErrorCode.invalid_record, f"Not a request to the scheduler: {exc}"
        ) from exc
    targets = {(m.message.topic, m.message.partition) for m in messages}
    if len(targets) != 1:
        raise BrokerError(
            ErrorCode.invalid_record, "A park request must be for exactly one partition"
        )
    [(topic, partition)] = targets
    return ForwardedPark(tuple(messages), _producer(header, topic, partition))


def _producer(header: BatchHeader, topic: str, partition: int) -> ProducerBatch | None:
    """The idempotent producer's batch a request carries in its header, if any."""
    if header.producer_id == NO_PRODUCER:
        return None
    return ProducerBatch(
        topic, partition, header.producer_id, header.producer_epoch, header.base_sequence
    )
