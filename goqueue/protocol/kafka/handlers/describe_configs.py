"""DescribeConfigs: the configs of topics and brokers, with where each value comes from."""

from __future__ import annotations

import datetime
import logging
from typing import Any

from kio.static.protocol import ResponsePayload

from goqueue.broker.errors import BrokerError
from goqueue.broker.peers import peer_node_id
from goqueue.config.dynamic import DescribedConfig
from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, nested, response_type
from goqueue.protocol.kafka.handlers.config_resources import (
    BROKER,
    GROUP,
    TOPIC,
    resource_result,
    unsupported_type,
)

API_KEY = 32
logger = logging.getLogger(__name__)


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    response = response_type(API_KEY, context.header.api_version)
    result_type = nested(response, "DescribeConfigsResult")
    results = []
    for resource in request.resources:
        error, configs = None, ()
        try:
            described = await _describe(context, resource.resource_type, resource.resource_name)
            wanted = set(resource.configuration_keys or ())
            configs = tuple(
                _config(result_type, config, request)
                for config in described
                if not wanted or config.name in wanted
            )
        except BrokerError as exc:
            logger.info(
                "describe configs of %s from %s refused: %s",
                resource.resource_name,
                context.peer,
                exc.message or exc.error_code.name,
            )
            error = exc
        results.append(resource_result(result_type, resource, error, configs=configs))
    return build(response, throttle_time=datetime.timedelta(0), results=tuple(results))


async def _describe(
    context: RequestContext, resource_type: int, name: str
) -> list[DescribedConfig]:
    if resource_type == TOPIC:
        return context.broker.describe_topic_configs(name)
    if resource_type == BROKER:
        return context.broker.describe_broker_configs(name)
    if resource_type == GROUP:
        origin = peer_node_id(context.header.client_id)
        return await context.broker.shares.describe_group_configs(name, origin)
    raise unsupported_type(resource_type)


def _config(result_type: type[Any], config: DescribedConfig, request: Any) -> Any:
    """One config entry; synonyms and documentation only when asked for, as Kafka does."""
    config_type = nested(result_type, "DescribeConfigsResourceResult")
    synonym_type = nested(result_type, "DescribeConfigsSynonym")
    synonyms = tuple(
        build(synonym_type, name=synonym.name, value=synonym.value, source=synonym.source)
        for synonym in config.synonyms
        if request.include_synonyms
    )
    documentation = config.doc if getattr(request, "include_documentation", False) else None
    return build(
        config_type,
        name=config.name,
        value=config.value,
        read_only=config.read_only,
        config_source=config.source,
        is_sensitive=config.sensitive,
        synonyms=synonyms,
        config_type=config.wire_type,
        documentation=documentation,
    )


API = Api(API_KEY, "DescribeConfigs", 1, 4, handle)
