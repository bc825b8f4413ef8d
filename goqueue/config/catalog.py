"""The catalog of topic configs: one declarative table with each config's type, default,
validation, documentation and whether it can change on a live topic.

Kafka semantics: values travel as strings, a topic stores only what was set explicitly, and
everything else falls back to a default, which is often a broker setting. Validation messages
follow Kafka's wording so that clients and operators see familiar errors.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Protocol

from goqueue.log.cleaner import CleanerConfig
from goqueue.log.config import LogConfig

if TYPE_CHECKING:
    from goqueue.config.settings import BrokerSettings


class InvalidConfigError(ValueError):
    """A topic config name is unknown or its value is malformed or out of range; `problem` is
    what is wrong with the value, without naming the config."""

    def __init__(self, message: str, problem: str | None = None) -> None:
        super().__init__(message)
        self.problem = problem or message


class ConfigType(enum.Enum):
    """Kafka's config types; INT and LONG differ in their range."""

    STRING = "string"
    INT = "int"
    LONG = "long"
    DOUBLE = "double"
    LIST = "list"
    BOOLEAN = "boolean"


class Validator(Protocol):
    """Checks a parsed value; returns what is wrong in Kafka's words, or None."""

    def check(self, value: object) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Between:
    """Inclusive numeric range; either end may be open."""

    low: int | float | None = None
    high: int | float | None = None

    def check(self, value: object) -> str | None:
        assert isinstance(value, int | float)
        if self.low is not None and value < self.low:
            return f"Value must be at least {self.low}"
        if self.high is not None and value > self.high:
            return f"Value must be no more than {self.high}"
        return None


def at_least(low: int) -> Between:
    """Kafka's `Range.atLeast`."""
    return Between(low)


@dataclass(frozen=True, slots=True)
class OneOf:
    """The value (or, for a list, every item) must be one of `allowed`."""

    allowed: tuple[str, ...]

    def check(self, value: object) -> str | None:
        items = value if isinstance(value, list) else [value]
        if all(item in self.allowed for item in items):
            return None
        kind = "List items" if isinstance(value, list) else "String"
        return f"{kind} must be one of: {', '.join(self.allowed)}"


_TYPE_RANGES = {
    ConfigType.INT: Between(-(2**31), 2**31 - 1),
    ConfigType.LONG: Between(-(2**63), 2**63 - 1),
}


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    """One topic config. Its default is either `default` (Kafka's string form) or the value of
    the broker setting named by `default_setting`."""

    name: str
    type: ConfigType
    doc: str
    default: str | None = None
    default_setting: str | None = None
    validator: Validator | None = None
    dynamic: bool = True
    """Whether a change applies to a live topic without restarting the broker."""

    def parse(self, text: str) -> int | float | str | list[str]:
        """Parse and validate a wire value; raise InvalidConfigError with Kafka's message."""
        value: int | float | str | list[str]
        if self.type in _TYPE_RANGES or self.type is ConfigType.DOUBLE:
            try:
                value = (float if self.type is ConfigType.DOUBLE else int)(text.strip())
            except ValueError:
                raise self._invalid(text, self._not_a_number) from None
            if not math.isfinite(value):
                raise self._invalid(text, self._not_a_number)
        elif self.type is ConfigType.LIST:
            value = [item.strip() for item in text.split(",") if item.strip()]
        elif self.type is ConfigType.BOOLEAN:
            value = text.strip().lower()
            if value not in ("true", "false"):
                raise self._invalid(text, "Expected value to be either true or false")
        else:
            value = text.strip()
        problem = self.check(value)
        if problem:
            raise self._invalid(text, problem)
        return value

    def check(self, value: int | float | str | list[str]) -> str | None:
        """What is wrong with a parsed value (its type's range, then the validator), or None."""
        if self.type in _TYPE_RANGES and _TYPE_RANGES[self.type].check(value):
            return self._not_a_number
        return self.validator.check(value) if self.validator else None

    @property
    def value_range(self) -> Between | None:
        """The range of a numeric config's type (INT or LONG)."""
        return _TYPE_RANGES.get(self.type)

    @property
    def _not_a_number(self) -> str:
        return f"Not a number of type {self.type.name}"

    def canonical(self, text: str) -> str:
        """The value as the catalog stores it (trimmed, lists comma-joined), after validation."""
        value = self.parse(text)
        return ",".join(value) if isinstance(value, list) else str(value)

    def default_for(self, settings: BrokerSettings) -> str:
        if self.default_setting is not None:
            return str(getattr(settings, self.default_setting))
        assert self.default is not None
        return self.default

    def _invalid(self, text: str, problem: str) -> InvalidConfigError:
        return InvalidConfigError(
            f"Invalid value {text} for configuration {self.name}: {problem}", problem
        )


