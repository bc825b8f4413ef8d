"""The SDK's admin client: topics, partitions, configs, cluster description, offsets, record
deletion and consumer groups (offsets, resets, lag).

Every method is one coroutine that finds the broker its request must go to (the controller for
topic changes, a group's coordinator, a partition's leader, a broker for its own configs), sends
it over the cluster's shared connections and turns error codes into `goqueue.client` exceptions.
"""

import datetime
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kio.schema.errors import ErrorCode

from goqueue.client import groups
from goqueue.client.cluster import DEFAULT_BOOTSTRAP, Cluster
from goqueue.client.configs import (
    ALTER_CONFIGS,
    DESCRIBE_CONFIGS,
    INCREMENTAL_ALTER_CONFIGS,
    AlterConfigOp,
    ConfigEntry,
    ConfigResource,
    ResourceType,
    alter_configs_request,
    config_entries,
    describe_configs_request,
    incremental_alter_configs_request,
)
from goqueue.client.connection import DEFAULT_REQUEST_TIMEOUT, Connection
from goqueue.client.delayed import cancel_record, topic_of
from goqueue.client.errors import KafkaError, error_for, raise_for, topic_error
from goqueue.client.groups import (
    Committed,
    GroupDescription,
    ListedGroup,
    OffsetMove,
    OffsetReset,
)
from goqueue.client.lifecycle import AsyncClient
from goqueue.client.metadata import BrokerAddress, TopicMetadata, TopicPartition
from goqueue.client.offsets import OffsetAndTimestamp, list_offsets
from goqueue.client.producer import produce
from goqueue.client.protocol import Fields
from goqueue.coordinator.group.lag import PartitionLag

CREATE_TOPICS = 19
DELETE_TOPICS = 20
DELETE_RECORDS = 21
CREATE_PARTITIONS = 37
DESCRIBE_CLUSTER = 60
DEFAULT_ADMIN_TIMEOUT_MS = 30_000
HIGH_WATERMARK = -1
"""`delete_records` offset meaning: everything written so far."""


@dataclass(frozen=True, slots=True)
class NewTopic:
    """A topic to create; -1 partitions or replication factor means the broker's default."""

    name: str
    num_partitions: int = -1
    replication_factor: int = -1
    configs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CreatedTopic:
    """What the broker created; counts are -1 and configs empty from CreateTopics before v5."""

    name: str
    topic_id: uuid.UUID | None
    num_partitions: int
    replication_factor: int
    configs: Mapping[str, str | None]


@dataclass(frozen=True, slots=True)
class ClusterDescription:
    """The cluster's id, the node id of its controller and its brokers' addresses."""

    cluster_id: str | None
    controller_id: int
    brokers: tuple[BrokerAddress, ...]


def create_topics_request(
    topics: Sequence[NewTopic], validate_only: bool, timeout_ms: int
) -> Fields:
    return {
        "topics": [
            {
                "name": topic.name,
                "num_partitions": topic.num_partitions,
                "replication_factor": topic.replication_factor,
                "assignments": [],
                "configs": [{"name": k, "value": v} for k, v in topic.configs.items()],
            }
            for topic in topics
        ],
        "timeout": datetime.timedelta(milliseconds=timeout_ms),
        "validate_only": validate_only,
    }


def delete_topics_request(names: Sequence[str], timeout_ms: int) -> Fields:
    """Names go in both layouts: `topic_names` before v6, `topics` from v6."""
    return {
        "topic_names": list(names),
        "topics": [{"name": name, "topic_id": None} for name in names],
        "timeout": datetime.timedelta(milliseconds=timeout_ms),
    }


def create_partitions_request(
    topic: str, total: int, validate_only: bool, timeout_ms: int
) -> Fields:
    return {
        "topics": [{"name": topic, "count": total, "assignments": None}],
        "timeout": datetime.timedelta(milliseconds=timeout_ms),
        "validate_only": validate_only,
    }


def delete_records_request(before: Mapping[TopicPartition, int], timeout_ms: int) -> Fields:
    topics: dict[str, list[dict[str, int]]] = {}
    for tp, offset in before.items():
        topics.setdefault(tp.topic, []).append({"partition_index": tp.partition, "offset": offset})
    return {
        "topics": [{"name": name, "partitions": parts} for name, parts in topics.items()],
        "timeout": datetime.timedelta(milliseconds=timeout_ms),
    }


