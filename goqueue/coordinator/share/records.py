"""Records of `__share_group_state`: share groups, their members, their configs and the state
of their share partitions, as snapshots and deltas (Kafka's ShareSnapshot and ShareUpdate).

Keys and values are small JSON documents, so the internal topic stays readable with any
consumer. The topic is compacted: a share partition's latest snapshot replaces everything
before it, and its deltas cycle through `DELTAS_PER_SNAPSHOT` keys, a snapshot being written
instead of the delta that would reuse a key; so compaction only ever removes records that a
later snapshot supersedes, and the state survives compaction.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from goqueue.coordinator.runtime import Record
from goqueue.coordinator.share.partition import Entry, RecordState, SharePartition, Totals

GROUP = 100
MEMBER = 101
CONFIG = 102
SNAPSHOT = 103
DELTA = 104
DELTAS_PER_SNAPSHOT = 64

Assignment = Mapping[uuid.UUID, frozenset[int]]


class RecordFormatError(ValueError):
    """A record of the internal topic that this version cannot read."""


@dataclass(frozen=True, slots=True)
class Key:
    record_type: int
    group_id: str
    member_id: str = ""
    topic_id: uuid.UUID | None = None
    partition: int = -1
    sequence: int = 0


@dataclass(frozen=True, slots=True)
class MemberValue:
    member_epoch: int
    subscribed_topics: tuple[str, ...]
    assignment: Assignment
    client_id: str
    client_host: str
    rack_id: str | None


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def encode_key(key: Key) -> bytes:
    fields: list[Any] = [key.record_type, key.group_id]
    if key.record_type == MEMBER:
        fields.append(key.member_id)
    elif key.record_type in (SNAPSHOT, DELTA):
        fields += [str(key.topic_id), key.partition]
        if key.record_type == DELTA:
            fields.append(key.sequence)
    return _dump(fields)


def decode_key(data: bytes) -> Key:
    try:
        fields = json.loads(data)
        record_type, group_id = int(fields[0]), str(fields[1])
        if record_type in (GROUP, CONFIG):
            return Key(record_type, group_id)
        if record_type == MEMBER:
            return Key(record_type, group_id, member_id=str(fields[2]))
        if record_type == SNAPSHOT:
            return Key(record_type, group_id, topic_id=uuid.UUID(fields[2]), partition=fields[3])
        if record_type == DELTA:
            return Key(
                record_type,
                group_id,
                topic_id=uuid.UUID(fields[2]),
                partition=int(fields[3]),
                sequence=int(fields[4]),
            )
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise RecordFormatError(f"bad key {data[:100]!r}: {exc}") from exc
    raise RecordFormatError(f"unknown record type {record_type}")


def _load(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise RecordFormatError(f"bad value {data[:100]!r}") from exc


def group_record(group_id: str, epoch: int | None) -> Record:
    value = None if epoch is None else _dump({"epoch": epoch})
    return Record(encode_key(Key(GROUP, group_id)), value)


def decode_group(data: bytes) -> int:
    return int(_load(data)["epoch"])


def config_record(group_id: str, configs: Mapping[str, str]) -> Record:
    return Record(encode_key(Key(CONFIG, group_id)), _dump(dict(configs)) if configs else None)


def decode_config(data: bytes) -> dict[str, str]:
    return {str(k): str(v) for k, v in _load(data).items()}


def member_record(group_id: str, member_id: str, value: MemberValue | None) -> Record:
    key = encode_key(Key(MEMBER, group_id, member_id=member_id))
    if value is None:
        return Record(key, None)
    return Record(
        key,
        _dump(
            {
                "epoch": value.member_epoch,
                "topics": list(value.subscribed_topics),
                "assignment": {str(t): sorted(ps) for t, ps in value.assignment.items()},
                "client_id": value.client_id,
                "client_host": value.client_host,
                "rack_id": value.rack_id,
            }
        ),
    )


def decode_member(data: bytes) -> MemberValue:
    value = _load(data)
    try:
        return MemberValue(
            int(value["epoch"]),
            tuple(value["topics"]),
            {uuid.UUID(t): frozenset(ps) for t, ps in value["assignment"].items()},
            str(value["client_id"]),
            str(value["client_host"]),
            value["rack_id"],
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise RecordFormatError(f"bad member value: {exc}") from exc


def _state_batches(changes: Sequence[tuple[int, Entry | None]]) -> list[list[Any]]:
    """Consecutive offsets with equal persisted fields as one batch:
    [first, last, state, delivery count, ready at, reason, message group known]."""
    batches: list[list[Any]] = []
    for offset, entry in changes:
        fields: list[Any] = (
            [int(RecordState.ARCHIVED), 0, 0, None]
            if entry is None
            else [int(entry.state), entry.delivery_count, entry.ready_at_ms, entry.reason]
        )
        last = batches[-1] if batches else None
        if last is not None and last[1] + 1 == offset and last[2:] == fields:
            last[1] = offset
        else:
            batches.append([offset, offset, *fields])
    return batches


def _partition_fields(partition: SharePartition) -> dict[str, Any]:
    totals = partition.totals
    return {
        "start": partition.start_offset,
        "end": partition.end_offset,
        "totals": [totals.acknowledged, totals.archived, totals.dead_lettered],
    }


def snapshot_record(
    group_id: str, topic_id: uuid.UUID, index: int, partition: SharePartition | None
) -> Record:
    key = encode_key(Key(SNAPSHOT, group_id, topic_id=topic_id, partition=index))
    if partition is None:
        return Record(key, None)
    entries = sorted(partition.entries.items())
    return Record(key, _dump({**_partition_fields(partition), "batches": _state_batches(entries)}))


def delta_record(
    group_id: str,
    topic_id: uuid.UUID,
    index: int,
    sequence: int,
    partition: SharePartition,
    changes: Sequence[tuple[int, Entry | None]],
) -> Record:
    key = encode_key(Key(DELTA, group_id, topic_id=topic_id, partition=index, sequence=sequence))
    return Record(key, _dump({**_partition_fields(partition), "batches": _state_batches(changes)}))


def delta_tombstones(group_id: str, topic_id: uuid.UUID, index: int) -> list[Record]:
    return [
        Record(
            encode_key(Key(DELTA, group_id, topic_id=topic_id, partition=index, sequence=s)), None
        )
        for s in range(DELTAS_PER_SNAPSHOT)
    ]


def apply_state(partition: SharePartition | None, data: bytes, *, snapshot: bool) -> SharePartition:
    """A snapshot builds the partition afresh; a delta changes the offsets it names."""
    value = _load(data)
    try:
        start, end = int(value["start"]), int(value["end"])
        if partition is None or snapshot:
            partition = SharePartition(start, end)
        partition.start_offset, partition.end_offset = start, end
        partition.totals = Totals(*(int(n) for n in value["totals"]))
        for first, last, state, count, ready_at, reason in value["batches"]:
            for offset in range(int(first), int(last) + 1):
                record_state = RecordState(int(state))
                entry = (
                    None
                    if record_state in (RecordState.ACKNOWLEDGED, RecordState.ARCHIVED)
                    else Entry(record_state, int(count), int(ready_at), reason=reason)
                )
                partition.apply_persisted(offset, entry)
    except (KeyError, ValueError, TypeError) as exc:
        raise RecordFormatError(f"bad share partition state: {exc}") from exc
    return partition
