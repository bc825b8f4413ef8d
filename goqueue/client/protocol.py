"""Kafka wire encoding for the client: kio entities of any version, framed with their headers.

Requests are described once, independently of the version, as nested mappings of field names
(`build_entity`). The description becomes the kio dataclass of whichever version was negotiated
with the broker, so one code path serves every version: fields a version lacks are dropped, fields
it adds and the caller left out take their schema defaults. Where Kafka renamed a field between
versions (topic name to topic id), callers give both spellings.
"""

import dataclasses
import io
import struct
import types
import typing
from collections.abc import Mapping
from functools import cache
from typing import Any, TypeVar, cast

from kio.index import load_request_schema, load_response_schema
from kio.schema.index import api_key_map, schema_name_map
from kio.serial import entity_reader, entity_writer
from kio.static.constants import EntityType
from kio.static.primitive import i32
from kio.static.protocol import Entity, RequestPayload, ResponsePayload

from goqueue.client.errors import ProtocolError

E = TypeVar("E", bound=Entity)
Fields = Mapping[str, object]
"""A version-independent request description: field name to value, nested entities as mappings."""


def build_entity(entity_type: type[E], values: Fields) -> E:
    """Instantiate `entity_type` from `values`, keeping only the fields this version has."""
    hints = _field_types(entity_type)
    kwargs = {
        field.name: _convert(hints[field.name], values[field.name])
        for field in dataclasses.fields(entity_type)
        if field.name in values
    }
    return entity_type(**kwargs)


@cache
def _field_types(entity_type: type[Entity]) -> dict[str, object]:
    return typing.get_type_hints(entity_type)


def _convert(hint: object, value: object) -> object:
    target = _without_none(hint)
    if isinstance(value, Mapping):
        return build_entity(cast(type[Entity], target), value)
    if isinstance(value, list | tuple):
        item = typing.get_args(target)[0] if typing.get_origin(target) is tuple else None
        return tuple(_convert(item, element) for element in value)
    return value


def _without_none(hint: object) -> object:
    if isinstance(hint, types.UnionType):
        (inner,) = (arg for arg in typing.get_args(hint) if arg is not type(None))
        return inner
    return hint


@cache
def kio_versions(api_key: int) -> range:
    """The versions of `api_key` that kio can encode and decode, as a contiguous range."""
    versions = [
        version
        for version, entities in schema_name_map[api_key_map[api_key]].items()
        if EntityType.request in entities and EntityType.response in entities
    ]
    return range(min(versions), max(versions) + 1)


def pick_version(api_key: int, broker_min: int, broker_max: int) -> int | None:
    """The highest version both kio and the broker support, or None if there is none."""
    ours = kio_versions(api_key)
    best = min(ours.stop - 1, broker_max)
    return best if best >= max(ours.start, broker_min) else None


def request_type(api_key: int, version: int) -> type[RequestPayload]:
    """The kio request class for one version of an API."""
    return load_request_schema(api_key, version)


def response_type(request: RequestPayload) -> type[ResponsePayload]:
    """The kio response class answering `request`."""
    return load_response_schema(request.__api_key__, request.__version__)


def encode_request(request: RequestPayload, correlation_id: int, client_id: str | None) -> bytes:
    """A size-prefixed frame: the header the payload's version calls for, then the payload."""
    header_type = request.__header_schema__
    header = header_type(
        request_api_key=request.__api_key__,
        request_api_version=request.__version__,
        correlation_id=i32(correlation_id),
        client_id=client_id,
    )
    buffer = io.BytesIO()
    buffer.write(b"\0\0\0\0")
    entity_writer(header_type)(buffer, header)
    entity_writer(type(request))(buffer, request)
    frame = buffer.getbuffer()
    struct.pack_into(">i", frame, 0, len(frame) - 4)
    del frame
    return buffer.getvalue()


def correlation_id_of(frame: bytes) -> int:
    """The correlation id that opens every response header (the frame has no size prefix)."""
    if len(frame) < 4:
        raise ProtocolError(f"response frame of {len(frame)} bytes has no header")
    return int.from_bytes(frame[:4], "big", signed=True)


def decode_response(payload_type: type[ResponsePayload], frame: bytes) -> Any:
    """Decode a response frame (without its size prefix) as `payload_type`.

    The header version comes from the payload class, which already encodes Kafka's exception
    that ApiVersions responses always use response header v0 (KIP-511).
    """
    try:
        _, header_size = entity_reader(payload_type.__header_schema__)(frame, 0)
        body, _ = entity_reader(payload_type)(frame, header_size)
    except Exception as exc:
        name = payload_type.__name__
        raise ProtocolError(f"cannot decode {name} v{payload_type.__version__}: {exc}") from exc
    return body
