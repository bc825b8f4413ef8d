"""DeleteTopics: delete topics named by name or (v6+) by topic id."""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

from goqueue.broker.errors import BrokerError
from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, nested, response_type

API_KEY = 20


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    response = response_type(API_KEY, context.header.api_version)
    result_type = nested(response, "DeletableTopicResult")
    broker = context.broker
    if hasattr(request, "topic_names"):
        wanted = [(name, None) for name in request.topic_names]
    else:
        wanted = [(topic.name, topic.topic_id) for topic in request.topics]
    results = []
    for name, topic_id in wanted:
        if not name and topic_id is not None:
            info = broker.image.topics_by_id.get(topic_id)
            name = info.name if info else None
        code, message = ErrorCode.none, None
        try:
            if name is None:
                raise BrokerError(ErrorCode.unknown_topic_id, f"Unknown topic id {topic_id}")
            resolved_id = broker.topic_id(name)
            await broker.delete_topic(name)
            topic_id = topic_id or resolved_id
        except BrokerError as exc:
            code, message = exc.error_code, exc.message
        results.append(
            build(
                result_type,
                name=name,
                topic_id=topic_id,
                error_code=code,
                error_message=message,
            )
        )
    return build(response, throttle_time=datetime.timedelta(0), responses=tuple(results))


API = Api(API_KEY, "DeleteTopics", 1, 6, handle)
