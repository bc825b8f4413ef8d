"""OffsetDelete: drop a group's committed offsets of topics it no longer consumes."""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

from goqueue.coordinator.group.messages import TopicPartition
from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, nested, response_type
from goqueue.protocol.kafka.handlers.group_common import NO_THROTTLE, partition_exists

API_KEY = 47


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    response = response_type(API_KEY, context.header.api_version)
    wanted = [
        TopicPartition(topic.name, p.partition_index)
        for topic in request.topics
        for p in topic.partitions
    ]
    known = [tp for tp in wanted if partition_exists(context, tp.topic, tp.partition)]
    error, errors = await context.broker.groups.delete_offsets(request.group_id, known)
    topic_type = nested(response, "OffsetDeleteResponseTopic")
    partition_type = nested(response, "OffsetDeleteResponsePartition")
    if error != ErrorCode.none:
        return build(response, error_code=error, throttle_time=NO_THROTTLE, topics=())
    return build(
        response,
        error_code=ErrorCode.none,
        throttle_time=NO_THROTTLE,
        topics=tuple(
            build(
                topic_type,
                name=topic.name,
                partitions=tuple(
                    build(
                        partition_type,
                        partition_index=p.partition_index,
                        error_code=errors.get(
                            TopicPartition(topic.name, p.partition_index),
                            ErrorCode.unknown_topic_or_partition,
                        ),
                    )
                    for p in topic.partitions
                ),
            )
            for topic in request.topics
        ),
    )


API = Api(API_KEY, "OffsetDelete", 0, 0, handle)
