"""A faster writer for kio entities: the same bytes as kio's `entity_writer`, built once per
entity class from kio's own schema introspection.

kio's writer checks every value against its phantom types and opens a scratch buffer for the
tagged fields of every flexible entity; profiles of the broker showed response encoding as the
largest single cost of a small request. This module walks the same dataclass fields with
kio's own classification (`classify_field`, `get_schema_field_type`, `is_optional`,
`get_field_tag`, `get_tagged_field_default`) and compiles closures over precomputed
`struct` packers that append to a list of parts. The message definitions still come from
kio; a unit test checks byte-for-byte equality with kio's writer for every response schema.
"""

from __future__ import annotations

import datetime
import struct
from collections.abc import Callable
from dataclasses import MISSING, Field, fields
from typing import Any

from kio.serial._implicit_defaults import get_tagged_field_default
from kio.serial._introspect import (
    EntityField,
    EntityTupleField,
    PrimitiveField,
    PrimitiveTupleField,
    classify_field,
    get_field_tag,
    get_schema_field_type,
    is_optional,
)
from kio.static.constants import uuid_zero

Parts = list[bytes]
Encoder = Callable[[Any, Parts], None]

_INT8 = struct.Struct(">b").pack
_INT16 = struct.Struct(">h").pack
_INT32 = struct.Struct(">i").pack
_INT64 = struct.Struct(">q").pack
_NULL_INT16 = _INT16(-1)
_NULL_INT32 = _INT32(-1)
_NULL_ENTITY = _INT8(-1)
_PRESENT_ENTITY = _INT8(1)
_ZERO_UVARINT = b"\0"


def uvarint(value: int) -> bytes:
    """Kafka's unsigned varint (protobuf style), as kio writes it."""
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _fixed(pack: Callable[[Any], bytes]) -> Encoder:
    return lambda value, parts: parts.append(pack(value))


def _millis(pack: Callable[[Any], bytes]) -> Encoder:
    return lambda value, parts: parts.append(pack(round(value.total_seconds() * 1000)))


def _datetime(value: datetime.datetime | None, parts: Parts) -> None:
    parts.append(_INT64(-1 if value is None else round(value.timestamp() * 1000)))


def _uuid(value: Any, parts: Parts) -> None:
    parts.append((value or uuid_zero).bytes)


def _compact_bytes(value: str | bytes | None, parts: Parts) -> None:
    if value is None:
        parts.append(_ZERO_UVARINT)
        return
    data = value.encode() if isinstance(value, str) else value
    parts.append(uvarint(len(data) + 1))
    parts.append(data)


def _legacy_string(value: str | None, parts: Parts) -> None:
    if value is None:
        parts.append(_NULL_INT16)
        return
    data = value.encode()
    parts.append(_INT16(len(data)))
    parts.append(data)


def _legacy_bytes(value: bytes | None, parts: Parts) -> None:
    if value is None:
        parts.append(_NULL_INT32)
        return
    parts.append(_INT32(len(value)))
    parts.append(value)


def _error_code(value: Any, parts: Parts) -> None:
    parts.append(_INT16(value.value))


_FIXED: dict[str, Encoder] = {
    "int8": _fixed(_INT8),
    "int16": _fixed(_INT16),
    "int32": _fixed(_INT32),
    "int64": _fixed(_INT64),
    "uint8": _fixed(struct.Struct(">B").pack),
    "uint16": _fixed(struct.Struct(">H").pack),
    "uint32": _fixed(struct.Struct(">I").pack),
    "uint64": _fixed(struct.Struct(">Q").pack),
    "float64": _fixed(struct.Struct(">d").pack),
    "bool": _fixed(struct.Struct(">?").pack),
    "uuid": _uuid,
    "error_code": _error_code,
    "timedelta_i32": _millis(_INT32),
    "timedelta_i64": _millis(_INT64),
    "datetime_i64": _datetime,
}


