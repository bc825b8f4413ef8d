"""What one partition knows of idempotent producers, as Kafka's ProducerStateManager keeps it.

For every producer id: its epoch and the metadata of its last five batches (sequence range,
offset range, timestamp). That is enough to answer a retried batch with the offsets it already
got instead of writing it again, to refuse a batch that skips sequence numbers, and to fence a
producer whose epoch was bumped. Pure state transitions over batch headers: the partition calls
`check` before appending and `record` after, replays headers read back from the log with
`record` too, and persists the whole state with `encode` / `decode`.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass, field

import crc32c
from kio.schema.errors import ErrorCode

from goqueue.broker.errors import BrokerError
from goqueue.records.batch import BatchHeader

NO_PRODUCER_ID = -1
NO_SEQUENCE = -1
BATCHES_RETAINED = 5
"""Kafka's NUM_BATCHES_TO_RETAIN: a producer has at most five requests in flight, so a retry
is always of one of its last five batches."""
INT32_MAX = 2**31 - 1

SNAPSHOT_VERSION = 1
_SNAPSHOT_HEADER = struct.Struct(">hI")
"""version, CRC32C of the payload that follows: the producer count, then the producers."""
_COUNT = struct.Struct(">i")
_PRODUCER = struct.Struct(">qhqb")
"""producer id, epoch, last timestamp, batch count."""
_BATCH = struct.Struct(">iiqqq")
"""first sequence, last sequence, first offset, last offset, timestamp."""


class SnapshotError(ValueError):
    """A snapshot's bytes are not a complete, intact snapshot of a version this code reads."""


def last_sequence(base_sequence: int, last_offset_delta: int) -> int:
    """The sequence of a batch's last record: sequences wrap from INT32_MAX to 0, as in Kafka's
    DefaultRecordBatch.incrementSequence."""
    if base_sequence > INT32_MAX - last_offset_delta:
        return last_offset_delta - (INT32_MAX - base_sequence) - 1
    return base_sequence + last_offset_delta


def in_sequence(last_seq: int, next_seq: int) -> bool:
    return next_seq == last_seq + 1 or (next_seq == 0 and last_seq == INT32_MAX)


@dataclass(frozen=True, slots=True)
class BatchMetadata:
    """Where one of a producer's batches went: enough to answer a retry of it."""

    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int
    timestamp: int


@dataclass(slots=True)
class ProducerEntry:
    """One producer's epoch and its most recent batches, oldest first."""

    producer_id: int
    epoch: int
    last_timestamp: int
    batches: deque[BatchMetadata] = field(default_factory=lambda: deque(maxlen=BATCHES_RETAINED))

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else NO_SEQUENCE

    def find(self, first_seq: int, last_seq: int) -> BatchMetadata | None:
        for batch in self.batches:
            if batch.first_seq == first_seq and batch.last_seq == last_seq:
                return batch
        return None


