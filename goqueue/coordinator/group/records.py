"""The records of `__consumer_offsets`, in Kafka's own format.

Kafka defines them in `group-coordinator/src/main/resources/common/message/*.json`; kio does
not ship those coordinator schemas, so the few this coordinator writes are declared here the way
kio declares its generated ones and (de)serialised by kio's codec. A key is an int16 record type
followed by the key fields; a value is an int16 version followed by the value fields, so Kafka's
tools (`kafka-console-consumer --formatter ...OffsetsMessageFormatter`) read these records.

Written versions: OffsetCommitKey (type 1), OffsetCommitValue v3, GroupMetadataKey (type 2),
GroupMetadataValue v3; for KIP-848 consumer groups the keys of types 3 (group epoch), 5 (member
subscription), 6 (target assignment epoch), 7 (member target assignment) and 8 (member current
assignment) with version 0 of their values.
"""

import hashlib
import io
import struct
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from kio.serial import entity_reader, entity_writer
from kio.static.constants import EntityType
from kio.static.primitive import i8, i16, i32, i64

from goqueue.coordinator.runtime import Record

OFFSET_COMMIT_KEY = 1
GROUP_METADATA_KEY = 2
CONSUMER_GROUP_KEY = 3
CONSUMER_MEMBER_KEY = 5
TARGET_EPOCH_KEY = 6
TARGET_MEMBER_KEY = 7
CURRENT_MEMBER_KEY = 8
OFFSET_COMMIT_VALUE_VERSION = 3
GROUP_METADATA_VALUE_VERSION = 3
_VERSION = struct.Struct(">h")


