"""Consumer group administration: find a group's coordinator, list, describe and delete groups,
read, set, reset and delete committed offsets, and compute lag.

Group requests go to the group's coordinator (FindCoordinator). While a coordinator loads its
state after a restart it answers COORDINATOR_LOAD_IN_PROGRESS, and a moved group answers
NOT_COORDINATOR: those are retried, with a fresh coordinator lookup, until the request timeout.
"""

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from kio.schema.errors import ErrorCode

from goqueue.client.cluster import Cluster
from goqueue.client.connection import Connection
from goqueue.client.errors import ClientError, KafkaError, error_for, raise_for
from goqueue.client.fetcher import FetchLimits, fetch
from goqueue.client.metadata import TopicPartition
from goqueue.client.offsets import EARLIEST, LATEST, list_offsets
from goqueue.client.protocol import Fields
from goqueue.coordinator.group.consumer_protocol import ConsumerProtocolError, assigned_partitions
from goqueue.coordinator.group.lag import PartitionLag, partition_lag

OFFSET_COMMIT = 8
OFFSET_FETCH = 9
FIND_COORDINATOR = 10
DESCRIBE_GROUPS = 15
LIST_GROUPS = 16
DELETE_GROUPS = 42
OFFSET_DELETE = 47
CONSUMER_GROUP_DESCRIBE = 69
CONSUMER_PROTOCOL_TYPE = "consumer"
GROUP_KEY_TYPE = 0
RETRY_BACKOFF_S = 0.1
_COORDINATOR_ERRORS = frozenset(
    {
        ErrorCode.coordinator_load_in_progress,
        ErrorCode.coordinator_not_available,
        ErrorCode.not_coordinator,
    }
)
INACTIVE_STATES = frozenset({"Empty", "Dead"})
"""States in which a group has no members, so an administrator may change its offsets."""
_PEEK = FetchLimits(max_wait_ms=0, min_bytes=0, partition_max_bytes=64 * 1024)
"""Enough of a partition to read the timestamp of the record at an offset."""
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ListedGroup:
    group_id: str
    protocol_type: str
    state: str
    """Empty when the broker does not report states (ListGroups before v4)."""
    group_type: str
    """`classic` or `consumer` (KIP-848); empty before ListGroups v5."""


@dataclass(frozen=True, slots=True)
class GroupMember:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    """The member's subscription in the group's protocol (empty unless the group is Stable)."""
    assignment: bytes
    """The member's assignment, encoded by the group's protocol."""
    partitions: tuple[TopicPartition, ...] = ()
    """The partitions the member owns, for groups of consumers (either protocol)."""


@dataclass(frozen=True, slots=True)
class GroupDescription:
    group_id: str
    state: str
    """Kafka's state name: Empty, PreparingRebalance, CompletingRebalance, Stable or Dead."""
    protocol_type: str
    protocol: str
    """The assignor: agreed by the members of a classic group (set while it is Stable), on
    the broker for a consumer group."""
    members: tuple[GroupMember, ...]
    group_type: str = "classic"
    """`classic` (JoinGroup/SyncGroup) or `consumer` (KIP-848)."""


@dataclass(frozen=True, slots=True)
class Committed:
    """A committed offset, with the leader epoch and metadata string it was committed with."""

    offset: int
    leader_epoch: int = -1
    metadata: str = ""


@dataclass(frozen=True, slots=True)
class OffsetReset:
    """Where `reset_offsets` moves a group's offsets; build it with one of the class methods.
    New offsets are kept within the log, as Kafka's reset tool keeps them."""

    kind: str
    value: int = 0

    @classmethod
    def earliest(cls) -> "OffsetReset":
        """To the first offset still in the log."""
        return cls("earliest")

    @classmethod
    def latest(cls) -> "OffsetReset":
        """To the end of the log: the group skips everything written so far."""
        return cls("latest")

    @classmethod
    def timestamp(cls, timestamp_ms: int) -> "OffsetReset":
        """To the first message with a timestamp at or after `timestamp_ms` (else the end)."""
        return cls("timestamp", timestamp_ms)

    @classmethod
    def offset(cls, offset: int) -> "OffsetReset":
        """To one offset on every partition."""
        return cls("offset", offset)

    @classmethod
    def shift(cls, by: int) -> "OffsetReset":
        """Move each committed offset by `by` (negative: re-read that many messages)."""
        return cls("shift", by)


