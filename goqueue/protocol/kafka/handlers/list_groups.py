"""ListGroups: every group this broker coordinates, filtered by state (v4+) and type (v5+)."""

from __future__ import annotations

from typing import Any

from kio.static.protocol import ResponsePayload

from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, nested, response_type
from goqueue.protocol.kafka.handlers.group_common import NO_THROTTLE

API_KEY = 16


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    response = response_type(API_KEY, context.header.api_version)
    listed_type = nested(response, "ListedGroup")
    states, types = getattr(request, "states_filter", ()), getattr(request, "types_filter", ())
    error, groups = await context.broker.groups.list_groups(states, types)
    share_error, shares = await context.broker.shares.list_groups(states, types)
    groups += shares
    error = error or share_error
    return build(
        response,
        throttle_time=NO_THROTTLE,
        error_code=error,
        groups=tuple(
            build(
                listed_type,
                group_id=g.group_id,
                protocol_type=g.protocol_type,
                group_state=g.state,
                group_type=g.group_type,
            )
            for g in sorted(groups, key=lambda g: g.group_id)
        ),
    )


API = Api(API_KEY, "ListGroups", 0, 5, handle)
