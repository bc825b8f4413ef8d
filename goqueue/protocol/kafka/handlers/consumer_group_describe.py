"""ConsumerGroupDescribe (KIP-848): state, epochs, assignor and members of consumer groups."""

from __future__ import annotations

from typing import Any

from kio.static.protocol import ResponsePayload

from goqueue.coordinator.group.consumer import CONSUMER_MEMBER_TYPE
from goqueue.coordinator.group.records import Assignment
from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, nested, response_type
from goqueue.protocol.kafka.handlers.describe_groups import GROUP_OPERATIONS, NOT_REQUESTED
from goqueue.protocol.kafka.handlers.group_common import NO_THROTTLE

API_KEY = 69


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    response = response_type(API_KEY, context.header.api_version)
    group_type = nested(response, "DescribedGroup")
    member_type = nested(response, "Member")
    operations = GROUP_OPERATIONS if request.include_authorized_operations else NOT_REQUESTED
    groups = []
    for group_id in request.group_ids:
        described = await context.broker.groups.consumer_describe(group_id)
        groups.append(
            build(
                group_type,
                error_code=described.error,
                error_message=None,
                group_id=group_id,
                group_state=described.state,
                group_epoch=described.epoch,
                assignment_epoch=described.assignment_epoch,
                assignor_name=described.assignor,
                members=tuple(
                    build(
                        member_type,
                        member_id=m.member_id,
                        instance_id=m.instance_id,
                        rack_id=m.rack_id,
                        member_epoch=m.member_epoch,
                        client_id=m.client_id,
                        client_host=m.client_host,
                        subscribed_topic_names=m.subscribed_topics,
                        subscribed_topic_regex=m.subscribed_regex,
                        assignment=described_assignment(context, response, m.assignment),
                        target_assignment=described_assignment(context, response, m.target),
                        member_type=CONSUMER_MEMBER_TYPE,
                    )
                    for m in described.members
                ),
                authorized_operations=operations,
            )
        )
    return build(response, throttle_time=NO_THROTTLE, groups=tuple(groups))


def described_assignment(
    context: RequestContext, response: type[Any], assignment: Assignment
) -> Any:
    """Partitions by topic id and name (a deleted topic's name is empty)."""
    topics = context.broker.groups.topics
    partitions_type = nested(response, "TopicPartitions")
    return build(
        nested(response, "Assignment"),
        topic_partitions=tuple(
            build(
                partitions_type,
                topic_id=topic_id,
                topic_name=topics.name_of(topic_id) or "",
                partitions=tuple(sorted(parts)),
            )
            for topic_id, parts in sorted(assignment.items())
        ),
    )


API = Api(API_KEY, "ConsumerGroupDescribe", 0, 1, handle)
