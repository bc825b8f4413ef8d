"""One client connection: read frames, dispatch them in order, write the responses.

Requests on a connection are handled one at a time, in order, as Kafka does; clients that
pipeline simply have their next requests waiting in the socket buffer. A connection that
breaks framing (garbage, an oversized or truncated frame, an unknown API) is logged and
closed; the broker and every other connection carry on.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time

from goqueue.broker.broker import Broker
from goqueue.log.partition_log import FileSlice
from goqueue.observability.logs import current_request
from goqueue.protocol.kafka.api import RequestContext, Response
from goqueue.protocol.kafka.codec import (
    FramingError,
    SplicedResponse,
    encode_response,
    encode_spliced,
    read_body,
    read_header,
    request_type,
)
from goqueue.protocol.kafka.handlers import APIS
from goqueue.protocol.kafka.handlers.api_versions import API as API_VERSIONS
from goqueue.protocol.kafka.handlers.api_versions import unsupported_version_response
from goqueue.protocol.kafka.handlers.produce import AcksZeroProduceError
from goqueue.protocol.kafka.sendfile import send_file_slice

logger = logging.getLogger(__name__)
_SIZE = struct.Struct(">i")


class KafkaConnection:
    """Serves one socket until the client leaves, the framing breaks or the broker stops."""

    def __init__(
        self,
        broker: Broker,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        max_request_bytes: int,
    ) -> None:
        self._broker = broker
        self._reader = reader
        self._writer = writer
        self._max_request_bytes = max_request_bytes
        self._metrics = broker.metrics
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self._idle = asyncio.Event()
        """Set while waiting for the next request: the connection may close at once."""
        self._closing = False
        writer.transport.set_write_buffer_limits(high=0)

    def close_when_idle(self) -> None:
        """Finish the request in flight, if any, but read no further requests."""
        self._closing = True
        if self._idle.is_set():
            self._writer.close()

    async def serve(self) -> None:
        self._metrics.connections_accepted.inc()
        self._metrics.connections.inc()
        try:
            while not self._closing:
                self._idle.set()
                frame = await self._read_frame()
                if frame is None:
                    return
                self._idle.clear()
                await self._handle(frame)
        except FramingError as exc:
            logger.warning("closing connection from %s: %s", self.peer, exc)
        except AcksZeroProduceError as exc:
            logger.warning(
                "closing connection from %s after failed acks=0 produce: %s", self.peer, exc
            )
        except (ConnectionError, asyncio.IncompleteReadError):
            logger.debug("connection from %s lost", self.peer)
        except Exception:
            logger.exception("closing connection from %s after an unexpected error", self.peer)
        finally:
            self._metrics.connections.dec()
            self._idle.set()
            self._writer.close()

    async def _read_frame(self) -> bytes | None:
        try:
            size_bytes = await self._reader.readexactly(_SIZE.size)
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise FramingError("connection closed inside a frame's size field") from exc
            return None
        (size,) = _SIZE.unpack(size_bytes)
        if size < 0 or size > self._max_request_bytes:
            raise FramingError(
                f"request size {size} is outside 0..{self._max_request_bytes} "
                "(socket.request.max.bytes)"
            )
        try:
            return await self._reader.readexactly(size)
        except asyncio.IncompleteReadError as exc:
            raise FramingError(
                f"connection closed after {len(exc.partial)} of a {size}-byte request"
            ) from exc

    async def _handle(self, frame: bytes) -> None:
        """Serve one request. Its log context is reset only on success: when it fails, the
        line that reports the failure still names the client and the request."""
        started = time.perf_counter()
        header, body_offset = read_header(frame)
        api = APIS.get(header.api_key)
        if api is None:
            raise FramingError(f"unknown API key {header.api_key}")
        if not api.serves(header.api_version):
            if api is API_VERSIONS:
                await self._send(
                    encode_response(header.correlation_id, unsupported_version_response())
                )
                return
            raise FramingError(
                f"{api.name} version {header.api_version} is not supported "
                f"(supported: {api.min_version}..{api.max_version})"
            )
        payload_type = request_type(header.api_key, header.api_version)
        assert payload_type is not None, "handlers serve only versions that kio defines"
        request = read_body(payload_type, frame, body_offset)
        context = RequestContext(self._broker, header, self.peer)
        log_context = current_request.set(
            (api.name, header.api_version, header.correlation_id, header.client_id, self.peer)
        )
        response = await api.handle(context, request)
        body = self._count_traffic(response)
        await self._respond(header.correlation_id, response)
        self._metrics.requests.finished(
            api.name, api.key, header.api_version, request, body, started
        )
        current_request.reset(log_context)

    def _count_traffic(self, response: Response) -> Response:
        """Count the data a fetch sends (before sending it: the files it names must still be
        open) and return the response body."""
        if not isinstance(response, SplicedResponse):
            return response
        traffic = self._metrics.traffic
        if traffic is not None:
            traffic.fetched(response.response, response.slices, self._broker.image.topics_by_id)
        return response.response

    async def _respond(self, correlation_id: int, response: Response) -> None:
        if response is None:
            return
        if isinstance(response, SplicedResponse):
            for part in encode_spliced(correlation_id, response):
                if isinstance(part, FileSlice):
                    await self._writer.drain()
                    await send_file_slice(self._writer.transport, part)
                else:
                    self._writer.write(part)
            await self._writer.drain()
        else:
            await self._send(encode_response(correlation_id, response))

    async def _send(self, frame: bytes) -> None:
        self._writer.write(frame)
        await self._writer.drain()
