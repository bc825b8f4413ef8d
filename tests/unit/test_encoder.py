"""The compiled encoder writes exactly the bytes kio's own writer does, for every message."""

from __future__ import annotations

import datetime
import io
import random
import uuid
from dataclasses import MISSING, Field, fields
from typing import Any

import pytest
from kio.index import load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode
from kio.schema.index import api_key_map, schema_name_map
from kio.serial import entity_writer
from kio.serial._implicit_defaults import get_tagged_field_default
from kio.serial._introspect import (
    EntityField,
    EntityTupleField,
    classify_field,
    get_field_tag,
    get_schema_field_type,
    is_optional,
)

from goqueue.protocol.kafka.encoder import encode_entity, uvarint

SEEDS = range(8)
ERROR_CODES = list(ErrorCode)
RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint8": (0, 2**8 - 1),
    "uint16": (0, 2**16 - 1),
    "uint32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
}


def primitive(kafka_type: str, rng: random.Random) -> Any:
    if kafka_type in RANGES:
        return rng.choice([0, 1, -1 if RANGES[kafka_type][0] else 2, *RANGES[kafka_type]])
    samples: dict[str, Any] = {
        "float64": rng.choice([0.0, 1.5, -2.25]),
        "bool": rng.random() < 0.5,
        "uuid": uuid.UUID(int=rng.getrandbits(128)),
        "error_code": rng.choice(ERROR_CODES),
        "timedelta_i32": datetime.timedelta(milliseconds=rng.randrange(0, 2**31)),
        "timedelta_i64": datetime.timedelta(milliseconds=rng.randrange(0, 2**40)),
        "datetime_i64": datetime.datetime.fromtimestamp(
            rng.randrange(0, 2**40) / 1000, tz=datetime.UTC
        ),
        "string": rng.choice(["", "topic", "ünïcode-ß", "x" * 300]),
        "bytes": rng.randbytes(rng.choice([0, 3, 200])),
        "records": rng.randbytes(rng.choice([0, 61, 300])),
    }
    return samples[kafka_type]


def sample(entity_type: type[Any], rng: random.Random, depth: int = 0) -> Any:
    """An entity with random values of the right kinds, nulls and empty arrays included."""
    return entity_type(**{field.name: value(field, rng, depth) for field in fields(entity_type)})


def value(field: Field[Any], rng: random.Random, depth: int) -> Any:
    if get_field_tag(field) is not None and rng.random() < 0.3:
        return field.default if field.default is not MISSING else get_tagged_field_default(field)
    if is_optional(field) and rng.random() < 0.25:
        return None
    kind = classify_field(field)
    match kind:
        case EntityField(entity_type):
            return sample(entity_type, rng, depth + 1)
        case EntityTupleField(entity_type):
            count = 0 if depth > 2 else rng.choice([0, 1, 2])
            return tuple(sample(entity_type, rng, depth + 1) for _ in range(count))
    item = lambda: primitive(get_schema_field_type(field), rng)  # noqa: E731
    return tuple(item() for _ in range(rng.choice([0, 1, 3]))) if kind.is_array else item()


def message_types() -> list[type[Any]]:
    types: list[type[Any]] = []
    for api_key, name in api_key_map.items():
        for version in schema_name_map[name]:
            types.append(load_request_schema(api_key, version))
            types.append(load_response_schema(api_key, version))
    return types


def kio_bytes(entity: Any) -> bytes:
    buffer = io.BytesIO()
    entity_writer(type(entity))(buffer, entity)
    return buffer.getvalue()


@pytest.mark.parametrize("seed", SEEDS)
def test_every_message_encodes_exactly_as_kio_does(seed: int) -> None:
    rng = random.Random(seed)
    for message_type in message_types():
        entity = sample(message_type, rng)
        assert encode_entity(entity) == kio_bytes(entity), message_type


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**31 - 1, 2**35 - 1])
def test_uvarint_matches_kio(value: int) -> None:
    from kio.serial.writers import write_unsigned_varint
    from kio.static.primitive import uvarint as kio_uvarint

    buffer = io.BytesIO()
    write_unsigned_varint(buffer, kio_uvarint(value))
    assert uvarint(value) == buffer.getvalue()


def test_headers_encode_exactly_as_kio_does() -> None:
    from kio.schema.request_header.v2.header import RequestHeader
    from kio.schema.response_header.v1.header import ResponseHeader

    for header in (
        RequestHeader(request_api_key=3, request_api_version=12, correlation_id=7, client_id=None),
        RequestHeader(request_api_key=0, request_api_version=9, correlation_id=-1, client_id="c"),
        ResponseHeader(correlation_id=42),
    ):
        assert encode_entity(header) == kio_bytes(header)
