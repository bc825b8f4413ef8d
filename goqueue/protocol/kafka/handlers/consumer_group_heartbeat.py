"""ConsumerGroupHeartbeat (KIP-848): join, stay in and leave a consumer group whose
partitions the broker assigns; every heartbeat may carry a new assignment."""

from __future__ import annotations

import datetime
from typing import Any

from kio.static.protocol import ResponsePayload

from goqueue.coordinator.group.consumer import ConsumerHeartbeat, ConsumerHeartbeatResponse
from goqueue.coordinator.group.records import Assignment
from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, nested, response_type
from goqueue.protocol.kafka.handlers.group_common import (
    NO_THROTTLE,
    client_host,
    client_id,
    millis,
)

API_KEY = 68
UNCHANGED = -1


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    version = context.header.api_version
    response = response_type(API_KEY, version)
    rebalance_timeout = request.rebalance_timeout
    beat = await context.broker.groups.consumer_heartbeat(
        ConsumerHeartbeat(
            group_id=request.group_id,
            member_id=request.member_id,
            member_epoch=request.member_epoch,
            instance_id=request.instance_id,
            rack_id=request.rack_id,
            rebalance_timeout_ms=UNCHANGED
            if millis(rebalance_timeout) < 0
            else millis(rebalance_timeout),
            subscribed_topics=None
            if request.subscribed_topic_names is None
            else tuple(request.subscribed_topic_names),
            subscribed_regex=getattr(request, "subscribed_topic_regex", None),
            server_assignor=request.server_assignor,
            owned=None
            if request.topic_partitions is None
            else {tp.topic_id: frozenset(tp.partitions) for tp in request.topic_partitions},
            client_id=client_id(context),
            client_host=client_host(context),
            member_id_from_client=version >= 1,
        )
    )
    return heartbeat_response(response, beat)


def heartbeat_response(
    response: type[ResponsePayload], beat: ConsumerHeartbeatResponse
) -> ResponsePayload:
    """A ConsumerGroupHeartbeat or ShareGroupHeartbeat response (the same fields)."""
    return build(
        response,
        throttle_time=NO_THROTTLE,
        error_code=beat.error,
        error_message=beat.message,
        member_id=beat.member_id,
        member_epoch=beat.member_epoch,
        heartbeat_interval=datetime.timedelta(milliseconds=beat.heartbeat_interval_ms),
        assignment=None
        if beat.assignment is None
        else assignment_of(nested(response, "Assignment"), beat.assignment),
    )


def assignment_of(assignment_type: type[Any], assignment: Assignment) -> Any:
    """An assignment as KIP-848 and KIP-932 heartbeats carry it: partitions by topic id."""
    partitions_type = nested(assignment_type, "TopicPartitions")
    return build(
        assignment_type,
        topic_partitions=tuple(
            build(partitions_type, topic_id=topic_id, partitions=tuple(sorted(parts)))
            for topic_id, parts in sorted(assignment.items())
        ),
    )


API = Api(API_KEY, "ConsumerGroupHeartbeat", 0, 1, handle)
