"""Consumer lag: how far a group's committed offsets trail the logs, in messages and in time.

`partition_lag` is the arithmetic, shared by everything that reports lag: the broker computes
its inputs from its own logs (`record_timestamp_at`), the command line from Kafka requests.
The time lag is the age of the oldest record the group has not consumed yet (the one at the
committed offset): how long the next message has been waiting, zero once the group caught up.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from goqueue.log.errors import OffsetOutOfRangeError
from goqueue.log.partition_log import PartitionLog
from goqueue.records.batch import iter_batches
from goqueue.records.reader import batch_records

_PEEK_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class PartitionLag:
    topic: str
    partition: int
    committed_offset: int | None
    """None when the group has committed nothing for the partition."""
    log_start_offset: int
    log_end_offset: int
    lag: int | None
    """Messages between the committed offset and the end of the log; None if none committed."""
    time_lag_ms: int | None
    """Age of the record at the committed offset; 0 when caught up, None if unknown."""


def partition_lag(
    topic: str,
    partition: int,
    committed_offset: int | None,
    log_start_offset: int,
    log_end_offset: int,
    pending_record_timestamp_ms: int | None,
    now_ms: int,
) -> PartitionLag:
    """Lag of one partition from its committed offset, log bounds and the timestamp of the
    first record at or after the committed offset (None if that could not be read)."""
    if committed_offset is None or committed_offset < 0:
        return PartitionLag(topic, partition, None, log_start_offset, log_end_offset, None, None)
    lag = max(log_end_offset - committed_offset, 0)
    if lag == 0:
        time_lag: int | None = 0
    elif pending_record_timestamp_ms is None or pending_record_timestamp_ms < 0:
        time_lag = None
    else:
        time_lag = max(now_ms - pending_record_timestamp_ms, 0)
    return PartitionLag(
        topic, partition, committed_offset, log_start_offset, log_end_offset, lag, time_lag
    )


async def record_timestamp_at(log: PartitionLog, offset: int) -> int | None:
    """The timestamp of the first record at or after `offset` (from the log start if the
    offset is gone), or None if there is none. The read runs in a worker thread."""
    try:
        file_slice = log.read(max(offset, log.log_start_offset), _PEEK_BYTES)
    except OffsetOutOfRangeError:
        return None
    if file_slice is None:
        return None
    data = await asyncio.get_running_loop().run_in_executor(
        None, os.pread, file_slice.fd, file_slice.size, file_slice.position
    )
    for header, batch in iter_batches(data):
        if header.is_control or header.next_offset <= offset:
            continue
        for record in batch_records(header, batch):
            if record.offset >= offset:
                return record.timestamp_ms
    return None
