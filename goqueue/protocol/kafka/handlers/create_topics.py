"""CreateTopics: create topics (or only validate them) with partitions and configs."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

from goqueue.broker.errors import BrokerError
from goqueue.config.catalog import effective_topic_configs
from goqueue.config.settings import BrokerSettings
from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, has_field, nested, response_type

API_KEY = 19
logger = logging.getLogger(__name__)
TOPIC_CONFIG = 1
DEFAULT_CONFIG = 5


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    response = response_type(API_KEY, context.header.api_version)
    result_type = nested(response, "CreatableTopicResult")
    broker = context.broker
    results = []
    for topic in request.topics:
        try:
            info = await broker.create_topic(
                topic.name,
                topic.num_partitions,
                topic.replication_factor,
                {config.name: config.value for config in topic.configs},
                validate_only=request.validate_only,
                assignments={
                    int(a.partition_index): tuple(int(n) for n in a.broker_ids)
                    for a in topic.assignments
                },
            )
        except BrokerError as exc:
            logger.warning(
                "create topic %r from %s refused: %s %s",
                topic.name,
                context.peer,
                exc.error_code.name,
                exc.message or "",
            )
            results.append(
                build(
                    result_type,
                    name=topic.name,
                    topic_id=None,
                    error_code=exc.error_code,
                    error_message=exc.message,
                    configs=None,
                )
            )
            continue
        results.append(
            build(
                result_type,
                name=topic.name,
                topic_id=info.topic_id,
                error_code=ErrorCode.none,
                error_message=None,
                num_partitions=info.partitions,
                replication_factor=info.replication_factor,
                configs=_configs(result_type, info.configs, broker.settings),
            )
        )
    return build(response, throttle_time=datetime.timedelta(0), topics=tuple(results))


def _configs(
    result_type: type[Any], topic_configs: Mapping[str, str], settings: BrokerSettings
) -> tuple[Any, ...] | None:
    """CreateTopics v5+ answers with the topic's effective configs and where each came from."""
    if not has_field(result_type, "configs"):
        return None
    config_type = nested(result_type, "CreatableTopicConfigs")
    return tuple(
        build(
            config_type,
            name=name,
            value=value,
            read_only=False,
            config_source=TOPIC_CONFIG if name in topic_configs else DEFAULT_CONFIG,
            is_sensitive=False,
        )
        for name, value in sorted(effective_topic_configs(topic_configs, settings).items())
    )


API = Api(API_KEY, "CreateTopics", 2, 7, handle)
