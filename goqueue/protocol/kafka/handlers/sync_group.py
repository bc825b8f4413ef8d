"""SyncGroup: the leader hands in the assignment; every member waits for its share."""

from __future__ import annotations

from typing import Any

from kio.static.protocol import ResponsePayload

from goqueue.coordinator.group.messages import SyncRequest
from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, response_type
from goqueue.protocol.kafka.handlers.group_common import NO_THROTTLE

API_KEY = 14


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    response = response_type(API_KEY, context.header.api_version)
    synced = await context.broker.groups.sync(
        SyncRequest(
            group_id=request.group_id,
            member_id=request.member_id,
            group_instance_id=getattr(request, "group_instance_id", None),
            generation_id=request.generation_id,
            protocol_type=getattr(request, "protocol_type", None),
            protocol_name=getattr(request, "protocol_name", None),
            assignments={a.member_id: a.assignment for a in request.assignments},
        )
    )
    return build(
        response,
        throttle_time=NO_THROTTLE,
        error_code=synced.error,
        protocol_type=synced.protocol_type,
        protocol_name=synced.protocol_name,
        assignment=synced.assignment,
    )


API = Api(API_KEY, "SyncGroup", 0, 5, handle)