class ProducerStateManager:
    """The producer entries of one partition."""

    def __init__(self) -> None:
        self._producers: dict[int, ProducerEntry] = {}

    def __len__(self) -> int:
        return len(self._producers)

    def entry(self, producer_id: int) -> ProducerEntry | None:
        return self._producers.get(producer_id)

    def check(self, header: BatchHeader) -> BatchMetadata | None:
        """Validate a client's batch before it is appended, as Kafka's ProducerAppendInfo does
        for client appends: the metadata of the batch it repeats (answer with that, write
        nothing), or None for a batch to append. Raises BrokerError for a batch to refuse.

        A producer this partition does not know (never seen, or expired) may start at any
        sequence, as in Kafka 2.5+: its state may have been removed by retention or expiry.
        """
        producer_id = header.producer_id
        if header.base_sequence < 0:
            raise BrokerError(
                ErrorCode.invalid_record,
                f"Invalid sequence number {header.base_sequence} in record batch with "
                f"producerId {producer_id}",
            )
        entry = self._producers.get(producer_id)
        if entry is None:
            return None
        epoch = header.producer_epoch
        if epoch < entry.epoch:
            raise BrokerError(
                ErrorCode.invalid_producer_epoch,
                f"Epoch of producer {producer_id} is {epoch}, which is smaller than the last "
                f"seen epoch {entry.epoch}",
            )
        first_seq = header.base_sequence
        if epoch > entry.epoch:
            if first_seq != 0:
                raise BrokerError(
                    ErrorCode.out_of_order_sequence_number,
                    f"Invalid sequence number for new epoch of producer {producer_id}: "
                    f"{epoch} (request epoch), {first_seq} (seq. number), {entry.epoch} "
                    "(current producer epoch)",
                )
            return None
        duplicate = entry.find(first_seq, last_sequence(first_seq, header.last_offset_delta))
        if duplicate is None and not in_sequence(entry.last_seq, first_seq):
            raise BrokerError(
                ErrorCode.out_of_order_sequence_number,
                f"Out of order sequence number for producer {producer_id}: {first_seq} "
                f"(incoming seq. number), {entry.last_seq} (current end sequence number)",
            )
        return duplicate

    def record(self, header: BatchHeader, first_offset: int, last_offset: int) -> None:
        """Remember a batch of a producer that was appended (or replayed from the log) at
        `first_offset`..`last_offset`; a higher epoch starts the producer's batches afresh."""
        producer_id = header.producer_id
        entry = self._producers.get(producer_id)
        if entry is None:
            entry = ProducerEntry(producer_id, header.producer_epoch, header.max_timestamp)
            self._producers[producer_id] = entry
        elif header.producer_epoch != entry.epoch:
            entry.epoch = header.producer_epoch
            entry.batches.clear()
        entry.batches.append(
            BatchMetadata(
                header.base_sequence,
                last_sequence(header.base_sequence, header.last_offset_delta),
                first_offset,
                last_offset,
                header.max_timestamp,
            )
        )
        entry.last_timestamp = header.max_timestamp

    def adopt(self, producer_id: int, epoch: int, batch: BatchMetadata) -> bool:
        """Take in a batch of the producer that never reached this log (the scheduler parked
        it) if it comes after the producer's last batch here, in the same epoch (parked
        batches in between are skipped: only the newest one's sequence matters); returns
        whether it did."""
        entry = self._producers.get(producer_id)
        if entry is None or entry.epoch != epoch or not entry.batches:
            return False
        last_seq = entry.last_seq
        if not (in_sequence(last_seq, batch.first_seq) or batch.first_seq > last_seq):
            return False
        entry.batches.append(batch)
        entry.last_timestamp = max(entry.last_timestamp, batch.timestamp)
        return True

    def remove_expired(self, now_ms: int, expiration_ms: int) -> int:
        """Forget producers whose last batch is `expiration_ms` old or older (Kafka's
        `producer.id.expiration.ms`, measured on batch timestamps); returns how many."""
        expired = [
            producer_id
            for producer_id, entry in self._producers.items()
            if now_ms - entry.last_timestamp >= expiration_ms
        ]
        for producer_id in expired:
            del self._producers[producer_id]
        return len(expired)

    def encode(self) -> bytes:
        """The whole state as snapshot bytes, checksummed so a torn file is detected."""
        body = bytearray()
        for entry in self._producers.values():
            body += _PRODUCER.pack(
                entry.producer_id, entry.epoch, entry.last_timestamp, len(entry.batches)
            )
            for batch in entry.batches:
                body += _BATCH.pack(
                    batch.first_seq,
                    batch.last_seq,
                    batch.first_offset,
                    batch.last_offset,
                    batch.timestamp,
                )
        payload = _COUNT.pack(len(self._producers)) + body
        return _SNAPSHOT_HEADER.pack(SNAPSHOT_VERSION, crc32c.crc32c(payload)) + payload

    @classmethod
    def decode(cls, data: bytes) -> ProducerStateManager:
        """The state a snapshot holds; raises SnapshotError for anything but an intact one."""
        header_size = _SNAPSHOT_HEADER.size
        if len(data) < header_size + _COUNT.size:
            raise SnapshotError(f"snapshot of {len(data)} bytes is shorter than its header")
        version, crc = _SNAPSHOT_HEADER.unpack_from(data)
        if version != SNAPSHOT_VERSION:
            raise SnapshotError(f"unsupported producer snapshot version {version}")
        if crc32c.crc32c(memoryview(data)[header_size:]) != crc:
            raise SnapshotError("producer snapshot checksum mismatch")
        (count,) = _COUNT.unpack_from(data, header_size)
        state = cls()
        position = header_size + _COUNT.size
        try:
            for _ in range(count):
                producer_id, epoch, last_timestamp, batch_count = _PRODUCER.unpack_from(
                    data, position
                )
                position += _PRODUCER.size
                entry = ProducerEntry(producer_id, epoch, last_timestamp)
                for _ in range(batch_count):
                    entry.batches.append(BatchMetadata(*_BATCH.unpack_from(data, position)))
                    position += _BATCH.size
                state._producers[producer_id] = entry
        except struct.error as exc:
            raise SnapshotError(f"producer snapshot is truncated: {exc}") from None
        if position != len(data):
            raise SnapshotError(f"{len(data) - position} stray bytes after the last producer")
        return state