class RecordFormatError(ValueError):
    """A record of the internal topic that this coordinator cannot read."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _OffsetCommitKey:
    __type__: ClassVar = EntityType.data
    __version__: ClassVar[i16] = i16(0)
    __flexible__: ClassVar[bool] = False
    group: str = field(metadata={"kafka_type": "string"})
    topic: str = field(metadata={"kafka_type": "string"})
    partition: i32 = field(metadata={"kafka_type": "int32"})


@dataclass(frozen=True, slots=True, kw_only=True)
class _OffsetCommitValue:
    __type__: ClassVar = EntityType.data
    __version__: ClassVar[i16] = i16(3)
    __flexible__: ClassVar[bool] = False
    offset: i64 = field(metadata={"kafka_type": "int64"})
    leader_epoch: i32 = field(metadata={"kafka_type": "int32"})
    metadata: str = field(metadata={"kafka_type": "string"})
    commit_timestamp: i64 = field(metadata={"kafka_type": "int64"})


@dataclass(frozen=True, slots=True, kw_only=True)
class _GroupMetadataKey:
    __type__: ClassVar = EntityType.data
    __version__: ClassVar[i16] = i16(0)
    __flexible__: ClassVar[bool] = False
    group: str = field(metadata={"kafka_type": "string"})


@dataclass(frozen=True, slots=True, kw_only=True)
class _MemberMetadata:
    __type__: ClassVar = EntityType.nested
    __version__: ClassVar[i16] = i16(3)
    __flexible__: ClassVar[bool] = False
    member_id: str = field(metadata={"kafka_type": "string"})
    group_instance_id: str | None = field(metadata={"kafka_type": "string"})
    client_id: str = field(metadata={"kafka_type": "string"})
    client_host: str = field(metadata={"kafka_type": "string"})
    rebalance_timeout: i32 = field(metadata={"kafka_type": "int32"})
    session_timeout: i32 = field(metadata={"kafka_type": "int32"})
    subscription: bytes = field(metadata={"kafka_type": "bytes"})
    assignment: bytes = field(metadata={"kafka_type": "bytes"})


@dataclass(frozen=True, slots=True, kw_only=True)
class _GroupMetadataValue:
    __type__: ClassVar = EntityType.data
    __version__: ClassVar[i16] = i16(3)
    __flexible__: ClassVar[bool] = False
    protocol_type: str = field(metadata={"kafka_type": "string"})
    generation: i32 = field(metadata={"kafka_type": "int32"})
    protocol: str | None = field(metadata={"kafka_type": "string"})
    leader: str | None = field(metadata={"kafka_type": "string"})
    current_state_timestamp: i64 = field(metadata={"kafka_type": "int64"})
    members: tuple[_MemberMetadata, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class _GroupIdKey:
    """The key of records about a whole consumer group (types 3 and 6)."""

    __type__: ClassVar = EntityType.data
    __version__: ClassVar[i16] = i16(0)
    __flexible__: ClassVar[bool] = False
    group_id: str = field(metadata={"kafka_type": "string"})


@dataclass(frozen=True, slots=True, kw_only=True)
class _MemberKey:
    """The key of records about one member of a consumer group (types 5, 7 and 8)."""

    __type__: ClassVar = EntityType.data
    __version__: ClassVar[i16] = i16(0)
    __flexible__: ClassVar[bool] = False
    group_id: str = field(metadata={"kafka_type": "string"})
    member_id: str = field(metadata={"kafka_type": "string"})


@dataclass(frozen=True, slots=True, kw_only=True)
class _ConsumerGroupMetadataValue:
    __type__: ClassVar = EntityType.data
    __version__: ClassVar[i16] = i16(0)
    __flexible__: ClassVar[bool] = True
    epoch: i32 = field(metadata={"kafka_type": "int32"})
    metadata_hash: i64 = field(metadata={"kafka_type": "int64"})


@dataclass(frozen=True, slots=True, kw_only=True)
class _MemberMetadataValue:
    __type__: ClassVar = EntityType.data
    __version__: ClassVar[i16] = i16(0)
    __flexible__: ClassVar[bool] = True
    instance_id: str | None = field(metadata={"kafka_type": "string"})
    rack_id: str | None = field(metadata={"kafka_type": "string"})
    client_id: str = field(metadata={"kafka_type": "string"})
    client_host: str = field(metadata={"kafka_type": "string"})
    subscribed_topic_names: tuple[str, ...] = field(metadata={"kafka_type": "string"})
    subscribed_topic_regex: str | None = field(metadata={"kafka_type": "string"})
    rebalance_timeout_ms: i32 = field(metadata={"kafka_type": "int32"})
    server_assignor: str | None = field(metadata={"kafka_type": "string"})


@dataclass(frozen=True, slots=True, kw_only=True)
class _TargetEpochValue:
    __type__: ClassVar = EntityType.data
    __version__: ClassVar[i16] = i16(0)
    __flexible__: ClassVar[bool] = True
    assignment_epoch: i32 = field(metadata={"kafka_type": "int32"})


@dataclass(frozen=True, slots=True, kw_only=True)
class _TopicPartitions:
    __type__: ClassVar = EntityType.nested
    __version__: ClassVar[i16] = i16(0)
    __flexible__: ClassVar[bool] = True
    topic_id: uuid.UUID = field(metadata={"kafka_type": "uuid"})
    partitions: tuple[i32, ...] = field(metadata={"kafka_type": "int32"})


@dataclass(frozen=True, slots=True, kw_only=True)
class _TargetMemberValue:
    __type__: ClassVar = EntityType.data
    __version__: ClassVar[i16] = i16(0)
    __flexible__: ClassVar[bool] = True
    topic_partitions: tuple[_TopicPartitions, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class _CurrentMemberValue:
    __type__: ClassVar = EntityType.data
    __version__: ClassVar[i16] = i16(0)
    __flexible__: ClassVar[bool] = True
    member_epoch: i32 = field(metadata={"kafka_type": "int32"})
    previous_member_epoch: i32 = field(metadata={"kafka_type": "int32"})
    state: i8 = field(metadata={"kafka_type": "int8"})
    assigned_partitions: tuple[_TopicPartitions, ...]
    partitions_pending_revocation: tuple[_TopicPartitions, ...]


@dataclass(frozen=True, slots=True)
class OffsetKey:
    group_id: str
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class GroupKey:
    group_id: str


@dataclass(frozen=True, slots=True)
class CommittedOffset:
    """A committed offset as Kafka stores it; `metadata` is the client's string, verbatim."""

    offset: int
    leader_epoch: int
    metadata: str
    commit_timestamp_ms: int


@dataclass(frozen=True, slots=True)
class MemberSnapshot:
    """A classic group member as persisted after a rebalance."""

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    subscription: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class GroupSnapshot:
    """A classic group's generation as persisted: enough to resume it after a restart."""

    protocol_type: str
    generation: int
    protocol: str | None
    leader: str | None
    state_timestamp_ms: int
    members: tuple[MemberSnapshot, ...]


Assignment = Mapping[uuid.UUID, frozenset[int]]
"""Partitions by topic id, as KIP-848 assignments name them."""


@dataclass(frozen=True, slots=True)
class ConsumerGroupKey:
    """Type 3 (group epoch) or 6 (target assignment epoch) of a consumer group."""

    group_id: str
    record_type: int


@dataclass(frozen=True, slots=True)
class ConsumerMemberKey:
    """Type 5 (subscription), 7 (target) or 8 (current assignment) of a member."""

    group_id: str
    member_id: str
    record_type: int


@dataclass(frozen=True, slots=True)
class GroupEpoch:
    epoch: int
    metadata_hash: int


@dataclass(frozen=True, slots=True)
class MemberSubscription:
    instance_id: str | None
    rack_id: str | None
    client_id: str
    client_host: str
    topics: tuple[str, ...]
    rebalance_timeout_ms: int
    server_assignor: str | None
    regex: str | None = None
    """SubscribedTopicRegex as the client sent it; empty or None: no regular expression."""


