"""ShareFetch (KIP-932): acknowledge records and acquire new ones for a share group member,
within its share session."""

from __future__ import annotations

import datetime
import logging
from typing import Any

from kio.static.protocol import ResponsePayload

from goqueue.broker.peers import peer_node_id
from goqueue.coordinator.share.group import TopicPartition
from goqueue.coordinator.share.messages import ShareParams, SharePartitionResult, ShareResult
from goqueue.coordinator.share.partition import AckBatch
from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, nested, response_type
from goqueue.protocol.kafka.handlers.group_common import NO_THROTTLE, millis

API_KEY = 78
NO_LEADER = (-1, -1)
logger = logging.getLogger(__name__)


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    version = context.header.api_version
    fetch: list[TopicPartition] = []
    for topic in request.topics:
        fetch += ((topic.topic_id, p.partition_index) for p in topic.partitions)
    result = await context.broker.shares.fetch(
        ShareParams(
            group_id=request.group_id or "",
            member_id=request.member_id or "",
            session_epoch=request.share_session_epoch,
            max_wait_ms=millis(request.max_wait),
            max_bytes=request.max_bytes,
            max_records=request.max_records if request.max_records > 0 else 500,
            fetch=fetch,
            forget=[
                (topic.topic_id, index)
                for topic in request.forgotten_topics_data
                for index in topic.partitions
            ],
            acks=acknowledgements(request.topics, "acknowledgement_batches"),
            allow_renew=getattr(request, "is_renew_ack", False),
            origin=peer_node_id(context.header.client_id),
        )
    )
    return share_response(context, API_KEY, version, result)


def acknowledgements(topics: Any, field: str) -> dict[TopicPartition, list[AckBatch]]:
    """The acknowledgement batches of a ShareFetch or ShareAcknowledge request by partition."""
    acks: dict[TopicPartition, list[AckBatch]] = {}
    for topic in topics:
        for partition in topic.partitions:
            batches = [
                AckBatch(b.first_offset, b.last_offset, tuple(b.acknowledge_types))
                for b in getattr(partition, field)
            ]
            if batches:
                acks.setdefault((topic.topic_id, partition.partition_index), []).extend(batches)
    return acks


def share_response(
    context: RequestContext, api_key: int, version: int, result: ShareResult
) -> ResponsePayload:
    """A ShareFetch or ShareAcknowledge response: partitions grouped by topic id."""
    response = response_type(api_key, version)
    fetching = api_key == API_KEY
    topic_name = "ShareFetchableTopicResponse" if fetching else "ShareAcknowledgeTopicResponse"
    topic_type = nested(response, topic_name)
    partition_type = nested(response, "PartitionData")
    leader_type = nested(response, "LeaderIdAndEpoch")
    by_topic: dict[Any, list[Any]] = {}
    for (topic_id, index), data in sorted(result.partitions.items(), key=_order):
        leader_id, leader_epoch = _current_leader(context, topic_id, index)
        leader = build(leader_type, leader_id=leader_id, leader_epoch=leader_epoch)
        by_topic.setdefault(topic_id, []).append(
            _partition(partition_type, leader, index, data, fetching)
        )
    if result.error.value:
        logger.info(
            "share request from %s refused: %s %s", context.peer, result.error.name, result.message
        )
    return build(
        response,
        throttle_time=NO_THROTTLE,
        error_code=result.error,
        error_message=result.message,
        acquisition_lock_timeout=datetime.timedelta(milliseconds=result.lock_timeout_ms),
        responses=tuple(
            build(topic_type, topic_id=topic_id, partitions=tuple(parts))
            for topic_id, parts in by_topic.items()
        ),
        node_endpoints=(),
    )


def _order(item: tuple[TopicPartition, SharePartitionResult]) -> tuple[str, int]:
    return str(item[0][0]), item[0][1]


def _current_leader(context: RequestContext, topic_id: Any, index: int) -> tuple[int, int]:
    """The partition's leader and leader epoch in this broker's metadata: the broker the
    client talked to unless leadership moved (then the client learns where it went)."""
    info = context.broker.image.topics_by_id.get(topic_id)
    state = None if info is None else info.partition_states.get(index)
    if state is None or state.leader < 0:
        return NO_LEADER
    return state.leader, state.leader_epoch


def _partition(
    partition_type: type[Any],
    leader: Any,
    index: int,
    data: SharePartitionResult,
    fetching: bool,
) -> Any:
    if not fetching:
        return build(
            partition_type,
            partition_index=index,
            error_code=data.ack_error,
            error_message=data.ack_message,
            current_leader=leader,
        )
    acquired_type = nested(partition_type, "AcquiredRecords")
    return build(
        partition_type,
        partition_index=index,
        error_code=data.error,
        error_message=None,
        acknowledge_error_code=data.ack_error.value,
        acknowledge_error_message=data.ack_message,
        current_leader=leader,
        records=data.records,
        acquired_records=tuple(
            build(
                acquired_type,
                first_offset=run.first_offset,
                last_offset=run.last_offset,
                delivery_count=run.delivery_count,
            )
            for run in data.acquired
        ),
    )


API = Api(API_KEY, "ShareFetch", 1, 2, handle)
