"""What a consumer owns and where it stands: assigned partitions, positions, pauses, pending
offset resets and the records fetched but not yet handed out.

Every assignment of a partition gets a fresh `PartitionState`, so a fetch answer that
arrives after its partition was revoked, reassigned or sought elsewhere recognises itself as
stale (its state object or position no longer match) and is dropped.
"""

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from goqueue.client.fetcher import ConsumerRecord
from goqueue.client.metadata import TopicPartition
from goqueue.client.offsets import EARLIEST, LATEST

RESET_POLICIES = {"earliest": EARLIEST, "latest": LATEST, "none": None}


@dataclass(eq=False, slots=True)
class PartitionState:
    position: int | None = None
    """The offset of the next record to hand out; None until initialised or reset."""
    leader_epoch: int = -1
    """The leader epoch of the last record handed out (committed next to the offset)."""
    reset: int | None = None
    """A pending ListOffsets query (EARLIEST, LATEST or a timestamp) to find the position."""
    initialized: bool = False
    """Whether the committed offset was looked up (or was not needed)."""
    paused: bool = False
    buffer: deque[ConsumerRecord] = field(default_factory=deque)
    buffer_end: int | None = None
    """Where the next fetch starts once the buffered records are handed out."""
    high_watermark: int = -1
    last_stable_offset: int = -1
    log_start_offset: int = -1

    def seek(self, offset: int) -> None:
        self.position = offset
        self.reset = None
        self.initialized = True
        self.discard()

    def reset_to(self, query: int) -> None:
        """Find the position again with a ListOffsets query (EARLIEST, LATEST, a timestamp)."""
        self.seek(0)
        self.position, self.reset = None, query

    def discard(self) -> None:
        self.buffer.clear()
        self.buffer_end = None

    @property
    def fetchable(self) -> bool:
        return (
            not self.paused
            and self.position is not None
            and self.buffer_end is None
            and not self.buffer
        )


class Positions:
    """The consumer's assignment (an ordered dict, rotated as records are handed out so every
    partition gets its turn)."""

    def __init__(self) -> None:
        self.partitions: dict[TopicPartition, PartitionState] = {}

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Add partitions (those already assigned keep their state)."""
        for tp in partitions:
            self.partitions.setdefault(tp, PartitionState())

    def unassign(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self.partitions.pop(tp, None)

    def state(self, tp: TopicPartition) -> PartitionState:
        try:
            return self.partitions[tp]
        except KeyError:
            raise ValueError(f"partition {tp} is not assigned to this consumer") from None

    def to_initialize(self) -> list[TopicPartition]:
        return [tp for tp, s in self.partitions.items() if not s.initialized]

    def to_reset(self) -> dict[TopicPartition, int]:
        return {tp: s.reset for tp, s in self.partitions.items() if s.reset is not None}

    def fetchable(self) -> dict[TopicPartition, int]:
        return {
            tp: s.position
            for tp, s in self.partitions.items()
            if s.fetchable and s.position is not None
        }

    def consumed(self) -> dict[TopicPartition, tuple[int, int]]:
        """Each partition's position and leader epoch, for commits."""
        return {
            tp: (s.position, s.leader_epoch)
            for tp, s in self.partitions.items()
            if s.position is not None
        }

    def take(self, max_records: int) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Up to `max_records` buffered records of unpaused partitions, advancing their
        positions; partitions served go to the back of the line."""
        taken: dict[TopicPartition, list[ConsumerRecord]] = {}
        count = 0
        for tp, s in list(self.partitions.items()):
            if count >= max_records:
                break
            if s.paused or (not s.buffer and s.buffer_end is None):
                continue
            records = [s.buffer.popleft() for _ in range(min(max_records - count, len(s.buffer)))]
            if records:
                taken[tp] = records
                count += len(records)
                s.position = records[-1].offset + 1
                s.leader_epoch = records[-1].leader_epoch
            if not s.buffer and s.buffer_end is not None:
                s.position = max(s.position or 0, s.buffer_end)
                s.buffer_end = None
            self.partitions[tp] = self.partitions.pop(tp)
        return taken

    def take_one(self) -> tuple[ConsumerRecord | None, bool]:
        """The next buffered record of the first unpaused partition that has one (the
        iteration fast path), and whether a partition's buffer ran dry (it may be fetched
        again); a partition goes to the back of the line when its buffer runs dry."""
        for tp, s in self.partitions.items():
            if s.buffer and not s.paused:
                record = s.buffer.popleft()
                s.position = record.offset + 1
                s.leader_epoch = record.leader_epoch
                if s.buffer:
                    return record, False
                if s.buffer_end is not None:
                    s.position = max(s.position, s.buffer_end)
                    s.buffer_end = None
                self.partitions[tp] = self.partitions.pop(tp)
                return record, True
        return None, False

    def has_records(self) -> bool:
        return any(s.buffer for s in self.partitions.values() if not s.paused)
