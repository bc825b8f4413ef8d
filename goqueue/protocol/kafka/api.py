"""What a handler module declares: its API key, the versions it serves and its coroutine."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from kio.static.protocol import ResponsePayload

from goqueue.broker.broker import Broker
from goqueue.protocol.kafka.codec import RequestHeader, SplicedResponse

Response = ResponsePayload | SplicedResponse | None
"""None means no response is sent (Produce with acks=0)."""


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What a handler may know about a request beyond its body."""

    broker: Broker
    header: RequestHeader
    peer: str


def topic_name(context: RequestContext, entry: Any, name_field: str) -> str | None:
    """The topic an entry names: by name in older versions, by topic id (KIP-516) in newer
    ones; None for an unknown id."""
    name = getattr(entry, name_field, None)
    if name is not None:
        return str(name)
    info = context.broker.image.topics_by_id.get(entry.topic_id)
    return info.name if info else None


@dataclass(frozen=True, slots=True)
class Api:
    """One Kafka API served by the broker; ApiVersions advertises exactly these ranges."""

    key: int
    name: str
    min_version: int
    max_version: int
    handle: Callable[[RequestContext, Any], Awaitable[Response]]

    def serves(self, version: int) -> bool:
        return self.min_version <= version <= self.max_version
