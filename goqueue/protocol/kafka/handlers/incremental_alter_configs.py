"""IncrementalAlterConfigs: set, delete, append to or subtract from single configs of topics
and brokers, leaving the others as they are."""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

from goqueue.broker.errors import BrokerError
from goqueue.config.dynamic import AlterOp, OpType
from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import response_type
from goqueue.protocol.kafka.handlers.config_resources import alter_resources

API_KEY = 44


def _ops(resource: Any) -> list[AlterOp]:
    ops = []
    for config in resource.configs:
        try:
            op = OpType(config.config_operation)
        except ValueError:
            raise BrokerError(
                ErrorCode.invalid_request, f"Unknown operations type {config.config_operation}"
            ) from None
        ops.append(AlterOp(config.name, op, None if op is OpType.DELETE else config.value))
    return ops


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    response = response_type(API_KEY, context.header.api_version)
    return await alter_resources(context, request, response, _ops, incremental=True)


API = Api(API_KEY, "IncrementalAlterConfigs", 0, 1, handle)