DESCRIBE_CLUSTER_REQUEST: Fields = {
    "include_cluster_authorized_operations": False,
    "endpoint_type": 1,
    "include_fenced_brokers": False,
}
"""Endpoint type 1: brokers (not controllers)."""


class Admin(AsyncClient):
    """Administrative requests against a cluster; use as `async with Admin(bootstrap) as admin`.

    `bootstrap_servers` is `host:port`, several of them comma-separated, or a list of them;
    the client learns the other brokers from the cluster. `request_timeout_ms` bounds every
    request, including retries while a group coordinator loads; topic changes also give the
    controller `timeout_ms` to apply them.
    """

    def __init__(
        self,
        bootstrap_servers: str | Sequence[str] = DEFAULT_BOOTSTRAP,
        *,
        client_id: str | None = "goqueue-admin",
        request_timeout_ms: int = int(DEFAULT_REQUEST_TIMEOUT * 1000),
    ) -> None:
        self.cluster = Cluster(
            bootstrap_servers, client_id=client_id, request_timeout=request_timeout_ms / 1000
        )

    async def start(self) -> None:
        """Connect to the cluster (`async with` does this)."""
        await self.cluster.connect()

    async def close(self) -> None:
        """Close every connection; the admin cannot be used afterwards."""
        await self.cluster.close()

    async def create_topic(
        self,
        name: str,
        num_partitions: int = -1,
        replication_factor: int = -1,
        configs: Mapping[str, str] | None = None,
        *,
        validate_only: bool = False,
    ) -> CreatedTopic:
        """Create one topic (-1: the broker's default partitions or replication factor) and
        wait until its partitions have leaders, so that it can be used right away."""
        topic = NewTopic(name, num_partitions, replication_factor, configs or {})
        (created,) = await self.create_topics([topic], validate_only=validate_only)
        if not validate_only:
            await self.cluster.topic(name, just_created=True)
        return created

    async def create_topics(
        self,
        topics: Sequence[NewTopic],
        *,
        validate_only: bool = False,
        timeout_ms: int = DEFAULT_ADMIN_TIMEOUT_MS,
    ) -> list[CreatedTopic]:
        """Create topics (or only check that they could be); raises the first topic's error."""
        request = create_topics_request(topics, validate_only, timeout_ms)
        response = await self._to_controller(CREATE_TOPICS, request, timeout_ms)
        for result in response.topics:
            if result.error_code != ErrorCode.none:
                raise topic_error(result.error_code, result.name, result.error_message)
        return [
            CreatedTopic(
                name=result.name,
                topic_id=getattr(result, "topic_id", None),
                num_partitions=getattr(result, "num_partitions", -1),
                replication_factor=getattr(result, "replication_factor", -1),
                configs={c.name: c.value for c in getattr(result, "configs", None) or ()},
            )
            for result in response.topics
        ]

    async def delete_topics(
        self, names: Sequence[str], *, timeout_ms: int = DEFAULT_ADMIN_TIMEOUT_MS
    ) -> None:
        """Delete topics by name; raises the first topic's error."""
        request = delete_topics_request(names, timeout_ms)
        response = await self._to_controller(DELETE_TOPICS, request, timeout_ms)
        for name in names:
            self.cluster.invalidate(name)
        for result in response.responses:
            if result.error_code != ErrorCode.none:
                message = getattr(result, "error_message", None)
                raise topic_error(result.error_code, result.name or "?", message)

    async def list_topics(self, *, include_internal: bool = False) -> list[TopicMetadata]:
        """Every topic, sorted by name."""
        metadata = await self.cluster.refresh(None)
        return sorted(
            (t for t in metadata.topics.values() if include_internal or not t.is_internal),
            key=lambda t: t.name,
        )

    async def describe_topics(self, names: Sequence[str]) -> list[TopicMetadata]:
        """Metadata of the named topics, in the order given; raises if one does not exist."""
        metadata = await self.cluster.refresh(list(names))
        described = []
        for name in names:
            topic = metadata.topics.get(name)
            code = ErrorCode.unknown_topic_or_partition if topic is None else topic.error
            if topic is None or code != ErrorCode.none:
                raise topic_error(code, name)
            described.append(topic)
        return described

    async def describe_topic_configs(self, name: str) -> dict[str, str | None]:
        """A topic's effective configs; raises `UnsupportedVersionError` if the broker does not
        serve DescribeConfigs."""
        entries = await self.describe_configs(ConfigResource.topic(name))
        return {entry.name: entry.value for entry in entries}

    async def describe_configs(
        self,
        resource: ConfigResource,
        names: Sequence[str] | None = None,
        *,
        synonyms: bool = False,
        documentation: bool = False,
    ) -> list[ConfigEntry]:
        """The configs of a topic or broker (all, or only `names`), with where each value comes
        from; `synonyms` adds every level that sets it, `documentation` what it is for."""
        request = describe_configs_request(resource, names, synonyms, documentation)
        connection = await self._connection_for(resource)
        response = await connection.request(
            DESCRIBE_CONFIGS, request, timeout=self.cluster.request_timeout
        )
        (result,) = response.results
        if result.error_code != ErrorCode.none:
            raise _resource_error(resource, result.error_code, result.error_message)
        return config_entries(result)

    async def alter_configs(
        self,
        resource: ConfigResource,
        configs: Mapping[str, str | None],
        *,
        validate_only: bool = False,
    ) -> None:
        """Replace the dynamic configs of a topic or broker with `configs` (AlterConfigs):
        every config not named goes back to its default. Prefer `incremental_alter_configs`,
        which changes only what it names."""
        request = alter_configs_request(resource, configs, validate_only)
        await self._alter(ALTER_CONFIGS, resource, request)

    async def incremental_alter_configs(
        self,
        resource: ConfigResource,
        ops: Sequence[AlterConfigOp],
        *,
        validate_only: bool = False,
    ) -> None:
        """Apply incremental changes (set, delete, append, subtract) to a topic's or broker's
        configs, all or none of them; the broker applies them without a restart."""
        request = incremental_alter_configs_request(resource, ops, validate_only)
        await self._alter(INCREMENTAL_ALTER_CONFIGS, resource, request)

    async def _alter(self, api_key: int, resource: ConfigResource, request: Fields) -> None:
        connection = await self._connection_for(resource)
        response = await connection.request(api_key, request, timeout=self.cluster.request_timeout)
        (result,) = response.responses
        if result.error_code != ErrorCode.none:
            raise _resource_error(resource, result.error_code, result.error_message)
        if resource.type is ResourceType.TOPIC:
            self.cluster.invalidate(resource.name)

    async def create_partitions(
        self,
        topic: str,
        total: int,
        *,
        validate_only: bool = False,
        timeout_ms: int = DEFAULT_ADMIN_TIMEOUT_MS,
    ) -> None:
        """Grow a topic to `total` partitions; existing partitions keep their data."""
        request = create_partitions_request(topic, total, validate_only, timeout_ms)
        response = await self._to_controller(CREATE_PARTITIONS, request, timeout_ms)
        self.cluster.invalidate(topic)
        (result,) = response.results
        if result.error_code != ErrorCode.none:
            raise topic_error(result.error_code, topic, result.error_message)

    async def delete_records(
        self,
        before: Mapping[TopicPartition, int],
        *,
        timeout_ms: int = DEFAULT_ADMIN_TIMEOUT_MS,
    ) -> dict[TopicPartition, int]:
        """Delete each partition's records before an offset (`HIGH_WATERMARK`: all of them);
        returns the new log start offsets."""
        by_leader = await self.cluster.leaders(before)
        starts: dict[TopicPartition, int] = {}
        for node_id, tps in by_leader.items():
            request = delete_records_request({tp: before[tp] for tp in tps}, timeout_ms)
            connection = await self.cluster.connection(node_id)
            timeout = self.cluster.request_timeout + timeout_ms / 1000
            response = await connection.request(DELETE_RECORDS, request, timeout=timeout)
            for topic in response.topics:
                for partition in topic.partitions:
                    tp = TopicPartition(topic.name, partition.partition_index)
                    message = None
                    if partition.error_code == ErrorCode.offset_out_of_range:
                        message = f"offset {before[tp]} is beyond the high watermark"
                    self.cluster.check(partition.error_code, tp.topic, tp.partition, message)
                    starts[tp] = partition.low_watermark
        return starts

    async def describe_cluster(self) -> ClusterDescription:
        """Cluster id, controller and brokers (DescribeCluster, or Metadata on older brokers)."""
        connection = await self.cluster.any_connection()
        if connection.version(DESCRIBE_CLUSTER) is None:
            metadata = await self.cluster.refresh([])
            return ClusterDescription(
                metadata.cluster_id, metadata.controller_id, tuple(metadata.brokers.values())
            )
        response = await connection.request(DESCRIBE_CLUSTER, DESCRIBE_CLUSTER_REQUEST)
        raise_for(response.error_code, response.error_message)
        return ClusterDescription(
            cluster_id=response.cluster_id,
            controller_id=response.controller_id,
            brokers=tuple(
                BrokerAddress(b.broker_id, b.host, b.port, b.rack) for b in response.brokers
            ),
        )

    async def list_offsets(
        self, queries: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, OffsetAndTimestamp]:
        """See `goqueue.client.offsets.list_offsets`."""
        return await list_offsets(self.cluster, queries)

    async def list_groups(
        self, *, states: Sequence[str] = (), types: Sequence[str] = ()
    ) -> list[ListedGroup]:
        """Consumer groups of the cluster, optionally only those in `states` or of `types`."""
        return await groups.list_groups(self.cluster, states, types)

    async def describe_group(self, group_id: str) -> GroupDescription:
        """A group's state, protocol and members (state Dead if it does not exist)."""
        return await groups.describe_group(self.cluster, group_id)

    async def delete_groups(self, group_ids: Sequence[str]) -> None:
        """Delete groups that have no members, with their committed offsets."""
        await groups.delete_groups(self.cluster, group_ids)

    async def list_group_offsets(
        self, group_id: str, partitions: Sequence[TopicPartition] | None = None
    ) -> dict[TopicPartition, Committed]:
        """A group's committed offsets (all, or of the given partitions)."""
        return await groups.fetch_committed(self.cluster, group_id, partitions)

    async def alter_group_offsets(
        self, group_id: str, offsets: Mapping[TopicPartition, Committed | int]
    ) -> None:
        """Set a group's committed offsets; the broker refuses while the group has members."""
        committed = {
            tp: c if isinstance(c, Committed) else Committed(c) for tp, c in offsets.items()
        }
        await groups.commit_offsets(self.cluster, group_id, committed)

    async def delete_group_offsets(
        self, group_id: str, partitions: Sequence[TopicPartition]
    ) -> None:
        """Forget a group's committed offsets of `partitions`; refused (GROUP_SUBSCRIBED_TO_TOPIC)
        for a topic an active member consumes."""
        await groups.delete_offsets(self.cluster, group_id, partitions)

    async def reset_group_offsets(
        self,
        group_id: str,
        to: OffsetReset,
        partitions: Sequence[TopicPartition] | None = None,
        *,
        dry_run: bool = False,
    ) -> dict[TopicPartition, OffsetMove]:
        """Move an inactive group's offsets of `partitions` (None: all it has committed) to
        `to`, within the log; returns each partition's old and new offset. With `dry_run`
        nothing is committed. Raises `NonEmptyGroupError` while the group has members."""
        plan = await groups.plan_reset(self.cluster, group_id, to, partitions)
        if plan and not dry_run:
            await groups.commit_offsets(
                self.cluster, group_id, {tp: Committed(move.new) for tp, move in plan.items()}
            )
        return plan

    async def group_lag(self, group_id: str) -> list[PartitionLag]:
        """Per partition the group committed to or has assigned: committed offset, log start
        and end, lag in messages and how long the next unconsumed message has waited."""
        group = await self.describe_group(group_id)
        committed = await self.list_group_offsets(group_id)
        return await groups.lag(self.cluster, group, committed)

    async def cancel_delayed(self, schedule_id: str, topic: str | None = None) -> None:
        """Cancel a pending delayed message: it will never be delivered. The topic is read
        from the id when it has the SDK's or the broker's form, else it must be given. Raises
        `InvalidRecordError`, with the broker's reason, when no message with this id is
        pending (delivered, cancelled, never parked) or it is being delivered right now."""
        name = topic or topic_of(schedule_id)
        if name is None:
            raise ValueError(f"say which topic the delayed message {schedule_id!r} is for")
        await produce(self.cluster, {TopicPartition(name, 0): [cancel_record(schedule_id)]})

    async def _connection_for(self, resource: ConfigResource) -> Connection:
        """A broker's own settings are only known to that broker; the rest to any of them."""
        node_id = resource.node_id
        if node_id is None:
            return await self.cluster.any_connection()
        return await self.cluster.connection(node_id)

    async def _to_controller(self, api_key: int, request: Fields, timeout_ms: int) -> Any:
        connection = await self.cluster.controller()
        timeout = self.cluster.request_timeout + timeout_ms / 1000
        return await connection.request(api_key, request, timeout=timeout)


def _resource_error(resource: ConfigResource, code: ErrorCode, message: str | None) -> KafkaError:
    if resource.type is ResourceType.TOPIC:
        return topic_error(code, resource.name, message)
    return error_for(code, f"{resource}: {message or code.name}")
