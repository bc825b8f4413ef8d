"""Metadata: brokers, controller and topic partitions, creating topics on demand (Kafka's
`auto.create.topics.enable`) when the request allows it."""

from __future__ import annotations

import datetime
import logging
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

from goqueue.broker.errors import BrokerError
from goqueue.broker.topic_names import INTERNAL_TOPICS
from goqueue.metadata.controller import electable_in
from goqueue.metadata.image import NO_LEADER, MetadataImage, TopicInfo
from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, has_field, nested, response_type

API_KEY = 3
logger = logging.getLogger(__name__)


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    response = response_type(API_KEY, context.header.api_version)
    broker = context.broker
    if request.topics is None or (context.header.api_version == 0 and not request.topics):
        wanted: list[tuple[str | None, Any]] = [(name, None) for name in broker.image.topics]
    else:
        wanted = [
            (topic.name, getattr(topic, "topic_id", None) if not topic.name else None)
            for topic in request.topics
        ]
    allow_create = getattr(request, "allow_auto_topic_creation", True)
    topics = []
    for name, topic_id in wanted:
        topics.append(await _describe_topic(context, response, name, topic_id, allow_create))
    image = broker.image
    broker_type = nested(response, "MetadataResponseBroker")
    return build(
        response,
        throttle_time=datetime.timedelta(0),
        brokers=tuple(
            build(broker_type, node_id=b.node_id, host=b.host, port=b.port, rack=b.rack)
            for b in image.live_brokers()
        ),
        cluster_id=image.cluster_id,
        controller_id=live_controller_id(broker.metadata.controller_id, image),
        topics=tuple(topics),
        error_code=ErrorCode.none,
    )


async def _describe_topic(
    context: RequestContext,
    response: type[ResponsePayload],
    name: str | None,
    topic_id: Any,
    allow_create: bool,
) -> Any:
    broker = context.broker
    topic_type = nested(response, "MetadataResponseTopic")
    info = _find(broker.image, name, topic_id)
    if info is None and name and allow_create and broker.settings.auto_create_topics_enable:
        try:
            info = await broker.create_topic(name, -1, -1, {})
            logger.info("auto-created topic %s for %s", name, context.peer)
        except BrokerError as exc:
            info = broker.image.topics.get(name)
            if info is None:
                logger.warning(
                    "auto-creating topic %r for %s refused: %s %s",
                    name,
                    context.peer,
                    exc.error_code.name,
                    exc.message or "",
                )
                return _error_topic(topic_type, name, topic_id, exc.error_code)
    if info is None:
        code = ErrorCode.unknown_topic_or_partition
        if name is None and has_field(topic_type, "topic_id"):
            code = ErrorCode.unknown_topic_id
        return _error_topic(topic_type, name, topic_id, code)
    partition_type = nested(response, "MetadataResponsePartition")
    electable = electable_in(broker.image)
    return build(
        topic_type,
        error_code=ErrorCode.none,
        name=info.name,
        topic_id=info.topic_id,
        is_internal=info.name in INTERNAL_TOPICS,
        partitions=tuple(
            build(
                partition_type,
                # Kafka: a partition without a live leader is LEADER_NOT_AVAILABLE (retriable).
                error_code=(
                    ErrorCode.leader_not_available if state.leader == NO_LEADER else ErrorCode.none
                ),
                partition_index=index,
                leader_id=state.leader,
                leader_epoch=state.leader_epoch,
                replica_nodes=state.replicas,
                isr_nodes=state.isr,
                offline_replicas=tuple(n for n in state.replicas if not electable(n)),
            )
            for index, state in sorted(info.partition_states.items())
        ),
    )


def live_controller_id(controller_id: int, image: MetadataImage) -> int:
    """The controller as clients should see it: the Raft leader when it is a live broker;
    else (a leader election under way) any live broker, as Kafka names a random one, so
    admin clients always have a node to send controller requests to, which forward them."""
    live = [b.node_id for b in image.live_brokers()]
    if controller_id in live:
        return controller_id
    return live[0] if live else -1


def _find(image: MetadataImage, name: str | None, topic_id: Any) -> TopicInfo | None:
    if name:
        return image.topics.get(name)
    return image.topics_by_id.get(topic_id) if topic_id is not None else None


def _error_topic(topic_type: type[Any], name: str | None, topic_id: Any, code: ErrorCode) -> Any:
    return build(
        topic_type,
        error_code=code,
        name=name,
        topic_id=topic_id,
        is_internal=False,
        partitions=(),
    )


API = Api(API_KEY, "Metadata", 0, 13, handle)
