"""OffsetCommit: store a group's consumed positions (v10 names topics by id)."""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

from goqueue.coordinator.group.messages import CommitRequest, OffsetCommit, TopicPartition
from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, nested, response_type
from goqueue.protocol.kafka.handlers.group_common import (
    NO_THROTTLE,
    partition_exists,
    topic_name,
    unknown_topic_error,
)

API_KEY = 8


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    """Partitions of unknown topics are refused here, as Kafka's request handler does; the
    rest go to the group's coordinator in one commit."""
    version = context.header.api_version
    response = response_type(API_KEY, version)
    errors: dict[tuple[int, int], ErrorCode] = {}
    offsets: dict[TopicPartition, OffsetCommit] = {}
    keys: dict[tuple[int, int], TopicPartition] = {}
    for t, topic in enumerate(request.topics):
        name = topic_name(context, topic)
        for partition in topic.partitions:
            key = (t, partition.partition_index)
            if name is None or not partition_exists(context, name, partition.partition_index):
                errors[key] = unknown_topic_error(topic)
                continue
            tp = TopicPartition(name, partition.partition_index)
            keys[key] = tp
            offsets[tp] = OffsetCommit(
                partition.committed_offset,
                getattr(partition, "committed_leader_epoch", -1),
                partition.committed_metadata,
            )
    if offsets:
        committed = await context.broker.groups.commit_offsets(
            CommitRequest(
                group_id=request.group_id,
                member_id=request.member_id,
                group_instance_id=getattr(request, "group_instance_id", None),
                generation_id=request.generation_id_or_member_epoch,
                offsets=offsets,
                api_version=version,
            )
        )
        errors.update({key: committed[tp] for key, tp in keys.items()})
    topic_type = nested(response, "OffsetCommitResponseTopic")
    partition_type = nested(response, "OffsetCommitResponsePartition")
    return build(
        response,
        throttle_time=NO_THROTTLE,
        topics=tuple(
            build(
                topic_type,
                name=getattr(topic, "name", None),
                topic_id=getattr(topic, "topic_id", None),
                partitions=tuple(
                    build(
                        partition_type,
                        partition_index=p.partition_index,
                        error_code=errors[(t, p.partition_index)],
                    )
                    for p in topic.partitions
                ),
            )
            for t, topic in enumerate(request.topics)
        ),
    )


API = Api(API_KEY, "OffsetCommit", 2, 10, handle)
