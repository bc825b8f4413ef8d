"""The share-partition state machine (KIP-932): per-record state of one topic partition as a
share group consumes it.

Records below the share-partition start offset (SPSO) are done; records at or past the end
offset have not been seen by the group yet. Between the two, the in-flight window, each record
is available, acquired (locked by one member until its acquisition lock expires),
acknowledged or archived; records in a terminal state are simply dropped from `entries`, so
an offset of the window without an entry is done. Go-Queue adds one transient state,
DEAD_LETTERING: the record is being copied to the group's dead-letter topic and is archived
once the copy is durable, so nothing the group gives up on is silently discarded.

Everything here is pure: the caller passes the clock, the records read from the log and the
group's settings, and gets back what changed (to persist) and what to tell the client.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from kio.schema.errors import ErrorCode


class RecordState(enum.IntEnum):
    """Kafka's delivery states (their ids as persisted by Kafka), plus Go-Queue's DLQ step."""

    AVAILABLE = 0
    ACQUIRED = 1
    ACKNOWLEDGED = 2
    ARCHIVED = 4
    DEAD_LETTERING = 8


class AckType(enum.IntEnum):
    """ShareFetch/ShareAcknowledge acknowledge types."""

    GAP = 0
    ACCEPT = 1
    RELEASE = 2
    REJECT = 3
    RENEW = 4


TERMINAL = (RecordState.ACKNOWLEDGED, RecordState.ARCHIVED)
NO_GROUP = b""
"""The FIFO message group of a record that has none (delivered without ordering)."""
UNKNOWN_GROUP = None
"""An entry loaded from a snapshot whose record has not been read again yet."""

REASON_EXPIRED = "expired"
REASON_REJECTED = "rejected"
REASON_DELIVERY_LIMIT = "delivery-limit"


@dataclass(frozen=True, slots=True)
class Limits:
    """The group settings a share partition obeys."""

    lock_duration_ms: int = 30_000
    delivery_count_limit: int = 5
    max_record_locks: int = 2000
    backoff_ms: tuple[int, ...] = ()
    fifo: bool = False
    dead_letter: bool = True
    """False: a record the group gives up on is archived at once, as Kafka does."""

    def backoff_after(self, delivery_count: int) -> int:
        """The delay before a record that failed its `delivery_count`-th delivery is
        available again: the schedule's entry for that attempt, its last entry beyond."""
        if not self.backoff_ms or delivery_count <= 0:
            return 0
        return self.backoff_ms[min(delivery_count, len(self.backoff_ms)) - 1]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A record read from the log that the share partition may hand out."""

    offset: int
    timestamp_ms: int
    message_group: bytes = NO_GROUP
    expired: bool = False


@dataclass(slots=True)
class Entry:
    """One record of the in-flight window."""

    state: RecordState
    delivery_count: int = 0
    ready_at_ms: int = 0
    """When an available record may be acquired again (retry backoff)."""
    holder: str | None = None
    lock_expiry_ms: int = 0
    message_group: bytes | None = UNKNOWN_GROUP
    reason: str | None = None
    """Why a DEAD_LETTERING record goes to the dead-letter topic."""
    timestamp_ms: int | None = None
    """The record's timestamp, once read from the log (not persisted)."""


@dataclass(frozen=True, slots=True)
class Acquired:
    """A run of consecutive acquired offsets with one delivery count (AcquiredRecords)."""

    first_offset: int
    last_offset: int
    delivery_count: int


@dataclass(frozen=True, slots=True)
class AckBatch:
    first_offset: int
    last_offset: int
    types: tuple[int, ...]