@dataclass(frozen=True, slots=True)
class OffsetMove:
    """A partition's committed offset before a reset (None: none) and after it."""

    current: int | None
    new: int


async def with_coordinator(
    cluster: Cluster, group_id: str, call: Callable[[Connection], Awaitable[T]]
) -> T:
    """Run `call` against the group's coordinator, retrying coordinator errors (the group is
    loading, moved, or its coordinator is not ready yet) until the request timeout."""
    deadline = time.monotonic() + cluster.request_timeout
    while True:
        try:
            return await call(await _find_coordinator(cluster, group_id))
        except KafkaError as exc:
            if exc.code not in _COORDINATOR_ERRORS or time.monotonic() >= deadline:
                raise
        await asyncio.sleep(RETRY_BACKOFF_S)


async def _find_coordinator(cluster: Cluster, group_id: str) -> Connection:
    return await cluster.connection(await find_coordinator(cluster, group_id))


async def find_coordinator(cluster: Cluster, group_id: str) -> int:
    """The node id of the group's coordinator, known to the cluster's broker list."""
    connection = await cluster.any_connection()
    request = {"key": group_id, "key_type": GROUP_KEY_TYPE, "coordinator_keys": [group_id]}
    response = await connection.request(FIND_COORDINATOR, request, timeout=cluster.request_timeout)
    found = response.coordinators[0] if hasattr(response, "coordinators") else response
    raise_for(found.error_code, found.error_message)
    if found.node_id not in cluster.brokers:
        await cluster.refresh([])
    return int(found.node_id)


async def list_groups(
    cluster: Cluster, states: Sequence[str] = (), types: Sequence[str] = ()
) -> list[ListedGroup]:
    """Every group of every broker, sorted by id; `states` and `types` filter on the broker
    (ListGroups v4+ and v5+)."""
    await cluster.refresh([])
    request = {"states_filter": list(states), "types_filter": list(types)}
    listed: dict[str, ListedGroup] = {}
    for node_id in cluster.brokers:
        connection = await cluster.connection(node_id)
        response = await connection.request(LIST_GROUPS, request, timeout=cluster.request_timeout)
        raise_for(response.error_code)
        for g in response.groups:
            listed[g.group_id] = ListedGroup(
                g.group_id,
                g.protocol_type,
                getattr(g, "group_state", ""),
                getattr(g, "group_type", ""),
            )
    return sorted(listed.values(), key=lambda g: g.group_id)


async def describe_group(cluster: Cluster, group_id: str) -> GroupDescription:
    """A group's state and members, whichever protocol it uses (DescribeGroups, then
    ConsumerGroupDescribe for a KIP-848 group); a group that does not exist is Dead."""

    async def call(connection: Connection) -> GroupDescription:
        request = {"groups": [group_id], "include_authorized_operations": False}
        response = await connection.request(
            DESCRIBE_GROUPS, request, timeout=cluster.request_timeout
        )
        (group,) = response.groups
        dead = group.error_code == ErrorCode.group_id_not_found or (
            group.error_code == ErrorCode.none and group.group_state == "Dead"
        )
        if dead and connection.version(CONSUMER_GROUP_DESCRIBE) is not None:
            return await _describe_consumer_group(cluster, connection, group_id)
        if dead:
            return GroupDescription(group_id, "Dead", "", "", ())
        raise_for(group.error_code, getattr(group, "error_message", None))
        consumers = group.protocol_type == CONSUMER_PROTOCOL_TYPE
        return GroupDescription(
            group_id=group.group_id,
            state=group.group_state,
            protocol_type=group.protocol_type,
            protocol=group.protocol_data,
            members=tuple(
                GroupMember(
                    m.member_id,
                    getattr(m, "group_instance_id", None),
                    m.client_id,
                    m.client_host,
                    m.member_metadata,
                    m.member_assignment,
                    _decoded(m.member_assignment) if consumers else (),
                )
                for m in group.members
            ),
        )

    return await with_coordinator(cluster, group_id, call)


