"""JoinGroup: join (or rejoin) a classic group; parked until the group's join phase ends."""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

from goqueue.coordinator.group.messages import GroupProtocol, JoinRequest
from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, nested, response_type
from goqueue.protocol.kafka.handlers.group_common import (
    NO_THROTTLE,
    client_host,
    client_id,
    millis,
)

API_KEY = 11


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    version = context.header.api_version
    response = response_type(API_KEY, version)
    session_timeout = millis(request.session_timeout)
    rebalance_timeout = getattr(request, "rebalance_timeout", None)
    joined = await context.broker.groups.join(
        JoinRequest(
            group_id=request.group_id,
            member_id=request.member_id,
            group_instance_id=getattr(request, "group_instance_id", None),
            protocol_type=request.protocol_type,
            protocols=tuple(GroupProtocol(p.name, p.metadata) for p in request.protocols),
            session_timeout_ms=session_timeout,
            rebalance_timeout_ms=(
                session_timeout if rebalance_timeout is None else millis(rebalance_timeout)
            ),
            client_id=client_id(context),
            client_host=client_host(context),
            require_known_member_id=version >= 4,
            supports_skip_assignment=version >= 9,
            reason=getattr(request, "reason", None),
        )
    )
    member_type = nested(response, "JoinGroupResponseMember")
    protocol_name = joined.protocol_name
    if protocol_name is None and version < 7:
        protocol_name = ""
    return build(
        response,
        throttle_time=NO_THROTTLE,
        error_code=joined.error,
        generation_id=joined.generation_id,
        protocol_type=joined.protocol_type,
        protocol_name=protocol_name,
        leader=joined.leader,
        skip_assignment=joined.skip_assignment,
        member_id=joined.member_id,
        members=tuple(
            build(
                member_type,
                member_id=m.member_id,
                group_instance_id=m.group_instance_id,
                metadata=m.metadata,
            )
            for m in (joined.members if joined.error == ErrorCode.none else ())
        ),
    )


API = Api(API_KEY, "JoinGroup", 0, 9, handle)
