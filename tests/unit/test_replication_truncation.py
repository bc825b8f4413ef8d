"""Where a follower truncates after OffsetForLeaderEpoch (KIP-101 / KIP-279 cases)."""

from pathlib import Path

from goqueue.broker.replica_fetcher import truncation_point
from goqueue.log.leader_epochs import CHECKPOINT_FILE, LeaderEpochCache


def epochs(tmp_path: Path, *entries: tuple[int, int]) -> LeaderEpochCache:
    cache = LeaderEpochCache(tmp_path / CHECKPOINT_FILE)
    for epoch, start in entries:
        cache.assign(epoch, start)
    return cache


def test_same_epoch_truncates_to_where_the_leader_ended_it(tmp_path: Path) -> None:
    follower = epochs(tmp_path, (1, 0), (2, 50))
    assert truncation_point(follower, 60, 40, 2, 55) == (55, True), "the old leader's suffix"
    assert truncation_point(follower, 60, 40, 2, 80) == (60, True), "the follower is behind"


def test_an_epoch_only_the_follower_had_goes_back_to_the_common_one(tmp_path: Path) -> None:
    follower = epochs(tmp_path, (1, 0), (3, 50))
    assert truncation_point(follower, 70, 40, 1, 45) == (45, True), "epoch 1 ends at 45 there"


def test_an_epoch_the_follower_lacks_takes_another_round(tmp_path: Path) -> None:
    follower = epochs(tmp_path, (1, 0), (4, 50))
    assert truncation_point(follower, 70, 40, 2, 60) == (50, False), "ends epoch 1, asks again"
    follower.truncate_from_end(50)
    assert truncation_point(follower, 50, 40, 1, 30) == (30, True)


def test_a_leader_without_epoch_information(tmp_path: Path) -> None:
    follower = epochs(tmp_path, (1, 0))
    assert truncation_point(follower, 70, 40, -1, -1) == (40, True), "only the HW is safe"
    assert truncation_point(follower, 70, 40, -1, 65) == (65, True)
    assert truncation_point(epochs(tmp_path / "x"), 70, 40, 3, 65) == (65, True)
