"""Dead letters: reading a share group's dead-letter topic and replaying its records.

A share group appends a record it gives up on (delivery limit, rejected, expired) to its
dead-letter topic, an ordinary topic, with `goqueue.dlq.*` headers naming where the record came
from and why it died; the record's own key, value and headers are kept. This module parses those
headers back (`DeadLetter`), reads a dead-letter topic from its start to the end it had when the
read began (`read_dead_letters`), and sends dead letters again (`replay`): to their original
topic and partition, or to another topic, without the `goqueue.dlq.*` headers and with a new
timestamp (the original one could make a topic with a message TTL expire them again at once).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from goqueue.client.cluster import Cluster
from goqueue.client.fetcher import FetchLimits, fetch
from goqueue.client.metadata import TopicPartition
from goqueue.client.offsets import EARLIEST, LATEST, list_offsets
from goqueue.client.producer import Producer
from goqueue.client.record_metadata import RecordMetadata
from goqueue.coordinator.share.config import DLQ_SUFFIX
from goqueue.coordinator.share.dead_letter import (
    DEAD_LETTERED_AT_HEADER,
    DELIVERY_COUNT_HEADER,
    GROUP_HEADER,
    HEADER_PREFIX,
    OFFSET_HEADER,
    PARTITION_HEADER,
    REASON_HEADER,
    TIMESTAMP_HEADER,
    TOPIC_HEADER,
)
from goqueue.records.reader import ConsumedRecord

_READ = FetchLimits(max_wait_ms=0, min_bytes=0)


def dlq_topic_for(group_id: str) -> str:
    """The dead-letter topic a group uses unless its `goqueue.dlq.topic` config names one."""
    return group_id + DLQ_SUFFIX


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record of a dead-letter topic, with the facts its `goqueue.dlq.*` headers carry
    (None where a header is missing: the record was written there by something else)."""

    topic_partition: TopicPartition
    """Where the dead letter itself is (the dead-letter topic's partition)."""
    offset: int
    timestamp: int
    """The dead letter's record timestamp (the original record's), ms since the epoch."""
    dead_lettered_at: int | None
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    """The original record's headers, without the `goqueue.dlq.*` ones."""
    original_topic: str | None
    original_partition: int | None
    original_offset: int | None
    original_timestamp: int | None
    group: str | None
    delivery_count: int | None
    reason: str | None

    @classmethod
    def of(cls, tp: TopicPartition, record: ConsumedRecord) -> DeadLetter:
        facts = {name: value for name, value in record.headers if name.startswith(HEADER_PREFIX)}

        def text(name: str) -> str | None:
            value = facts.get(name)
            return None if value is None else value.decode("utf-8", "replace")

        def number(name: str) -> int | None:
            value = text(name)
            return int(value) if value is not None and re.fullmatch(r"-?\d+", value) else None

        return cls(
            topic_partition=tp,
            offset=record.offset,
            timestamp=record.timestamp_ms,
            dead_lettered_at=number(DEAD_LETTERED_AT_HEADER),
            key=record.key,
            value=record.value,
            headers=tuple((n, v) for n, v in record.headers if not n.startswith(HEADER_PREFIX)),
            original_topic=text(TOPIC_HEADER),
            original_partition=number(PARTITION_HEADER),
            original_offset=number(OFFSET_HEADER),
            original_timestamp=number(TIMESTAMP_HEADER),
            group=text(GROUP_HEADER),
            delivery_count=number(DELIVERY_COUNT_HEADER),
            reason=text(REASON_HEADER),
        )


@dataclass(frozen=True, slots=True)
class LetterFilter:
    """Which dead letters a command applies to; every field set must match."""

    reason: str | None = None
    original_topic: str | None = None
    group: str | None = None
    key: bytes | None = None
    partition: int | None = None
    """A partition of the dead-letter topic."""
    from_offset: int | None = None
    """Dead-letter topic offsets from here (inclusive)..."""
    to_offset: int | None = None
    """...to here (inclusive)."""

    def matches(self, letter: DeadLetter) -> bool:
        checks: list[tuple[object, object]] = [
            (self.reason, letter.reason),
            (self.original_topic, letter.original_topic),
            (self.group, letter.group),
            (self.key, letter.key),
            (self.partition, letter.topic_partition.partition),
        ]
        if any(wanted is not None and wanted != actual for wanted, actual in checks):
            return False
        if self.from_offset is not None and letter.offset < self.from_offset:
            return False
        return self.to_offset is None or letter.offset <= self.to_offset


async def read_dead_letters(
    cluster: Cluster, topic: str, letter_filter: LetterFilter = LetterFilter()
) -> AsyncIterator[DeadLetter]:
    """The topic's dead letters that match, partition by partition in offset order, up to the
    end offsets the topic had when the read began."""
    metadata = await cluster.topic(topic)
    partitions = [TopicPartition(topic, p.partition) for p in metadata.partitions]
    if letter_filter.partition is not None:
        partitions = [tp for tp in partitions if tp.partition == letter_filter.partition]
    if not partitions:
        return
    starts = await list_offsets(cluster, dict.fromkeys(partitions, EARLIEST))
    ends = await list_offsets(cluster, dict.fromkeys(partitions, LATEST))
    for tp in partitions:
        position = max(starts[tp].offset, letter_filter.from_offset or 0)
        end = ends[tp].offset
        if letter_filter.to_offset is not None:
            end = min(end, letter_filter.to_offset + 1)
        while position < end:
            fetched = (await fetch(cluster, {tp: position}, _READ))[tp]
            for record in fetched.records:
                if record.offset >= end:
                    break
                letter = DeadLetter.of(tp, record)
                if letter_filter.matches(letter):
                    yield letter
            if fetched.next_offset <= position:
                break
            position = fetched.next_offset


@dataclass(frozen=True, slots=True)
class Replay:
    """Where one dead letter is (or, in a dry run, would be) sent again."""

    letter: DeadLetter
    topic: str
    partition: int | None
    """The original partition when replayed to the original topic; None: by the key."""
    sent: RecordMetadata | None = None


def replay_target(letter: DeadLetter, to_topic: str | None) -> tuple[str, int | None]:
    """The topic and partition a dead letter goes back to: `to_topic` by its key, else its
    original partition of its original topic."""
    if to_topic is not None:
        return to_topic, None
    if letter.original_topic is None:
        raise ValueError(
            f"dead letter {letter.topic_partition.topic}[{letter.topic_partition.partition}]"
            f"@{letter.offset} names no original topic ({TOPIC_HEADER} header): give a target"
        )
    return letter.original_topic, letter.original_partition


async def replay(
    producer: Producer | None,
    letters: Sequence[DeadLetter],
    *,
    to_topic: str | None = None,
    dry_run: bool = False,
    on_replay: Callable[[Replay], None] | None = None,
) -> list[Replay]:
    """Send each dead letter again (in order, one acknowledged send at a time, so a failure
    leaves a clear point to resume from); with `dry_run`, only say where each would go (no
    producer needed)."""
    done = []
    for letter in letters:
        topic, partition = replay_target(letter, to_topic)
        sent = None
        if not dry_run:
            if producer is None:
                raise ValueError("replaying (not a dry run) needs a producer")
            sent = await producer.send(
                topic,
                letter.value,
                key=letter.key,
                headers=list(letter.headers),
                partition=partition,
            )
        result = Replay(letter, topic, partition, sent)
        done.append(result)
        if on_replay is not None:
            on_replay(result)
    return done