TOPIC_CONFIGS: tuple[ConfigEntry, ...] = (
    ConfigEntry(
        "cleanup.policy",
        ConfigType.LIST,
        "How old segments are discarded: `delete` removes them by retention time and size, "
        "`compact` keeps the latest record per key (the log cleaner rewrites closed segments), "
        "`compact,delete` does both.",
        default_setting="log_cleanup_policy",
        validator=OneOf(("compact", "delete")),
    ),
    ConfigEntry(
        "retention.ms",
        ConfigType.LONG,
        "How long a segment is kept after its newest record; -1 keeps data forever.",
        default_setting="log_retention_ms",
        validator=at_least(-1),
    ),
    ConfigEntry(
        "retention.bytes",
        ConfigType.LONG,
        "Size a partition may grow to before its oldest segments are deleted; -1 for no limit.",
        default_setting="log_retention_bytes",
    ),
    ConfigEntry(
        "segment.bytes",
        ConfigType.INT,
        "Size at which the active segment is closed and a new one started.",
        default_setting="log_segment_bytes",
        validator=at_least(14),
    ),
    ConfigEntry(
        "segment.ms",
        ConfigType.LONG,
        "Age at which the active segment is closed even if not full, so retention can act.",
        default_setting="log_segment_ms",
        validator=at_least(1),
    ),
    ConfigEntry(
        "max.message.bytes",
        ConfigType.INT,
        "Largest record batch a producer may append to the topic.",
        default_setting="message_max_bytes",
        validator=at_least(0),
    ),
    ConfigEntry(
        "compression.type",
        ConfigType.STRING,
        "Compression of stored batches; `producer` keeps whatever the producer sent.",
        default_setting="compression_type",
        validator=OneOf(("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")),
    ),
    ConfigEntry(
        "unclean.leader.election.enable",
        ConfigType.BOOLEAN,
        "Whether a replica that is not in sync may become the leader when no in-sync replica "
        "is alive: the partition comes back sooner but loses what only the old leader had.",
        default="false",
    ),
    ConfigEntry(
        "min.insync.replicas",
        ConfigType.INT,
        "Replicas that must have a batch before an acks=all produce succeeds.",
        default_setting="min_insync_replicas",
        validator=at_least(1),
    ),
    ConfigEntry(
        "message.timestamp.type",
        ConfigType.STRING,
        "Whether records keep the producer's timestamp or get the broker's append time.",
        default_setting="log_message_timestamp_type",
        validator=OneOf(("CreateTime", "LogAppendTime")),
    ),
    ConfigEntry(
        "flush.messages",
        ConfigType.LONG,
        "Messages after which the partition is fsynced; 1 makes acks=1 wait for the fsync.",
        default_setting="log_flush_interval_messages",
        validator=at_least(1),
    ),
    ConfigEntry(
        "flush.ms",
        ConfigType.LONG,
        "Longest time appended data stays unsynced.",
        default_setting="log_flush_interval_ms",
        validator=at_least(0),
    ),
    ConfigEntry(
        "index.interval.bytes",
        ConfigType.INT,
        "Bytes of batches between two entries of the sparse offset index.",
        default_setting="log_index_interval_bytes",
        validator=at_least(0),
    ),
    ConfigEntry(
        "file.delete.delay.ms",
        ConfigType.LONG,
        "How long a deleted segment's files stay open for readers still using them.",
        default_setting="log_segment_delete_delay_ms",
        validator=at_least(0),
    ),
    ConfigEntry(
        "delete.retention.ms",
        ConfigType.LONG,
        "How long the cleaner keeps tombstones (records with a null value) of a compacted "
        "topic, so consumers that read from the start see the deletion.",
        default_setting="log_cleaner_delete_retention_ms",
        validator=at_least(0),
    ),
    ConfigEntry(
        "min.compaction.lag.ms",
        ConfigType.LONG,
        "Youngest a record may be before the cleaner may compact it away.",
        default_setting="log_cleaner_min_compaction_lag_ms",
        validator=at_least(0),
    ),
    ConfigEntry(
        "max.compaction.lag.ms",
        ConfigType.LONG,
        "Oldest an uncompacted record may become before its segment is due for compaction, "
        "however little of the log is dirty.",
        default_setting="log_cleaner_max_compaction_lag_ms",
        validator=at_least(1),
    ),
    ConfigEntry(
        "min.cleanable.dirty.ratio",
        ConfigType.DOUBLE,
        "Share of a compacted log that must be uncompacted before the cleaner rewrites it.",
        default_setting="log_cleaner_min_cleanable_ratio",
        validator=Between(0, 1),
    ),
    ConfigEntry(
        "goqueue.dedup.window.ms",
        ConfigType.LONG,
        "Content dedup: a record whose message id (its `goqueue.msg-id` header, else a hash of "
        "its key, value and headers) was written to the same partition less than this long ago "
        "is dropped, and the producer is still told it was written. 0 turns dedup off. Memory: "
        "about 200 bytes per record written within the window. See docs/idempotence-and-dedup.md.",
        default="0",
        validator=at_least(0),
    ),
    ConfigEntry(
        "goqueue.message.ttl.ms",
        ConfigType.LONG,
        "Message TTL for share groups: a record older than this (by its timestamp) is never "
        "delivered to a share group; it goes to the group's dead-letter topic with reason "
        "`expired`. 0 means records never expire. See docs/share-groups.md.",
        default="0",
        validator=at_least(0),
    ),
    ConfigEntry(
        "goqueue.delayed.enabled",
        ConfigType.STRING,
        "Delayed delivery: records with a `goqueue.deliver-at` (epoch ms) or `goqueue.delay-ms` "
        "header are parked by the scheduler and appended to the topic when due; other topics "
        "never look at these headers. See docs/delayed-messages.md.",
        default="false",
        validator=OneOf(("true", "false")),
    ),
    ConfigEntry(
        "goqueue.delayed.max.delay.ms",
        ConfigType.LONG,
        "Longest delay a record of a delayed topic may ask for; a batch asking for more is "
        "refused with INVALID_RECORD.",
        default_setting="delayed_max_delay_ms",
        validator=at_least(0),
    ),
)

