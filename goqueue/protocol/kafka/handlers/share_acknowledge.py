"""ShareAcknowledge (KIP-932): accept, release, reject (or renew) acquired records within the
member's share session, without fetching."""

from __future__ import annotations

from typing import Any

from kio.static.protocol import ResponsePayload

from goqueue.broker.peers import peer_node_id
from goqueue.coordinator.share.messages import ShareParams
from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.handlers.share_fetch import acknowledgements, share_response

API_KEY = 79


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    result = await context.broker.shares.acknowledge(
        ShareParams(
            group_id=request.group_id or "",
            member_id=request.member_id or "",
            session_epoch=request.share_session_epoch,
            max_wait_ms=0,
            max_bytes=0,
            max_records=0,
            fetch=(),
            forget=(),
            acks=acknowledgements(request.topics, "acknowledgement_batches"),
            allow_renew=getattr(request, "is_renew_ack", False),
            origin=peer_node_id(context.header.client_id),
        )
    )
    return share_response(context, API_KEY, context.header.api_version, result)


API = Api(API_KEY, "ShareAcknowledge", 1, 2, handle)
