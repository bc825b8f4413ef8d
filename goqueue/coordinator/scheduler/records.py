"""The records of the schedule log (`__goqueue_schedule`) and the headers delayed records carry.

A scheduled message is one record keyed `m:<schedule id>` whose value holds the whole message
(target topic and partition, due time, key, value, headers, timestamp) in a small binary form,
so delivering it needs nothing else. Its life ends with a tombstone of the same key (delivered,
or cancelled while it was in memory), which lets compaction drop it; a message cancelled while
its due time is still far away is first marked by a small cancel record of the same key.

Before the scheduler appends due messages to a target partition it writes an *intent*, keyed
`i:<topic>:<partition>`: the target's log end offset and the ids it is about to append. The
intent is what makes delivery exactly once across crashes (see `coordinator.py`).

An idempotent producer's parked batch also writes a *producer* record, keyed
`p:<topic>:<partition>:<producer id>`: its epoch and the base sequences of its last parked
batches with the schedule log offsets they were answered, so that the same batch parked again
(a retry after an uncertain forward from another broker, or after a crash) gets the first
answer instead of a second copy. It also holds when the producer last parked there: a record
older than `producer.id.expiration.ms` is tombstoned, as Kafka forgets a silent producer's
state (every producer process gets a new producer id, so they would pile up forever). And it
holds the last sequence of the newest parked batch, which a new leader of the target, whose
producer state never saw parked batches, adopts when the producer's next batch follows it.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from goqueue.coordinator.runtime import Record

SCHEDULE_TOPIC = "__goqueue_schedule"
DELIVER_AT_HEADER = "goqueue.deliver-at"
DELAY_MS_HEADER = "goqueue.delay-ms"
SCHEDULE_ID_HEADER = "goqueue.schedule-id"
SCHEDULED_AT_HEADER = "goqueue.scheduled-at"
CANCEL_HEADER = "goqueue.cancel-schedule-id"
MAX_SCHEDULE_ID_BYTES = 255

MESSAGE_PREFIX = b"m:"
INTENT_PREFIX = b"i:"
PRODUCER_PREFIX = b"p:"
PRODUCER_BATCHES_KEPT = 5
"""Parked batches remembered per producer and target: Kafka's most in-flight batches."""
PARKED = 0
CANCELLED = 1

_PARKED_HEAD = struct.Struct(">bqiH")
"""kind, due time (epoch ms), target partition, target topic length (the topic follows)."""
_CANCEL = struct.Struct(">bq")
"""kind, due time of the cancelled message (so replay knows where it was kept)."""
_TIMESTAMP = struct.Struct(">q")
_LENGTH = struct.Struct(">i")
_COUNT = struct.Struct(">H")


class RecordFormatError(ValueError):
    """A schedule log record this code cannot read."""


@dataclass(frozen=True, slots=True)
class Message:
    """A record parked until it is due, with everything needed to append it to its topic."""

    topic: str
    partition: int
    due_ms: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


@dataclass(frozen=True, slots=True)
class ParkRequest:
    """A message to park, with the id its producer gave it (None: the scheduler derives one)."""

    schedule_id: str | None
    message: Message


@dataclass(frozen=True, slots=True)
class Intent:
    """Ids the scheduler is appending to a target partition whose log ended at `start`."""

    start: int
    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ProducerBatch:
    """The idempotent producer batch a park comes from (what makes parking it again a no-op):
    its target partition and its producer id, epoch and base sequence there."""

    topic: str
    partition: int
    producer_id: int
    producer_epoch: int
    base_sequence: int


@dataclass(frozen=True, slots=True)
class ParkedBatches:
    """What a producer record holds: the producer's epoch, its last parked batches as
    (base sequence, schedule log offset of the first record), when it last parked (epoch ms,
    what its expiration counts from) and the last sequence of the newest batch (-1: not
    known, a record written before records held it)."""

    producer_epoch: int
    batches: tuple[tuple[int, int], ...]
    last_ms: int
    last_sequence: int = -1

    def first_offset(self, batch: ProducerBatch) -> int | None:
        """Where `batch` was parked before, None if it was not."""
        if batch.producer_epoch != self.producer_epoch:
            return None
        return next((first for seq, first in self.batches if seq == batch.base_sequence), None)

    def with_batch(
        self, batch: ProducerBatch, first_offset: int, last_sequence: int, now_ms: int
    ) -> ParkedBatches:
        kept = self.batches if batch.producer_epoch == self.producer_epoch else ()
        entry = (batch.base_sequence, first_offset)
        return ParkedBatches(
            batch.producer_epoch, (*kept, entry)[-PRODUCER_BATCHES_KEPT:], now_ms, last_sequence
        )

    def expired(self, now_ms: int, expiration_ms: int) -> bool:
        """Whether the producer has not parked here for `expiration_ms` (Kafka's test)."""
        return now_ms - self.last_ms >= expiration_ms


def producer_key(topic: str, partition: int, producer_id: int) -> bytes:
    return PRODUCER_PREFIX + f"{topic}:{partition}:{producer_id}".encode()


