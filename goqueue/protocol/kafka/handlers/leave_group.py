"""LeaveGroup: members leave a classic group (v3+: several at once, by instance id too)."""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

from goqueue.coordinator.group.messages import LeavingMember
from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, has_field, nested, response_type
from goqueue.protocol.kafka.handlers.group_common import NO_THROTTLE

API_KEY = 13


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    response = response_type(API_KEY, context.header.api_version)
    if has_field(type(request), "members"):
        leaving = [
            LeavingMember(m.member_id, m.group_instance_id, getattr(m, "reason", None))
            for m in request.members
        ]
    else:
        leaving = [LeavingMember(request.member_id)]
    left = await context.broker.groups.leave(request.group_id, leaving)
    if not has_field(response, "members"):
        # Before v3 the one member's error is the response's error, as Kafka answers.
        error = left.error
        if error == ErrorCode.none and left.members:
            error = left.members[0].error
        return build(response, throttle_time=NO_THROTTLE, error_code=error)
    member_type = nested(response, "MemberResponse")
    return build(
        response,
        throttle_time=NO_THROTTLE,
        error_code=left.error,
        members=tuple(
            build(
                member_type,
                member_id=m.member_id,
                group_instance_id=m.group_instance_id,
                error_code=m.error,
            )
            for m in left.members
        ),
    )


API = Api(API_KEY, "LeaveGroup", 0, 5, handle)