CATALOG: Mapping[str, ConfigEntry] = {entry.name: entry for entry in TOPIC_CONFIGS}


@dataclass(frozen=True, slots=True)
class Durations:
    """Every item of a list is a whole number of milliseconds, none negative."""

    def check(self, value: object) -> str | None:
        assert isinstance(value, list)
        if all(item.isdigit() for item in value):
            return None
        return "List items must be non-negative integers (milliseconds)"


_BOOLEAN = OneOf(("true", "false"))
RETRY_BACKOFF_SCHEDULE = (
    "1000,5000,10000,30000,60000,120000,180000,240000,300000,360000,420000,480000,540000,"
    "600000,1200000,1800000,3600000,7200000"
)
"""RocketMQ's retry schedule: 1s 5s 10s 30s 1m 2m ... 10m 20m 30m 1h 2h."""

GROUP_CONFIGS: tuple[ConfigEntry, ...] = (
    ConfigEntry(
        "share.session.timeout.ms",
        ConfigType.INT,
        "A share group member that does not heartbeat for this long is removed and the records "
        "it holds are released.",
        default_setting="group_share_session_timeout_ms",
        validator=at_least(1),
    ),
    ConfigEntry(
        "share.heartbeat.interval.ms",
        ConfigType.INT,
        "How often share group members heartbeat.",
        default_setting="group_share_heartbeat_interval_ms",
        validator=at_least(1),
    ),
    ConfigEntry(
        "share.record.lock.duration.ms",
        ConfigType.INT,
        "Acquisition lock: a delivered record not acknowledged within this time is released "
        "(after the retry backoff) for redelivery.",
        default_setting="group_share_record_lock_duration_ms",
        validator=Between(100, 3_600_000),
    ),
    ConfigEntry(
        "share.delivery.count.limit",
        ConfigType.INT,
        "Deliveries of a record before the group gives up on it: it goes to the dead-letter "
        "topic (or, without one, is archived).",
        default_setting="group_share_delivery_count_limit",
        validator=Between(1, 100),
    ),
    ConfigEntry(
        "share.partition.max.record.locks",
        ConfigType.INT,
        "Most offsets a share partition keeps in flight (between its start and end offsets).",
        default_setting="group_share_partition_max_record_locks",
        validator=Between(1, 100_000),
    ),
    ConfigEntry(
        "share.auto.offset.reset",
        ConfigType.STRING,
        "Where a share group starts reading a partition it has no state for: `latest` (records "
        "written from now on) or `earliest` (everything in the log).",
        default="latest",
        validator=OneOf(("latest", "earliest")),
    ),
    ConfigEntry(
        "share.isolation.level",
        ConfigType.STRING,
        "Accepted for compatibility; Go-Queue has no transactions yet, so both read everything.",
        default="read_uncommitted",
        validator=OneOf(("read_uncommitted", "read_committed")),
    ),
    ConfigEntry(
        "goqueue.retry.backoff.ms",
        ConfigType.LIST,
        "Retry with backoff: after its n-th failed delivery (released, or its lock expired) a "
        "record becomes available again only after the n-th delay of this list (the last one "
        "beyond its end). Empty: at once, as in Kafka. Default: RocketMQ's schedule.",
        default=RETRY_BACKOFF_SCHEDULE,
        validator=Durations(),
    ),
    ConfigEntry(
        "goqueue.dlq.enable",
        ConfigType.STRING,
        "Whether records the group gives up on (delivery limit, rejected, expired) go to the "
        "dead-letter topic before they are archived; `false` archives them at once, as Kafka "
        "does.",
        default="true",
        validator=_BOOLEAN,
    ),
    ConfigEntry(
        "goqueue.dlq.topic",
        ConfigType.STRING,
        "The dead-letter topic, created on first use; empty means `<group>.dlq`.",
        default="",
    ),
    ConfigEntry(
        "goqueue.share.fifo",
        ConfigType.STRING,
        "FIFO message groups: records with the same message group (the `goqueue.message-group` "
        "header, else the key) are delivered in offset order, one in flight at a time; "
        "different groups in parallel.",
        default="false",
        validator=_BOOLEAN,
    ),
)

