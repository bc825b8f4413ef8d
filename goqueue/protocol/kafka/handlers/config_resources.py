"""What DescribeConfigs, AlterConfigs and IncrementalAlterConfigs share: resource types and
one way to apply a request's changes resource by resource, each answered on its own."""

from __future__ import annotations

import datetime
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

from goqueue.broker.errors import BrokerError
from goqueue.config.dynamic import AlterOp
from goqueue.protocol.kafka.api import RequestContext
from goqueue.protocol.kafka.codec import build, nested

TOPIC = 2
BROKER = 4
GROUP = 32
logger = logging.getLogger(__name__)


def unsupported_type(resource_type: int) -> BrokerError:
    return BrokerError(ErrorCode.invalid_request, f"Unsupported resource type: {resource_type}")


def resource_result(
    result_type: type[Any], resource: Any, error: BrokerError | None, **values: Any
) -> Any:
    """One resource's answer: its type and name, and its error if it was refused."""
    return build(
        result_type,
        error_code=ErrorCode.none if error is None else error.error_code,
        error_message=None if error is None else error.message,
        resource_type=resource.resource_type,
        resource_name=resource.resource_name,
        **values,
    )


async def alter_resources(
    context: RequestContext,
    request: Any,
    response: type[ResponsePayload],
    ops_of: Callable[[Any], list[AlterOp]],
    *,
    incremental: bool,
) -> ResponsePayload:
    """Validate and apply each resource's changes; a resource named twice is refused whole, as
    Kafka does, since the order of its changes would be ambiguous."""
    result_type = nested(response, "AlterConfigsResourceResponse")
    counts = Counter(
        (resource.resource_type, resource.resource_name) for resource in request.resources
    )
    results = []
    for resource in request.resources:
        error = None
        try:
            if counts[(resource.resource_type, resource.resource_name)] > 1:
                raise BrokerError(
                    ErrorCode.invalid_request, "Each resource must appear at most once."
                )
            await _alter(context, resource, ops_of(resource), incremental, request.validate_only)
        except BrokerError as exc:
            logger.warning(
                "altering configs of %s from %s refused: %s %s",
                resource.resource_name or "the cluster default",
                context.peer,
                exc.error_code.name,
                exc.message or "",
            )
            error = exc
        results.append(resource_result(result_type, resource, error))
    return build(response, throttle_time=datetime.timedelta(0), responses=tuple(results))


async def _alter(
    context: RequestContext,
    resource: Any,
    ops: list[AlterOp],
    incremental: bool,
    validate_only: bool,
) -> None:
    broker = context.broker
    name = resource.resource_name
    if resource.resource_type == TOPIC:
        await broker.alter_topic_configs(
            name, ops, incremental=incremental, validate_only=validate_only
        )
    elif resource.resource_type == BROKER:
        await broker.alter_broker_configs(
            name, ops, incremental=incremental, validate_only=validate_only
        )
    elif resource.resource_type == GROUP:
        await broker.shares.alter_group_configs(
            name, ops, incremental=incremental, validate_only=validate_only
        )
    else:
        raise unsupported_type(resource.resource_type)
