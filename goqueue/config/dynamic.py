"""Configuration at run time: changes to topic and broker configs, and where each value comes from.

Kafka's precedence (KIP-226) decides every value: the topic's own setting, then this broker's
dynamic setting, then the cluster-wide dynamic default, then the static setting (command line,
environment, TOML file), then the built-in default. Dynamic settings live in the metadata image,
so every broker applies them without a restart; this module is pure so the rules are tested
without one.
"""

from __future__ import annotations

import enum
import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, Field, dataclass, fields, replace
from typing import Any, NamedTuple

from goqueue.config.catalog import (
    CATALOG,
    TOPIC_CONFIGS,
    ConfigEntry,
    ConfigType,
    InvalidConfigError,
    validate_topic_configs,
)
from goqueue.config.settings import BrokerSettings, config_name

CLUSTER_DEFAULT = ""
"""The broker resource name of the cluster-wide default level (Kafka's `<default>`)."""


class ConfigRequestError(ValueError):
    """The request is malformed or asks for what cannot be done at run time (Kafka answers
    INVALID_REQUEST), as opposed to a bad value (InvalidConfigError, INVALID_CONFIG)."""


class ConfigSource(enum.IntEnum):
    """Where a value comes from, with Kafka's wire ids."""

    TOPIC_CONFIG = 1
    DYNAMIC_BROKER_CONFIG = 2
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5
    GROUP_CONFIG = 8


class OpType(enum.IntEnum):
    """IncrementalAlterConfigs operations, with Kafka's wire ids."""

    SET = 0
    DELETE = 1
    APPEND = 2
    SUBTRACT = 3


class WireType(enum.IntEnum):
    """DescribeConfigs v3+ config types, with Kafka's wire ids."""

    BOOLEAN = 1
    STRING = 2
    INT = 3
    LONG = 5
    DOUBLE = 6
    LIST = 7
    PASSWORD = 9


_WIRE_TYPES = {
    ConfigType.STRING: WireType.STRING,
    ConfigType.INT: WireType.INT,
    ConfigType.LONG: WireType.LONG,
    ConfigType.DOUBLE: WireType.DOUBLE,
    ConfigType.LIST: WireType.LIST,
    ConfigType.BOOLEAN: WireType.BOOLEAN,
}
INT32_MAX = 2**31 - 1


class AlterOp(NamedTuple):
    """One requested change; `value` is None for DELETE (and for any op in a bad request)."""

    name: str
    op: OpType
    value: str | None


class Synonym(NamedTuple):
    name: str
    value: str | None
    source: ConfigSource


@dataclass(frozen=True, slots=True)
class DescribedConfig:
    """One config as DescribeConfigs reports it; `synonyms` lists every level that sets it, the
    winning one first."""

    name: str
    value: str | None
    source: ConfigSource
    read_only: bool
    sensitive: bool
    synonyms: tuple[Synonym, ...]
    wire_type: WireType
    doc: str


@dataclass(frozen=True, slots=True)
class ConfigChange:
    """What to write to the metadata log: values to set and names to remove."""

    set: dict[str, str]
    delete: list[str]

    @classmethod
    def between(cls, old: Mapping[str, str], new: Mapping[str, str]) -> ConfigChange:
        return cls(
            {name: value for name, value in new.items() if old.get(name) != value},
            sorted(set(old) - set(new)),
        )


# -- broker settings as configs ------------------------------------------------------------

BROKER_CONFIGS: Mapping[str, Field[Any]] = {config_name(f.name): f for f in fields(BrokerSettings)}
"""Every broker setting by its dotted Kafka name."""
_SETTING_TYPES = typing.get_type_hints(BrokerSettings)
_TOPIC_DEFAULTS: Mapping[str, ConfigEntry] = {
    entry.default_setting: entry for entry in TOPIC_CONFIGS if entry.default_setting is not None
}