def encode_parked_batches(parked: ParkedBatches) -> bytes:
    return json.dumps(
        {
            "epoch": parked.producer_epoch,
            "batches": parked.batches,
            "at": parked.last_ms,
            "last": parked.last_sequence,
        }
    ).encode()


def decode_parked_batches(value: bytes, loaded_ms: int) -> ParkedBatches:
    """A producer record; one written before records held their time counts as parked when
    it is loaded (`loaded_ms`), so it expires one expiration after the load, never early."""
    try:
        data = json.loads(value)
        batches = tuple((int(seq), int(first)) for seq, first in data["batches"])
        return ParkedBatches(
            int(data["epoch"]),
            batches,
            int(data.get("at", loaded_ms)),
            int(data.get("last", -1)),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise RecordFormatError(f"malformed producer record: {exc}") from exc


def message_key(schedule_id: str) -> bytes:
    return MESSAGE_PREFIX + schedule_id.encode()


def intent_key(topic: str, partition: int) -> bytes:
    return INTENT_PREFIX + f"{topic}:{partition}".encode()


def parse_intent_key(key: bytes) -> tuple[str, int]:
    topic, _, partition = key[len(INTENT_PREFIX) :].decode().rpartition(":")
    return topic, int(partition)


def encode_message(message: Message) -> bytes:
    topic = message.topic.encode()
    out = bytearray(_PARKED_HEAD.pack(PARKED, message.due_ms, message.partition, len(topic)))
    out += topic
    out += _TIMESTAMP.pack(message.timestamp_ms)
    _put_bytes(out, message.key)
    _put_bytes(out, message.value)
    out += _COUNT.pack(len(message.headers))
    for name, value in message.headers:
        raw = name.encode()
        out += _COUNT.pack(len(raw))
        out += raw
        _put_bytes(out, value)
    return bytes(out)


def peek_message(value: bytes) -> tuple[str, int, int]:
    """Target topic, partition and due time of an encoded message, without decoding the rest
    (replay reads millions of these and keeps most of them only as bytes)."""
    try:
        kind, due_ms, partition, topic_length = _PARKED_HEAD.unpack_from(value)
    except struct.error as exc:
        raise RecordFormatError(f"truncated scheduled message: {exc}") from exc
    if kind != PARKED:
        raise RecordFormatError(f"not a scheduled message (kind {kind})")
    start = _PARKED_HEAD.size
    return value[start : start + topic_length].decode(), partition, due_ms


def decode_message(value: bytes) -> Message:
    topic, partition, due_ms = peek_message(value)
    try:
        pos = _PARKED_HEAD.size + len(topic.encode())
        (timestamp_ms,) = _TIMESTAMP.unpack_from(value, pos)
        key, pos = _get_bytes(value, pos + _TIMESTAMP.size)
        body, pos = _get_bytes(value, pos)
        (count,) = _COUNT.unpack_from(value, pos)
        pos += _COUNT.size
        headers = []
        for _ in range(count):
            (length,) = _COUNT.unpack_from(value, pos)
            pos += _COUNT.size
            name = value[pos : pos + length].decode()
            header_value, pos = _get_bytes(value, pos + length)
            headers.append((name, header_value))
    except (struct.error, UnicodeDecodeError) as exc:
        raise RecordFormatError(f"malformed scheduled message: {exc}") from exc
    return Message(topic, partition, due_ms, timestamp_ms, key, body, tuple(headers))


def record_kind(value: bytes) -> int:
    if not value:
        raise RecordFormatError("empty schedule record value")
    return value[0]


def encode_cancel(due_ms: int) -> bytes:
    return _CANCEL.pack(CANCELLED, due_ms)


def decode_cancel(value: bytes) -> int:
    """The due time of the message a cancel record cancels."""
    try:
        return int(_CANCEL.unpack(value)[1])
    except struct.error as exc:
        raise RecordFormatError(f"malformed cancel record: {exc}") from exc


def encode_intent(intent: Intent) -> bytes:
    return json.dumps({"start": intent.start, "ids": list(intent.ids)}).encode()


def decode_intent(value: bytes) -> Intent:
    try:
        data = json.loads(value)
        return Intent(int(data["start"]), tuple(str(i) for i in data["ids"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise RecordFormatError(f"malformed delivery intent: {exc}") from exc


def tombstones(schedule_ids: Sequence[str]) -> list[Record]:
    return [Record(message_key(schedule_id), None) for schedule_id in schedule_ids]


def _put_bytes(out: bytearray, value: bytes | None) -> None:
    if value is None:
        out += _LENGTH.pack(-1)
        return
    out += _LENGTH.pack(len(value))
    out += value


def _get_bytes(data: bytes, pos: int) -> tuple[bytes | None, int]:
    (length,) = _LENGTH.unpack_from(data, pos)
    pos += _LENGTH.size
    if length < 0:
        return None, pos
    if pos + length > len(data):
        raise RecordFormatError(f"field of {length} bytes overruns its record")
    return data[pos : pos + length], pos + length
