"""CreatePartitions: grow topics (or only check that they could grow)."""

from __future__ import annotations

import datetime
import logging
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

from goqueue.broker.errors import BrokerError
from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, nested, response_type

API_KEY = 37
logger = logging.getLogger(__name__)


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    response = response_type(API_KEY, context.header.api_version)
    result_type = nested(response, "CreatePartitionsTopicResult")
    results = []
    for topic in request.topics:
        code, message = ErrorCode.none, None
        try:
            await context.broker.create_partitions(
                topic.name,
                topic.count,
                validate_only=request.validate_only,
                assignments=[tuple(int(n) for n in a.broker_ids) for a in topic.assignments or ()],
            )
        except BrokerError as exc:
            logger.warning(
                "create partitions of %r from %s refused: %s %s",
                topic.name,
                context.peer,
                exc.error_code.name,
                exc.message or "",
            )
            code, message = exc.error_code, exc.message
        results.append(build(result_type, name=topic.name, error_code=code, error_message=message))
    return build(response, throttle_time=datetime.timedelta(0), results=tuple(results))


API = Api(API_KEY, "CreatePartitions", 0, 3, handle)
