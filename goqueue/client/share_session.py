"""The share consumer's protocol state, without I/O: share sessions, acknowledgement batches
and the records a ShareFetch response actually hands to this member (KIP-932).

A share session is what a broker remembers about one member's ShareFetch conversation: which
partitions it fetches and the epoch of the next request. Epoch 0 opens a session (and may carry
no acknowledgements), -1 closes it, and every answered request moves it on by one, wrapping from
2^31-1 to 1. A session error from the broker (not found, wrong epoch) or a request lost on the
network makes the client start a new session at epoch 0.

A ShareFetch answer carries whole record batches, which may hold records this member did not
acquire; the `acquired_records` ranges say which offsets are its own. Acquired offsets with no
record behind them (compacted away, control records) are gaps, which the client must
acknowledge with the GAP type so the broker can move past them.
"""

from __future__ import annotations

import bisect
import enum
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from goqueue.records.batch import check_batch, iter_batches
from goqueue.records.errors import RecordsError
from goqueue.records.reader import ConsumedRecord, batch_records

INITIAL_EPOCH = 0
FINAL_EPOCH = -1
MAX_EPOCH = 2**31 - 1


class AckType(enum.IntEnum):
    """KIP-932's acknowledge types; RENEW (KIP-1222) extends a record's acquisition lock."""

    GAP = 0
    ACCEPT = 1
    RELEASE = 2
    REJECT = 3
    RENEW = 4


@dataclass(frozen=True, slots=True)
class AckBatch:
    """A run of consecutive offsets with one acknowledge type for all of them, or one each."""

    first_offset: int
    last_offset: int
    acknowledge_types: tuple[int, ...]

    def fields(self) -> dict[str, object]:
        return {
            "first_offset": self.first_offset,
            "last_offset": self.last_offset,
            "acknowledge_types": self.acknowledge_types,
        }


def ack_batches(acks: Mapping[int, AckType]) -> list[AckBatch]:
    """The fewest batches that say `acks`: one per run of consecutive offsets, with a single
    type when the run agrees (the usual case: a whole fetch accepted) and a type per offset
    otherwise."""
    batches: list[AckBatch] = []
    run: list[tuple[int, AckType]] = []
    for offset in sorted(acks):
        if run and offset != run[-1][0] + 1:
            batches.append(_batch(run))
            run = []
        run.append((offset, acks[offset]))
    if run:
        batches.append(_batch(run))
    return batches


def _batch(run: Sequence[tuple[int, AckType]]) -> AckBatch:
    types = tuple(int(kind) for _, kind in run)
    single = all(kind == types[0] for kind in types)
    return AckBatch(run[0][0], run[-1][0], types[:1] if single else types)


def next_epoch(epoch: int) -> int:
    """The epoch after `epoch` in an open session (Kafka wraps to 1, never back to 0)."""
    return 1 if epoch >= MAX_EPOCH else epoch + 1


SessionPartition = tuple[uuid.UUID, int]
"""A partition as the share APIs name it: topic id and index."""


@dataclass(slots=True)
class SessionRequest:
    """What the next ShareFetch tells the broker about its session."""

    epoch: int
    added: list[SessionPartition]
    forgotten: list[SessionPartition]

    @property
    def opens(self) -> bool:
        return self.epoch == INITIAL_EPOCH


@dataclass(slots=True)
class ShareSession:
    """The client's half of one share session with one broker."""

    epoch: int = INITIAL_EPOCH
    partitions: set[SessionPartition] = field(default_factory=set)

    @property
    def open(self) -> bool:
        """Whether the broker holds a session for us, so acknowledgements may be sent."""
        return self.epoch != INITIAL_EPOCH

    def fetch(self, wanted: Iterable[SessionPartition]) -> SessionRequest:
        """Plan a ShareFetch of `wanted`: a new session names every partition; an open one
        names only those added since, and forgets those no longer wanted."""
        target = set(wanted)
        if not self.open:
            self.partitions = target
            return SessionRequest(self.epoch, sorted(target), [])
        added = sorted(target - self.partitions)
        forgotten = sorted(self.partitions - target)
        self.partitions = target
        return SessionRequest(self.epoch, added, forgotten)

    def answered(self) -> None:
        """The broker processed the request: the next one carries the next epoch."""
        self.epoch = next_epoch(self.epoch)

    def restart(self) -> None:
        """Forget the session (the broker lost it, or a request was lost in transit)."""
        self.epoch = INITIAL_EPOCH
        self.partitions = set()


@dataclass(frozen=True, slots=True)
class PartitionDelivery:
    """What one partition of a ShareFetch answer gives this member."""

    records: list[tuple[ConsumedRecord, int]]
    """Acquired records in offset order, each with its delivery count."""
    gaps: list[int]
    """Acquired offsets without a record: to acknowledge as GAP."""
    corrupt: list[int]
    """Acquired offsets in batches that do not decode: to reject, as Kafka's client does."""


def acquired_records(data: bytes, ranges: Iterable[tuple[int, int, int]]) -> PartitionDelivery:
    """Split a partition's record data by its acquired ranges `(first, last, delivery_count)`:
    records outside them belong to other members and are dropped. The answer holds whole
    batches, often far larger than what was acquired: a batch is decoded only up to its last
    acquired record."""
    counts: dict[int, int] = {}
    for first, last, delivery_count in ranges:
        counts.update(dict.fromkeys(range(first, last + 1), delivery_count))
    ordered = sorted(counts)
    delivery = PartitionDelivery([], [], [])
    seen: set[int] = set()
    try:
        for header, batch in iter_batches(data):
            inside = ordered[
                bisect.bisect_left(ordered, header.base_offset) : bisect.bisect_left(
                    ordered, header.next_offset
                )
            ]
            if header.is_control or not inside:
                continue
            found = []
            try:
                check_batch(batch)
                for record in batch_records(header, batch):
                    if record.offset in counts:
                        found.append((record, counts[record.offset]))
                    if record.offset >= inside[-1]:
                        break
            except RecordsError:
                delivery.corrupt.extend(inside)
                seen.update(inside)
                continue
            delivery.records.extend(found)
            seen.update(record.offset for record, _ in found)
    except RecordsError:
        delivery.corrupt.extend(o for o in ordered if o not in seen)
        return delivery
    delivery.gaps.extend(o for o in ordered if o not in seen)
    return delivery
