"""ListPartitionReassignments: the moves in progress, from the metadata image."""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, nested, response_type

API_KEY = 46


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    response = response_type(API_KEY, context.header.api_version)
    image = context.broker.image
    wanted: dict[str, set[int] | None]
    if request.topics is None:
        wanted = dict.fromkeys(image.topics)
    else:
        wanted = {t.name: {int(i) for i in t.partition_indexes} for t in request.topics}
    topic_type = nested(response, "OngoingTopicReassignment")
    partition_type = nested(response, "OngoingPartitionReassignment")
    topics = []
    for name, indexes in wanted.items():
        info = image.topics.get(name)
        if info is None:
            continue
        ongoing = [
            build(
                partition_type,
                partition_index=index,
                replicas=state.replicas,
                adding_replicas=state.adding,
                removing_replicas=state.removing,
            )
            for index, state in sorted(info.partition_states.items())
            if (state.adding or state.removing) and (indexes is None or index in indexes)
        ]
        if ongoing:
            topics.append(build(topic_type, name=name, partitions=tuple(ongoing)))
    return build(
        response,
        throttle_time=datetime.timedelta(0),
        error_code=ErrorCode.none,
        error_message=None,
        topics=tuple(topics),
    )


API = Api(API_KEY, "ListPartitionReassignments", 0, 0, handle)