@dataclass(frozen=True, slots=True)
class MemberAssignment:
    """Where a member stands in reconciling with the target assignment."""

    member_epoch: int
    previous_member_epoch: int
    state: int
    assigned: Assignment
    pending_revocation: Assignment


ConsumerValue = GroupEpoch | MemberSubscription | MemberAssignment | Assignment | int


def offset_record(key: OffsetKey, value: CommittedOffset | None) -> Record:
    """The record of a committed offset; None writes the tombstone that deletes it."""
    encoded_key = _encode(
        OFFSET_COMMIT_KEY,
        _OffsetCommitKey(group=key.group_id, topic=key.topic, partition=i32(key.partition)),
    )
    if value is None:
        return Record(encoded_key, None)
    return Record(
        encoded_key,
        _encode(
            OFFSET_COMMIT_VALUE_VERSION,
            _OffsetCommitValue(
                offset=i64(value.offset),
                leader_epoch=i32(value.leader_epoch),
                metadata=value.metadata,
                commit_timestamp=i64(value.commit_timestamp_ms),
            ),
        ),
    )


def group_record(group_id: str, snapshot: GroupSnapshot | None) -> Record:
    """The record of a classic group's generation; None writes the tombstone deleting it."""
    encoded_key = _encode(GROUP_METADATA_KEY, _GroupMetadataKey(group=group_id))
    if snapshot is None:
        return Record(encoded_key, None)
    value = _GroupMetadataValue(
        protocol_type=snapshot.protocol_type,
        generation=i32(snapshot.generation),
        protocol=snapshot.protocol,
        leader=snapshot.leader,
        current_state_timestamp=i64(snapshot.state_timestamp_ms),
        members=tuple(
            _MemberMetadata(
                member_id=m.member_id,
                group_instance_id=m.group_instance_id,
                client_id=m.client_id,
                client_host=m.client_host,
                rebalance_timeout=i32(m.rebalance_timeout_ms),
                session_timeout=i32(m.session_timeout_ms),
                subscription=m.subscription,
                assignment=m.assignment,
            )
            for m in snapshot.members
        ),
    )
    return Record(encoded_key, _encode(GROUP_METADATA_VALUE_VERSION, value))


def consumer_group_record(
    group_id: str, record_type: int, value: GroupEpoch | int | None
) -> Record:
    """Type 3 (a GroupEpoch) or 6 (the target assignment epoch); None: its tombstone."""
    key = _encode(record_type, _GroupIdKey(group_id=group_id))
    if value is None:
        return Record(key, None)
    entity: Any
    if isinstance(value, GroupEpoch):
        entity = _ConsumerGroupMetadataValue(
            epoch=i32(value.epoch), metadata_hash=i64(value.metadata_hash)
        )
    else:
        entity = _TargetEpochValue(assignment_epoch=i32(value))
    return Record(key, _encode(0, entity))


def consumer_member_record(
    group_id: str,
    member_id: str,
    record_type: int,
    value: MemberSubscription | MemberAssignment | Assignment | None,
) -> Record:
    """Type 5 (a subscription), 7 (a target Assignment) or 8 (a MemberAssignment) of one
    member; None: its tombstone."""
    key = _encode(record_type, _MemberKey(group_id=group_id, member_id=member_id))
    if value is None:
        return Record(key, None)
    entity: Any
    if isinstance(value, MemberSubscription):
        entity = _MemberMetadataValue(
            instance_id=value.instance_id,
            rack_id=value.rack_id,
            client_id=value.client_id,
            client_host=value.client_host,
            subscribed_topic_names=value.topics,
            subscribed_topic_regex=value.regex,
            rebalance_timeout_ms=i32(value.rebalance_timeout_ms),
            server_assignor=value.server_assignor,
        )
    elif isinstance(value, MemberAssignment):
        entity = _CurrentMemberValue(
            member_epoch=i32(value.member_epoch),
            previous_member_epoch=i32(value.previous_member_epoch),
            state=i8(value.state),
            assigned_partitions=_encode_assignment(value.assigned),
            partitions_pending_revocation=_encode_assignment(value.pending_revocation),
        )
    else:
        entity = _TargetMemberValue(topic_partitions=_encode_assignment(value))
    return Record(key, _encode(0, entity))


def _encode_assignment(assignment: Assignment) -> tuple[_TopicPartitions, ...]:
    return tuple(
        _TopicPartitions(topic_id=topic_id, partitions=tuple(i32(p) for p in sorted(parts)))
        for topic_id, parts in sorted(assignment.items())
        if parts
    )


def _decode_assignment(items: tuple[_TopicPartitions, ...]) -> dict[uuid.UUID, frozenset[int]]:
    return {item.topic_id: frozenset(item.partitions) for item in items}


