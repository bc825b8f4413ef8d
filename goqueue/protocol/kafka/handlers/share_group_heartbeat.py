"""ShareGroupHeartbeat (KIP-932): join, stay in and leave a share group; the broker assigns
the partitions, and a member learns of a new assignment at its next heartbeat."""

from __future__ import annotations

from typing import Any

from kio.static.protocol import ResponsePayload

from goqueue.coordinator.share.messages import ShareHeartbeat
from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import response_type
from goqueue.protocol.kafka.handlers.consumer_group_heartbeat import heartbeat_response
from goqueue.protocol.kafka.handlers.group_common import client_host, client_id

API_KEY = 76


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    response = response_type(API_KEY, context.header.api_version)
    beat = await context.broker.shares.heartbeat(
        ShareHeartbeat(
            group_id=request.group_id,
            member_id=request.member_id,
            member_epoch=request.member_epoch,
            subscribed_topics=None
            if request.subscribed_topic_names is None
            else tuple(request.subscribed_topic_names),
            rack_id=request.rack_id,
            client_id=client_id(context),
            client_host=client_host(context),
        )
    )
    return heartbeat_response(response, beat)


API = Api(API_KEY, "ShareGroupHeartbeat", 1, 1, handle)
