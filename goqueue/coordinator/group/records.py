"""The records of `__consumer_offsets`, in Kafka's own format.

Kafka defines them in `group-coordinator/src/main/resources/common/message/*.json`; kio does
not ship those coordinator schemas, so the few this coordinator writes are declared here the way
kio declares its generated ones and (de)serialised by kio's codec. A key is an int16 record type
followed by the key fields; a value is an int16 version followed by the value fields, so Kafka's
tools (`kafka-console-consumer --formatter ...OffsetsMessageFormatter`) read these records.

Written versions: OffsetCommitKey (type 1), OffsetCommitValue v3, GroupMetadataKey (type 2),
GroupMetadataValue v3.
"""

import io
import struct
from dataclasses import dataclass, field
from typing import Any, ClassVar

from kio.serial import entity_reader, entity_writer
from kio.static.constants import EntityType
from kio.static.primitive import i16, i32, i64

from goqueue.coordinator.runtime import Record

OFFSET_COMMIT_KEY = 1
GROUP_METADATA_KEY = 2
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


def decode_key(key: bytes) -> OffsetKey | GroupKey:
    record_type = _version(key, "key")
    if record_type in (0, OFFSET_COMMIT_KEY):
        k = _decode(_OffsetCommitKey, key)
        return OffsetKey(k.group, k.topic, k.partition)
    if record_type == GROUP_METADATA_KEY:
        return GroupKey(_decode(_GroupMetadataKey, key).group)
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
