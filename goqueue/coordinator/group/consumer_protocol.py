"""The consumer protocol embedded in classic groups: subscriptions and assignments.

Consumers put a ConsumerProtocolSubscription in their JoinGroup metadata and the leader hands
out ConsumerProtocolAssignments; both are an int16 version followed by the kio-defined struct.
Every version starts with the fields of version 0, so a newer version than kio knows is read
with the newest schema kio has.
"""

import struct
from collections.abc import Iterable
from typing import Any

from kio.index import load_entity_schema
from kio.schema.types import TopicName
from kio.serial import entity_reader
from kio.static.constants import EntityType

_VERSION = struct.Struct(">h")
_NEWEST = 3


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
