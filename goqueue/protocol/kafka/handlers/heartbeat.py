"""Heartbeat: a classic member keeps its session and learns of rebalances."""

from __future__ import annotations

from typing import Any

from kio.static.protocol import ResponsePayload

from goqueue.coordinator.group.messages import HeartbeatRequest
from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, response_type
from goqueue.protocol.kafka.handlers.group_common import NO_THROTTLE

API_KEY = 12


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    response = response_type(API_KEY, context.header.api_version)
    error = await context.broker.groups.heartbeat(
        HeartbeatRequest(
            group_id=request.group_id,
            member_id=request.member_id,
            group_instance_id=getattr(request, "group_instance_id", None),
            generation_id=request.generation_id,
        )
    )
    return build(response, throttle_time=NO_THROTTLE, error_code=error)


API = Api(API_KEY, "Heartbeat", 0, 4, handle)
