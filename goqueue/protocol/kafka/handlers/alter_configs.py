"""AlterConfigs (legacy): replace every dynamic config of each topic or broker resource."""

from __future__ import annotations

from typing import Any

from kio.static.protocol import ResponsePayload

from goqueue.config.dynamic import AlterOp, OpType
from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import response_type
from goqueue.protocol.kafka.handlers.config_resources import alter_resources

API_KEY = 33


def _ops(resource: Any) -> list[AlterOp]:
    """Every given config is set; what is not given goes back to its default."""
    return [AlterOp(config.name, OpType.SET, config.value) for config in resource.configs]


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    response = response_type(API_KEY, context.header.api_version)
    return await alter_resources(context, request, response, _ops, incremental=False)


API = Api(API_KEY, "AlterConfigs", 0, 2, handle)
