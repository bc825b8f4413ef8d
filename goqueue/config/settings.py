"""Broker settings: one frozen object built from the command line, environment and a TOML file.

Every setting is declared once, as a dataclass field whose metadata carries its documentation
and validation; the loader, its error messages and (later) the configuration reference are
all derived from that declaration.
"""

from __future__ import annotations

import ipaddress
import tomllib
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from goqueue.config.catalog import (
    TOPIC_CONFIGS,
    Between,
    ConfigEntry,
    InvalidConfigError,
    Validator,
    at_least,
)

ENV_PREFIX = "GOQUEUE_"
INT64_MAX = 2**63 - 1
DAY_MS = 24 * 60 * 60 * 1000
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})
ALIASES = {"log_roll_ms": "log_segment_ms"}
"""Kafka's names for settings that Go-Queue names after the topic config they default."""
_KAFKA_NAMES = {field_name: alias for alias, field_name in ALIASES.items()}


def config_name(field_name: str) -> str:
    """A setting's dotted Kafka name (`log.retention.ms`), as DescribeConfigs shows it."""
    return _KAFKA_NAMES.get(field_name, field_name).replace("_", ".")


class SettingsError(Exception):
    """A setting is unknown or malformed; the message says which one, where it came from and
    what to write instead."""


def _meta(
    doc: str,
    *,
    validator: Between | None = None,
    address: bool = False,
    dynamic: bool = False,
    sensitive: bool = False,
) -> dict[str, Any]:
    """A setting's declaration beside its default: what it is for, how a value is checked,
    whether it can change at run time (dynamic: through the metadata quorum, without restart)
    and whether DescribeConfigs must hide its value (sensitive)."""
    return {
        "doc": doc,
        "validator": validator,
        "address": address,
        "dynamic": dynamic,
        "sensitive": sensitive,
    }


def _topic_default(doc: str) -> dict[str, Any]:
    """A broker-wide default of a topic config: validated as that config, changeable at run
    time for every topic that does not set its own value."""
    return _meta(doc, dynamic=True)


