"""DescribeGroups: state, protocol and members of classic groups."""

from __future__ import annotations

import logging
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

from goqueue.broker.errors import BrokerError
from goqueue.coordinator.group.messages import DescribedGroup
from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, nested, response_type
from goqueue.protocol.kafka.handlers.group_common import NO_THROTTLE

API_KEY = 15
NOT_REQUESTED = -(2**31)
GROUP_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8)
"""READ, DELETE and DESCRIBE: what Kafka reports for a group when no authorizer restricts it."""
logger = logging.getLogger(__name__)


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    version = context.header.api_version
    response = response_type(API_KEY, version)
    group_type = nested(response, "DescribedGroup")
    member_type = nested(response, "DescribedGroupMember")
    operations = (
        GROUP_OPERATIONS
        if getattr(request, "include_authorized_operations", False)
        else NOT_REQUESTED
    )
    described = []
    for group_id in request.groups:
        group, message = await _describe(context, group_id, version)
        described.append(
            build(
                group_type,
                error_code=group.error,
                error_message=message,
                group_id=group.group_id,
                group_state=group.state,
                protocol_type=group.protocol_type,
                protocol_data=group.protocol,
                members=tuple(
                    build(
                        member_type,
                        member_id=m.member_id,
                        group_instance_id=m.group_instance_id,
                        client_id=m.client_id,
                        client_host=m.client_host,
                        member_metadata=m.metadata,
                        member_assignment=m.assignment,
                    )
                    for m in group.members
                ),
                authorized_operations=operations,
            )
        )
    return build(response, throttle_time=NO_THROTTLE, groups=tuple(described))


async def _describe(
    context: RequestContext, group_id: str, version: int
) -> tuple[DescribedGroup, str | None]:
    """A missing group is described as Dead; from v6 (KIP-1043) with GROUP_ID_NOT_FOUND."""
    if not group_id:
        return _dead(group_id, ErrorCode.invalid_group_id), None
    try:
        group = await context.broker.groups.describe(group_id)
    except BrokerError as exc:
        return _dead(group_id, exc.error_code), exc.message
    if group is not None and group.group_type == "classic":
        return group, None
    if version >= 6:
        return _dead(group_id, ErrorCode.group_id_not_found), f"Group {group_id} not found."
    return _dead(group_id, ErrorCode.none), None


def _dead(group_id: str, error: ErrorCode) -> DescribedGroup:
    return DescribedGroup(group_id, error, "Dead", "", "")


API = Api(API_KEY, "DescribeGroups", 0, 6, handle)
