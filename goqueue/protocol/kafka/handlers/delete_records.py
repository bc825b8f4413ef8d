"""DeleteRecords: move partitions' log start offsets forward, deleting what lies before."""

from __future__ import annotations

import datetime
import logging
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

from goqueue.broker.errors import BrokerError
from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, nested, response_type

API_KEY = 21
logger = logging.getLogger(__name__)


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    response = response_type(API_KEY, context.header.api_version)
    topic_type = nested(response, "DeleteRecordsTopicResult")
    partition_type = nested(response, "DeleteRecordsPartitionResult")
    topics = []
    for topic in request.topics:
        partitions = []
        for wanted in topic.partitions:
            code, low_watermark = ErrorCode.none, -1
            try:
                low_watermark = await context.broker.delete_records(
                    topic.name, wanted.partition_index, wanted.offset
                )
            except BrokerError as exc:
                logger.warning(
                    "delete records of %s-%d before %d from %s refused: %s",
                    topic.name,
                    wanted.partition_index,
                    wanted.offset,
                    context.peer,
                    exc.message or exc.error_code.name,
                )
                code = exc.error_code
            partitions.append(
                build(
                    partition_type,
                    partition_index=wanted.partition_index,
                    low_watermark=low_watermark,
                    error_code=code,
                )
            )
        topics.append(build(topic_type, name=topic.name, partitions=tuple(partitions)))
    return build(response, throttle_time=datetime.timedelta(0), topics=tuple(topics))


API = Api(API_KEY, "DeleteRecords", 0, 2, handle)
