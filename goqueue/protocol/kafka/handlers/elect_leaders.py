"""ElectLeaders: move leadership to the preferred replicas, or elect a leader (unclean) for
partitions that have none. Any broker serves it: the record goes through the quorum."""

from __future__ import annotations

import datetime
import logging
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

from goqueue.metadata.errors import MetadataError
from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, nested, response_type

API_KEY = 43
PREFERRED = 0
UNCLEAN = 1
logger = logging.getLogger(__name__)


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    response = response_type(API_KEY, context.header.api_version)
    election = getattr(request, "election_type", PREFERRED)
    if request.topic_partitions is None:
        wanted = None
    else:
        wanted = [
            (topic.topic, int(index))
            for topic in request.topic_partitions
            for index in topic.partitions
        ]
    if election not in (PREFERRED, UNCLEAN):
        return _answer(response, ErrorCode.invalid_request, {})
    try:
        outcomes = await context.broker.metadata.elect_leaders(
            wanted, preferred=election == PREFERRED
        )
    except MetadataError as exc:
        logger.warning("ElectLeaders from %s failed: %s", context.peer, exc)
        return _answer(response, exc.error_code, {})
    logger.info(
        "ElectLeaders (%s) from %s: %s",
        "preferred" if election == PREFERRED else "unclean",
        context.peer,
        {f"{t}-{i}": code.name for (t, i), (code, _) in outcomes.items()},
    )
    return _answer(response, ErrorCode.none, outcomes)


def _answer(
    response: type[ResponsePayload],
    code: ErrorCode,
    outcomes: dict[tuple[str, int], tuple[ErrorCode, str | None]],
) -> ResponsePayload:
    topic_type = nested(response, "ReplicaElectionResult")
    partition_type = nested(response, "PartitionResult")
    by_topic: dict[str, list[Any]] = {}
    for (topic, index), (error, message) in outcomes.items():
        by_topic.setdefault(topic, []).append(
            build(partition_type, partition_id=index, error_code=error, error_message=message)
        )
    return build(
        response,
        throttle_time=datetime.timedelta(0),
        error_code=code,
        replica_election_results=tuple(
            build(topic_type, topic=topic, partition_result=tuple(results))
            for topic, results in by_topic.items()
        ),
    )


API = Api(API_KEY, "ElectLeaders", 0, 2, handle)
