"""What the producer tells the caller about a delivered record."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RecordMetadata:
    """Where one record landed.

    `offset` is -1 with `acks=0`, which gets no answer from the broker. `timestamp` is the
    record's own timestamp (milliseconds since the epoch) unless the topic uses LogAppendTime,
    in which case it is the broker's append time. `schedule_id` names the schedule entry of a
    delayed record (set by the delayed-message feature; None for ordinary records).
    """

    topic: str
    partition: int
    offset: int
    timestamp: int
    schedule_id: str | None = None
