"""The leader's follower tracking: high watermark over the ISR, ISR expansion and shrink."""

from goqueue.broker.replica_state import FollowerState, LeaderState

LAG_MS = 1000


def leader(isr: tuple[int, ...] = (1, 2, 3), start: int = 0) -> LeaderState:
    return LeaderState(1, (1, 2, 3), isr, start, now_ms=0)


def test_high_watermark_is_the_smallest_end_over_the_isr() -> None:
    state = leader()
    assert state.high_watermark(10) == -1, "followers that never fetched hold it back"
    state.update_follower(2, 7, 10, now_ms=5)
    state.update_follower(3, 9, 10, now_ms=5)
    assert state.high_watermark(10) == 7
    state.set_replicas((1, 2, 3), (1, 3), now_ms=6)
    assert state.high_watermark(10) == 9, "a replica out of the ISR no longer counts"
    assert LeaderState(1, (1,), (1,), 0, 0).high_watermark(10) == 10


def test_a_pending_change_counts_the_larger_isr() -> None:
    state = leader(isr=(1, 2))
    state.update_follower(2, 10, 10, now_ms=5)
    state.update_follower(3, 4, 10, now_ms=5)
    assert state.high_watermark(10) == 10
    state.pending_isr = (1, 2, 3)
    assert state.maximal_isr == (1, 2, 3)
    assert state.high_watermark(10) == 4
    assert state.expansion(3, 4, fenced=False) is None, "one change at a time"
    assert state.shrink(10_000, LAG_MS, 10) is None


def test_expansion_needs_the_high_watermark_and_the_epoch_start() -> None:
    state = leader(isr=(1, 2), start=8)
    state.update_follower(2, 10, 10, now_ms=5)
    state.update_follower(3, 6, 10, now_ms=5)
    assert state.expansion(3, 6, fenced=False) is None, "below the leader epoch start"
    state.update_follower(3, 10, 10, now_ms=6)
    assert state.expansion(3, 10, fenced=True) is None, "a fenced broker stays out"
    assert state.expansion(3, 10, fenced=False) == (1, 2, 3)
    assert state.expansion(2, 10, fenced=False) is None, "already in sync"
    assert state.expansion(9, 10, fenced=False) is None, "not a replica"


def test_shrink_removes_followers_not_caught_up_within_the_lag() -> None:
    state = leader()
    state.update_follower(2, 10, 10, now_ms=100)
    state.update_follower(3, 5, 10, now_ms=100)
    assert state.shrink(LAG_MS, LAG_MS, 10) is None
    assert state.shrink(LAG_MS + 1, LAG_MS, 10) == (1, 2), "3 last caught up at 0"
    assert state.shrink(100 + LAG_MS + 1, LAG_MS, 12) == (1,), "2 has not fetched 10..12"


def test_a_follower_at_the_leader_end_is_caught_up_however_long_ago() -> None:
    state = leader(isr=(1, 2))
    state.update_follower(2, 10, 10, now_ms=100)
    assert state.shrink(100_000, LAG_MS, 10) is None


def test_caught_up_as_of_the_previous_fetch() -> None:
    follower = FollowerState()
    follower.update(10, 10, now_ms=100)
    follower.update(10, 15, now_ms=200)
    assert follower.last_caught_up_ms == 100
    follower.update(15, 20, now_ms=300)
    assert follower.last_caught_up_ms == 200, "it had the end the leader had at its last fetch"


def test_committed_isr_resets_the_clock_of_new_members() -> None:
    state = leader(isr=(1, 2))
    state.pending_isr = (1, 2, 3)
    state.set_replicas((1, 2, 3), (1, 2, 3), now_ms=500)
    assert state.pending_isr is None
    assert state.followers[3].last_caught_up_ms == 500
    state.set_replicas((1, 2), (1, 2), now_ms=600)
    assert set(state.followers) == {2}
