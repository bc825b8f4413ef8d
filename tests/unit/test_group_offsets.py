"""Committed offsets and group administration in the group shard: Kafka's commit rules, exact
metadata, deletes, listing, and state rebuilt from the records after a restart."""

from __future__ import annotations

import struct

import pytest
from coordinator_fakes import NO_TOPICS, Harness, Waiter
from kio.schema.errors import ErrorCode

from goqueue.coordinator.group.config import GroupConfig
from goqueue.coordinator.group.messages import (
    CommitRequest,
    FetchedOffset,
    FetchRequest,
    GroupProtocol,
    JoinRequest,
    JoinResponse,
    OffsetCommit,
    SyncRequest,
    SyncResponse,
    TopicPartition,
)
from goqueue.coordinator.group.records import (
    CommittedOffset,
    GroupSnapshot,
    MemberSnapshot,
    OffsetKey,
    decode_group,
    decode_key,
    decode_offset,
    group_record,
    offset_record,
)
from goqueue.coordinator.group.shard import GroupShard
from goqueue.coordinator.runtime import Record, batch_size_bound, java_string_hash, partition_for
from goqueue.records.builder import NewRecord, build_batch

CONFIG = GroupConfig(initial_rebalance_delay_ms=0, offset_metadata_max_bytes=16)
TP0 = TopicPartition("orders", 0)
TP1 = TopicPartition("orders", 1)


def new_harness() -> Harness[GroupShard]:
    return Harness(lambda timer: GroupShard(0, timer, CONFIG, NO_TOPICS))


def commit(
    h: Harness[GroupShard],
    offsets: dict[TopicPartition, OffsetCommit],
    *,
    group: str = "g",
    member_id: str = "",
    generation: int = -1,
    api_version: int = 9,
) -> dict[TopicPartition, ErrorCode]:
    request = CommitRequest(group, member_id, None, generation, offsets, api_version)
    return h.run(lambda: h.shard.commit_offsets(request))


def fetch(
    h: Harness[GroupShard], partitions: tuple[TopicPartition, ...] | None = (TP0,)
) -> dict[TopicPartition, FetchedOffset]:
    return dict(h.shard.fetch_offsets(FetchRequest("g", partitions)).offsets)


def subscription(*topics: str) -> bytes:
    """A ConsumerProtocolSubscription v0, as consumers put in their JoinGroup metadata."""
    data = struct.pack(">hi", 0, len(topics))
    for topic in topics:
        data += struct.pack(">h", len(topic)) + topic.encode()
    return data + struct.pack(">i", -1)


def one_member_group(h: Harness[GroupShard], topics: tuple[str, ...] = ("orders",)) -> str:
    """A Stable group of one member subscribed to `topics`; returns its member id."""
    waiter: Waiter[JoinResponse] = Waiter()
    request = JoinRequest(
        "g",
        "",
        None,
        "consumer",
        (GroupProtocol("range", subscription(*topics)),),
        10_000,
        10_000,
        "client",
        "/127.0.0.1",
        require_known_member_id=False,
    )
    h.run(lambda: h.shard.join(request, waiter))
    h.timer.advance(0)
    member_id = waiter.result.member_id
    synced: Waiter[SyncResponse] = Waiter()
    sync = SyncRequest("g", member_id, None, 1, None, None, {member_id: b"a"})
    h.run(lambda: h.shard.sync(sync, synced))
    assert synced.result.error == ErrorCode.none
    return member_id


def test_a_simple_commit_creates_a_group_and_keeps_metadata_exactly() -> None:
    h = new_harness()
    metadata = "ünïcode \x00 meta"
    assert commit(h, {TP0: OffsetCommit(42, 3, metadata)}) == {TP0: ErrorCode.none}
    assert fetch(h, (TP0, TP1)) == {
        TP0: FetchedOffset(42, 3, metadata),
        TP1: FetchedOffset(-1, -1, ""),
    }
    listed = h.shard.list_groups((), ())
    assert [(g.group_id, g.state, g.protocol_type) for g in listed] == [("g", "Empty", "")]


def test_null_metadata_is_stored_as_the_empty_string_as_kafka_does() -> None:
    h = new_harness()
    commit(h, {TP0: OffsetCommit(1, -1, None)})
    assert fetch(h)[TP0].metadata == ""


def test_metadata_above_the_limit_is_refused_per_partition() -> None:
    h = new_harness()
    errors = commit(h, {TP0: OffsetCommit(1, -1, "x" * 17), TP1: OffsetCommit(2, -1, "x" * 16)})
    assert errors == {TP0: ErrorCode.offset_metadata_too_large, TP1: ErrorCode.none}
    assert fetch(h, None) == {TP1: FetchedOffset(2, -1, "x" * 16)}


def test_commits_to_a_missing_group_with_a_generation_are_refused_by_version() -> None:
    h = new_harness()
    assert commit(h, {TP0: OffsetCommit(1)}, member_id="m", generation=1) == {
        TP0: ErrorCode.group_id_not_found
    }
    assert commit(h, {TP0: OffsetCommit(1)}, member_id="m", generation=1, api_version=8) == {
        TP0: ErrorCode.illegal_generation
    }
    assert h.shard.list_groups((), ()) == []