def _primitive(kafka_type: str, flexible: bool) -> Encoder:
    if kafka_type in _FIXED:
        return _FIXED[kafka_type]
    if flexible and kafka_type in ("string", "bytes", "records"):
        return _compact_bytes
    if kafka_type == "string":
        return _legacy_string
    if kafka_type in ("bytes", "records"):
        return _legacy_bytes
    raise NotImplementedError(f"no encoder for kafka type {kafka_type!r}")


def _array(item: Encoder, flexible: bool) -> Encoder:
    def encode_compact(items: Any, parts: Parts) -> None:
        if items is None:
            parts.append(_ZERO_UVARINT)
            return
        parts.append(uvarint(len(items) + 1))
        for value in items:
            item(value, parts)

    def encode_legacy(items: Any, parts: Parts) -> None:
        if items is None:
            parts.append(_NULL_INT32)
            return
        parts.append(_INT32(len(items)))
        for value in items:
            item(value, parts)

    return encode_compact if flexible else encode_legacy


def _field_encoder(
    field: Field[Any], flexible: bool, request_header: bool, tagged: bool
) -> Encoder:
    """The encoder kio's `get_field_writer` would pick for this field."""
    if request_header and field.name == "client_id":
        return _legacy_string
    kind = classify_field(field)
    encoder: Encoder
    match kind:
        case PrimitiveField() | PrimitiveTupleField():
            encoder = _primitive(get_schema_field_type(field), flexible)
        case EntityField(entity_type):
            encoder = entity_encoder(entity_type, nullable=not tagged and is_optional(field))
        case EntityTupleField(entity_type):
            encoder = entity_encoder(entity_type)
    return _array(encoder, flexible) if kind.is_array else encoder


_ENCODERS: dict[tuple[type[Any], bool], Encoder] = {}


def entity_encoder(entity_type: type[Any], nullable: bool = False) -> Encoder:
    """An encoder appending the entity's wire form to a list of parts (built once per class)."""
    encoder = _ENCODERS.get((entity_type, nullable))
    if encoder is None:
        encoder = _ENCODERS[(entity_type, nullable)] = _compile(entity_type, nullable)
    return encoder


def _compile(entity_type: type[Any], nullable: bool) -> Encoder:
    flexible: bool = entity_type.__flexible__
    request_header = entity_type.__name__ == "RequestHeader"
    plain: list[tuple[str, Encoder]] = []
    tagged: list[tuple[int, Field[Any], Encoder, object]] = []
    for field in fields(entity_type):
        tag = get_field_tag(field)
        encoder = _field_encoder(field, flexible, request_header, tag is not None)
        if tag is None:
            plain.append((field.name, encoder))
        else:
            tagged.append((tag, field, encoder, get_tagged_field_default(field)))
    tagged.sort(key=lambda entry: entry[0])

    def encode(entity: Any, parts: Parts) -> None:
        for name, encoder in plain:
            encoder(getattr(entity, name), parts)
        if not flexible:
            return
        if not tagged:
            parts.append(_ZERO_UVARINT)
            return
        written: Parts = []
        count = 0
        for tag, field, encoder, implicit_default in tagged:
            value = getattr(entity, field.name)
            if value == field.default or (field.default is MISSING and value == implicit_default):
                continue
            value_parts: Parts = []
            encoder(value, value_parts)
            data = b"".join(value_parts)
            written += (uvarint(tag), uvarint(len(data)), data)
            count += 1
        parts.append(uvarint(count))
        parts.extend(written)

    if not nullable:
        return encode

    def encode_nullable(entity: Any, parts: Parts) -> None:
        if entity is None:
            parts.append(_NULL_ENTITY)
            return
        parts.append(_PRESENT_ENTITY)
        encode(entity, parts)

    return encode_nullable


def encode_entity(entity: Any) -> bytes:
    parts: Parts = []
    entity_encoder(type(entity))(entity, parts)
    return b"".join(parts)