async def _describe_consumer_group(
    cluster: Cluster, connection: Connection, group_id: str
) -> GroupDescription:
    request = {"group_ids": [group_id], "include_authorized_operations": False}
    response = await connection.request(
        CONSUMER_GROUP_DESCRIBE, request, timeout=cluster.request_timeout
    )
    (group,) = response.groups
    if group.error_code == ErrorCode.group_id_not_found:
        return GroupDescription(group_id, "Dead", "", "", ())
    raise_for(group.error_code, group.error_message)
    return GroupDescription(
        group_id=group.group_id,
        state=group.group_state,
        protocol_type=CONSUMER_PROTOCOL_TYPE,
        protocol=group.assignor_name,
        members=tuple(
            GroupMember(
                m.member_id,
                m.instance_id,
                m.client_id,
                m.client_host,
                b"",
                b"",
                tuple(
                    TopicPartition(tp.topic_name, p)
                    for tp in m.assignment.topic_partitions
                    for p in sorted(tp.partitions)
                ),
            )
            for m in group.members
        ),
        group_type="consumer",
    )


def _decoded(assignment: bytes) -> tuple[TopicPartition, ...]:
    """A classic consumer's assignment (ConsumerProtocolAssignment), or none if it does not
    parse (another client's protocol)."""
    try:
        decoded = assigned_partitions(assignment)
    except ConsumerProtocolError:
        return ()
    return tuple(TopicPartition(t, p) for t, parts in sorted(decoded.items()) for p in parts)


async def delete_groups(cluster: Cluster, group_ids: Sequence[str]) -> None:
    """Delete groups without members, and their offsets; raises the first group's error."""
    for group_id in group_ids:

        async def call(connection: Connection, group_id: str = group_id) -> None:
            response = await connection.request(
                DELETE_GROUPS, {"groups_names": [group_id]}, timeout=cluster.request_timeout
            )
            (result,) = response.results
            if result.error_code != ErrorCode.none:
                raise _group_error(result.error_code, group_id)

        await with_coordinator(cluster, group_id, call)


async def fetch_committed(
    cluster: Cluster, group_id: str, partitions: Iterable[TopicPartition] | None = None
) -> dict[TopicPartition, Committed]:
    """The group's committed offsets (all of them, or of `partitions`; those without a
    committed offset are left out)."""
    wanted = None if partitions is None else sorted(set(partitions))

    async def call(connection: Connection) -> dict[TopicPartition, Committed]:
        return await fetch_committed_from(cluster, connection, group_id, wanted)

    return await with_coordinator(cluster, group_id, call)


async def fetch_committed_from(
    cluster: Cluster,
    connection: Connection,
    group_id: str,
    wanted: Sequence[TopicPartition] | None,
    *,
    require_stable: bool = False,
) -> dict[TopicPartition, Committed]:
    """OffsetFetch on a connection to the group's coordinator (a consumer keeps its own);
    `require_stable` waits out offsets of transactions still pending (read committed)."""
    topic_ids = await _topic_ids(cluster, {tp.topic for tp in wanted or ()})
    request = {
        **offset_fetch_request(group_id, wanted, topic_ids),
        "require_stable": require_stable,
    }
    response = await connection.request(OFFSET_FETCH, request, timeout=cluster.request_timeout)
    if hasattr(response, "groups"):
        (group,) = response.groups
        raise_for(group.error_code)
        topics = group.topics
    else:
        raise_for(getattr(response, "error_code", ErrorCode.none))
        topics = response.topics
    names = await _topic_names(cluster, topics)
    committed = {}
    for topic in topics:
        name = names[getattr(topic, "topic_id", None) or topic.name]
        for p in topic.partitions:
            raise_for(p.error_code, f"{name!r} partition {p.partition_index}")
            if p.committed_offset >= 0:
                committed[TopicPartition(name, p.partition_index)] = Committed(
                    p.committed_offset,
                    getattr(p, "committed_leader_epoch", -1),
                    p.metadata or "",
                )
    return committed


def offset_fetch_request(
    group_id: str,
    partitions: Sequence[TopicPartition] | None,
    topic_ids: Mapping[str, uuid.UUID | None],
) -> Fields:
    """Both layouts: a single group before v8, a list of groups from v8 (topics by id from
    v10)."""
    topics: list[dict[str, Any]] | None = None
    if partitions is not None:
        by_topic: dict[str, list[int]] = {}
        for tp in partitions:
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        topics = [
            {"name": name, "topic_id": topic_ids.get(name), "partition_indexes": p}
            for name, p in by_topic.items()
        ]
    return {
        "group_id": group_id,
        "topics": topics,
        "groups": [{"group_id": group_id, "topics": topics}],
        "require_stable": False,
    }