def test_commits_are_checked_against_the_members_and_generation() -> None:
    h = new_harness()
    member_id = one_member_group(h)
    ok = commit(h, {TP0: OffsetCommit(5)}, member_id=member_id, generation=1)
    assert ok == {TP0: ErrorCode.none}
    stale = commit(h, {TP0: OffsetCommit(6)}, member_id=member_id, generation=0)
    assert stale == {TP0: ErrorCode.illegal_generation}
    unknown = commit(h, {TP0: OffsetCommit(6)}, member_id="nobody", generation=1)
    assert unknown == {TP0: ErrorCode.unknown_member_id}
    simple = commit(h, {TP0: OffsetCommit(6)})
    assert simple == {TP0: ErrorCode.unknown_member_id}
    assert fetch(h)[TP0].offset == 5


def test_offsets_survive_a_restart_and_the_latest_commit_wins() -> None:
    h = new_harness()
    for offset in (10, 20, 15):
        commit(h, {TP0: OffsetCommit(offset, -1, f"at {offset}")})
    restarted = h.reload(lambda timer: GroupShard(0, timer, CONFIG, NO_TOPICS))
    assert fetch(restarted) == {TP0: FetchedOffset(15, -1, "at 15")}


def test_offsets_of_topics_the_group_still_consumes_cannot_be_deleted() -> None:
    h = new_harness()
    one_member_group(h, ("orders",))
    commit(h, {TP0: OffsetCommit(5)}, member_id=h.shard.groups["g"].leader_id or "", generation=1)
    error, errors = h.run(lambda: h.shard.delete_offsets("g", [TP0]))
    assert (error, errors) == (ErrorCode.none, {TP0: ErrorCode.group_subscribed_to_topic})
    other = TopicPartition("payments", 0)
    assert h.run(lambda: h.shard.delete_offsets("g", [other]))[1] == {other: ErrorCode.none}
    missing = h.run(lambda: h.shard.delete_offsets("nope", [TP0]))
    assert missing == (ErrorCode.group_id_not_found, {})


def test_deleting_offsets_of_an_empty_group_writes_tombstones() -> None:
    h = new_harness()
    commit(h, {TP0: OffsetCommit(5), TP1: OffsetCommit(6)})
    assert h.run(lambda: h.shard.delete_offsets("g", [TP0]))[1] == {TP0: ErrorCode.none}
    assert fetch(h, None) == {TP1: FetchedOffset(6, -1, "")}
    restarted = h.reload(lambda timer: GroupShard(0, timer, CONFIG, NO_TOPICS))
    assert fetch(restarted, None) == {TP1: FetchedOffset(6, -1, "")}


def test_only_groups_without_members_can_be_deleted() -> None:
    h = new_harness()
    one_member_group(h)
    commit(h, {TP0: OffsetCommit(1)}, group="idle")
    errors = h.run(lambda: h.shard.delete_groups(["g", "idle", "missing"]))
    assert errors == {
        "g": ErrorCode.non_empty_group,
        "idle": ErrorCode.none,
        "missing": ErrorCode.group_id_not_found,
    }
    assert [g.group_id for g in h.shard.list_groups((), ())] == ["g"]
    restarted = h.reload(lambda timer: GroupShard(0, timer, CONFIG, NO_TOPICS))
    assert [g.group_id for g in restarted.shard.list_groups((), ())] == ["g"]


def test_groups_are_listed_by_state_and_type_case_insensitively() -> None:
    h = new_harness()
    one_member_group(h)
    commit(h, {TP0: OffsetCommit(1)}, group="idle")
    assert [g.group_id for g in h.shard.list_groups(["stable"], [])] == ["g"]
    assert [g.group_id for g in h.shard.list_groups(["Empty"], ["Classic"])] == ["idle"]
    assert h.shard.list_groups([], ["consumer"]) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", 0), ("hello", 99162322), ("Aa", 2112), ("BB", 2112), ("😀", 1772899)],
)
def test_group_placement_uses_javas_string_hash(text: str, expected: int) -> None:
    assert java_string_hash(text) == expected


def test_a_group_lives_in_the_partition_kafka_puts_it_in() -> None:
    assert partition_for("hello", 50) == 99162322 % 50
    assert java_string_hash("polygenelubricants") == -(2**31)
    assert partition_for("polygenelubricants", 50) == 0
    assert all(0 <= partition_for(f"group-{i}", 50) < 50 for i in range(200))


def test_records_use_kafkas_key_and_value_layouts() -> None:
    key = OffsetKey("g", "orders", 7)
    record = offset_record(key, CommittedOffset(42, 3, "meta", 1234))
    assert record.key == b"\x00\x01\x00\x01g\x00\x06orders\x00\x00\x00\x07"
    assert decode_key(record.key) == key
    assert decode_offset(record.value or b"") == CommittedOffset(42, 3, "meta", 1234)
    snapshot = GroupSnapshot(
        "consumer", 3, "range", "m1", 99, (MemberSnapshot("m1", "i1", "c", "/h", 1, 2, b"s", b"a"),)
    )
    encoded = group_record("g", snapshot)
    assert encoded.key == b"\x00\x02\x00\x01g"
    assert decode_group(encoded.value or b"") == snapshot
    assert group_record("g", None).value is None


def test_the_batch_size_bound_covers_the_real_batch() -> None:
    records = [Record(b"k" * n, b"v" * (3 * n)) for n in (0, 1, 127, 128, 20000)]
    batch = build_batch([NewRecord(r.key, r.value) for r in records])
    assert len(batch) <= batch_size_bound(records)
