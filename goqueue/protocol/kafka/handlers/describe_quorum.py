"""DescribeQuorum (KIP-595/KIP-853): the metadata quorum as Kafka describes its
`__cluster_metadata` partition: leader, term, committed index, the voters' replication
progress and the brokers that only follow (observers). Only the leader knows the voters'
progress; other nodes answer NOT_LEADER_OR_FOLLOWER, as Kafka does."""

from __future__ import annotations

import logging
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

from goqueue.config.settings import parse_host_port
from goqueue.metadata.errors import MetadataError
from goqueue.metadata.image import MetadataImage
from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, has_field, nested, response_type

API_KEY = 55
METADATA_TOPIC = "__cluster_metadata"
UNKNOWN = -1
logger = logging.getLogger(__name__)


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    response = response_type(API_KEY, context.header.api_version)
    store = context.broker.metadata
    image = store.image
    try:
        status = await store.quorum_status()
    except MetadataError as exc:
        return build(
            response, error_code=exc.error_code, error_message=str(exc), topics=(), nodes=()
        )
    topic_type = nested(response, "TopicData")
    topics = []
    for topic in request.topics:
        partitions = []
        for partition in topic.partitions:
            index = int(partition.partition_index)
            if topic.topic_name != METADATA_TOPIC or index != 0:
                partitions.append(_error(response, index, ErrorCode.unknown_topic_or_partition))
            elif not store.is_controller():
                partitions.append(_error(response, index, ErrorCode.not_leader_or_follower))
            else:
                partitions.append(_partition(response, image, status, store.controller_id))
        topics.append(build(topic_type, topic_name=topic.topic_name, partitions=tuple(partitions)))
    nodes = ()
    if has_field(response, "nodes"):
        node_type = nested(response, "Node")
        nodes = tuple(_node(node_type, node, address) for node, address in image.voters.items())
    return build(
        response, error_code=ErrorCode.none, error_message=None, topics=tuple(topics), nodes=nodes
    )


def _partition(
    response: type[ResponsePayload],
    image: MetadataImage,
    status: dict[str, Any],
    leader: int,
) -> Any:
    replica_type = nested(response, "ReplicaState")
    committed = int(status["commit_idx"])

    def progress(node: int, address: str | None) -> Any:
        if node == leader:
            end = committed
        else:
            end = int(status.get(f"match_idx_server_{address}", UNKNOWN)) if address else UNKNOWN
        return build(replica_type, replica_id=node, replica_directory_id=None, log_end_offset=end)

    return build(
        nested(response, "PartitionData"),
        partition_index=0,
        error_code=ErrorCode.none,
        error_message=None,
        leader_id=leader,
        leader_epoch=int(status["raft_term"]),
        high_watermark=committed,
        current_voters=tuple(progress(node, addr) for node, addr in sorted(image.voters.items())),
        observers=tuple(
            progress(node, None) for node in sorted(image.brokers) if node not in image.voters
        ),
    )


def _error(response: type[ResponsePayload], index: int, code: ErrorCode) -> Any:
    return build(
        nested(response, "PartitionData"),
        partition_index=index,
        error_code=code,
        error_message=None,
        leader_id=UNKNOWN,
        leader_epoch=UNKNOWN,
        high_watermark=UNKNOWN,
        current_voters=(),
        observers=(),
    )


def _node(node_type: Any, node: int, address: str) -> Any:
    host, port = parse_host_port(address)
    listener = build(nested(node_type, "Listener"), name="RAFT", host=host, port=port)
    return build(node_type, node_id=node, listeners=(listener,))


API = Api(API_KEY, "DescribeQuorum", 0, 2, handle)
