"""Delayed delivery in the SDK: the headers a delayed record carries and the id it gets.

The broker parks a record with a `goqueue.delay-ms` or `goqueue.deliver-at` header on a topic
with `goqueue.delayed.enabled=true`. The SDK gives every delayed record an id of its own,
`<topic>/<random hex>` (topic names cannot contain `/`), so that the producer knows it before
the broker answers and `Admin.cancel_delayed` knows which topic to send the cancel to.
"""

from __future__ import annotations

import datetime
import uuid

from goqueue.coordinator.scheduler.records import (
    CANCEL_HEADER,
    DELAY_MS_HEADER,
    DELIVER_AT_HEADER,
    SCHEDULE_ID_HEADER,
)
from goqueue.records.builder import NewRecord


def delay_headers(
    topic: str,
    delay: datetime.timedelta | None,
    deliver_at: datetime.datetime | None,
) -> tuple[list[tuple[str, bytes | None]], str]:
    """The headers asking for delayed delivery, and the schedule id they give the record.
    `deliver_at` without a time zone is taken as local time, as `datetime.timestamp` does."""
    if (delay is None) == (deliver_at is None):
        raise ValueError("give exactly one of delay and deliver_at")
    if delay is not None:
        if delay < datetime.timedelta(0):
            raise ValueError(f"delay must not be negative, not {delay}")
        timing = (DELAY_MS_HEADER, str(delay // datetime.timedelta(milliseconds=1)).encode())
    else:
        assert deliver_at is not None
        timing = (DELIVER_AT_HEADER, str(max(int(deliver_at.timestamp() * 1000), 0)).encode())
    schedule_id = f"{topic}/{uuid.uuid4().hex}"
    return [timing, (SCHEDULE_ID_HEADER, schedule_id.encode())], schedule_id


def topic_of(schedule_id: str) -> str | None:
    """The topic a schedule id belongs to, when its form says: the SDK's `<topic>/<hex>` or
    the broker's `<topic>-<partition>@<offset>` for records sent without an id."""
    if "/" in schedule_id:
        return schedule_id.split("/", 1)[0]
    where, at, offset = schedule_id.rpartition("@")
    topic, dash, partition = where.rpartition("-")
    if at and dash and topic and partition.isdigit() and offset.isdigit():
        return topic
    return None


def cancel_record(schedule_id: str) -> NewRecord:
    """The record that cancels a pending delayed message when produced to its topic."""
    return NewRecord(None, None, [(CANCEL_HEADER, schedule_id.encode())])
