"""Committed offsets: one record per group and partition, the latest one wins.

Offsets change only by replaying their records, so what a shard serves is exactly what its log
holds: a commit becomes visible when its record is appended and is answered once it is
fsynced.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kio.schema.errors import ErrorCode

from goqueue.coordinator.group.messages import (
    FetchedOffset,
    OffsetCommit,
    TopicPartition,
)
from goqueue.coordinator.group.records import (
    CommittedOffset,
    OffsetKey,
    offset_record,
)
from goqueue.coordinator.runtime import Record

INVALID_OFFSET = -1
NO_OFFSET = FetchedOffset(INVALID_OFFSET, -1, "")


class OffsetStore:
    """The committed offsets of every group of a shard."""

    def __init__(self) -> None:
        self._offsets: dict[str, dict[TopicPartition, CommittedOffset]] = {}

    def replay(self, key: OffsetKey, value: CommittedOffset | None) -> None:
        partition = TopicPartition(key.topic, key.partition)
        if value is not None:
            self._offsets.setdefault(key.group_id, {})[partition] = value
            return
        offsets = self._offsets.get(key.group_id)
        if offsets is not None:
            offsets.pop(partition, None)
            if not offsets:
                del self._offsets[key.group_id]

    def of(self, group_id: str) -> Mapping[TopicPartition, CommittedOffset]:
        return self._offsets.get(group_id, {})

    def has_offsets(self, group_id: str) -> bool:
        return group_id in self._offsets

    def commit(
        self,
        group_id: str,
        offsets: Mapping[TopicPartition, OffsetCommit],
        now_ms: int,
        metadata_max_bytes: int,
    ) -> tuple[dict[TopicPartition, ErrorCode], list[Record]]:
        """The records of a commit and each partition's answer: OFFSET_METADATA_TOO_LARGE
        for metadata longer than `offset.metadata.max.bytes`, the others are written. Kafka
        compares the length of the Java string (UTF-16 code units), not its bytes."""
        errors: dict[TopicPartition, ErrorCode] = {}
        records: list[Record] = []
        for partition, commit in offsets.items():
            metadata = commit.metadata or ""
            if len(metadata.encode("utf-16-le")) // 2 > metadata_max_bytes:
                errors[partition] = ErrorCode.offset_metadata_too_large
                continue
            errors[partition] = ErrorCode.none
            value = CommittedOffset(commit.offset, commit.leader_epoch, metadata, now_ms)
            records.append(
                offset_record(OffsetKey(group_id, partition.topic, partition.partition), value)
            )
        return errors, records

    def fetch(
        self, group_id: str, partitions: Iterable[TopicPartition] | None
    ) -> dict[TopicPartition, FetchedOffset]:
        """The named partitions (-1 where nothing is committed), or every committed one."""
        committed = self.of(group_id)
        if partitions is None:
            return {tp: _fetched(value) for tp, value in committed.items()}
        return {tp: _fetched(committed[tp]) if tp in committed else NO_OFFSET for tp in partitions}

    def tombstones(self, group_id: str, partitions: Iterable[TopicPartition]) -> list[Record]:
        committed = self.of(group_id)
        return [
            offset_record(OffsetKey(group_id, tp.topic, tp.partition), None)
            for tp in partitions
            if tp in committed
        ]


def _fetched(value: CommittedOffset) -> FetchedOffset:
    return FetchedOffset(value.offset, value.leader_epoch, value.metadata)