class ShareError(Exception):
    def __init__(self, error: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message


@dataclass(slots=True)
class Totals:
    """What the partition has done since the group first read it (persisted)."""

    acknowledged: int = 0
    archived: int = 0
    dead_lettered: int = 0


@dataclass(slots=True)
class SharePartition:
    """One topic partition of one share group."""

    start_offset: int
    end_offset: int
    entries: dict[int, Entry] = field(default_factory=dict)
    totals: Totals = field(default_factory=Totals)
    changed: set[int] = field(default_factory=set)
    """Offsets whose persisted fields changed since the last `take_changes`."""

    @classmethod
    def starting_at(cls, offset: int) -> SharePartition:
        return cls(offset, offset)

    # Queries.

    def next_candidate(self, now_ms: int, fifo: bool) -> int | None:
        """The lowest offset an acquisition should read from, None if nothing can be acquired
        before new records arrive or a backoff ends. FIFO groups read from the lowest entry
        whose message group is unknown, so they learn which groups are busy."""
        lowest: int | None = None
        for offset, entry in self.entries.items():
            wanted = (entry.state is RecordState.AVAILABLE and entry.ready_at_ms <= now_ms) or (
                fifo and entry.message_group is UNKNOWN_GROUP
            )
            if wanted and (lowest is None or offset < lowest):
                lowest = offset
        return lowest

    def window_full(self, max_record_locks: int) -> bool:
        return self.end_offset - self.start_offset >= max_record_locks

    def next_ready_ms(self) -> int | None:
        """When the earliest backed-off record becomes available, if any waits."""
        return min(
            (
                e.ready_at_ms
                for e in self.entries.values()
                if e.state is RecordState.AVAILABLE and e.ready_at_ms > 0
            ),
            default=None,
        )

    def next_lock_expiry_ms(self) -> int | None:
        return min(
            (e.lock_expiry_ms for e in self.entries.values() if e.state is RecordState.ACQUIRED),
            default=None,
        )

    def dead_lettering(self) -> list[tuple[int, Entry]]:
        return sorted(
            (offset, entry)
            for offset, entry in self.entries.items()
            if entry.state is RecordState.DEAD_LETTERING
        )

    def count(self, state: RecordState, now_ms: int | None = None) -> int:
        """Entries in a state; for AVAILABLE with `now_ms`, only those past their backoff."""
        return sum(
            1
            for e in self.entries.values()
            if e.state is state and (now_ms is None or e.ready_at_ms <= now_ms)
        )

    def oldest_timestamp_ms(self) -> int | None:
        """The earliest timestamp among the window's records read since the broker started."""
        return min(
            (e.timestamp_ms for e in self.entries.values() if e.timestamp_ms is not None),
            default=None,
        )

    def held_by(self, member_id: str) -> list[int]:
        return sorted(
            offset
            for offset, entry in self.entries.items()
            if entry.state is RecordState.ACQUIRED and entry.holder == member_id
        )

    # Transitions.

    def acquire(
        self,
        member_id: str,
        candidates: Iterable[Candidate],
        now_ms: int,
        limits: Limits,
        max_records: int,
        log_start_offset: int = 0,
    ) -> list[Acquired]:
        """Acquire up to `max_records` of the candidates (in offset order; a lazy iterable is
        read only as far as needed) for a member.

        New records join the window while it spans fewer than `max_record_locks` offsets.
        Expired records and records past the delivery limit go to the dead-letter step
        instead. In a FIFO group a record is skipped while an earlier record of its message
        group is unfinished (acquired, backing off or being dead-lettered).
        """
        self.skip_to(log_start_offset)
        busy = self._busy_groups(limits.fifo, now_ms)
        acquired: list[int] = []
        for candidate in candidates:
            if len(acquired) >= max_records:
                break
            entry = self._entry_for(candidate, limits)
            if entry is None:
                if candidate.offset >= self.end_offset:
                    break
                continue
            if entry.message_group is UNKNOWN_GROUP:
                entry.message_group = candidate.message_group
                entry.timestamp_ms = candidate.timestamp_ms
            group = entry.message_group
            blocked = limits.fifo and group != NO_GROUP and group in busy
            if not blocked and entry.state is RecordState.AVAILABLE and entry.ready_at_ms <= now_ms:
                if candidate.expired:
                    self._give_up(candidate.offset, entry, REASON_EXPIRED, limits)
                elif entry.delivery_count >= limits.delivery_count_limit:
                    self._give_up(candidate.offset, entry, REASON_DELIVERY_LIMIT, limits)
                else:
                    entry.state = RecordState.ACQUIRED
                    entry.delivery_count += 1
                    entry.holder = member_id
                    entry.lock_expiry_ms = now_ms + limits.lock_duration_ms
                    entry.ready_at_ms = 0
                    self.changed.add(candidate.offset)
                    acquired.append(candidate.offset)
            if group is not None and group != NO_GROUP and candidate.offset in self.entries:
                busy.add(group)
        self._advance_start()
        return _runs(acquired, self.entries)

    def _entry_for(self, candidate: Candidate, limits: Limits) -> Entry | None:
        """The window entry of a candidate, creating it for a record past the end offset
        while the window has room; None for a record that is done or does not fit."""
        offset = candidate.offset
        if offset < self.start_offset:
            return None
        if offset < self.end_offset:
            return self.entries.get(offset)
        if offset - self.start_offset >= limits.max_record_locks:
            return None
        entry = self.entries[offset] = Entry(RecordState.AVAILABLE)
        self.end_offset = offset + 1
        self.changed.add(offset)
        return entry

    def _busy_groups(self, fifo: bool, now_ms: int) -> set[bytes]:
        """Message groups with a record that cannot be acquired now: acquired, backing off
        or being dead-lettered."""
        if not fifo:
            return set()
        return {
            e.message_group
            for e in self.entries.values()
            if e.message_group and (e.state is not RecordState.AVAILABLE or e.ready_at_ms > now_ms)
        }

    def acknowledge(
        self, member_id: str, batches: Sequence[AckBatch], now_ms: int, limits: Limits
    ) -> None:
        """Apply a member's acknowledgements, all or nothing: each offset must be acquired
        by the member (INVALID_RECORD_STATE otherwise; GAP offsets only need to hold no
        record of another member), and each type valid (INVALID_REQUEST)."""
        plan = list(self._validated(member_id, batches))
        for offset, ack in plan:
            entry = self.entries.get(offset)
            if entry is None:
                continue
            if ack is AckType.ACCEPT:
                self._finish(offset, RecordState.ACKNOWLEDGED)
            elif ack is AckType.GAP:
                self._finish(offset, RecordState.ARCHIVED)
            elif ack is AckType.RELEASE:
                self._release(offset, entry, now_ms, limits, backoff=True)
            elif ack is AckType.REJECT:
                self._give_up(offset, entry, REASON_REJECTED, limits)
            else:
                entry.lock_expiry_ms = now_ms + limits.lock_duration_ms
        self._advance_start()

    def _validated(
        self, member_id: str, batches: Sequence[AckBatch]
    ) -> Iterator[tuple[int, AckType]]:
        for batch in batches:
            span = batch.last_offset - batch.first_offset + 1
            if span <= 0 or len(batch.types) not in (1, span):
                raise ShareError(
                    ErrorCode.invalid_request,
                    f"Acknowledgement batch {batch.first_offset}-{batch.last_offset} with "
                    f"{len(batch.types)} types",
                )
            for delta in range(span):
                offset = batch.first_offset + delta
                code = batch.types[0 if len(batch.types) == 1 else delta]
                try:
                    ack = AckType(code)
                except ValueError:
                    raise ShareError(
                        ErrorCode.invalid_request, f"Invalid acknowledge type {code}"
                    ) from None
                entry = self.entries.get(offset)
                held = (
                    entry is not None
                    and entry.state is RecordState.ACQUIRED
                    and entry.holder == member_id
                )
                if ack is AckType.GAP and (entry is None or held):
                    yield offset, ack
                elif not held:
                    raise ShareError(
                        ErrorCode.invalid_record_state,
                        f"Offset {offset} is not acquired by member {member_id}",
                    )
                else:
                    yield offset, ack

    def expire_locks(self, now_ms: int, limits: Limits) -> int:
        """Release every record whose acquisition lock ran out; returns how many."""
        expired = [
            offset
            for offset, entry in self.entries.items()
            if entry.state is RecordState.ACQUIRED and entry.lock_expiry_ms <= now_ms
        ]
        for offset in expired:
            self._release(offset, self.entries[offset], now_ms, limits, backoff=True)
        self._advance_start()
        return len(expired)

    def release_member(self, member_id: str, now_ms: int, limits: Limits) -> int:
        """A member left or closed its share session: its records are available again at
        once (no failed delivery, so no backoff), or dead-lettered at the delivery limit."""
        held = self.held_by(member_id)
        for offset in held:
            self._release(offset, self.entries[offset], now_ms, limits, backoff=False)
        self._advance_start()
        return len(held)

    def archive_dead_letters(self, offsets: Iterable[int]) -> int:
        """The dead-letter copies of these records are durable: archive them."""
        done = 0
        for offset in offsets:
            entry = self.entries.get(offset)
            if entry is not None and entry.state is RecordState.DEAD_LETTERING:
                self._finish(offset, RecordState.ARCHIVED)
                self.totals.dead_lettered += 1
                done += 1
        self._advance_start()
        return done

    def skip_to(self, offset: int) -> None:
        """Records below the log start offset are gone (retention, DeleteRecords): they
        leave the window archived."""
        if offset <= self.start_offset:
            return
        for gone in [o for o in self.entries if o < offset]:
            self._finish(gone, RecordState.ARCHIVED)
        self.end_offset = max(self.end_offset, offset)
        self._advance_start()

    def _release(
        self, offset: int, entry: Entry, now_ms: int, limits: Limits, *, backoff: bool
    ) -> None:
        if entry.delivery_count >= limits.delivery_count_limit:
            self._give_up(offset, entry, REASON_DELIVERY_LIMIT, limits)
            return
        entry.state = RecordState.AVAILABLE
        entry.holder = None
        entry.lock_expiry_ms = 0
        delay = limits.backoff_after(entry.delivery_count) if backoff else 0
        entry.ready_at_ms = now_ms + delay if delay > 0 else 0
        self.changed.add(offset)

    def _give_up(self, offset: int, entry: Entry, reason: str, limits: Limits) -> None:
        if not limits.dead_letter:
            self._finish(offset, RecordState.ARCHIVED)
            return
        entry.state = RecordState.DEAD_LETTERING
        entry.holder = None
        entry.lock_expiry_ms = 0
        entry.ready_at_ms = 0
        entry.reason = reason
        self.changed.add(offset)

    def _finish(self, offset: int, state: RecordState) -> None:
        del self.entries[offset]
        if state is RecordState.ACKNOWLEDGED:
            self.totals.acknowledged += 1
        else:
            self.totals.archived += 1
        self.changed.add(offset)

    def _advance_start(self) -> None:
        self.start_offset = min(self.entries, default=self.end_offset)

    # Persistence.

    def take_changes(self) -> list[tuple[int, Entry | None]]:
        """The offsets changed since the last call with their entries (None: done)."""
        changes = [(offset, self.entries.get(offset)) for offset in sorted(self.changed)]
        self.changed.clear()
        return changes

    def apply_persisted(self, offset: int, entry: Entry | None) -> None:
        """Replay one persisted change: an acquired record's lock did not survive (the
        record is available again with its delivery count kept)."""
        self.changed.discard(offset)
        if entry is None:
            self.entries.pop(offset, None)
            return
        if entry.state is RecordState.ACQUIRED:
            entry.state = RecordState.AVAILABLE
            entry.ready_at_ms = 0
        self.entries[offset] = entry


def _runs(offsets: list[int], entries: dict[int, Entry]) -> list[Acquired]:
    runs: list[Acquired] = []
    for offset in offsets:
        count = entries[offset].delivery_count
        last = runs[-1] if runs else None
        if last is not None and last.last_offset + 1 == offset and last.delivery_count == count:
            runs[-1] = Acquired(last.first_offset, offset, count)
        else:
            runs.append(Acquired(offset, offset, count))
    return runs