@dataclass(frozen=True)
class BrokerSettings:
    """Everything a broker node is configured with; immutable once loaded."""

    node_id: int = field(
        default=0,
        metadata=_meta("Id of this broker in the cluster.", validator=Between(0, 2**31 - 1)),
    )
    data_dir: Path = field(
        default=Path("goqueue-data"),
        metadata=_meta("Directory holding the partition logs and the metadata quorum's files."),
    )
    listen: str = field(
        default="127.0.0.1:9092", metadata=_meta("HOST:PORT of the Kafka listener.", address=True)
    )
    advertised: str | None = field(
        default=None,
        metadata=_meta(
            "HOST:PORT that clients are told to connect to; defaults to the listen address.",
            address=True,
        ),
    )
    http: str = field(
        default="127.0.0.1:8080", metadata=_meta("HOST:PORT of the HTTP API.", address=True)
    )
    raft: str = field(
        default="127.0.0.1:9093",
        metadata=_meta("HOST:PORT of the metadata quorum (Raft) listener.", address=True),
    )
    cluster_secret: str | None = field(
        default=None,
        metadata=_meta(
            "Secret that encrypts and authenticates the metadata quorum's traffic; every node of "
            "a cluster needs the same one. A single node without one uses a random secret.",
            sensitive=True,
        ),
    )
    cluster_secret_file: Path | None = field(
        default=None,
        metadata=_meta(
            "File holding the cluster secret (surrounding whitespace is ignored), so the secret "
            "stays out of command lines and environments; wins over cluster.secret."
        ),
    )
    voters: str | None = field(
        default=None,
        metadata=_meta(
            "The metadata quorum's members as Kafka's controller.quorum.voters: "
            "`1@HOST:PORT,2@HOST:PORT,3@HOST:PORT` (node id @ Raft address; an odd count). A node "
            "whose id is listed is a voter and must use the listed --raft address; any other "
            "node joins as a broker that follows the quorum without voting. Unset: a single "
            "node that is its own quorum."
        ),
    )
    raft_routes: str | None = field(
        default=None,
        metadata=_meta(
            "Where to reach some voters instead of their listed Raft address, in the voters "
            "form `2@HOST:PORT,3@HOST:PORT`: for a relay or proxy between nodes. A voter is still "
            "known by its listed address; only the connections this node opens go elsewhere."
        ),
    )
    rack: str | None = field(
        default=None,
        metadata=_meta(
            "Rack (or zone) of this broker: replicas of a partition go to different racks when "
            "every broker declares one."
        ),
    )
    broker_heartbeat_interval_ms: int = field(
        default=2000,
        metadata=_meta(
            "How often a broker tells the controller it is alive.",
            validator=Between(1, 2**31 - 1),
        ),
    )
    broker_session_timeout_ms: int = field(
        default=9000,
        metadata=_meta(
            "A broker that has not heartbeated for this long is fenced: its leaderships move "
            "to other in-sync replicas and it leaves every ISR.",
            validator=Between(1, 2**31 - 1),
        ),
    )
    controlled_shutdown_timeout_ms: int = field(
        default=30000,
        metadata=_meta(
            "How long a stopping broker waits for the controller to move its leaderships away "
            "before it stops anyway.",
            validator=Between(0, 2**31 - 1),
        ),
    )
    auto_leader_rebalance_enable: bool = field(
        default=True,
        metadata=_meta(
            "Let the controller move leadership back to the preferred replicas (the first of "
            "each assignment) once they are in sync again, so leaders stay spread."
        ),
    )
    leader_imbalance_check_interval_seconds: int = field(
        default=300,
        metadata=_meta(
            "How often the controller looks for partitions not led by their preferred replica.",
            validator=Between(1, 2**31 - 1),
        ),
    )
    leader_imbalance_per_broker_percentage: int = field(
        default=10,
        metadata=_meta(
            "Share of a broker's preferred partitions that others may lead before the "
            "controller moves them back.",
            validator=Between(0, 100),
        ),
    )
    auto_create_topics_enable: bool = field(
        default=True,
        metadata=_meta("Create a topic when a client asks for metadata of a missing topic."),
    )
    num_partitions: int = field(
        default=1,
        metadata=_meta(
            "Partitions of a topic created without a partition count.",
            validator=Between(1, 2**31 - 1),
        ),
    )
    default_replication_factor: int = field(
        default=1,
        metadata=_meta(
            "Replicas of a topic created without a replication factor.",
            validator=Between(1, 32767),
        ),
    )
    socket_request_max_bytes: int = field(
        default=104857600,
        metadata=_meta(
            "Largest request a client may send; a larger frame closes the connection.",
            validator=Between(1, 2**31 - 1),
        ),
    )
    metrics_enabled: bool = field(
        default=True,
        metadata=_meta(
            "Count requests, errors, latency and per-topic traffic on the request path "
            "(scrape-time metrics such as log sizes are always served); off only to measure "
            "what the counting costs."
        ),
    )
    request_slow_log_ms: int = field(
        default=1000,
        metadata=_meta(
            "Log a request that takes longer than this (a fetch: beyond its max.wait.ms); "
            "-1 logs none.",
            validator=Between(-1, 2**31 - 1),
        ),
    )
    message_max_bytes: int = field(
        default=1048588,
        metadata=_topic_default("Default largest record batch a producer may send."),
    )
    offsets_topic_num_partitions: int = field(
        default=50,
        metadata=_meta(
            "Partitions of the internal `__consumer_offsets` topic, fixed when it is first "
            "created: each group lives in the partition its id hashes to, and the partitions "
            "are what a cluster spreads the coordination of groups over.",
            validator=Between(1, 10000),
        ),
    )
    offsets_topic_replication_factor: int = field(
        default=3,
        metadata=_meta(
            "Replicas of the internal `__consumer_offsets` topic, fixed when it is first created; "
            "a cluster of fewer brokers uses all of them (a single node: one).",
            validator=Between(1, 32767),
        ),
    )
    replica_lag_time_max_ms: int = field(
        default=30000,
        metadata=_meta(
            "A follower that has not caught up with its leader's log end for this long leaves "
            "the in-sync replica set.",
            validator=Between(1, 2**31 - 1),
        ),
    )
    replica_fetch_wait_max_ms: int = field(
        default=500,
        metadata=_meta(
            "Longest a follower's fetch waits at the leader for new data.",
            validator=Between(0, 2**31 - 1),
        ),
    )
    replica_fetch_max_bytes: int = field(
        default=1048576,
        metadata=_meta(
            "Bytes a follower asks for per partition in one fetch (at least one batch comes).",
            validator=Between(1, 2**31 - 1),
        ),
    )
    replica_high_watermark_checkpoint_interval_ms: int = field(
        default=5000,
        metadata=_meta(
            "How often each replica saves its high watermark, so that one restarted after a "
            "crash serves what was committed at once instead of relearning it from the ISR.",
            validator=Between(1, 2**31 - 1),
        ),
    )
    replica_fetch_backoff_ms: int = field(
        default=1000,
        metadata=_meta(
            "Pause of a follower's fetcher after its leader failed or refused a fetch.",
            validator=Between(0, 2**31 - 1),
        ),
    )
    offsets_topic_segment_bytes: int = field(
        default=100 * 1024 * 1024,
        metadata=_meta(
            "Segment size of `__consumer_offsets`, kept small so compaction and loading stay fast.",
            validator=Between(14, 2**31 - 1),
        ),
    )
    scheduler_topic_partitions: int = field(
        default=4,
        metadata=_meta(
            "Partitions of the internal `__goqueue_schedule` topic (delayed messages), fixed when "
            "it is first created: each topic partition's delayed messages live in the one "
            "`<topic>-<partition>` hashes to.",
            validator=Between(1, 1000),
        ),
    )
    scheduler_segment_bytes: int = field(
        default=100 * 1024 * 1024,
        metadata=_meta(
            "Segment size of `__goqueue_schedule`, so compaction can drop delivered messages.",
            validator=Between(14, 2**31 - 1),
        ),
    )
    scheduler_window_ms: int = field(
        default=60_000,
        metadata=_meta(
            "Width of the scheduler's windows of due time: messages due within the next one or "
            "two windows are held in memory, later ones only on disk, one file per window.",
            validator=Between(100, 2**31 - 1),
        ),
    )
    delayed_max_delay_ms: int = field(
        default=365 * DAY_MS,
        metadata=_topic_default("Default goqueue.delayed.max.delay.ms of topics (one year)."),
    )
    offset_metadata_max_bytes: int = field(
        default=4096,
        metadata=_meta(
            "Longest metadata string an offset commit may carry (OFFSET_METADATA_TOO_LARGE).",
            validator=Between(0, 2**31 - 1),
        ),
    )
    offsets_retention_minutes: int = field(
        default=7 * 24 * 60,
        metadata=_meta(
            "How long committed offsets are kept once unused (KIP-211): those of a classic group "
            "from when it became empty, those of a standalone commit or of a KIP-848 group's "
            "unsubscribed topic from their commit; then they and the empty group are deleted.",
            validator=Between(1, 2**31 - 1),
        ),
    )
    offsets_retention_ms: int = field(
        default=-1,
        metadata=_meta(
            "Go-Queue: offsets.retention.minutes in milliseconds, for retentions under a "
            "minute; -1: offsets.retention.minutes applies.",
            validator=Between(-1, INT64_MAX),
        ),
    )
    offsets_retention_check_interval_ms: int = field(
        default=600000,
        metadata=_meta("How often expired offsets are deleted.", validator=Between(1, INT64_MAX)),
    )
    group_initial_rebalance_delay_ms: int = field(
        default=3000,
        metadata=_meta(
            "How long a new group's first rebalance waits for more members to join (and again "
            "while they keep joining, up to the rebalance timeout).",
            validator=Between(0, 2**31 - 1),
        ),
    )
    group_min_session_timeout_ms: int = field(
        default=6000,
        metadata=_meta(
            "Shortest session timeout a classic group member may ask for.",
            validator=Between(0, 2**31 - 1),
        ),
    )
    group_max_session_timeout_ms: int = field(
        default=1_800_000,
        metadata=_meta(
            "Longest session timeout a classic group member may ask for.",
            validator=Between(0, 2**31 - 1),
        ),
    )
    group_max_size: int = field(
        default=2**31 - 1,
        metadata=_meta(
            "Most members a classic group may have (GROUP_MAX_SIZE_REACHED); 1 makes a group an "
            "exclusive subscription.",
            validator=Between(1, 2**31 - 1),
        ),
    )
    group_consumer_session_timeout_ms: int = field(
        default=45_000,
        metadata=_meta(
            "Session timeout of the members of KIP-848 consumer groups (group.protocol=consumer): "
            "a member that does not heartbeat for this long is removed.",
            validator=Between(1, 2**31 - 1),
        ),
    )
    group_consumer_heartbeat_interval_ms: int = field(
        default=5000,
        metadata=_meta(
            "How often members of KIP-848 consumer groups heartbeat; they learn of new "
            "assignments at their next heartbeat.",
            validator=Between(1, 2**31 - 1),
        ),
    )
    group_consumer_max_size: int = field(
        default=2**31 - 1,
        metadata=_meta(
            "Most members a KIP-848 consumer group may have (GROUP_MAX_SIZE_REACHED).",
            validator=Between(1, 2**31 - 1),
        ),
    )
    group_share_session_timeout_ms: int = field(
        default=45_000,
        metadata=_meta(
            "Default session timeout of share group members (group config "
            "`share.session.timeout.ms`): a member silent this long is removed and the records "
            "it holds are released.",
            validator=Between(1, 2**31 - 1),
        ),
    )
    group_share_heartbeat_interval_ms: int = field(
        default=5000,
        metadata=_meta(
            "Default heartbeat interval of share group members (group config "
            "`share.heartbeat.interval.ms`).",
            validator=Between(1, 2**31 - 1),
        ),
    )
    group_share_max_size: int = field(
        default=200,
        metadata=_meta(
            "Most members a share group may have (GROUP_MAX_SIZE_REACHED).",
            validator=Between(1, 1000),
        ),
    )
    group_share_record_lock_duration_ms: int = field(
        default=30_000,
        metadata=_meta(
            "Default acquisition lock of share groups (group config "
            "`share.record.lock.duration.ms`): a record not acknowledged this long after it was "
            "delivered is released for redelivery.",
            validator=Between(100, 3_600_000),
        ),
    )
    group_share_delivery_count_limit: int = field(
        default=5,
        metadata=_meta(
            "Default delivery limit of share groups (group config `share.delivery.count.limit`): "
            "a record delivered this often without being acknowledged goes to the dead-letter "
            "topic (or is archived).",
            validator=Between(1, 100),
        ),
    )
    group_share_partition_max_record_locks: int = field(
        default=2000,
        metadata=_meta(
            "Default in-flight bound of share groups (group config "
            "`share.partition.max.record.locks`): most offsets between a share partition's start "
            "offset and its end offset.",
            validator=Between(1, 100_000),
        ),
    )
    share_coordinator_state_topic_num_partitions: int = field(
        default=50,
        metadata=_meta(
            "Partitions of the internal `__share_group_state` topic, fixed when it is first "
            "created: each share group's state lives in the partition its id hashes to.",
            validator=Between(1, 10000),
        ),
    )
    log_segment_bytes: int = field(
        default=1024 * 1024 * 1024,
        metadata=_topic_default("Default size at which a segment rolls."),
    )
    log_segment_ms: int = field(
        default=7 * DAY_MS, metadata=_topic_default("Default age at which a segment rolls.")
    )
    log_retention_ms: int = field(
        default=7 * DAY_MS,
        metadata=_topic_default(
            "Default time data is kept before its segment is deleted; -1 keeps it."
        ),
    )
    log_retention_bytes: int = field(
        default=-1,
        metadata=_topic_default(
            "Default size a partition may reach before old segments go; -1: no limit."
        ),
    )
    log_retention_check_interval_ms: int = field(
        default=30000, metadata=_meta("How often retention is applied.", validator=at_least(1))
    )
    producer_id_expiration_ms: int = field(
        default=DAY_MS,
        metadata=_meta(
            "How long a partition remembers an idempotent producer after its last batch (by the "
            "batch's timestamp); a producer silent for longer may resume at any sequence.",
            validator=at_least(1),
        ),
    )
    producer_id_expiration_check_interval_ms: int = field(
        default=600000,
        metadata=_meta("How often expired producers are removed.", validator=at_least(1)),
    )
    log_flush_interval_messages: int = field(
        default=INT64_MAX, metadata=_topic_default("Default number of messages between two fsyncs.")
    )
    log_flush_interval_ms: int = field(
        default=1000, metadata=_topic_default("Default longest time appended data stays unsynced.")
    )
    log_cleanup_policy: str = field(
        default="delete", metadata=_topic_default("Default cleanup.policy of topics.")
    )
    compression_type: str = field(
        default="producer", metadata=_topic_default("Default compression.type of topics.")
    )
    min_insync_replicas: int = field(
        default=1, metadata=_topic_default("Default min.insync.replicas of topics.")
    )
    log_message_timestamp_type: str = field(
        default="CreateTime", metadata=_topic_default("Default message.timestamp.type of topics.")
    )
    log_index_interval_bytes: int = field(
        default=4096, metadata=_topic_default("Default index.interval.bytes of topics.")
    )
    log_segment_delete_delay_ms: int = field(
        default=60000, metadata=_topic_default("Default file.delete.delay.ms of topics.")
    )
    log_cleaner_delete_retention_ms: int = field(
        default=DAY_MS, metadata=_topic_default("Default delete.retention.ms of topics.")
    )
    log_cleaner_min_compaction_lag_ms: int = field(
        default=0, metadata=_topic_default("Default min.compaction.lag.ms of topics.")
    )
    log_cleaner_max_compaction_lag_ms: int = field(
        default=INT64_MAX, metadata=_topic_default("Default max.compaction.lag.ms of topics.")
    )
    log_cleaner_min_cleanable_ratio: float = field(
        default=0.5, metadata=_topic_default("Default min.cleanable.dirty.ratio of topics.")
    )
    log_cleaner_enable: bool = field(
        default=True,
        metadata=_meta("Run the log cleaner, which compacts topics with cleanup.policy=compact."),
    )
    log_cleaner_backoff_ms: int = field(
        default=15000,
        metadata=_meta(
            "How long the log cleaner sleeps when no compacted log needs cleaning.",
            validator=at_least(1),
        ),
    )
    log_cleaner_dedupe_buffer_size: int = field(
        default=32 * 1024 * 1024,
        metadata=_meta(
            "Memory budget of one cleaning pass's key map, counted as Kafka does (24 bytes a "
            "key; the Python map takes about 130): a pass covers as many distinct keys of the "
            "dirty section as fit, and the next pass continues.",
            validator=Between(1024, 2**31 - 1),
        ),
    )

    def advertised_host_port(self) -> tuple[str, int]:
        """The address clients are told to use: `advertised`, or else the listen address."""
        return parse_host_port(self.advertised or self.listen)

    def voter_addresses(self) -> dict[int, str]:
        """Node id -> Raft address of the configured voters; empty for a single node."""
        return parse_voters(self.voters) if self.voters else {}

    def raft_route_addresses(self) -> dict[str, str]:
        """Listed Raft address -> the address this node connects to for that voter."""
        if not self.raft_routes:
            return {}
        voters = self.voter_addresses()
        return {voters[node]: route for node, route in parse_voters(self.raft_routes).items()}

    def is_voter(self) -> bool:
        """Whether this node votes in the metadata quorum (a single node always does)."""
        voters = self.voter_addresses()
        return not voters or self.node_id in voters

    def is_clustered(self) -> bool:
        """Whether the quorum has (or may have) other members than this node."""
        voters = self.voter_addresses()
        return bool(voters) and set(voters) != {self.node_id}


