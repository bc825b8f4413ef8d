"""Content dedup: records whose message id was written to the partition within the topic's
`goqueue.dedup.window.ms` are dropped, and the producer is still told its send succeeded.

A record's message id is the value of its `goqueue.msg-id` header, or else a hash of its key,
value and headers. Only topics that enable the window pay for decoding records (ARCHITECTURE,
decision 2). A batch that repeats some records is rebuilt without them the way Kafka's log
cleaner rebuilds a batch: it keeps its base offset, last offset delta and every kept record's
offset delta, so the kept records sit at exactly the offsets the producer was told, the
batch's producer sequence range is unchanged, and the dropped records leave holes in the
offsets, as compaction does. Everything here is pure; `Partition` runs it under its lock.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from goqueue.records.batch import BatchHeader, TimestampType, iter_batches
from goqueue.records.buffer import Buffer
from goqueue.records.errors import InvalidRecordError
from goqueue.records.recompress import RawRecord, iter_raw_records, rebuild
from goqueue.records.varint import read_varint

MSG_ID_HEADER = "goqueue.msg-id"
_MSG_ID_HEADER = MSG_ID_HEADER.encode()
_ID_BYTES = 16
_BY_HEADER = b"h"
_BY_CONTENT = b"c"


def message_id(record: RawRecord) -> bytes:
    """The record's message id: 16 bytes of BLAKE2b over its `goqueue.msg-id` header value if
    it has one (not null), else over its key, value and headers (lengths included, so no two
    different records share the input)."""
    tail = record.tail
    _, pos = read_varint(tail, 0)
    content = hashlib.blake2b(_BY_CONTENT, digest_size=_ID_BYTES)
    for _ in range(2):
        _, pos = _field(tail, pos, content)
    count, pos = read_varint(tail, pos)
    content.update(count.to_bytes(4, "big", signed=True))
    for _ in range(count):
        name, pos = _field(tail, pos, content)
        value, pos = _field(tail, pos, content)
        if value is not None and name is not None and name.tobytes() == _MSG_ID_HEADER:
            return hashlib.blake2b(_BY_HEADER + bytes(value), digest_size=_ID_BYTES).digest()
    if pos != len(tail):
        raise InvalidRecordError(f"{len(tail) - pos} stray bytes after a record's headers")
    return content.digest()


def _field(tail: memoryview, pos: int, content: hashlib.blake2b) -> tuple[memoryview | None, int]:
    """Read one length-prefixed field, feeding its length and bytes to the content hash."""
    length, pos = read_varint(tail, pos)
    content.update(length.to_bytes(4, "big", signed=True))
    if length < 0:
        return None, pos
    end = pos + length
    if end > len(tail):
        raise InvalidRecordError(f"field of {length} bytes overruns its record")
    value = tail[pos:end]
    content.update(value)
    return value, end


class DedupWindow:
    """Message ids written to one partition, each with the offset it got and when.

    Runtime entries carry the broker's clock at append. Entries older than the window are
    removed from the front (insertion order, which is nearly time order); a lookup also checks
    the time, so an entry out of order is never matched once it is older than the window.
    """

    def __init__(self) -> None:
        self._ids: dict[bytes, tuple[int, int]] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def original(self, msg_id: bytes, cutoff_ms: int) -> int | None:
        """Offset of the record with this id written at or after `cutoff_ms`, if any."""
        found = self._ids.get(msg_id)
        return found[0] if found is not None and found[1] >= cutoff_ms else None

    def add(self, msg_id: bytes, offset: int, time_ms: int) -> None:
        self._ids.pop(msg_id, None)
        self._ids[msg_id] = (offset, time_ms)

    def expire(self, cutoff_ms: int) -> None:
        """Forget ids written before `cutoff_ms` (now minus the window)."""
        ids = self._ids
        while ids:
            oldest = next(iter(ids))
            if ids[oldest][1] >= cutoff_ms:
                return
            del ids[oldest]

    def load(self, data: Buffer, cutoff_ms: int, now_ms: int) -> None:
        """Add the ids of the records in `data` (whole batches read back from the log) whose
        timestamps are at or after `cutoff_ms`.

        The log keeps no append time, so a record read back counts as written at its
        timestamp (the producer's clock, or the broker's under LogAppendTime), capped at now.
        """
        for header, batch in iter_batches(data):
            if header.is_control or header.max_timestamp < cutoff_ms:
                continue
            for record in iter_raw_records(header, batch):
                time_ms = min(_timestamp(header, record), now_ms)
                if time_ms >= cutoff_ms:
                    self.add(message_id(record), header.base_offset + record.offset_delta, time_ms)


def _timestamp(header: BatchHeader, record: RawRecord) -> int:
    if header.timestamp_type is TimestampType.log_append_time:
        return header.max_timestamp
    return header.first_timestamp + record.timestamp_delta


@dataclass(frozen=True, slots=True)
class DedupPlan:
    """What to do with one produced batch."""

    records: bytes | None
    """The batch to append (the original bytes if nothing repeats, else rebuilt without the
    repeats); None when every record repeats one already written."""
    kept: tuple[tuple[bytes, int], ...]
    """(message id, offset delta) of each record to append, to remember once appended."""
    originals: tuple[int, ...]
    """Offsets of the earlier copies of the dropped records, in batch order."""


def plan_batch(
    records: bytes, header: BatchHeader, window: DedupWindow, cutoff_ms: int
) -> DedupPlan:
    """Decide which records of a produced batch repeat one written within the window (or an
    earlier record of the same batch) and rebuild the batch without them."""
    kept_records: list[RawRecord] = []
    kept: list[tuple[bytes, int]] = []
    originals: list[int] = []
    in_batch: set[bytes] = set()
    for record in iter_raw_records(header, records):
        msg_id = message_id(record)
        original = window.original(msg_id, cutoff_ms)
        if original is not None:
            originals.append(original)
        elif msg_id not in in_batch:
            in_batch.add(msg_id)
            kept_records.append(record)
            kept.append((msg_id, record.offset_delta))
    if not kept:
        return DedupPlan(None, (), tuple(originals))
    if len(kept) == header.record_count:
        return DedupPlan(records, tuple(kept), ())
    return DedupPlan(
        rebuild(header, kept_records, delete_horizon=None), tuple(kept), tuple(originals)
    )