def _text(value: object) -> str | None:
    """A setting's value as Kafka writes it: booleans in lower case, None stays null."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _default_of(spec: Field[Any]) -> object:
    return None if spec.default is MISSING else spec.default


def _wire_type(spec: Field[Any]) -> WireType:
    entry = _TOPIC_DEFAULTS.get(spec.name)
    if entry is not None:
        return _WIRE_TYPES[entry.type]
    kind = _SETTING_TYPES[spec.name]
    if spec.metadata["sensitive"]:
        return WireType.PASSWORD
    if kind is bool:
        return WireType.BOOLEAN
    if kind is int:
        validator = spec.metadata["validator"]
        high = validator.high if validator is not None else None
        return WireType.INT if high is not None and high <= INT32_MAX else WireType.LONG
    return WireType.STRING


def validate_broker_configs(configs: Mapping[str, str | None]) -> dict[str, str]:
    """Check dynamic broker configs and return them in canonical form. Unknown names and bad
    values raise InvalidConfigError; static settings and null values raise ConfigRequestError
    with Kafka's wording."""
    nulls = sorted(name for name, value in configs.items() if value is None)
    if nulls:
        raise ConfigRequestError(f"Null value not supported for : {', '.join(nulls)}")
    unknown = sorted(name for name in configs if name not in BROKER_CONFIGS)
    if unknown:
        raise InvalidConfigError(f"Unknown broker config name: {', '.join(unknown)}")
    static = sorted(name for name in configs if not BROKER_CONFIGS[name].metadata["dynamic"])
    if static:
        raise ConfigRequestError(
            f"Cannot update these configs dynamically: {', '.join(static)} (they are read-only: "
            "change them in the broker's settings and restart it)"
        )
    valid: dict[str, str] = {}
    for name, value in configs.items():
        assert value is not None
        entry = _TOPIC_DEFAULTS[BROKER_CONFIGS[name].name]
        valid[name] = replace(entry, name=name).canonical(value)
    return valid


def effective_settings(
    static: BrokerSettings, broker_configs: Mapping[str, Mapping[str, str]]
) -> BrokerSettings:
    """The settings this broker runs with: its static settings overridden by the cluster-wide
    dynamic defaults, then by its own dynamic settings. Values were validated when set."""
    merged = {
        **broker_configs.get(CLUSTER_DEFAULT, {}),
        **broker_configs.get(str(static.node_id), {}),
    }
    overrides: dict[str, Any] = {}
    for name, value in merged.items():
        spec = BROKER_CONFIGS.get(name)
        if spec is not None and spec.metadata["dynamic"]:
            overrides[spec.name] = _SETTING_TYPES[spec.name](value)
    return replace(static, **overrides) if overrides else static


# -- where values come from ------------------------------------------------------------------


def _broker_synonyms(
    spec: Field[Any],
    static: BrokerSettings,
    broker_configs: Mapping[str, Mapping[str, str]],
    *,
    per_broker: bool,
) -> list[Synonym]:
    """Every level that sets a broker setting, highest precedence first (Kafka's order)."""
    name = config_name(spec.name)
    synonyms = []
    if per_broker and name in broker_configs.get(str(static.node_id), {}):
        value = broker_configs[str(static.node_id)][name]
        synonyms.append(Synonym(name, value, ConfigSource.DYNAMIC_BROKER_CONFIG))
    if name in broker_configs.get(CLUSTER_DEFAULT, {}):
        value = broker_configs[CLUSTER_DEFAULT][name]
        synonyms.append(Synonym(name, value, ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG))
    if per_broker:
        current, default = getattr(static, spec.name), _default_of(spec)
        if current != default:
            synonyms.append(Synonym(name, _text(current), ConfigSource.STATIC_BROKER_CONFIG))
        synonyms.append(Synonym(name, _text(default), ConfigSource.DEFAULT_CONFIG))
    return synonyms


def _described(
    name: str,
    synonyms: Sequence[Synonym],
    *,
    read_only: bool,
    sensitive: bool,
    wire_type: WireType,
    doc: str,
) -> DescribedConfig:
    value, source = (
        (synonyms[0].value, synonyms[0].source) if synonyms else (None, ConfigSource.DEFAULT_CONFIG)
    )
    if sensitive:
        value = None
        synonyms = [Synonym(s.name, None, s.source) for s in synonyms]
    return DescribedConfig(
        name, value, source, read_only, sensitive, tuple(synonyms), wire_type, doc
    )


def describe_broker(
    static: BrokerSettings,
    broker_configs: Mapping[str, Mapping[str, str]],
    *,
    per_broker: bool,
) -> list[DescribedConfig]:
    """A broker's settings (`per_broker`), or only those set at the cluster-wide default level,
    as Kafka answers for the broker resource named by a node id or by ""."""
    described = []
    for name, spec in BROKER_CONFIGS.items():
        synonyms = _broker_synonyms(spec, static, broker_configs, per_broker=per_broker)
        if not synonyms:
            continue
        described.append(
            _described(
                name,
                synonyms,
                read_only=not spec.metadata["dynamic"],
                sensitive=spec.metadata["sensitive"],
                wire_type=_wire_type(spec),
                doc=spec.metadata["doc"],
            )
        )
    return described


