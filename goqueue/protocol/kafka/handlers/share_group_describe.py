"""ShareGroupDescribe (KIP-932): state, epoch, assignor and members of share groups."""

from __future__ import annotations

from typing import Any

from kio.static.protocol import ResponsePayload

from goqueue.broker.peers import peer_node_id
from goqueue.coordinator.share.group import ASSIGNOR
from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, nested, response_type
from goqueue.protocol.kafka.handlers.consumer_group_describe import described_assignment
from goqueue.protocol.kafka.handlers.describe_groups import GROUP_OPERATIONS, NOT_REQUESTED
from goqueue.protocol.kafka.handlers.group_common import NO_THROTTLE

API_KEY = 77


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    response = response_type(API_KEY, context.header.api_version)
    group_type = nested(response, "DescribedGroup")
    member_type = nested(response, "Member")
    operations = GROUP_OPERATIONS if request.include_authorized_operations else NOT_REQUESTED
    groups = []
    for group_id in request.group_ids:
        described = await context.broker.shares.describe(
            group_id, peer_node_id(context.header.client_id)
        )
        groups.append(
            build(
                group_type,
                error_code=described.error,
                error_message=None,
                group_id=group_id,
                group_state=described.state,
                group_epoch=described.epoch,
                assignment_epoch=described.epoch,
                assignor_name=ASSIGNOR,
                members=tuple(
                    build(
                        member_type,
                        member_id=m.member_id,
                        rack_id=m.rack_id,
                        member_epoch=m.member_epoch,
                        client_id=m.client_id,
                        client_host=m.client_host,
                        subscribed_topic_names=m.subscribed_topics,
                        assignment=described_assignment(
                            context,
                            response,
                            {t: frozenset(parts) for t, (_name, parts) in m.assignment.items()},
                        ),
                    )
                    for m in described.members
                ),
                authorized_operations=operations,
            )
        )
    return build(response, throttle_time=NO_THROTTLE, groups=tuple(groups))


API = Api(API_KEY, "ShareGroupDescribe", 1, 1, handle)
