"""OffsetFetch: a group's committed offsets (v8+: several groups; v10: topics by id)."""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

from goqueue.coordinator.group.messages import FetchedOffset, FetchRequest, TopicPartition
from goqueue.coordinator.group.offsets import NO_OFFSET
from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, has_field, nested, response_type
from goqueue.protocol.kafka.handlers.group_common import NO_THROTTLE, topic_name

API_KEY = 9


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    response = response_type(API_KEY, context.header.api_version)
    if has_field(response, "groups"):
        group_type = nested(response, "OffsetFetchResponseGroup")
        groups = []
        for group in request.groups:
            error, topics = await _fetch(context, response, group, "Topics", "Partitions")
            groups.append(
                build(group_type, group_id=group.group_id, topics=topics, error_code=error)
            )
        return build(response, throttle_time=NO_THROTTLE, groups=tuple(groups))
    error, topics = await _fetch(context, response, request, "Topic", "Partition")
    if not has_field(response, "error_code") and error != ErrorCode.none:
        topics = _with_error(response, request, error)
    elif error != ErrorCode.none:
        topics = ()
    return build(response, throttle_time=NO_THROTTLE, topics=topics, error_code=error)


async def _fetch(
    context: RequestContext, response: type[Any], group: Any, topics: str, partitions: str
) -> tuple[ErrorCode, tuple[Any, ...]]:
    """One group's offsets as response topics (classes `OffsetFetchResponse{topics}` and
    `...{partitions}`, whose plural changed in v8); topics given by an unknown id get
    UNKNOWN_TOPIC_ID, every other requested partition its offset or -1."""
    wanted: list[tuple[Any, str | None, int]] | None = None
    if group.topics is not None:
        wanted = [
            (topic, topic_name(context, topic) or getattr(topic, "name", None), index)
            for topic in group.topics
            for index in topic.partition_indexes
        ]
    fetched = await context.broker.groups.fetch_offsets(
        FetchRequest(
            group_id=group.group_id,
            partitions=None
            if wanted is None
            else tuple(TopicPartition(name, index) for _t, name, index in wanted if name),
            member_id=getattr(group, "member_id", None),
            member_epoch=getattr(group, "member_epoch", -1),
        )
    )
    if fetched.error != ErrorCode.none:
        return fetched.error, ()
    by_topic: dict[Any, list[tuple[int, FetchedOffset]]] = {}
    if wanted is None:
        for tp, value in sorted(
            fetched.offsets.items(), key=lambda i: (i[0].topic, i[0].partition)
        ):
            by_topic.setdefault(_entry_key(context, tp.topic), []).append((tp.partition, value))
    else:
        for topic, name, index in wanted:
            value = (
                fetched.offsets.get(TopicPartition(name, index), NO_OFFSET)
                if name
                else FetchedOffset(-1, -1, "", ErrorCode.unknown_topic_id)
            )
            by_topic.setdefault(_request_key(topic), []).append((index, value))
    topic_type = nested(response, f"OffsetFetchResponse{topics}")
    partition_type = nested(response, f"OffsetFetchResponse{partitions}")
    return ErrorCode.none, tuple(
        build(
            topic_type,
            name=name,
            topic_id=topic_id,
            partitions=tuple(
                build(
                    partition_type,
                    partition_index=index,
                    committed_offset=value.offset,
                    committed_leader_epoch=value.leader_epoch,
                    metadata=value.metadata,
                    error_code=value.error,
                )
                for index, value in partitions
            ),
        )
        for (name, topic_id), partitions in by_topic.items()
        if name is not None or topic_id is not None
    )


def _request_key(topic: Any) -> tuple[str | None, Any]:
    return getattr(topic, "name", None), getattr(topic, "topic_id", None)


def _entry_key(context: RequestContext, name: str) -> tuple[str | None, Any]:
    """Fetch-all answers by name, and by id where the version names topics by id."""
    return name, context.broker.topic_id(name)


def _with_error(response: type[Any], request: Any, error: ErrorCode) -> tuple[Any, ...]:
    """OffsetFetch v1 has no group error: every requested partition carries it."""
    topic_type = nested(response, "OffsetFetchResponseTopic")
    partition_type = nested(response, "OffsetFetchResponsePartition")
    return tuple(
        build(
            topic_type,
            name=topic.name,
            partitions=tuple(
                build(
                    partition_type,
                    partition_index=index,
                    committed_offset=-1,
                    metadata="",
                    error_code=error,
                )
                for index in topic.partition_indexes
            ),
        )
        for topic in request.topics
    )


API = Api(API_KEY, "OffsetFetch", 1, 10, handle)