async def commit_offsets(
    cluster: Cluster, group_id: str, offsets: Mapping[TopicPartition, Committed]
) -> None:
    """Commit offsets as an administrator does (no member, generation -1): the broker accepts
    this only for a group without members, else answers UNKNOWN_MEMBER_ID."""

    async def call(connection: Connection) -> None:
        await commit_to(cluster, connection, group_id, offsets)

    await with_coordinator(cluster, group_id, call)


@dataclass(frozen=True, slots=True)
class MemberIdentity:
    """Who commits: a classic member's generation or a consumer group member's epoch; the
    default is nobody (an administrator, or a consumer without a group membership)."""

    generation: int = -1
    member_id: str = ""
    group_instance_id: str | None = None


async def commit_to(
    cluster: Cluster,
    connection: Connection,
    group_id: str,
    offsets: Mapping[TopicPartition, Committed],
    member: MemberIdentity = MemberIdentity(),
) -> None:
    """OffsetCommit on a connection to the group's coordinator; raises the first partition's
    error."""
    topic_ids = await _topic_ids(cluster, {tp.topic for tp in offsets})
    request = {
        **offset_commit_request(group_id, offsets, topic_ids),
        "generation_id_or_member_epoch": member.generation,
        "member_id": member.member_id,
        "group_instance_id": member.group_instance_id,
    }
    response = await connection.request(OFFSET_COMMIT, request, timeout=cluster.request_timeout)
    names = await _topic_names(cluster, response.topics)
    for topic in response.topics:
        name = names[getattr(topic, "topic_id", None) or topic.name]
        for p in topic.partitions:
            if p.error_code != ErrorCode.none:
                raise _group_error(
                    p.error_code, group_id, f"{name!r} partition {p.partition_index}"
                )


def offset_commit_request(
    group_id: str,
    offsets: Mapping[TopicPartition, Committed],
    topic_ids: Mapping[str, uuid.UUID | None],
) -> Fields:
    """A commit naming topics both ways (by id from v10)."""
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for tp, committed in sorted(offsets.items()):
        by_topic.setdefault(tp.topic, []).append(
            {
                "partition_index": tp.partition,
                "committed_offset": committed.offset,
                "committed_leader_epoch": committed.leader_epoch,
                "committed_metadata": committed.metadata,
            }
        )
    return {
        "group_id": group_id,
        "generation_id_or_member_epoch": -1,
        "member_id": "",
        "group_instance_id": None,
        "topics": [
            {"name": name, "topic_id": topic_ids.get(name), "partitions": parts}
            for name, parts in by_topic.items()
        ],
    }


async def _topic_ids(cluster: Cluster, names: Iterable[str]) -> dict[str, uuid.UUID | None]:
    return {name: (await cluster.topic(name)).topic_id for name in names}


async def _topic_names(cluster: Cluster, topics: Sequence[Any]) -> dict[Any, str]:
    """Names of response topics, which newer versions give by topic id."""
    names: dict[Any, str] = {}
    by_id = [t.topic_id for t in topics if getattr(t, "topic_id", None) is not None]
    if by_id:
        metadata = await cluster.refresh(None)
        names.update((t.topic_id, t.name) for t in metadata.topics.values())
        missing = [topic_id for topic_id in by_id if topic_id not in names]
        if missing:
            raise error_for(ErrorCode.unknown_topic_id, f"no topic has id {missing[0]}")
    names.update((t.name, t.name) for t in topics if getattr(t, "name", None))
    return names


def _group_error(code: ErrorCode, group_id: str, where: str | None = None) -> KafkaError:
    """A group error phrased for the person who named the group."""
    reasons = {
        ErrorCode.group_id_not_found: "does not exist",
        ErrorCode.non_empty_group: "still has active members",
        ErrorCode.unknown_member_id: "has active members, so only they may commit",
    }
    reason = reasons.get(code, f"{code.name.replace('_', ' ')} (Kafka error {int(code)})")
    prefix = f"group {group_id!r}" + (f", {where}," if where else "")
    return error_for(code, f"{prefix} {reason}")