def parse_voters(value: str) -> dict[int, str]:
    """Parse `1@host:port,2@host:port` (Kafka's controller.quorum.voters); ValueError if
    malformed."""
    voters: dict[int, str] = {}
    for item in value.split(","):
        node, at, address = item.strip().partition("@")
        if not at or not node.strip().isdigit():
            raise ValueError(
                f"{item.strip()!r} is not NODE_ID@HOST:PORT; write for example "
                "1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293"
            )
        parse_host_port(address)
        if int(node) in voters:
            raise ValueError(f"node id {node} is listed twice")
        voters[int(node)] = address.strip()
    return voters


def parse_host_port(value: str) -> tuple[str, int]:
    """Split `host:port` (IPv6 hosts in brackets: `[::1]:9092`); raise ValueError if malformed."""
    host, sep, port_text = value.strip().rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError("expected HOST:PORT, for example 127.0.0.1:9092")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        ipaddress.IPv6Address(host)
    elif ":" in host:
        raise ValueError("write an IPv6 host in brackets, for example [::1]:9092")
    port = int(port_text)
    if port > 65535:
        raise ValueError("the port must be between 0 and 65535")
    return host, port


def load_settings(
    cli: Mapping[str, object], config_file: Path | None, environ: Mapping[str, str]
) -> BrokerSettings:
    """Merge the sources (command line > `GOQUEUE_*` environment > TOML file > defaults),
    convert and validate every value, and raise SettingsError naming the culprit."""
    raw: dict[str, tuple[object, str]] = {}
    if config_file is not None:
        for key, value in _flatten(_read_toml(config_file)):
            where = f"{key} in config file {config_file}"
            raw[_field_name(key, where)] = (value, where)
    for key, value in environ.items():
        name = _normalize(key[len(ENV_PREFIX) :]) if key.startswith(ENV_PREFIX) else ""
        if name in _FIELDS:
            raw[name] = (value, f"environment variable {key}")
    for key, value in cli.items():
        if value is not None:
            where = f"option --{key.replace('_', '-')}"
            raw[_field_name(key, where)] = (value, where)
    values: dict[str, Any] = {name: _convert(name, *pair) for name, pair in raw.items()}
    settings = BrokerSettings(**values)
    _check_advertised(settings)
    return _check_cluster(settings)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise SettingsError(f"Cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"Config file {path} is not valid TOML: {exc}") from exc


def _flatten(table: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Yield dotted names, so `log.retention.ms = 1` (a nested table in TOML) works as written."""
    for key, value in table.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _normalize(name: str) -> str:
    """`log.retention.ms`, `LOG_RETENTION_MS` and `log-retention-ms` all name one field."""
    normalized = name.strip().lower().replace(".", "_").replace("-", "_")
    return ALIASES.get(normalized, normalized)


def _field_name(key: str, where: str) -> str:
    name = _normalize(key)
    if name not in _FIELDS:
        raise SettingsError(
            f"Unknown setting {where}. Known settings (write them with dots or underscores): "
            + ", ".join(_FIELDS)
        )
    return name


def _convert(name: str, value: object, where: str) -> object:
    """Turn a raw value (a string from the environment, anything from TOML or the CLI) into
    the field's type and check it."""
    spec = _FIELDS[name]
    try:
        converted = (
            _to_voters if name in ("voters", "raft_routes") else _CONVERTERS[_TYPES[name]]
        )(value)
        if spec.metadata["address"] and converted is not None:
            parse_host_port(str(converted))
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"Invalid value {value!r} for {where}: {exc}") from exc
    problem = _problem(name, converted)
    if problem:
        raise SettingsError(f"Invalid value {converted} for {where}: {problem}")
    return converted


def _problem(name: str, value: object) -> str | None:
    """A broker default obeys the same rules as the topic config it is the default of."""
    entry = _TOPIC_DEFAULTS.get(name)
    if entry is not None:
        out_of_range = entry.value_range.check(value) if entry.value_range else None
        if out_of_range:
            return out_of_range
        try:
            entry.parse(str(value))
        except InvalidConfigError as exc:
            return exc.problem
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        validator: Validator = _FIELDS[name].metadata["validator"] or _INT64
        return validator.check(value)
    return None


def _to_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError("expected a whole number")
    try:
        return int(value)
    except ValueError:
        raise ValueError("expected a whole number") from None


def _to_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _to_float(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError("expected a number")
    try:
        return float(value)
    except ValueError:
        raise ValueError("expected a number") from None


def _to_str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _to_optional_str(value: object) -> str | None:
    return _to_str(value) or None


def _to_path(value: object) -> Path:
    if not isinstance(value, str | Path):
        raise TypeError("expected a directory path")
    return Path(value).expanduser()


def _to_optional_path(value: object) -> Path | None:
    return _to_path(value) if value else None


def _to_voters(value: object) -> str | None:
    text = _to_optional_str(value)
    if text:
        parse_voters(text)
    return text


_CONVERTERS: dict[object, Callable[[object], object]] = {
    int: _to_int,
    float: _to_float,
    bool: _to_bool,
    str: _to_str,
    str | None: _to_optional_str,
    Path: _to_path,
    Path | None: _to_optional_path,
}

_FIELDS = {f.name: f for f in fields(BrokerSettings)}
_TYPES = typing.get_type_hints(BrokerSettings)
_INT64 = Between(-(2**63), INT64_MAX)
_TOPIC_DEFAULTS: dict[str, ConfigEntry] = {
    entry.default_setting: entry for entry in TOPIC_CONFIGS if entry.default_setting is not None
}


def _check_advertised(settings: BrokerSettings) -> None:
    host, port = settings.advertised_host_port()
    if host in WILDCARD_HOSTS or (settings.advertised is not None and port == 0):
        raise SettingsError(
            f"Clients cannot connect to {settings.advertised or settings.listen}: set the "
            "advertised address (--advertised HOST:PORT or GOQUEUE_ADVERTISED) to a host and "
            "port that clients can reach."
        )


def _check_cluster(settings: BrokerSettings) -> BrokerSettings:
    """A voter must use its listed Raft address, and a cluster needs a shared secret (read
    from `cluster_secret_file` when given)."""
    voters = settings.voter_addresses()
    listed = voters.get(settings.node_id)
    if listed is not None and parse_host_port(listed) != parse_host_port(settings.raft):
        raise SettingsError(
            f"Node {settings.node_id} is listed in voters at {listed}, but its Raft address "
            f"(--raft) is {settings.raft}: make them the same."
        )
    unknown = set(parse_voters(settings.raft_routes) if settings.raft_routes else {}) - set(voters)
    if unknown:
        raise SettingsError(
            f"Raft routes name nodes {sorted(unknown)} that are not voters: route only nodes "
            "listed in --voters."
        )
    if settings.cluster_secret_file is not None:
        try:
            secret = settings.cluster_secret_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(
                f"Cannot read the cluster secret file {settings.cluster_secret_file}: {exc}"
            ) from exc
        if not secret:
            raise SettingsError(f"The cluster secret file {settings.cluster_secret_file} is empty.")
        settings = replace(settings, cluster_secret=secret)
    if settings.is_clustered() and not settings.cluster_secret:
        raise SettingsError(
            "A node of a cluster needs the cluster's secret: pass --cluster-secret-file FILE "
            "(the same file content on every node) or set GOQUEUE_CLUSTER_SECRET."
        )
    return settings
