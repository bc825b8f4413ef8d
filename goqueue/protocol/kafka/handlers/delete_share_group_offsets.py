"""DeleteShareGroupOffsets (KIP-932): forget an empty share group's state for some topics; it
starts them again by `share.auto.offset.reset` when next assigned."""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, nested, response_type
from goqueue.protocol.kafka.handlers.group_common import NO_THROTTLE

API_KEY = 92


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    response = response_type(API_KEY, context.header.api_version)
    ids = {t.topic_name: context.broker.topic_id(t.topic_name) for t in request.topics}
    error, message = await context.broker.shares.delete_offsets(
        request.group_id, {topic_id for topic_id in ids.values() if topic_id is not None}
    )
    topic_type = nested(response, "DeleteShareGroupOffsetsResponseTopic")
    topics = []
    for name, topic_id in ids.items():
        code = ErrorCode.unknown_topic_or_partition if topic_id is None else error
        topics.append(
            build(
                topic_type,
                topic_name=name,
                topic_id=topic_id,
                error_code=code,
                error_message=None if code == ErrorCode.none else message,
            )
        )
    return build(
        response,
        throttle_time=NO_THROTTLE,
        error_code=error,
        error_message=message,
        responses=tuple(topics),
    )


API = Api(API_KEY, "DeleteShareGroupOffsets", 0, 0, handle)
