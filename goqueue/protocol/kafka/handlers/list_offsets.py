"""ListOffsets: earliest, latest, max-timestamp and by-timestamp offset lookups."""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

from goqueue.broker.errors import BrokerError
from goqueue.broker.partition import Partition
from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, nested, response_type

API_KEY = 2
LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3
EARLIEST_LOCAL = -4
LATEST_TIERED = -5
NOT_FOUND = (-1, -1)


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    response = response_type(API_KEY, context.header.api_version)
    topic_type = nested(response, "ListOffsetsTopicResponse")
    partition_type = nested(response, "ListOffsetsPartitionResponse")
    topics = []
    for topic in request.topics:
        partitions = []
        for wanted in topic.partitions:
            code = ErrorCode.none
            timestamp, offset = NOT_FOUND
            leader_epoch = -1
            try:
                partition = context.broker.partition(topic.name, wanted.partition_index)
                partition.check_leader(getattr(wanted, "current_leader_epoch", -1))
                timestamp, offset = _lookup(partition, wanted.timestamp)
                leader_epoch = partition.leader_epoch
            except BrokerError as exc:
                code = exc.error_code
            partitions.append(
                build(
                    partition_type,
                    partition_index=wanted.partition_index,
                    error_code=code,
                    timestamp=timestamp,
                    offset=offset,
                    leader_epoch=leader_epoch,
                )
            )
        topics.append(build(topic_type, name=topic.name, partitions=tuple(partitions)))
    return build(response, throttle_time=datetime.timedelta(0), topics=tuple(topics))


def _lookup(partition: Partition, timestamp: int) -> tuple[int, int]:
    """(timestamp, offset) for a ListOffsets target; Kafka answers -1 for the timestamp of
    the earliest and latest offsets and (-1, -1) where nothing matches."""
    log = partition.log
    if timestamp in (EARLIEST, EARLIEST_LOCAL):
        return -1, log.log_start_offset
    if timestamp == LATEST:
        return -1, partition.high_watermark
    if timestamp == LATEST_TIERED:
        return NOT_FOUND
    if timestamp == MAX_TIMESTAMP:
        return log.max_timestamp()
    if timestamp < 0:
        raise BrokerError(ErrorCode.invalid_request, f"Unknown special timestamp {timestamp}")
    found = log.offset_for_timestamp(timestamp)
    return found if found is not None and found[1] < partition.high_watermark else NOT_FOUND


API = Api(API_KEY, "ListOffsets", 1, 10, handle)
