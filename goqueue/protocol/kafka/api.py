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
