"""Dead letters: what a record the share group gives up on looks like in the dead-letter topic,
and which FIFO message group a record belongs to.

A dead letter keeps the original key, value, headers and timestamp, and adds `goqueue.dlq.*`
headers that say where it came from and why, so `goqueue dlq replay` (or any consumer) can
put it back.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from goqueue.coordinator.share.partition import NO_GROUP, Entry
from goqueue.records.builder import NewRecord, build_batch
from goqueue.records.reader import ConsumedRecord

MESSAGE_GROUP_HEADER = "goqueue.message-group"
HEADER_PREFIX = "goqueue.dlq."
TOPIC_HEADER = HEADER_PREFIX + "original-topic"
PARTITION_HEADER = HEADER_PREFIX + "original-partition"
OFFSET_HEADER = HEADER_PREFIX + "original-offset"
TIMESTAMP_HEADER = HEADER_PREFIX + "original-timestamp"
GROUP_HEADER = HEADER_PREFIX + "group"
DELIVERY_COUNT_HEADER = HEADER_PREFIX + "delivery-count"
REASON_HEADER = HEADER_PREFIX + "reason"
DEAD_LETTERED_AT_HEADER = HEADER_PREFIX + "dead-lettered-at"
DLQ_HEADERS = (
    TOPIC_HEADER,
    PARTITION_HEADER,
    OFFSET_HEADER,
    TIMESTAMP_HEADER,
    GROUP_HEADER,
    DELIVERY_COUNT_HEADER,
    REASON_HEADER,
    DEAD_LETTERED_AT_HEADER,
)
"""Every header a dead letter gets, all values UTF-8 text (numbers in decimal)."""


def message_group(record: ConsumedRecord) -> bytes:
    """The record's FIFO message group: its `goqueue.message-group` header, else its key."""
    for name, value in record.headers:
        if name == MESSAGE_GROUP_HEADER and value:
            return value
    return record.key or NO_GROUP


def dead_letter_batch(
    records: Sequence[ConsumedRecord],
    topic: str,
    partition: int,
    group_id: str,
    entries: Mapping[int, Entry],
) -> bytes:
    """One batch of dead letters for records of one partition; earlier `goqueue.dlq.*`
    headers (a record dead-lettered before and replayed) are replaced."""
    now_ms = int(time.time() * 1000)
    letters = []
    for record in records:
        entry = entries[record.offset]
        kept = [(k, v) for k, v in record.headers if k not in DLQ_HEADERS]
        added = [
            (TOPIC_HEADER, topic),
            (PARTITION_HEADER, str(partition)),
            (OFFSET_HEADER, str(record.offset)),
            (TIMESTAMP_HEADER, str(record.timestamp_ms)),
            (GROUP_HEADER, group_id),
            (DELIVERY_COUNT_HEADER, str(entry.delivery_count)),
            (REASON_HEADER, entry.reason or ""),
            (DEAD_LETTERED_AT_HEADER, str(now_ms)),
        ]
        headers = kept + [(k, v.encode()) for k, v in added]
        letters.append(NewRecord(record.key, record.value, headers, record.timestamp_ms))
    return build_batch(letters, now_ms=now_ms)
