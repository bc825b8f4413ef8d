"""Config resources, entries and changes of DescribeConfigs and IncrementalAlterConfigs."""

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from goqueue.client.protocol import Fields

DESCRIBE_CONFIGS = 32
ALTER_CONFIGS = 33
INCREMENTAL_ALTER_CONFIGS = 44


class ResourceType(enum.IntEnum):
    """Kafka's config resource types that Go-Queue serves."""

    TOPIC = 2
    BROKER = 4
    GROUP = 32
    """A group's configs: share group settings (`share.*`, `goqueue.*`)."""


class ConfigSource(enum.IntEnum):
    """Where a config value comes from, highest precedence first."""

    UNKNOWN = 0
    TOPIC_CONFIG = 1
    DYNAMIC_BROKER_CONFIG = 2
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5
    DYNAMIC_BROKER_LOGGER_CONFIG = 6
    CLIENT_METRICS_CONFIG = 7
    GROUP_CONFIG = 8

    @classmethod
    def of(cls, value: int) -> "ConfigSource":
        return cls(value) if value in cls._value2member_map_ else cls.UNKNOWN


class OpType(enum.IntEnum):
    """What an incremental change does: SET a value, DELETE it (back to the default), APPEND
    items to or SUBTRACT items from a list config."""

    SET = 0
    DELETE = 1
    APPEND = 2
    SUBTRACT = 3


@dataclass(frozen=True, slots=True)
class ConfigResource:
    """A topic, a broker (by node id), the cluster-wide broker defaults (name "") or a group."""

    type: ResourceType
    name: str

    @classmethod
    def topic(cls, name: str) -> "ConfigResource":
        return cls(ResourceType.TOPIC, name)

    @classmethod
    def broker(cls, node_id: int | None = None) -> "ConfigResource":
        """One broker's settings, or with no id the defaults of every broker in the cluster."""
        return cls(ResourceType.BROKER, "" if node_id is None else str(node_id))

    @classmethod
    def group(cls, group_id: str) -> "ConfigResource":
        return cls(ResourceType.GROUP, group_id)

    @property
    def node_id(self) -> int | None:
        """The broker the resource must be sent to, if any."""
        return int(self.name) if self.type is ResourceType.BROKER and self.name else None

    def __str__(self) -> str:
        if self.type is ResourceType.TOPIC:
            return f"topic {self.name!r}"
        if self.type is ResourceType.GROUP:
            return f"group {self.name!r}"
        return f"broker {self.name}" if self.name else "the cluster-wide broker defaults"


@dataclass(frozen=True, slots=True)
class Synonym:
    name: str
    value: str | None
    source: ConfigSource


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    """A config's value in force; `synonyms` (when asked for) lists every level setting it."""

    name: str
    value: str | None
    source: ConfigSource
    read_only: bool
    sensitive: bool
    synonyms: tuple[Synonym, ...] = ()
    documentation: str | None = None

    @property
    def is_default(self) -> bool:
        return self.source is ConfigSource.DEFAULT_CONFIG


@dataclass(frozen=True, slots=True)
class AlterConfigOp:
    """One incremental change; `value` is ignored for DELETE."""

    name: str
    op: OpType
    value: str | None = None


def describe_configs_request(
    resource: ConfigResource, names: Sequence[str] | None, synonyms: bool, documentation: bool
) -> Fields:
    return {
        "resources": [
            {
                "resource_type": int(resource.type),
                "resource_name": resource.name,
                "configuration_keys": None if names is None else list(names),
            }
        ],
        "include_synonyms": synonyms,
        "include_documentation": documentation,
    }


def config_entries(result: Any) -> list[ConfigEntry]:
    """The entries of one DescribeConfigs result, whatever its version."""
    return [
        ConfigEntry(
            name=config.name,
            value=config.value,
            source=ConfigSource.of(getattr(config, "config_source", 0)),
            read_only=config.read_only,
            sensitive=config.is_sensitive,
            synonyms=tuple(
                Synonym(s.name, s.value, ConfigSource.of(s.source))
                for s in getattr(config, "synonyms", ())
            ),
            documentation=getattr(config, "documentation", None),
        )
        for config in result.configs
    ]


def alter_configs_request(
    resource: ConfigResource, configs: Mapping[str, str | None], validate_only: bool
) -> Fields:
    """AlterConfigs: `configs` replace every dynamic config of the resource."""
    return {
        "resources": [
            {
                "resource_type": int(resource.type),
                "resource_name": resource.name,
                "configs": [{"name": name, "value": value} for name, value in configs.items()],
            }
        ],
        "validate_only": validate_only,
    }


def incremental_alter_configs_request(
    resource: ConfigResource, ops: Sequence[AlterConfigOp], validate_only: bool
) -> Fields:
    return {
        "resources": [
            {
                "resource_type": int(resource.type),
                "resource_name": resource.name,
                "configs": [
                    {
                        "name": op.name,
                        "config_operation": int(op.op),
                        "value": None if op.op is OpType.DELETE else op.value,
                    }
                    for op in ops
                ],
            }
        ],
        "validate_only": validate_only,
    }
