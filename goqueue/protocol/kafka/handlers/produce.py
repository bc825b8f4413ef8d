"""Produce: append each partition's batches; answer per partition with offset or error."""

from __future__ import annotations

import datetime
import logging
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

from goqueue.broker.errors import BrokerError
from goqueue.broker.peers import peer_node_id
from goqueue.broker.topic_names import INTERNAL_TOPICS
from goqueue.observability.logs import fields
from goqueue.protocol.kafka.api import Api, RequestContext, topic_name
from goqueue.protocol.kafka.codec import build, nested, response_type
from goqueue.records.batch import HEADER_SIZE, read_header
from goqueue.records.compression import Compression

API_KEY = 0
ADMIN_CLIENT_ID = "__admin_client"
"""The client id Kafka lets append to internal topics (`AdminUtils.ADMIN_CLIENT_ID`)."""
ZSTD_MIN_PRODUCE_VERSION = 7
logger = logging.getLogger(__name__)


class AcksZeroProduceError(Exception):
    """Kafka closes the connection when a produce without acks fails: it is the only way the
    client can learn of the failure."""


async def handle(context: RequestContext, request: Any) -> ResponsePayload | None:
    response = response_type(API_KEY, context.header.api_version)
    topic_type = nested(response, "TopicProduceResponse")
    partition_type = nested(response, "PartitionProduceResponse")
    broker = context.broker
    topics = []
    for topic_data in request.topic_data:
        name = topic_name(context, topic_data, "name")
        partitions = []
        for data in topic_data.partition_data:
            code, message, base_offset, log_start = ErrorCode.none, None, -1, -1
            append_time: datetime.datetime | None = None
            if request.acks not in (0, 1, -1):
                code = ErrorCode.invalid_required_acks
            else:
                try:
                    if name is None:
                        raise BrokerError(ErrorCode.unknown_topic_id)
                    _check_internal(name, context.header.client_id)
                    _check_codec(context.header.api_version, data.records or b"")
                    result = await broker.produce(
                        name,
                        data.index,
                        data.records or b"",
                        request.acks,
                        timeout=request.timeout.total_seconds(),
                    )
                    base_offset, log_start = result.base_offset, result.log_start_offset
                    if result.log_append_time_ms >= 0:
                        append_time = datetime.datetime.fromtimestamp(
                            result.log_append_time_ms / 1000, datetime.UTC
                        )
                except BrokerError as exc:
                    code, message = exc.error_code, exc.message
                    logger.warning(
                        "produce to %s-%d from %s failed: %s %s",
                        name,
                        data.index,
                        context.peer,
                        code.name,
                        message or "",
                        extra=fields(topic=name, partition=data.index, error_code=code),
                    )
            if code != ErrorCode.none and request.acks == 0:
                raise AcksZeroProduceError(f"{code.name}: {message}")
            partitions.append(
                build(
                    partition_type,
                    index=data.index,
                    error_code=code,
                    base_offset=base_offset,
                    log_append_time=append_time,
                    log_start_offset=log_start,
                    record_errors=(),
                    error_message=message,
                )
            )
        topics.append(
            build(
                topic_type,
                name=getattr(topic_data, "name", None),
                topic_id=getattr(topic_data, "topic_id", None),
                partition_responses=tuple(partitions),
            )
        )
    if request.acks == 0:
        return None
    return build(response, responses=tuple(topics), throttle_time=datetime.timedelta(0))


def _check_internal(topic: str, client_id: str | None) -> None:
    """Kafka's ReplicaManager refuses client appends to internal topics (only its admin client
    id may); here the brokers of the cluster may, as the scheduler parks messages on a peer's
    schedule shard by producing to `__goqueue_schedule`."""
    if (
        topic in INTERNAL_TOPICS
        and client_id != ADMIN_CLIENT_ID
        and peer_node_id(client_id) is None
    ):
        raise BrokerError(
            ErrorCode.invalid_topic_exception, f"Cannot append to internal topic {topic}"
        )


def _check_codec(version: int, records: bytes) -> None:
    """Kafka's `ProduceRequest.validateRecords`: zstd came with Produce v7 (KIP-110), so an
    older request may not carry it. A batch too short to tell is left to the broker's checks."""
    if version >= ZSTD_MIN_PRODUCE_VERSION or len(records) < HEADER_SIZE:
        return
    if read_header(records).compression is Compression.zstd:
        raise BrokerError(
            ErrorCode.unsupported_compression_type,
            f"Produce requests with version {version} are not allowed to use ZStandard compression",
        )


API = Api(API_KEY, "Produce", 3, 13, handle)
