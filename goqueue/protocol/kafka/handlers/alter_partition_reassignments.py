"""AlterPartitionReassignments: move partitions to other brokers (or cancel a move). New
replicas are added first; the old ones leave once the new ones are in the ISR."""

from __future__ import annotations

import datetime
import logging
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

from goqueue.metadata.errors import MetadataError
from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, nested, response_type

API_KEY = 45
logger = logging.getLogger(__name__)


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    response = response_type(API_KEY, context.header.api_version)
    changes = [
        (
            topic.name,
            int(partition.partition_index),
            None if partition.replicas is None else tuple(int(n) for n in partition.replicas),
        )
        for topic in request.topics
        for partition in topic.partitions
    ]
    code, message = ErrorCode.none, None
    outcomes: dict[tuple[str, int], tuple[ErrorCode, str | None]] = {}
    try:
        outcomes = await context.broker.metadata.reassign_partitions(
            changes,
            allow_replication_factor_change=getattr(
                request, "allow_replication_factor_change", True
            ),
        )
    except MetadataError as exc:
        code, message = exc.error_code, str(exc)
        outcomes = {(topic, index): (code, message) for topic, index, _ in changes}
    refused = {f"{t}-{i}": c.name for (t, i), (c, _) in outcomes.items() if c != ErrorCode.none}
    logger.info(
        "AlterPartitionReassignments from %s: %d partition(s), refused %s",
        context.peer,
        len(changes),
        refused,
    )
    topic_type = nested(response, "ReassignableTopicResponse")
    partition_type = nested(response, "ReassignablePartitionResponse")
    by_topic: dict[str, list[Any]] = {}
    for (topic, index), (error, text) in outcomes.items():
        by_topic.setdefault(topic, []).append(
            build(partition_type, partition_index=index, error_code=error, error_message=text)
        )
    return build(
        response,
        throttle_time=datetime.timedelta(0),
        error_code=code,
        error_message=message,
        responses=tuple(
            build(topic_type, name=topic, partitions=tuple(parts))
            for topic, parts in by_topic.items()
        ),
    )


API = Api(API_KEY, "AlterPartitionReassignments", 0, 1, handle)