def describe_topic(
    topic_configs: Mapping[str, str],
    static: BrokerSettings,
    broker_configs: Mapping[str, Mapping[str, str]],
) -> list[DescribedConfig]:
    """Every topic config with its effective value and the levels that set it."""
    described = []
    for entry in TOPIC_CONFIGS:
        synonyms = []
        if entry.name in topic_configs:
            synonyms.append(
                Synonym(entry.name, topic_configs[entry.name], ConfigSource.TOPIC_CONFIG)
            )
        if entry.default_setting is not None:
            spec = BROKER_CONFIGS[config_name(entry.default_setting)]
            synonyms += _broker_synonyms(spec, static, broker_configs, per_broker=True)
        elif entry.default is not None:
            synonyms.append(Synonym(entry.name, entry.default, ConfigSource.DEFAULT_CONFIG))
        described.append(
            _described(
                entry.name,
                synonyms,
                read_only=False,
                sensitive=False,
                wire_type=_WIRE_TYPES[entry.type],
                doc=entry.doc,
            )
        )
    return described


# -- changes ------------------------------------------------------------------------------


def check_ops(ops: Sequence[AlterOp]) -> None:
    """Kafka's checks of a request before any value: each name once, a value unless DELETE."""
    names = [op.name for op in ops]
    if len(set(names)) != len(names):
        raise ConfigRequestError("Error due to duplicate config keys")
    nulls = [op.name for op in ops if op.op is not OpType.DELETE and op.value is None]
    if nulls:
        raise ConfigRequestError(f"Null value not supported for : {', '.join(nulls)}")


def _apply_ops(
    current: Mapping[str, str], ops: Sequence[AlterOp], lists: Mapping[str, str]
) -> dict[str, str]:
    """The configs after incremental operations. APPEND and SUBTRACT work on list configs
    only (`lists`: their names and values in force) and start from the value in force."""
    result = dict(current)
    for name, op, value in ops:
        if op is OpType.DELETE:
            result.pop(name, None)
            continue
        assert value is not None
        if op is OpType.SET:
            result[name] = value
            continue
        if name not in lists:
            verb = "append" if op is OpType.APPEND else "subtract"
            raise InvalidConfigError(f"Config value {verb} is not allowed for config key: {name}")
        start = result.get(name, lists[name])
        items = [item.strip() for item in start.split(",") if item.strip()]
        given = [item.strip() for item in value.split(",") if item.strip()]
        if op is OpType.APPEND:
            items += [item for item in given if item not in items]
        else:
            items = [item for item in items if item not in given]
        result[name] = ",".join(items)
    return result


def topic_change(
    current: Mapping[str, str],
    ops: Sequence[AlterOp],
    settings: BrokerSettings,
    *,
    incremental: bool,
) -> ConfigChange:
    """Validate a whole AlterConfigs (`incremental=False`: the given configs replace all of the
    topic's) or IncrementalAlterConfigs request for a topic; raise before anything is written."""
    check_ops(ops)
    unknown = sorted(op.name for op in ops if op.name not in CATALOG)
    if unknown:
        raise InvalidConfigError(f"Unknown topic config name: {', '.join(unknown)}")
    lists = {
        entry.name: entry.default_for(settings)
        for entry in TOPIC_CONFIGS
        if entry.type is ConfigType.LIST
    }
    new = _apply_ops(current if incremental else {}, ops, lists)
    return ConfigChange.between(current, validate_topic_configs(new))


def broker_change(
    current: Mapping[str, str],
    ops: Sequence[AlterOp],
    effective: BrokerSettings,
    *,
    incremental: bool,
) -> ConfigChange:
    """Validate a whole AlterConfigs or IncrementalAlterConfigs request for one broker level
    (`current` holds that level's dynamic values)."""
    check_ops(ops)
    unknown = sorted(op.name for op in ops if op.name not in BROKER_CONFIGS)
    if unknown:
        raise InvalidConfigError(f"Unknown broker config name: {', '.join(unknown)}")
    lists = {
        config_name(setting): str(getattr(effective, setting))
        for setting, entry in _TOPIC_DEFAULTS.items()
        if entry.type is ConfigType.LIST
    }
    new = _apply_ops(current if incremental else {}, ops, lists)
    changed = {name: value for name, value in new.items() if current.get(name) != value}
    return ConfigChange.between(current, {**new, **validate_broker_configs(changed)})
