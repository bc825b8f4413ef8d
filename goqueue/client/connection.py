"""One TCP connection to one broker, shared by every request sent to that broker.

Requests are pipelined: each is written as soon as it is made and parked in a dict of pending
futures keyed by correlation id; a single reader task resolves them as responses arrive, in
whatever order the broker answers. On connect the connection asks the broker which API versions
it serves (ApiVersions) so that every later request uses the highest version both sides know.
"""

import asyncio
import contextlib
import itertools
import logging
import os
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import RequestPayload, ResponsePayload

from goqueue.client.errors import (
    BrokerConnectionError,
    ClientError,
    ProtocolError,
    RequestTimedOutError,
    UnsupportedVersionError,
    error_for,
    raise_for,
)
from goqueue.client.protocol import (
    Fields,
    build_entity,
    correlation_id_of,
    decode_response,
    encode_request,
    pick_version,
    request_type,
    response_type,
)

logger = logging.getLogger(__name__)

API_VERSIONS = 18
API_VERSIONS_PREFERRED = 3
"""The ApiVersions version sent first; a broker that does not know it makes us fall back to v0."""

DEFAULT_REQUEST_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0


def _software_version() -> str:
    try:
        return version("goqueue")
    except PackageNotFoundError:
        return "0"


class Connection:
    """A negotiated, pipelined connection; create it with `await Connection.open(host, port)`."""

    def __init__(
        self,
        host: str,
        port: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        client_id: str | None,
    ) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self._reader = reader
        self._writer = writer
        self._correlation_ids = itertools.count()
        self._pending: dict[int, tuple[type[ResponsePayload], asyncio.Future[Any]]] = {}
        self._versions: dict[int, int] = {}
        self._closed_reason: str | None = None
        self._read_task = asyncio.create_task(self._read_loop(), name=f"kafka-read-{host}:{port}")

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        client_id: str | None = "goqueue",
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> "Connection":
        """Connect and negotiate API versions; raises `BrokerConnectionError` on failure."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), connect_timeout
            )
        except OSError as exc:  # TimeoutError included
            reason = "timed out" if isinstance(exc, TimeoutError) else _reason(exc)
            message = f"cannot connect to {host}:{port}: {reason}"
            raise BrokerConnectionError(host, port, message) from exc
        return await cls.negotiate(host, port, reader, writer, client_id=client_id)

    @classmethod
    async def negotiate(
        cls,
        host: str,
        port: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        client_id: str | None = "goqueue",
    ) -> "Connection":
        """Start a connection on an already connected stream pair (plain TCP, later TLS, or an
        in-memory broker in tests): ask which API versions the broker serves."""
        connection = cls(host, port, reader, writer, client_id)
        try:
            await connection._negotiate()
        except BaseException:
            await connection.close()
            raise
        return connection

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def closed(self) -> bool:
        return self._closed_reason is not None

    def version(self, api_key: int) -> int | None:
        """The negotiated version of an API, None if the broker does not serve it."""
        return self._versions.get(api_key)

    async def request(
        self,
        api_key: int,
        fields: Fields,
        *,
        timeout: float | None = DEFAULT_REQUEST_TIMEOUT,
    ) -> Any:
        """Send `fields` as the negotiated version of `api_key` and return the decoded response."""
        request = build_entity(request_type(api_key, self._require(api_key)), fields)
        return await self.send(request, timeout=timeout)

    async def request_no_response(self, api_key: int, fields: Fields) -> None:
        """Send a request the broker will not answer (Produce with acks=0)."""
        request = build_entity(request_type(api_key, self._require(api_key)), fields)
        await self._write(request, next(self._correlation_ids))

    def _require(self, api_key: int) -> int:
        negotiated = self._versions.get(api_key)
        if negotiated is None:
            raise UnsupportedVersionError(
                ErrorCode.unsupported_version,
                f"broker {self.address} does not serve API key {api_key} in a version we support",
            )
        return negotiated

    async def send(
        self, request: RequestPayload, *, timeout: float | None = DEFAULT_REQUEST_TIMEOUT
    ) -> Any:
        """Send an already built request and wait for its response."""
        correlation_id = next(self._correlation_ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = (response_type(request), future)
        try:
            await self._write(request, correlation_id)
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise RequestTimedOutError(
                ErrorCode.request_timed_out,
                f"{type(request).__name__} to {self.address} got no answer in {timeout} s",
            ) from None
        finally:
            self._pending.pop(correlation_id, None)

    async def _write(self, request: RequestPayload, correlation_id: int) -> None:
        if self._closed_reason is not None:
            raise self._lost()
        self._writer.write(encode_request(request, correlation_id, self.client_id))
        try:
            await self._writer.drain()
        except OSError as exc:
            raise self._fail(_reason(exc)) from exc

    async def _negotiate(self) -> None:
        try:
            response = await self._api_versions(API_VERSIONS_PREFERRED)
        except UnsupportedVersionError:
            response = await self._api_versions(0)
        for api in response.api_keys:
            chosen = pick_version(api.api_key, api.min_version, api.max_version)
            if chosen is not None:
                self._versions[api.api_key] = chosen

    async def _api_versions(self, api_version: int) -> Any:
        fields = {
            "client_software_name": "goqueue-python",
            "client_software_version": _software_version(),
        }
        response = await self.send(build_entity(request_type(API_VERSIONS, api_version), fields))
        raise_for(response.error_code)
        return response

    async def _read_loop(self) -> None:
        try:
            while True:
                size = int.from_bytes(await self._reader.readexactly(4), "big", signed=True)
                self._dispatch(await self._reader.readexactly(size))
        except asyncio.IncompleteReadError:
            self._fail("connection closed by the broker")
        except OSError as exc:
            self._fail(_reason(exc))
        except ProtocolError as exc:
            logger.warning("%s: %s; closing the connection", self.address, exc)
            self._fail(str(exc))
        except asyncio.CancelledError:
            self._fail("connection closed")
            raise

    def _dispatch(self, frame: bytes) -> None:
        correlation_id = correlation_id_of(frame)
        entry = self._pending.get(correlation_id)
        if entry is None:
            logger.debug("%s: dropping response %d nobody waits for", self.address, correlation_id)
            return
        payload_type, future = entry
        if future.done():
            return
        if payload_type.__api_key__ == API_VERSIONS and payload_type.__version__ > 0:
            # A broker that does not know our ApiVersions version answers in v0 layout with
            # UNSUPPORTED_VERSION: read just the error code, which leads both layouts.
            code = int.from_bytes(frame[4:6], "big", signed=True)
            if code != ErrorCode.none:
                future.set_exception(error_for(_error_code(code)))
                return
        try:
            future.set_result(decode_response(payload_type, frame))
        except ClientError as exc:
            future.set_exception(exc)

    def _fail(self, reason: str) -> BrokerConnectionError:
        """Mark the connection broken and fail every request still waiting on it."""
        if self._closed_reason is None:
            self._closed_reason = reason
            for _, future in self._pending.values():
                if not future.done():
                    future.set_exception(self._lost())
            self._writer.close()
        return self._lost()

    def _lost(self) -> BrokerConnectionError:
        return BrokerConnectionError(
            self.host, self.port, f"lost connection to {self.address}: {self._closed_reason}"
        )

    async def close(self) -> None:
        """Close the socket; requests still waiting fail with `BrokerConnectionError`."""
        self._read_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._read_task
        self._fail("connection closed")
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


def _reason(exc: OSError) -> str:
    """The OS's words for a socket error ("Connection refused"), not asyncio's wrapper text."""
    return os.strerror(exc.errno) if exc.errno else str(exc)


def _error_code(code: int) -> ErrorCode:
    try:
        return ErrorCode(code)
    except ValueError:
        return ErrorCode.unknown_server_error
