"""The leader epoch cache: Kafka's assign, lookup and truncation rules, and its checkpoint."""

from pathlib import Path

from goqueue.log.leader_epochs import CHECKPOINT_FILE, EpochEntry, LeaderEpochCache


def cache(tmp_path: Path, *entries: tuple[int, int]) -> LeaderEpochCache:
    result = LeaderEpochCache(tmp_path / CHECKPOINT_FILE)
    for epoch, start in entries:
        result.assign(epoch, start)
    return result


def test_assign_keeps_epochs_and_offsets_increasing(tmp_path: Path) -> None:
    epochs = cache(tmp_path, (0, 0), (2, 10), (3, 20))
    assert not epochs.assign(3, 25), "a later offset of the latest epoch changes nothing"
    assert epochs.assign(2, 15), "an older epoch again truncates the contradicting entries"
    assert epochs.entries == (EpochEntry(0, 0), EpochEntry(2, 15))
    assert epochs.assign(4, 5)
    assert epochs.entries == (EpochEntry(0, 0), EpochEntry(4, 5))


def test_end_offset_for_answers_as_kafka(tmp_path: Path) -> None:
    epochs = cache(tmp_path, (1, 0), (3, 10), (6, 30))
    assert epochs.end_offset_for(6, 42) == (6, 42), "latest epoch ends at the log end"
    assert epochs.end_offset_for(3, 42) == (3, 30)
    assert epochs.end_offset_for(4, 42) == (3, 30), "unknown epoch: the largest below it"
    assert epochs.end_offset_for(0, 42) == (0, 0), "below every epoch: the first start"
    assert epochs.end_offset_for(7, 42) == (-1, -1), "above every epoch: undefined"
    assert epochs.end_offset_for(-1, 42) == (-1, -1)
    assert cache(tmp_path).end_offset_for(0, 5) == (-1, -1)


def test_truncation_from_both_ends(tmp_path: Path) -> None:
    epochs = cache(tmp_path, (1, 0), (3, 10), (6, 30))
    epochs.truncate_from_end(30)
    assert epochs.entries == (EpochEntry(1, 0), EpochEntry(3, 10))
    epochs.truncate_from_start(12)
    assert epochs.entries == (EpochEntry(3, 12),)
    epochs.truncate_from_start(12)
    assert epochs.entries == (EpochEntry(3, 12),)


def test_checkpoint_round_trip_drops_entries_past_the_log(tmp_path: Path) -> None:
    epochs = cache(tmp_path, (1, 0), (3, 10), (6, 30))
    assert epochs.dirty
    epochs.write()
    assert not epochs.dirty
    assert (tmp_path / CHECKPOINT_FILE).read_text() == "0\n3\n1 0\n3 10\n6 30\n"
    loaded = LeaderEpochCache.load(tmp_path, 5, 20)
    assert loaded.entries == (EpochEntry(1, 5), EpochEntry(3, 10))
    assert loaded.latest_epoch == 3


def test_a_damaged_checkpoint_reads_as_empty(tmp_path: Path) -> None:
    (tmp_path / CHECKPOINT_FILE).write_text("0\n3\n1 0\n")
    assert LeaderEpochCache.load(tmp_path, 0, 10).entries == ()
    (tmp_path / CHECKPOINT_FILE).write_text("garbage")
    assert LeaderEpochCache.load(tmp_path, 0, 10).latest_epoch == -1
