"""What the group handlers share: the coordinator's address, client identity, durations."""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode

from goqueue.protocol.kafka.api import RequestContext

NO_THROTTLE = datetime.timedelta(0)


def client_host(context: RequestContext) -> str:
    """The client's address as Kafka reports it in group descriptions (`/127.0.0.1`)."""
    host, _, _port = context.peer.rpartition(":")
    return f"/{host or context.peer}"


def client_id(context: RequestContext) -> str:
    return context.header.client_id or ""


def millis(duration: datetime.timedelta) -> int:
    return int(duration.total_seconds() * 1000)


def topic_name(context: RequestContext, topic: Any) -> str | None:
    """The name of a request's topic entry, given by name or (newer versions) by topic id;
    None if no such topic exists."""
    image = context.broker.image
    name = getattr(topic, "name", None)
    if name is not None:
        return name if name in image.topics else None
    topic_id = getattr(topic, "topic_id", None)
    info = None if topic_id is None else image.topics_by_id.get(topic_id)
    return None if info is None else info.name


def unknown_topic_error(topic: Any) -> ErrorCode:
    """UNKNOWN_TOPIC_ID for a topic named by id, UNKNOWN_TOPIC_OR_PARTITION by name."""
    if getattr(topic, "name", None) is None:
        return ErrorCode.unknown_topic_id
    return ErrorCode.unknown_topic_or_partition


def partition_exists(context: RequestContext, topic: str, partition: int) -> bool:
    info = context.broker.image.topics.get(topic)
    return info is not None and 0 <= partition < info.partitions
