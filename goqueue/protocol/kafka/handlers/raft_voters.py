"""AddRaftVoter, RemoveRaftVoter (KIP-853) and UnregisterBroker: change the members of the
metadata quorum and forget removed brokers. The quorum leader (the controller) carries out
membership changes; other nodes answer NOT_LEADER_OR_FOLLOWER so the client asks it."""

from __future__ import annotations

import datetime
import logging
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

from goqueue.metadata.errors import MetadataError
from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, response_type

ADD_API_KEY = 80
REMOVE_API_KEY = 81
UNREGISTER_API_KEY = 64
logger = logging.getLogger(__name__)


async def handle_add(context: RequestContext, request: Any) -> ResponsePayload:
    store = context.broker.metadata
    voter = int(request.voter_id)
    if not request.listeners:
        return _refused(context, request, ErrorCode.invalid_request, "No listener for the voter.")
    listener = request.listeners[0]
    address = f"{listener.host}:{listener.port}"
    if voter in store.image.voters:
        message = f"Node {voter} is already a voter (at {store.image.voters[voter]})."
        return _refused(context, request, ErrorCode.duplicate_voter, message)
    return await _change(context, request, "add", voter, address)


async def handle_remove(context: RequestContext, request: Any) -> ResponsePayload:
    store = context.broker.metadata
    voter = int(request.voter_id)
    address = store.image.voters.get(voter)
    if address is None:
        return _refused(context, request, ErrorCode.voter_not_found, f"Node {voter} is no voter.")
    if len(store.image.voters) == 1:
        message = "The last voter cannot be removed."
        return _refused(context, request, ErrorCode.invalid_request, message)
    if voter == context.broker.settings.node_id and store.is_controller():
        await store.transfer_leadership(timeout=10.0)
        message = "This node was the controller and handed over; ask the new controller."
        return _refused(context, request, ErrorCode.not_leader_or_follower, message)
    return await _change(context, request, "remove", voter, address)


async def _change(
    context: RequestContext, request: Any, change: str, voter: int, address: str
) -> ResponsePayload:
    store = context.broker.metadata
    cluster_id = getattr(request, "cluster_id", None)
    if cluster_id is not None and cluster_id != store.image.cluster_id:
        message = f"Cluster id {cluster_id} is not this cluster's ({store.image.cluster_id})."
        return _refused(context, request, ErrorCode.inconsistent_cluster_id, message)
    if not store.is_controller():
        message = f"Node {context.broker.settings.node_id} is not the controller."
        return _refused(context, request, ErrorCode.not_leader_or_follower, message)
    try:
        await store.change_voters(change, voter, address)
    except MetadataError as exc:
        return _refused(context, request, exc.error_code, str(exc))
    logger.info("voter %d (%s) %sed by %s", voter, address, change.rstrip("e"), context.peer)
    return _answer(context, ErrorCode.none, None)


async def handle_unregister(context: RequestContext, request: Any) -> ResponsePayload:
    store = context.broker.metadata
    node = int(request.broker_id)
    broker = store.image.brokers.get(node)
    if broker is None:
        message = f"Broker {node} is not registered."
        return _refused(context, request, ErrorCode.broker_id_not_registered, message)
    if not broker.fenced:
        message = f"Broker {node} is alive: stop it first, then unregister it."
        return _refused(context, request, ErrorCode.invalid_request, message)
    try:
        await store.submit({"type": "unregister_broker", "node_id": node})
    except MetadataError as exc:
        return _refused(context, request, exc.error_code, str(exc))
    logger.info("broker %d unregistered by %s", node, context.peer)
    return _answer(context, ErrorCode.none, None)


def _refused(
    context: RequestContext, request: Any, code: ErrorCode, message: str
) -> ResponsePayload:
    logger.warning(
        "%s from %s refused: %s %s", type(request).__name__, context.peer, code.name, message
    )
    return _answer(context, code, message)


def _answer(context: RequestContext, code: ErrorCode, message: str | None) -> ResponsePayload:
    response = response_type(context.header.api_key, context.header.api_version)
    return build(
        response, throttle_time=datetime.timedelta(0), error_code=code, error_message=message
    )


APIS = (
    Api(ADD_API_KEY, "AddRaftVoter", 0, 1, handle_add),
    Api(REMOVE_API_KEY, "RemoveRaftVoter", 0, 0, handle_remove),
    Api(UNREGISTER_API_KEY, "UnregisterBroker", 0, 0, handle_unregister),
)