def decode_consumer_value(record_type: int, value: bytes) -> ConsumerValue:
    """The value of a consumer group record of the given type."""
    _check_version(value, 0, f"consumer group record type {record_type}")
    if record_type == CONSUMER_GROUP_KEY:
        v = _decode(_ConsumerGroupMetadataValue, value)
        return GroupEpoch(v.epoch, v.metadata_hash)
    if record_type == TARGET_EPOCH_KEY:
        return int(_decode(_TargetEpochValue, value).assignment_epoch)
    if record_type == CONSUMER_MEMBER_KEY:
        m = _decode(_MemberMetadataValue, value)
        return MemberSubscription(
            m.instance_id,
            m.rack_id,
            m.client_id,
            m.client_host,
            tuple(m.subscribed_topic_names),
            m.rebalance_timeout_ms,
            m.server_assignor,
            m.subscribed_topic_regex,
        )
    if record_type == TARGET_MEMBER_KEY:
        return _decode_assignment(_decode(_TargetMemberValue, value).topic_partitions)
    c = _decode(_CurrentMemberValue, value)
    return MemberAssignment(
        c.member_epoch,
        c.previous_member_epoch,
        c.state,
        _decode_assignment(c.assigned_partitions),
        _decode_assignment(c.partitions_pending_revocation),
    )


def metadata_hash(topics: Mapping[str, tuple[uuid.UUID, int]]) -> int:
    """A stable 64-bit hash of the subscribed topics' ids and partition counts: a change
    (a topic created, deleted or grown) bumps the group epoch."""
    digest = hashlib.sha256()
    for name in sorted(topics):
        topic_id, partitions = topics[name]
        digest.update(f"{name}\0{topic_id}\0{partitions}\0".encode())
    return int.from_bytes(digest.digest()[:8], "big", signed=True)


def decode_key(key: bytes) -> OffsetKey | GroupKey | ConsumerGroupKey | ConsumerMemberKey:
    record_type = _version(key, "key")
    if record_type in (0, OFFSET_COMMIT_KEY):
        k = _decode(_OffsetCommitKey, key)
        return OffsetKey(k.group, k.topic, k.partition)
    if record_type == GROUP_METADATA_KEY:
        return GroupKey(_decode(_GroupMetadataKey, key).group)
    if record_type in (CONSUMER_GROUP_KEY, TARGET_EPOCH_KEY):
        return ConsumerGroupKey(_decode(_GroupIdKey, key).group_id, record_type)
    if record_type in (CONSUMER_MEMBER_KEY, TARGET_MEMBER_KEY, CURRENT_MEMBER_KEY):
        m = _decode(_MemberKey, key)
        return ConsumerMemberKey(m.group_id, m.member_id, record_type)
    raise RecordFormatError(f"unknown record type {record_type}")


def decode_offset(value: bytes) -> CommittedOffset:
    _check_version(value, OFFSET_COMMIT_VALUE_VERSION, "OffsetCommitValue")
    v = _decode(_OffsetCommitValue, value)
    return CommittedOffset(v.offset, v.leader_epoch, v.metadata, v.commit_timestamp)


def decode_group(value: bytes) -> GroupSnapshot:
    _check_version(value, GROUP_METADATA_VALUE_VERSION, "GroupMetadataValue")
    v = _decode(_GroupMetadataValue, value)
    return GroupSnapshot(
        protocol_type=v.protocol_type,
        generation=v.generation,
        protocol=v.protocol,
        leader=v.leader,
        state_timestamp_ms=v.current_state_timestamp,
        members=tuple(
            MemberSnapshot(
                m.member_id,
                m.group_instance_id,
                m.client_id,
                m.client_host,
                m.rebalance_timeout,
                m.session_timeout,
                m.subscription,
                m.assignment,
            )
            for m in v.members
        ),
    )


def _encode(version: int, entity: Any) -> bytes:
    buffer = io.BytesIO()
    buffer.write(_VERSION.pack(version))
    entity_writer(type(entity))(buffer, entity)
    return buffer.getvalue()


def _version(data: bytes, what: str) -> int:
    if len(data) < _VERSION.size:
        raise RecordFormatError(f"{what} of {len(data)} bytes has no version")
    return int(_VERSION.unpack_from(data)[0])


def _check_version(data: bytes, expected: int, name: str) -> None:
    version = _version(data, name)
    if version != expected:
        raise RecordFormatError(f"{name} version {version} is not supported (only {expected})")


def _decode(entity_type: Any, data: bytes) -> Any:
    try:
        entity, _size = entity_reader(entity_type)(data, _VERSION.size)
    except Exception as exc:
        raise RecordFormatError(f"malformed {entity_type.__name__.lstrip('_')}: {exc}") from exc
    return entity
