"""Kafka framing and kio (de)serialisation: the one place where bytes become requests and back.

Every request and response type comes from kio; this module only adds the frame length, picks
the header version that kio declares for each message (which covers the KIP-511 rule that
ApiVersions responses always use header v0), and splices file regions into Fetch responses so
that record data can go to the socket with sendfile instead of through Python memory.
"""

from __future__ import annotations

import dataclasses
import io
import struct
import sys
from dataclasses import dataclass
from functools import cache
from typing import Any, NamedTuple, TypeVar

from kio.index import UnknownAPIKey, UnknownEntity, load_request_schema, load_response_schema
from kio.schema.request_header.v1.header import RequestHeader as RequestHeaderV1
from kio.serial import entity_reader
from kio.serial.writers import write_int32, write_unsigned_varint
from kio.static.primitive import i32, uvarint
from kio.static.protocol import Entity, RequestPayload, ResponsePayload

from goqueue.log.partition_log import FileSlice
from goqueue.protocol.kafka.encoder import entity_encoder

_SIZE = struct.Struct(">i")
_KEY_VERSION = struct.Struct(">hh")

E = TypeVar("E")


class RequestHeader(NamedTuple):
    """The fields of a request header that the broker uses, whatever its version."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None


class FramingError(Exception):
    """The bytes on a connection are not a Kafka request: the connection must be closed."""


@cache
def request_type(api_key: int, version: int) -> type[RequestPayload] | None:
    """The kio request class for an API key and version, or None if kio has no such message."""
    try:
        return load_request_schema(api_key, version)
    except (UnknownAPIKey, UnknownEntity):
        return None


@cache
def response_type(api_key: int, version: int) -> type[ResponsePayload]:
    """The kio response class for an API key and version served by a handler."""
    return load_response_schema(api_key, version)


def read_header(frame: bytes) -> tuple[RequestHeader, int]:
    """Parse the request header; returns it and the offset of the request body.

    When kio does not know the API version the header is read as v1, the prefix that every
    header version shares, so the broker can still answer ApiVersions (KIP-511) or log who sent
    an unsupported request.
    """
    if len(frame) < _KEY_VERSION.size:
        raise FramingError(f"request of {len(frame)} bytes is shorter than a request header")
    api_key, api_version = _KEY_VERSION.unpack_from(frame)
    schema = request_type(api_key, api_version)
    header_type: type[Any] = schema.__header_schema__ if schema is not None else RequestHeaderV1
    try:
        header, size = entity_reader(header_type)(frame, 0)
    except Exception as exc:
        raise FramingError(f"malformed request header: {exc}") from exc
    return RequestHeader(api_key, api_version, header.correlation_id, header.client_id), size


def read_body(payload_type: type[RequestPayload], frame: bytes, offset: int) -> RequestPayload:
    """Decode a request body; a body that does not decode is a framing error.

    Bytes after a complete body are ignored, as Kafka ignores them: librdkafka, for one, leaves
    a reserved array-length slot behind a null topic list in Metadata requests.
    """
    try:
        body, _size = entity_reader(payload_type)(frame, offset)
    except Exception as exc:
        raise FramingError(f"malformed {payload_type.__name__}: {exc}") from exc
    return body


def encode_response(correlation_id: int, response: ResponsePayload) -> bytes:
    """A complete response frame: size, the header kio declares for this response, the body."""
    header_type: type[Any] = response.__header_schema__
    parts: list[bytes] = [b""]
    entity_encoder(header_type)(header_type(correlation_id=correlation_id), parts)
    entity_encoder(type(response))(response, parts)
    parts[0] = _SIZE.pack(sum(map(len, parts)))
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class SplicedResponse:
    """A response whose `records` fields stand for file regions, sent with sendfile.

    `response` carries a unique placeholder in each such field; `slices` maps each placeholder
    to the file region that replaces it on the wire.
    """

    response: ResponsePayload
    slices: dict[bytes, FileSlice]


def encode_spliced(correlation_id: int, spliced: SplicedResponse) -> list[bytes | FileSlice]:
    """The parts of a spliced response frame in order: encoded bytes and file regions.

    Each placeholder was encoded as a length prefix plus the placeholder itself; that span is
    replaced by the real length prefix (kio's own writers) followed by the file region.
    """
    encoded = encode_response(correlation_id, spliced.response)
    flexible = type(spliced.response).__flexible__
    parts: list[bytes | FileSlice] = []
    size = len(encoded) - _SIZE.size
    position = _SIZE.size
    for token, file_slice in spliced.slices.items():
        encoded_token = _length_prefix(len(token), flexible) + token
        start = encoded.index(encoded_token, position)
        prefix = _length_prefix(file_slice.size, flexible)
        parts.append(encoded[position:start] + prefix)
        parts.append(file_slice)
        position = start + len(encoded_token)
        size += len(prefix) + file_slice.size - len(encoded_token)
    parts.append(encoded[position:])
    return [_SIZE.pack(size), *parts]


def _length_prefix(size: int, flexible: bool) -> bytes:
    buffer = io.BytesIO()
    if flexible:
        write_unsigned_varint(buffer, uvarint(size + 1))
    else:
        write_int32(buffer, i32(size))
    return buffer.getvalue()


def build(entity_type: type[E], **values: Any) -> E:
    """Construct a kio entity from the values its version has, ignoring the others.

    Handlers serve many versions of a message whose fields come and go between versions; they
    pass every value they know and let each version take the fields it defines.
    """
    names = _field_names(entity_type)
    return entity_type(**{name: value for name, value in values.items() if name in names})


def nested(entity_type: type[Entity], name: str) -> type[Any]:
    """A nested entity class defined beside `entity_type` in the same kio version module."""
    return getattr(sys.modules[entity_type.__module__], name)  # type: ignore[no-any-return]


_FIELD_NAMES: dict[type[Any], frozenset[str]] = {}


def _field_names(entity_type: type[Any]) -> frozenset[str]:
    names = _FIELD_NAMES.get(entity_type)
    if names is None:
        names = frozenset(field.name for field in dataclasses.fields(entity_type))
        _FIELD_NAMES[entity_type] = names
    return names


def has_field(entity_type: type[Any], name: str) -> bool:
    """Whether this version of a message defines the field."""
    return name in _field_names(entity_type)
