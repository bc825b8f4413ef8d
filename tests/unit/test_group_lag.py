"""Lag arithmetic shared by the broker and the command line."""

from goqueue.coordinator.group.lag import PartitionLag, partition_lag

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
