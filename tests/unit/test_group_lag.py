"""Lag arithmetic shared by the broker and the command line, and the timestamp lookup the
broker feeds it from its own logs."""

import asyncio
from pathlib import Path

from log_helpers import append, config

from goqueue.coordinator.group.lag import PartitionLag, partition_lag, record_timestamp_at
from goqueue.log.partition_log import PartitionLog

NOW = 1_000_000


def test_lag_counts_messages_and_the_age_of_the_next_one() -> None:
    assert partition_lag("t", 0, 4, 0, 10, NOW - 2500, NOW) == PartitionLag(
        "t", 0, 4, 0, 10, 6, 2500
    )


def test_a_caught_up_group_has_no_lag_in_messages_or_time() -> None:
    lag = partition_lag("t", 0, 10, 0, 10, None, NOW)
    assert (lag.lag, lag.time_lag_ms) == (0, 0)


def test_without_a_committed_offset_the_lag_is_unknown() -> None:
    lag = partition_lag("t", 1, None, 0, 10, None, NOW)
    assert (lag.committed_offset, lag.lag, lag.time_lag_ms) == (None, None, None)


def test_an_unreadable_timestamp_leaves_only_the_time_lag_unknown() -> None:
    lag = partition_lag("t", 0, 3, 0, 10, -1, NOW)
    assert (lag.lag, lag.time_lag_ms) == (7, None)


def test_records_from_the_future_never_give_a_negative_age() -> None:
    assert partition_lag("t", 0, 3, 0, 10, NOW + 5000, NOW).time_lag_ms == 0


def test_the_pending_record_timestamp_is_read_from_the_log(tmp_path: Path) -> None:
    """Batches of 3 records at timestamps 1000, 2000, 3000, ...: the age comes from the
    first record at or after the committed offset, inside a batch too."""
    log = PartitionLog(tmp_path / "t-0", "t", 0, config())
    for batch in range(4):
        append(log, [3], timestamp=1000 * (batch + 1))
    try:

        async def at(offset: int) -> int | None:
            return await record_timestamp_at(log, offset)

        assert asyncio.run(at(0)) == 1000
        assert asyncio.run(at(4)) == 2000
        assert asyncio.run(at(11)) == 4000
        assert asyncio.run(at(12)) is None
    finally:
        log.close()
