"""The fault-test checker accepts a sound history and names each kind of broken promise."""

from goqueue.testing.history import History, Placed, violations


def _sound() -> History:
    log = [Placed(0, 0, 1), Placed(0, 1, 2), Placed(1, 0, 3), Placed(1, 1, 4)]
    return History(
        acked=[Placed(0, 0, 1), Placed(0, 1, 2), Placed(1, 1, 4)],
        consumed=[Placed(0, 0, 1), Placed(1, 0, 3), Placed(0, 0, 1)],
        commits=[(0, 1), (1, 1), (0, 1), (0, 2)],
        final_log=log,
    )


def test_sound_history_has_no_violations() -> None:
    assert violations(_sound()) == []


def test_lost_acknowledged_message_is_reported() -> None:
    history = _sound()
    history.final_log = [r for r in history.final_log if r.seq != 4]
    assert violations(history) == ["acknowledged message 4 at 1@1 is missing"]


def test_acknowledged_message_at_another_offset_is_reported() -> None:
    history = _sound()
    history.acked.append(Placed(1, 5, 3))
    assert violations(history) == ["acknowledged message 3 at 1@5 is at [(1, 0)]"]


def test_duplicate_is_reported() -> None:
    history = _sound()
    history.final_log.append(Placed(1, 2, 4))
    assert "message 4 is in the log 2 times: [(1, 1), (1, 2)]" in violations(history)


def test_out_of_order_partition_is_reported() -> None:
    history = _sound()
    history.final_log = [Placed(0, 0, 2), Placed(0, 1, 1)]
    history.acked, history.consumed = [], []
    assert violations(history) == ["partition 0 holds 1@1 after 2@0: out of send order"]


def test_consumed_then_lost_is_reported() -> None:
    history = _sound()
    history.consumed.append(Placed(1, 2, 9))
    assert violations(history) == ["consumer read 9 at 1@2, the log now has nothing there"]


def test_commit_moving_back_is_reported() -> None:
    history = _sound()
    history.commits.append((1, 0))
    assert violations(history) == ["committed offset of partition 1 moved back from 1 to 0"]
