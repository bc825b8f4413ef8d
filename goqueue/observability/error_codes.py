"""The error codes a Kafka response carries, found without knowing the response's shape.

Kafka counts errors per response (`ErrorsPerSec`) from every `error_code` field: top level,
per topic, per partition. kio responses are nested frozen dataclasses, so the fields that can
hold an error code are found once per response type from its declared field types and turned
into a walker that visits those fields only: for a Produce response, two loops and a test.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from operator import attrgetter

from kio.schema.errors import ErrorCode

Count = Callable[[ErrorCode], None]
Walker = Callable[[object, Count], None]

_WALKERS: dict[type, Walker | None] = {}


def count_errors(response: object, count: Count) -> None:
    """Call `count(code)` for every error code other than `none` in `response`."""
    cls = type(response)
    try:
        walker = _WALKERS[cls]
    except KeyError:
        walker = _WALKERS[cls] = _walker(cls)
    if walker is not None:
        walker(response, count)


def _walker(cls: type) -> Walker | None:
    """A walker over the fields of `cls` that are, or lead to, error codes; None if none do."""
    if not dataclasses.is_dataclass(cls):
        return None
    steps = [
        step
        for field in dataclasses.fields(cls)
        if (step := _step(attrgetter(field.name), field.type)) is not None
    ]
    if not steps:
        return None
    if len(steps) == 1:
        return steps[0]

    def all_steps(entity: object, count: Count) -> None:
        for step in steps:
            step(entity, count)

    return all_steps


def _step(get: Callable[[object], typing.Any], annotation: object) -> Walker | None:
    if annotation is ErrorCode:

        def code(entity: object, count: Count) -> None:
            value = get(entity)
            if value:
                count(value)

        return code
    nested = _nested_walker(annotation)
    if nested is None:
        return None
    if typing.get_origin(annotation) is tuple:

        def each(entity: object, count: Count) -> None:
            for item in get(entity):
                nested(item, count)

        return each

    def one(entity: object, count: Count) -> None:
        value = get(entity)
        if value is not None:
            nested(value, count)

    return one


def _nested_walker(annotation: object) -> Walker | None:
    """The walker of the entity a field holds: `tuple[Entity, ...]`, `Entity | None`,
    `Entity`; None for anything else."""
    origin = typing.get_origin(annotation)
    arguments = [a for a in typing.get_args(annotation) if a is not type(None) and a is not ...]
    if origin in (tuple, typing.Union, types.UnionType):
        if len(arguments) == 1 and isinstance(arguments[0], type):
            return _walker(arguments[0])
        return None
    return _walker(annotation) if isinstance(annotation, type) else None
