"""Share group requests forwarded to the group's coordinator.

Clients send share fetches to each data partition's leader, but a share group's state lives
with its coordinator (the leader of its `__share_group_state` partition). A broker that is
not the coordinator sends the request on, as the same Kafka request from a peer (its client
id names the broker, so the coordinator keeps that broker's share session apart from the
member's sessions on other brokers), and turns the answer back into the coordinator's result
type, which the handler encodes in the client's version (naming the data leaders itself).

Heartbeats, descriptions, share group offsets, group configs (described and changed) and
DeleteGroups are forwarded the same way:
FindCoordinator names a share group's coordinator only on brokers that know the group is a
share group, so a client may well send them to another broker.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from kio.schema.errors import ErrorCode

from goqueue.broker.errors import BrokerError
from goqueue.config.dynamic import (
    AlterOp,
    ConfigSource,
    DescribedConfig,
    OpType,
    Synonym,
    WireType,
)
from goqueue.coordinator.share.group import TopicPartition
from goqueue.coordinator.share.messages import (
    DescribedMember,
    ShareGroupDescription,
    ShareHeartbeat,
    ShareHeartbeatResponse,
    ShareParams,
    SharePartitionResult,
    ShareResult,
)
from goqueue.coordinator.share.partition import Acquired

SHARE_GROUP_HEARTBEAT = 76
SHARE_GROUP_DESCRIBE = 77
SHARE_FETCH = 78
SHARE_ACKNOWLEDGE = 79
DESCRIBE_SHARE_GROUP_OFFSETS = 90
ALTER_SHARE_GROUP_OFFSETS = 91
DELETE_SHARE_GROUP_OFFSETS = 92
ALTER_CONFIGS = 33
DESCRIBE_CONFIGS = 32
DELETE_GROUPS = 42
INCREMENTAL_ALTER_CONFIGS = 44
GROUP_RESOURCE = 32


def request_fields(params: ShareParams, *, fetching: bool) -> dict[str, Any]:
    """The fields of the ShareFetch (`fetching`) or ShareAcknowledge to send on: every
    partition fetched or acknowledged, with its acknowledgement batches."""
    by_topic: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for topic_id, index in dict.fromkeys([*params.fetch, *params.acks]):
        by_topic.setdefault(topic_id, []).append(
            {
                "partition_index": index,
                "acknowledgement_batches": [
                    {
                        "first_offset": batch.first_offset,
                        "last_offset": batch.last_offset,
                        "acknowledge_types": batch.types,
                    }
                    for batch in params.acks.get((topic_id, index), ())
                ],
            }
        )
    fields: dict[str, Any] = {
        "group_id": params.group_id,
        "member_id": params.member_id,
        "share_session_epoch": params.session_epoch,
        "is_renew_ack": params.allow_renew,
        "topics": [{"topic_id": t, "partitions": parts} for t, parts in by_topic.items()],
    }
    if fetching:
        forgotten: dict[uuid.UUID, list[int]] = {}
        for topic_id, index in params.forget:
            forgotten.setdefault(topic_id, []).append(index)
        fields |= {
            "max_wait": datetime.timedelta(milliseconds=params.max_wait_ms),
            "min_bytes": 0,
            "max_bytes": params.max_bytes,
            "max_records": params.max_records,
            "batch_size": params.max_records,
            "share_acquire_mode": 0,
            "forgotten_topics_data": [
                {"topic_id": t, "partitions": parts} for t, parts in forgotten.items()
            ],
        }
    return fields


def share_result(response: Any, *, fetching: bool) -> ShareResult:
    """A ShareFetch (`fetching`) or ShareAcknowledge answer as the coordinator's result."""
    partitions = {}
    for topic in response.responses:
        for p in topic.partitions:
            tp = (topic.topic_id, p.partition_index)
            if not fetching:
                partitions[tp] = SharePartitionResult(
                    ack_error=_code(p.error_code), ack_message=p.error_message
                )
                continue
            partitions[tp] = SharePartitionResult(
                error=_code(p.error_code),
                ack_error=_code(p.acknowledge_error_code),
                ack_message=p.acknowledge_error_message,
                records=bytes(p.records or b""),
                acquired=[
                    Acquired(run.first_offset, run.last_offset, run.delivery_count)
                    for run in p.acquired_records
                ],
            )
    lock_ms = int(response.acquisition_lock_timeout.total_seconds() * 1000) if fetching else 0
    return ShareResult(_code(response.error_code), response.error_message, lock_ms, partitions)


def heartbeat_fields(request: ShareHeartbeat) -> dict[str, Any]:
    topics = request.subscribed_topics
    return {
        "group_id": request.group_id,
        "member_id": request.member_id,
        "member_epoch": request.member_epoch,
        "rack_id": request.rack_id,
        "subscribed_topic_names": None if topics is None else list(topics),
    }


def heartbeat_result(response: Any) -> ShareHeartbeatResponse:
    assignment = response.assignment
    return ShareHeartbeatResponse(
        _code(response.error_code),
        response.error_message,
        response.member_id,
        response.member_epoch,
        int(response.heartbeat_interval.total_seconds() * 1000),
        None
        if assignment is None
        else {t.topic_id: frozenset(t.partitions) for t in assignment.topic_partitions},
    )