GROUP_CATALOG: Mapping[str, ConfigEntry] = {entry.name: entry for entry in GROUP_CONFIGS}


def validate_group_configs(configs: Mapping[str, str | None]) -> dict[str, str]:
    """Check a group's configs and return them in canonical form (InvalidConfigError)."""
    valid: dict[str, str] = {}
    for name, value in configs.items():
        entry = GROUP_CATALOG.get(name)
        if entry is None:
            raise InvalidConfigError(f"Unknown group config name: {name}")
        if value is None:
            raise InvalidConfigError(f"Null value not supported for group config: {name}")
        valid[name] = entry.canonical(value)
    return valid


def validate_topic_configs(configs: Mapping[str, str | None]) -> dict[str, str]:
    """Check configs given for a topic and return them in canonical form; unknown names, null
    values and bad values raise InvalidConfigError."""
    nulls = sorted(name for name, value in configs.items() if value is None)
    if nulls:
        raise InvalidConfigError(f"Null value not supported for topic configs: {','.join(nulls)}")
    valid: dict[str, str] = {}
    for name, value in configs.items():
        entry = CATALOG.get(name)
        if entry is None:
            raise InvalidConfigError(f"Unknown topic config name: {name}")
        assert value is not None
        valid[name] = entry.canonical(value)
    return valid


