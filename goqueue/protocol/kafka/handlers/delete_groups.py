"""DeleteGroups: remove groups without members, with their committed offsets."""

from __future__ import annotations

import logging
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, nested, response_type
from goqueue.protocol.kafka.handlers.group_common import NO_THROTTLE

API_KEY = 42
logger = logging.getLogger(__name__)


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    response = response_type(API_KEY, context.header.api_version)
    result_type = nested(response, "DeletableGroupResult")
    names = list(dict.fromkeys(request.groups_names))
    valid = [name for name in names if name]
    shares = [name for name in valid if context.broker.shares.is_share_group(name)]
    errors = await context.broker.groups.delete_groups([n for n in valid if n not in shares])
    for name in shares:
        errors[name] = await context.broker.shares.delete_group(name)
    errors.update(dict.fromkeys((n for n in names if not n), ErrorCode.invalid_group_id))
    for name, error in errors.items():
        if error == ErrorCode.none:
            logger.info("deleted group %s for %s", name, context.peer)
        else:
            logger.info("deleting group %r for %s refused: %s", name, context.peer, error.name)
    return build(
        response,
        throttle_time=NO_THROTTLE,
        results=tuple(build(result_type, group_id=name, error_code=errors[name]) for name in names),
    )


API = Api(API_KEY, "DeleteGroups", 0, 2, handle)