def describe_fields(group_id: str) -> dict[str, Any]:
    return {"group_ids": [group_id], "include_authorized_operations": False}


def description(response: Any) -> ShareGroupDescription:
    """The one group of a ShareGroupDescribe answer."""
    [group] = response.groups
    members = tuple(
        DescribedMember(
            member_id=m.member_id,
            member_epoch=m.member_epoch,
            client_id=m.client_id,
            client_host=m.client_host,
            rack_id=m.rack_id,
            subscribed_topics=tuple(m.subscribed_topic_names),
            assignment={
                t.topic_id: (t.topic_name, tuple(t.partitions))
                for t in m.assignment.topic_partitions
            },
        )
        for m in group.members
    )
    error = _code(group.error_code)
    return ShareGroupDescription(
        group.group_id, error, group.group_state, group.group_epoch, members
    )


def alter_configs_request(
    group_id: str, ops: Sequence[AlterOp], *, incremental: bool, validate_only: bool
) -> tuple[int, dict[str, Any]]:
    """The IncrementalAlterConfigs (or AlterConfigs) request changing a group's configs."""
    if incremental:
        configs = [{"name": n, "config_operation": int(op), "value": v} for n, op, v in ops]
    else:
        configs = [{"name": n, "value": v} for n, op, v in ops if op is OpType.SET]
    resource = {"resource_type": GROUP_RESOURCE, "resource_name": group_id, "configs": configs}
    api_key = INCREMENTAL_ALTER_CONFIGS if incremental else ALTER_CONFIGS
    return api_key, {"resources": [resource], "validate_only": validate_only}


def check_alter_configs(response: Any) -> None:
    """Raise the error an AlterConfigs or IncrementalAlterConfigs answer carries."""
    for result in response.responses:
        code = _code(result.error_code)
        if code != ErrorCode.none:
            raise BrokerError(code, result.error_message or code.name)


def describe_configs_fields(group_id: str) -> dict[str, Any]:
    """DescribeConfigs of every config of the group, with synonyms and documentation (the
    forwarding broker keeps what its client asked for)."""
    resource = {"resource_type": GROUP_RESOURCE, "resource_name": group_id}
    return {
        "resources": [resource | {"configuration_keys": None}],
        "include_synonyms": True,
        "include_documentation": True,
    }


def described_configs(response: Any) -> list[DescribedConfig]:
    """The one group of a DescribeConfigs answer; raises the error it carries."""
    [result] = response.results
    code = _code(result.error_code)
    if code != ErrorCode.none:
        raise BrokerError(code, result.error_message or code.name)
    return [
        DescribedConfig(
            c.name,
            c.value,
            ConfigSource(c.config_source),
            c.read_only,
            c.is_sensitive,
            tuple(Synonym(s.name, s.value, ConfigSource(s.source)) for s in c.synonyms),
            WireType(c.config_type),
            c.documentation or "",
        )
        for c in result.configs
    ]


def delete_groups_fields(group_id: str) -> dict[str, Any]:
    return {"groups_names": [group_id]}


def deleted(response: Any) -> ErrorCode:
    """The error of the one group of a DeleteGroups answer."""
    [result] = response.results
    return _code(result.error_code)


def describe_offsets_fields(group_id: str) -> dict[str, Any]:
    """DescribeShareGroupOffsets of every share partition of the group."""
    return {"groups": [{"group_id": group_id, "topics": None}]}


def start_offsets(response: Any) -> dict[TopicPartition, tuple[int, int]] | None:
    """A DescribeShareGroupOffsets answer as `ShareShard.start_offsets` gives it."""
    [group] = response.groups
    code = _code(group.error_code)
    if code == ErrorCode.group_id_not_found:
        return None
    if code != ErrorCode.none:
        raise BrokerError(code, group.error_message or code.name)
    return {
        (topic.topic_id, p.partition_index): (p.start_offset, p.lag)
        for topic in group.topics
        for p in topic.partitions
        if p.start_offset >= 0
    }


def alter_offsets_fields(group_id: str, offsets: Mapping[str, Mapping[int, int]]) -> dict[str, Any]:
    """AlterShareGroupOffsets: new start offsets by topic name and partition."""
    topics = [
        {
            "topic_name": name,
            "partitions": [
                {"partition_index": index, "start_offset": offset}
                for index, offset in sorted(parts.items())
            ],
        }
        for name, parts in offsets.items()
    ]
    return {"group_id": group_id, "topics": topics}


def delete_offsets_fields(group_id: str, topics: Sequence[str]) -> dict[str, Any]:
    return {"group_id": group_id, "topics": [{"topic_name": name} for name in topics]}


def offsets_change(response: Any) -> tuple[ErrorCode, str | None]:
    """The error of an AlterShareGroupOffsets or DeleteShareGroupOffsets answer: its own, or
    the first of its topics' or partitions'."""
    answers = [response]
    for topic in response.responses:
        answers += [topic, *getattr(topic, "partitions", ())]
    for answer in answers:
        code = _code(answer.error_code)
        if code != ErrorCode.none:
            return code, answer.error_message
    return ErrorCode.none, None


def _code(value: int) -> ErrorCode:
    try:
        return ErrorCode(value)
    except ValueError:
        return ErrorCode.unknown_server_error
