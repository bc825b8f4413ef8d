"""An in-memory Kafka broker for client unit tests: kio-decodes what the client writes and
feeds kio-encoded answers into the client's reader, without sockets."""

from __future__ import annotations

import asyncio
import datetime
import io
import struct
from collections.abc import Callable
from typing import Any

from kio.index import load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import i32

from goqueue.client.connection import Connection
from goqueue.client.protocol import build_entity

Handler = Callable[[Any, Any], Any]
"""(request header, request) -> response entity, or None to answer later with `respond`."""


def encode_response(correlation_id: int, response: Any) -> bytes:
    buffer = io.BytesIO()
    header_type = response.__header_schema__
    entity_writer(header_type)(buffer, header_type(correlation_id=i32(correlation_id)))
    entity_writer(type(response))(buffer, response)
    body = buffer.getvalue()
    return struct.pack(">i", len(body)) + body


def api_versions(
    version: int,
    versions: dict[int, tuple[int, int]],
    error: ErrorCode = ErrorCode.none,
) -> Any:
    """An ApiVersions response of any version listing `versions` (key: (min, max))."""
    return build_entity(
        load_response_schema(18, version),
        {
            "error_code": error,
            "api_keys": [
                {"api_key": key, "min_version": low, "max_version": high}
                for key, (low, high) in versions.items()
            ],
            "throttle_time": datetime.timedelta(0),
        },
    )


class FakeBroker:
    """Plays the writer half of a connection: every complete frame written is a request."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.reader = asyncio.StreamReader()
        self.requests: list[tuple[Any, Any]] = []
        self._buffer = b""

    def write(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= 4:
            (size,) = struct.unpack_from(">i", self._buffer)
            if len(self._buffer) < 4 + size:
                return
            frame, self._buffer = self._buffer[4 : 4 + size], self._buffer[4 + size :]
            api_key, version = struct.unpack_from(">hh", frame)
            request_type = load_request_schema(api_key, version)
            header, offset = entity_reader(request_type.__header_schema__)(frame, 0)
            request, _ = entity_reader(request_type)(frame, offset)
            self.requests.append((header, request))
            response = self.handler(header, request)
            if response is not None:
                self.respond(header.correlation_id, response)

    def respond(self, correlation_id: int, response: Any) -> None:
        self.reader.feed_data(encode_response(correlation_id, response))

    def hang_up(self) -> None:
        self.reader.feed_eof()

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        return None

    async def wait_closed(self) -> None:
        return None


async def connect(broker: FakeBroker) -> Connection:
    return await Connection.negotiate("fake", 9092, broker.reader, broker)  # type: ignore[arg-type]
