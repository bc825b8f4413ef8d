"""DescribeShareGroupOffsets (KIP-932): each share partition's start offset and lag, as
`kafka-share-groups --describe` shows them."""

from __future__ import annotations

import uuid
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

from goqueue.broker.errors import BrokerError
from goqueue.coordinator.share.group import TopicPartition
from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, nested, response_type
from goqueue.protocol.kafka.handlers.group_common import NO_THROTTLE

API_KEY = 90
NOT_INITIALIZED = -1


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    response = response_type(API_KEY, context.header.api_version)
    group_type = nested(response, "DescribeShareGroupOffsetsResponseGroup")
    groups = []
    for group in request.groups:
        try:
            offsets = await context.broker.shares.start_offsets(group.group_id)
        except BrokerError as exc:
            groups.append(_group(group_type, group.group_id, exc.error_code, exc.message))
            continue
        if offsets is None:
            message = f"Group {group.group_id} is not a share group."
            groups.append(_group(group_type, group.group_id, ErrorCode.group_id_not_found, message))
            continue
        groups.append(
            build(
                group_type,
                group_id=group.group_id,
                topics=_topics(context, response, group.topics, offsets),
                error_code=ErrorCode.none,
                error_message=None,
            )
        )
    return build(response, throttle_time=NO_THROTTLE, groups=tuple(groups))


def _group(group_type: type[Any], group_id: str, error: ErrorCode, message: str | None) -> Any:
    return build(group_type, group_id=group_id, topics=(), error_code=error, error_message=message)


def _topics(
    context: RequestContext,
    response: type[Any],
    wanted: Any,
    offsets: dict[TopicPartition, tuple[int, int]],
) -> tuple[Any, ...]:
    """The topics asked for (null: every share partition of the group); a partition the
    group has not started reading has start offset -1."""
    topic_type = nested(response, "DescribeShareGroupOffsetsResponseTopic")
    partition_type = nested(response, "DescribeShareGroupOffsetsResponsePartition")
    by_name: dict[str, list[int]] = {}
    if wanted is None:
        for tp in sorted(offsets, key=lambda tp: (str(tp[0]), tp[1])):
            name = context.broker.shares.topics.name_of(tp[0])
            if name is not None:
                by_name.setdefault(name, []).append(tp[1])
    else:
        by_name = {topic.topic_name: list(topic.partitions) for topic in wanted}
    topics = []
    for name, indexes in by_name.items():
        topic_id = context.broker.topic_id(name)
        partitions = []
        for index in indexes:
            start, lag = offsets.get((topic_id or uuid.UUID(int=0), index), (NOT_INITIALIZED, -1))
            partitions.append(
                build(
                    partition_type,
                    partition_index=index,
                    start_offset=start,
                    leader_epoch=0,
                    lag=lag,
                    error_code=ErrorCode.none
                    if topic_id is not None
                    else ErrorCode.unknown_topic_or_partition,
                    error_message=None,
                )
            )
        topics.append(
            build(topic_type, topic_name=name, topic_id=topic_id, partitions=tuple(partitions))
        )
    return tuple(topics)


API = Api(API_KEY, "DescribeShareGroupOffsets", 0, 1, handle)
