"""FindCoordinator: which broker coordinates a group (v0-v3: one key; v4+: a batch of keys).

A group's coordinator is the leader of the `__consumer_offsets` partition its id hashes to;
a share group's (and, for SHARE keys `group:topicId:partition`, its share partitions') is the
leader of the `__share_group_state` partition the group id hashes to. Every broker knows the
share group ids from the cluster metadata (`image.share_groups`), so a GROUP key names the
share coordinator wherever it is asked, as Kafka's FindCoordinator names the one group
coordinator that holds both kinds of group. The transaction
coordinator does not exist yet: clients asking for it get COORDINATOR_NOT_AVAILABLE and keep
retrying, as they do while Kafka creates such a topic.
"""

from __future__ import annotations

import logging
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

from goqueue.metadata.image import BrokerInfo
from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, has_field, nested, response_type
from goqueue.protocol.kafka.handlers.group_common import NO_THROTTLE

API_KEY = 10
GROUP = 0
TRANSACTION = 1
SHARE = 2
logger = logging.getLogger(__name__)


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    response = response_type(API_KEY, context.header.api_version)
    key_type = getattr(request, "key_type", GROUP)
    if has_field(response, "coordinators"):
        coordinator_type = nested(response, "Coordinator")
        return build(
            response,
            throttle_time=NO_THROTTLE,
            coordinators=tuple(
                build(coordinator_type, key=key, **_find(context, key_type, key))
                for key in request.coordinator_keys
            ),
        )
    return build(response, throttle_time=NO_THROTTLE, **_find(context, key_type, request.key))


def _find(context: RequestContext, key_type: int, key: str) -> dict[str, Any]:
    if key_type in (GROUP, SHARE):
        leader = _coordinator(context, key_type, key)
        if leader is not None:
            return {
                "error_code": ErrorCode.none,
                "error_message": None,
                "node_id": leader.node_id,
                "host": leader.host,
                "port": leader.port,
            }
        code = ErrorCode.coordinator_not_available
    elif key_type == TRANSACTION:
        code = ErrorCode.coordinator_not_available
    else:
        code = ErrorCode.invalid_request
    logger.info(
        "FindCoordinator of key type %d for %r from %s: %s", key_type, key, context.peer, code.name
    )
    return {"error_code": code, "error_message": None, "node_id": -1, "host": "", "port": -1}


def _coordinator(context: RequestContext, key_type: int, key: str) -> BrokerInfo | None:
    """The broker coordinating a group key (the share coordinator's for a share group: one the
    cluster metadata lists, or, until its record applies, one this broker holds) or a SHARE
    key (by the group id it starts with)."""
    shares = context.broker.shares
    if key_type == SHARE:
        return shares.runtime.coordinator_for(key.rsplit(":", 2)[0])
    if key in context.broker.image.share_groups or shares.is_share_group(key):
        return shares.runtime.coordinator_for(key)
    return context.broker.groups.runtime.coordinator_for(key)


API = Api(API_KEY, "FindCoordinator", 0, 6, handle)
