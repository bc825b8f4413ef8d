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
CANCEL_OUTCOMES = tuple(CancelOutcome)
NO_PRODUCER = -1


@dataclass(frozen=True, slots=True)
class ForwardedPark:
    messages: tuple[ParkRequest, ...]
    producer: ProducerBatch | None


@dataclass(frozen=True, slots=True)
class ForwardedCancel:
    schedule_id: str


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


def parse(records: bytes, header: BatchHeader) -> ForwardedPark | ForwardedCancel:
    """The request a produce to the schedule log carries; INVALID_RECORD if it is none, or
    parks messages for more than one target partition."""
    try:
        decoded = list(iter_records(records))
        if len(decoded) == 1 and (decoded[0].key or b"").startswith(CANCEL_PREFIX):
            key = decoded[0].key or b""
            return ForwardedCancel(key[len(CANCEL_PREFIX) :].decode())
        messages = []
        for record in decoded:
            key = record.key or b""
            if not key.startswith(MESSAGE_PREFIX) or record.value is None:
                raise RecordFormatError("not a scheduler request")
            schedule_id = key[len(MESSAGE_PREFIX) :].decode() or None
            messages.append(ParkRequest(schedule_id, decode_message(record.value)))
    except (RecordsError, RecordFormatError, UnicodeDecodeError) as exc:
        raise BrokerError(
            ErrorCode.invalid_record, f"Not a request to the scheduler: {exc}"
        ) from exc
    targets = {(m.message.topic, m.message.partition) for m in messages}
    if len(targets) != 1:
        raise BrokerError(
            ErrorCode.invalid_record, "A park request must be for exactly one partition"
        )
    [(topic, partition)] = targets
    producer = None
    if header.producer_id != NO_PRODUCER:
        producer = ProducerBatch(
            topic, partition, header.producer_id, header.producer_epoch, header.base_sequence
        )
    return ForwardedPark(tuple(messages), producer)