async def delete_offsets(
    cluster: Cluster, group_id: str, partitions: Sequence[TopicPartition]
) -> None:
    """Forget a group's committed offsets of some partitions (OffsetDelete); the broker refuses
    with GROUP_SUBSCRIBED_TO_TOPIC while a member consumes one of their topics."""
    request = offset_delete_request(group_id, partitions)

    async def call(connection: Connection) -> None:
        response = await connection.request(OFFSET_DELETE, request, timeout=cluster.request_timeout)
        if response.error_code != ErrorCode.none:
            raise _group_error(response.error_code, group_id)
        for topic in response.topics:
            for p in topic.partitions:
                if p.error_code != ErrorCode.none:
                    where = f"{topic.name!r} partition {p.partition_index}"
                    raise _group_error(p.error_code, group_id, where)

    await with_coordinator(cluster, group_id, call)


def offset_delete_request(group_id: str, partitions: Iterable[TopicPartition]) -> Fields:
    by_topic: dict[str, list[dict[str, int]]] = {}
    for tp in sorted(set(partitions)):
        by_topic.setdefault(tp.topic, []).append({"partition_index": tp.partition})
    return {
        "group_id": group_id,
        "topics": [{"name": name, "partitions": parts} for name, parts in by_topic.items()],
    }


async def lag(
    cluster: Cluster, group: GroupDescription, committed: Mapping[TopicPartition, Committed]
) -> list[PartitionLag]:
    """Lag of every partition the group committed to or has assigned, sorted: messages behind
    the log end, and the age of the first message not consumed yet."""
    assigned = {tp for member in group.members for tp in member.partitions}
    partitions = sorted(set(committed) | assigned)
    if not partitions:
        return []
    starts = await list_offsets(cluster, dict.fromkeys(partitions, EARLIEST))
    ends = await list_offsets(cluster, dict.fromkeys(partitions, LATEST))
    pending = {
        tp: max(c.offset, starts[tp].offset)
        for tp, c in committed.items()
        if max(c.offset, starts[tp].offset) < ends[tp].offset
    }
    timestamps: dict[TopicPartition, int] = {}
    if pending:
        for tp, fetched in (await fetch(cluster, pending, _PEEK)).items():
            if fetched.records:
                timestamps[tp] = fetched.records[0].timestamp_ms
    now_ms = int(time.time() * 1000)
    return [
        partition_lag(
            tp.topic,
            tp.partition,
            committed[tp].offset if tp in committed else None,
            starts[tp].offset,
            ends[tp].offset,
            timestamps.get(tp),
            now_ms,
        )
        for tp in partitions
    ]


async def plan_reset(
    cluster: Cluster,
    group_id: str,
    to: OffsetReset,
    partitions: Sequence[TopicPartition] | None = None,
) -> dict[TopicPartition, OffsetMove]:
    """Where `to` moves the group's offsets of `partitions` (None: every partition it has
    committed offsets for). Refused with NON_EMPTY_GROUP while the group has active members,
    whose own commits would undo the reset (the broker would refuse the commit anyway)."""
    group = await describe_group(cluster, group_id)
    if group.state not in INACTIVE_STATES:
        raise error_for(
            ErrorCode.non_empty_group,
            f"group {group_id!r} is {group.state}: offsets can only be reset while it has no "
            "active members; stop its consumers first",
        )
    committed = await fetch_committed(cluster, group_id)
    wanted = sorted(committed if partitions is None else set(partitions))
    if not wanted:
        return {}
    starts = await list_offsets(cluster, dict.fromkeys(wanted, EARLIEST))
    ends = await list_offsets(cluster, dict.fromkeys(wanted, LATEST))
    by_time = {}
    if to.kind == "timestamp":
        by_time = await list_offsets(cluster, dict.fromkeys(wanted, to.value))
    plan = {}
    for tp in wanted:
        current = committed[tp].offset if tp in committed else None
        start, end = starts[tp].offset, ends[tp].offset
        if to.kind == "earliest":
            new = start
        elif to.kind == "latest":
            new = end
        elif to.kind == "timestamp":
            found = by_time[tp].offset
            new = end if found < 0 else found
        elif to.kind == "offset":
            new = to.value
        elif current is None:
            raise ClientError(
                f"{tp.topic!r} partition {tp.partition} has no committed offset to shift"
            )
        else:
            new = current + to.value
        plan[tp] = OffsetMove(current, min(max(new, start), end))
    return plan
