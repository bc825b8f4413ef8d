"""Fetch: read each partition and answer with the batches exactly as stored, via sendfile."""

from __future__ import annotations

import datetime
import os
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

from goqueue.broker.broker import Broker
from goqueue.broker.fetch import CONSUMER, FetchedPartition, PartitionFetch, fetch
from goqueue.config.catalog import compression_type_for
from goqueue.log.partition_log import FileSlice
from goqueue.protocol.kafka.api import Api, RequestContext, topic_name
from goqueue.protocol.kafka.codec import SplicedResponse, build, has_field, nested, response_type

API_KEY = 1
ZSTD_MIN_FETCH_VERSION = 10
INVALID_SESSION_ID = 0
FULL_FETCH_EPOCHS = (-1, 0)
LEADER_ERRORS = frozenset({ErrorCode.not_leader_or_follower, ErrorCode.fenced_leader_epoch})
"""Errors answered with the current leader and epoch (v12+), so clients skip a metadata
round trip."""


async def handle(context: RequestContext, request: Any) -> ResponsePayload | SplicedResponse:
    """Serve full fetches; incremental fetch sessions (KIP-227) are declined by answering
    session id 0, which every client treats as 'keep sending full fetch requests'."""
    response = response_type(API_KEY, context.header.api_version)
    session_epoch = getattr(request, "session_epoch", -1)
    if session_epoch not in FULL_FETCH_EPOCHS:
        return build(
            response,
            throttle_time=datetime.timedelta(0),
            error_code=ErrorCode.fetch_session_id_not_found,
            session_id=INVALID_SESSION_ID,
            responses=(),
        )
    broker = context.broker
    requests: list[PartitionFetch] = []
    unknown: list[tuple[Any, int]] = []
    for topic in request.topics:
        name = topic_name(context, topic, "topic")
        for partition in topic.partitions:
            if name is None:
                unknown.append((topic.topic_id, partition.partition))
                continue
            requests.append(
                PartitionFetch(
                    name,
                    partition.partition,
                    partition.fetch_offset,
                    partition.partition_max_bytes,
                    getattr(partition, "current_leader_epoch", -1),
                )
            )
    results = await fetch(
        broker,
        requests,
        max_wait_ms=int(request.max_wait.total_seconds() * 1000),
        min_bytes=request.min_bytes,
        max_bytes=getattr(request, "max_bytes", 2**31 - 1),
        replica_id=_replica_id(request),
    )
    slices: dict[bytes, FileSlice] = {}
    topic_type = nested(response, "FetchableTopicResponse")
    partition_type = nested(response, "PartitionData")
    by_topic: dict[str, list[Any]] = {}
    if context.header.api_version < ZSTD_MIN_FETCH_VERSION:
        results = [_without_zstd(broker, result) for result in results]
    for result in results:
        by_topic.setdefault(result.request.topic, []).append(
            _partition_data(partition_type, result, slices, _current_leader(broker, result))
        )
    topics = [
        build(
            topic_type,
            topic=name,
            topic_id=broker.topic_id(name),
            partitions=tuple(partitions),
        )
        for name, partitions in by_topic.items()
    ]
    topics.extend(
        build(
            topic_type,
            topic_id=topic_id,
            partitions=(
                build(
                    partition_type,
                    partition_index=index,
                    error_code=ErrorCode.unknown_topic_id,
                    high_watermark=-1,
                    aborted_transactions=None,
                    records=b"",
                ),
            ),
        )
        for topic_id, index in unknown
    )
    body = build(
        response,
        throttle_time=datetime.timedelta(0),
        error_code=ErrorCode.none,
        session_id=INVALID_SESSION_ID,
        responses=tuple(topics),
    )
    return SplicedResponse(body, slices) if slices else body


def _without_zstd(broker: Broker, result: FetchedPartition) -> FetchedPartition:
    """Kafka answers a Fetch older than v10 (KIP-110) for a partition of a topic whose
    `compression.type` is zstd with UNSUPPORTED_COMPRESSION_TYPE: such a client could not
    decompress what it would get."""
    info = broker.image.topics.get(result.request.topic)
    if info is None or compression_type_for(info.configs, broker.settings) != "zstd":
        return result
    return FetchedPartition(result.request, ErrorCode.unsupported_compression_type)


def _replica_id(request: Any) -> int:
    """Who fetches: a follower's broker id, or -1 for a consumer (KIP-903 moved the field into
    `replica_state` in v15)."""
    state = getattr(request, "replica_state", None)
    if state is not None:
        return int(state.replica_id)
    return int(getattr(request, "replica_id", CONSUMER))


def _current_leader(broker: Broker, result: FetchedPartition) -> tuple[int, int] | None:
    """(leader id, leader epoch) of a partition whose fetch went to the wrong replica."""
    if result.error_code not in LEADER_ERRORS:
        return None
    info = broker.image.topics.get(result.request.topic)
    state = info.partition_states.get(result.request.partition) if info else None
    return (state.leader, state.leader_epoch) if state else None


def _partition_data(
    partition_type: type[Any],
    result: FetchedPartition,
    slices: dict[bytes, FileSlice],
    leader: tuple[int, int] | None,
) -> Any:
    records = b""
    if result.data is not None:
        records = os.urandom(16)
        slices[records] = result.data
    extra = {}
    if leader is not None and has_field(partition_type, "current_leader"):
        leader_type = nested(partition_type, "LeaderIdAndEpoch")
        extra["current_leader"] = build(leader_type, leader_id=leader[0], leader_epoch=leader[1])
    return build(
        partition_type,
        **extra,
        partition_index=result.request.partition,
        error_code=result.error_code,
        high_watermark=result.high_watermark,
        last_stable_offset=result.high_watermark,
        log_start_offset=result.log_start_offset,
        aborted_transactions=None,
        preferred_read_replica=-1,
        records=records,
    )


API = Api(API_KEY, "Fetch", 4, 17, handle)