def effective_topic_configs(
    topic_configs: Mapping[str, str], settings: BrokerSettings
) -> dict[str, str]:
    """Every catalog config with the topic's value where set, else its default."""
    return {
        entry.name: topic_configs.get(entry.name, entry.default_for(settings))
        for entry in TOPIC_CONFIGS
    }


def _int_config(name: str, topic_configs: Mapping[str, str], settings: BrokerSettings) -> int:
    """A numeric config's value; stored topic configs were validated when they were set."""
    return int(topic_configs.get(name) or CATALOG[name].default_for(settings))


_LOG_CONFIG_FIELDS = {f.name.replace("_", "."): f.name for f in fields(LogConfig)}


def log_config_for(topic_configs: Mapping[str, str], settings: BrokerSettings) -> LogConfig:
    """The partition log settings of a topic (each LogConfig field is the config of that name)."""
    return LogConfig(
        **{
            field_name: _int_config(name, topic_configs, settings)
            for name, field_name in _LOG_CONFIG_FIELDS.items()
        }
    )


def max_message_bytes_for(topic_configs: Mapping[str, str], settings: BrokerSettings) -> int:
    """Largest batch a producer may append to the topic."""
    return _int_config("max.message.bytes", topic_configs, settings)


def min_insync_replicas_for(topic_configs: Mapping[str, str], settings: BrokerSettings) -> int:
    """In-sync replicas an acks=all produce needs (Kafka's `min.insync.replicas`)."""
    return _int_config("min.insync.replicas", topic_configs, settings)


def dedup_window_ms_for(topic_configs: Mapping[str, str]) -> int:
    """The topic's content dedup window in ms; 0 (the default) means no dedup. One dict
    lookup, as it runs on every produce."""
    value = topic_configs.get("goqueue.dedup.window.ms")
    return int(value) if value else 0


def log_append_time_for(topic_configs: Mapping[str, str], settings: BrokerSettings) -> bool:
    """Whether the broker stamps batches with its append time (`message.timestamp.type`)."""
    return _config("message.timestamp.type", topic_configs, settings) == "LogAppendTime"


def delayed_enabled_for(topic_configs: Mapping[str, str]) -> bool:
    """Whether the topic parks delayed records; one dict lookup, as it runs on every produce."""
    return topic_configs.get("goqueue.delayed.enabled") == "true"


def delayed_max_delay_ms_for(topic_configs: Mapping[str, str], settings: BrokerSettings) -> int:
    return _int_config("goqueue.delayed.max.delay.ms", topic_configs, settings)


def _config(name: str, topic_configs: Mapping[str, str], settings: BrokerSettings) -> str:
    return topic_configs.get(name) or CATALOG[name].default_for(settings)


def cleanup_policy_for(topic_configs: Mapping[str, str], settings: BrokerSettings) -> set[str]:
    """The topic's cleanup policies: `delete`, `compact` or both."""
    return {item.strip() for item in _config("cleanup.policy", topic_configs, settings).split(",")}


def cleaner_config_for(
    topic_configs: Mapping[str, str], settings: BrokerSettings
) -> CleanerConfig | None:
    """How the log cleaner treats the topic's logs; None unless its cleanup.policy compacts."""
    if "compact" not in cleanup_policy_for(topic_configs, settings):
        return None
    return CleanerConfig(
        delete_retention_ms=_int_config("delete.retention.ms", topic_configs, settings),
        min_compaction_lag_ms=_int_config("min.compaction.lag.ms", topic_configs, settings),
        max_compaction_lag_ms=_int_config("max.compaction.lag.ms", topic_configs, settings),
        min_cleanable_ratio=float(_config("min.cleanable.dirty.ratio", topic_configs, settings)),
    )


def compression_type_for(topic_configs: Mapping[str, str], settings: BrokerSettings) -> str:
    """The codec stored batches must have (`producer`: whatever the producer sent)."""
    return _config("compression.type", topic_configs, settings)
