"""OffsetForLeaderEpoch: where a leader epoch ends in the leader's log (KIP-101, KIP-279).

Followers ask it for their latest epoch after a leader change, to find where their log diverges
from the new leader's; consumers ask it (KIP-320) to detect a log truncated under them. Only
the leader answers, and only for the leader epoch the asker believes current.
"""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

from goqueue.broker.errors import BrokerError
from goqueue.log.leader_epochs import UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, nested, response_type

API_KEY = 23


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    response = response_type(API_KEY, context.header.api_version)
    topic_type = nested(response, "OffsetForLeaderTopicResult")
    partition_type = nested(response, "EpochEndOffset")
    topics = []
    for topic in request.topics:
        partitions = []
        for wanted in topic.partitions:
            code = ErrorCode.none
            epoch, end_offset = UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
            try:
                partition = context.broker.partition(topic.topic, wanted.partition)
                partition.check_leader(wanted.current_leader_epoch)
                epoch, end_offset = partition.epochs.end_offset_for(
                    wanted.leader_epoch, partition.log.log_end_offset
                )
            except BrokerError as exc:
                code = exc.error_code
            partitions.append(
                build(
                    partition_type,
                    error_code=code,
                    partition=wanted.partition,
                    leader_epoch=epoch,
                    end_offset=end_offset,
                )
            )
        topics.append(build(topic_type, topic=topic.topic, partitions=tuple(partitions)))
    return build(response, throttle_time=datetime.timedelta(0), topics=tuple(topics))


API = Api(API_KEY, "OffsetForLeaderEpoch", 2, 4, handle)
