"""The consumer protocol embedded in classic groups: subscriptions and assignments.

Consumers put a ConsumerProtocolSubscription in their JoinGroup metadata and the leader hands
out ConsumerProtocolAssignments; both are an int16 version followed by the kio-defined struct.
Every version starts with the fields of version 0, so a newer version than kio knows is read
with the newest schema kio has.
"""

import io
import struct
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from kio.index import load_entity_schema
from kio.schema.types import TopicName
from kio.serial import entity_reader, entity_writer
from kio.static.constants import EntityType
from kio.static.primitive import i32

_VERSION = struct.Struct(">h")
_NEWEST = 3
_PARTITIONS_FIELD = {
    "ConsumerProtocolSubscription": "owned_partitions",
    "ConsumerProtocolAssignment": "assigned_partitions",
}


class ConsumerProtocolError(ValueError):
    """Bytes that are not a consumer protocol subscription or assignment."""


def _decode(name: str, data: bytes) -> Any:
    if len(data) < _VERSION.size:
        raise ConsumerProtocolError(f"{name} of {len(data)} bytes has no version")
    (version,) = _VERSION.unpack_from(data)
    if version < 0:
        raise ConsumerProtocolError(f"{name} version {version} is negative")
    schema: Any = load_entity_schema(name, min(version, _NEWEST), EntityType.data)
    try:
        entity, _size = entity_reader(schema)(data, _VERSION.size)
    except Exception as exc:
        raise ConsumerProtocolError(f"malformed {name}: {exc}") from exc
    return entity


def subscription_topics(metadata: bytes) -> list[str]:
    """The topics a member subscribes to."""
    return list(_decode("consumer_protocol_subscription", metadata).topics)


def subscribed_topics(metadatas: Iterable[bytes]) -> set[str] | None:
    """The union of the members' topics; None if a subscription does not parse."""
    topics: set[str] = set()
    try:
        for metadata in metadatas:
            topics.update(subscription_topics(metadata))
    except ConsumerProtocolError:
        return None
    return topics


def assigned_partitions(assignment: bytes) -> dict[str, list[int]]:
    """The partitions of each topic an assignment gives a member (empty bytes: none)."""
    if not assignment:
        return {}
    decoded = _decode("consumer_protocol_assignment", assignment)
    result: dict[str, list[int]] = {}
    for item in decoded.assigned_partitions:
        result.setdefault(TopicName(item.topic), []).extend(item.partitions)
    return result


def decode_subscription(metadata: bytes) -> Any:
    """A whole ConsumerProtocolSubscription (topics, user data, owned partitions, generation,
    rack), whichever version the member sent: fields its version lacks are absent."""
    return _decode("consumer_protocol_subscription", metadata)


def encode_subscription(
    topics: Iterable[str],
    *,
    user_data: bytes | None = None,
    owned: Mapping[str, Iterable[int]] | None = None,
    generation_id: int = -1,
    rack_id: str | None = None,
) -> bytes:
    """The JoinGroup metadata of a consumer, in the newest version (3) as the Java client
    sends it: owned partitions for cooperative rebalancing, generation for sticky assignors."""
    schema: Any = load_entity_schema("consumer_protocol_subscription", _NEWEST, EntityType.data)
    entity = schema(
        topics=tuple(TopicName(t) for t in sorted(topics)),
        user_data=user_data,
        owned_partitions=_topic_partitions(schema, owned or {}),
        generation_id=i32(generation_id),
        rack_id=rack_id,
    )
    return _encode(schema, entity)


def encode_assignment(
    partitions: Mapping[str, Iterable[int]], user_data: bytes | None = None
) -> bytes:
    """A member's SyncGroup assignment, in the newest version (3)."""
    schema: Any = load_entity_schema("consumer_protocol_assignment", _NEWEST, EntityType.data)
    entity = schema(assigned_partitions=_topic_partitions(schema, partitions), user_data=user_data)
    return _encode(schema, entity)


def _topic_partitions(schema: Any, partitions: Mapping[str, Iterable[int]]) -> tuple[Any, ...]:
    item = typing.get_args(typing.get_type_hints(schema)[_PARTITIONS_FIELD[schema.__name__]])[0]
    return tuple(
        item(topic=TopicName(topic), partitions=tuple(i32(p) for p in sorted(parts)))
        for topic, parts in sorted(partitions.items())
    )


def _encode(schema: Any, entity: Any) -> bytes:
    buffer = io.BytesIO()
    buffer.write(_VERSION.pack(_NEWEST))
    entity_writer(schema)(buffer, entity)
    return buffer.getvalue()
