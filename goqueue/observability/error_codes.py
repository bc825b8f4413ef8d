"""The error codes a Kafka response carries, found without knowing the response's shape.

Kafka counts errors per response (`ErrorsPerSec`) from every `error_code` field: top level,
per topic, per partition. kio responses are nested frozen dataclasses, so the fields that can
hold an error code are found once per response type from its declared field types, and each
later response of that type is walked along those fields only.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable

from kio.schema.errors import ErrorCode

_CODE, _ONE, _MANY = 0, 1, 2
Plan = tuple[tuple[str, int, "Plan"], ...]
"""(field name, what it holds, plan of the nested entity) for every field on a path to a code."""

_PLANS: dict[type, Plan] = {}


def count_errors(response: object, count: Callable[[ErrorCode], None]) -> None:
    """Call `count(code)` for every error code other than `none` in `response`."""
    cls = type(response)
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _PLANS[cls] = _plan(cls)
    if plan:
        _walk(response, plan, count)


def _walk(entity: object, plan: Plan, count: Callable[[ErrorCode], None]) -> None:
    for name, kind, nested in plan:
        value = getattr(entity, name)
        if kind == _CODE:
            if value:
                count(value)
        elif kind == _MANY:
            for item in value:
                _walk(item, nested, count)
        elif value is not None:
            _walk(value, nested, count)


def _plan(cls: type) -> Plan:
    """The fields of `cls` that are, or lead to, error codes; empty if none do."""
    if not dataclasses.is_dataclass(cls):
        return ()
    steps: list[tuple[str, int, Plan]] = []
    for field in dataclasses.fields(cls):
        kind, nested = _classify(field.type)
        if kind == _CODE or nested:
            steps.append((field.name, kind, nested))
    return tuple(steps)


def _classify(annotation: object) -> tuple[int, Plan]:
    if annotation is ErrorCode:
        return _CODE, ()
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin is tuple and arguments and isinstance(arguments[0], type):
        return _MANY, _plan(arguments[0])
    if origin in (typing.Union, types.UnionType):
        entities = [argument for argument in arguments if argument is not type(None)]
        if len(entities) == 1 and isinstance(entities[0], type):
            return _ONE, _plan(entities[0])
    if isinstance(annotation, type):
        return _ONE, _plan(annotation)
    return _ONE, ()
