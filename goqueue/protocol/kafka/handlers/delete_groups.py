"""DeleteGroups: remove groups without members, with their committed offsets.

Clients send it to FindCoordinator's answer, which names a share group's coordinator only on
brokers that know the group: a group the consumer group coordinator here does not know is
deleted on its share coordinator when another broker is that (forwarded there).
"""

from __future__ import annotations

import logging
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

from goqueue.broker.peers import peer_node_id
from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, nested, response_type
from goqueue.protocol.kafka.handlers.group_common import NO_THROTTLE

API_KEY = 42
_NOT_HERE = (ErrorCode.group_id_not_found, ErrorCode.not_coordinator)
"""What the consumer group coordinator answers for a group it does not have."""
logger = logging.getLogger(__name__)


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    response = response_type(API_KEY, context.header.api_version)
    result_type = nested(response, "DeletableGroupResult")
    names = list(dict.fromkeys(request.groups_names))
    valid = [name for name in names if name]
    errors = await _delete(context, valid)
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


async def _delete(context: RequestContext, names: list[str]) -> dict[str, ErrorCode]:
    """Share groups this broker coordinates here; others on the consumer group coordinator,
    then, if it does not have them and another broker is their share coordinator, there (its
    answer unless it has no such share group either). A peer forwards only share groups."""
    shares = context.broker.shares
    origin = peer_node_id(context.header.client_id)
    if origin is not None:
        return {name: await shares.delete_group(name, origin) for name in names}
    local = [name for name in names if shares.is_share_group(name)]
    errors = await context.broker.groups.delete_groups([n for n in names if n not in local])
    for name in local:
        errors[name] = await shares.delete_group(name)
    for name, error in list(errors.items()):
        if error in _NOT_HERE and shares.coordinated_elsewhere(name):
            shared = await shares.delete_group(name)
            if shared != ErrorCode.group_id_not_found:
                errors[name] = shared
    return errors


API = Api(API_KEY, "DeleteGroups", 0, 2, handle)
