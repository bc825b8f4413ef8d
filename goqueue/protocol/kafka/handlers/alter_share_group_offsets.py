"""AlterShareGroupOffsets (KIP-932): reset the start offsets of an empty share group's share
partitions (`kafka-share-groups --reset-offsets`)."""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

from goqueue.coordinator.share.group import TopicPartition
from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, nested, response_type
from goqueue.protocol.kafka.handlers.group_common import NO_THROTTLE, partition_exists

API_KEY = 91


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    """Partitions of unknown topics get UNKNOWN_TOPIC_OR_PARTITION; the others are reset
    together, or not at all (the group's error for each)."""
    response = response_type(API_KEY, context.header.api_version)
    offsets: dict[TopicPartition, int] = {}
    unknown: set[tuple[str, int]] = set()
    for topic in request.topics:
        topic_id = context.broker.topic_id(topic.topic_name)
        for p in topic.partitions:
            if topic_id is None or not partition_exists(
                context, topic.topic_name, p.partition_index
            ):
                unknown.add((topic.topic_name, p.partition_index))
            else:
                offsets[(topic_id, p.partition_index)] = p.start_offset
    error, message = await context.broker.shares.alter_offsets(request.group_id, offsets)
    topic_type = nested(response, "AlterShareGroupOffsetsResponseTopic")
    partition_type = nested(response, "AlterShareGroupOffsetsResponsePartition")
    topics = []
    for topic in request.topics:
        partitions = []
        for p in topic.partitions:
            code = (
                ErrorCode.unknown_topic_or_partition
                if (topic.topic_name, p.partition_index) in unknown
                else error
            )
            partitions.append(
                build(
                    partition_type,
                    partition_index=p.partition_index,
                    error_code=code,
                    error_message=None if code == ErrorCode.none else message,
                )
            )
        topics.append(
            build(
                topic_type,
                topic_name=topic.topic_name,
                topic_id=context.broker.topic_id(topic.topic_name),
                partitions=tuple(partitions),
            )
        )
    return build(
        response,
        throttle_time=NO_THROTTLE,
        error_code=error,
        error_message=message,
        responses=tuple(topics),
    )


API = Api(API_KEY, "AlterShareGroupOffsets", 0, 0, handle)
