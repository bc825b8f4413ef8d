"""InitProducerId: a producer id and epoch for an idempotent producer.

Kafka's rules for a request without a transactional id: the answer is always a fresh producer id
with epoch 0, whatever producer id and epoch the request carries (KIP-360's epoch bumps of an
existing id belong to the transaction coordinator); a request giving only one of the two is
INVALID_REQUEST. Transactions come with a later release: until then a transactional id is
answered COORDINATOR_NOT_AVAILABLE, Kafka's answer while no transaction coordinator can serve
it, and an empty one INVALID_REQUEST, as in Kafka.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

from goqueue.broker.errors import BrokerError
from goqueue.broker.producer_state import NO_PRODUCER_ID
from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, response_type

API_KEY = 22
NO_PRODUCER_EPOCH = -1
logger = logging.getLogger(__name__)


async def handle(context: RequestContext, request: Any) -> ResponsePayload:
    response = response_type(API_KEY, context.header.api_version)
    producer_id, epoch = NO_PRODUCER_ID, NO_PRODUCER_EPOCH
    try:
        _check(request)
        producer_id, epoch = await context.broker.allocate_producer_id(), 0
        code = ErrorCode.none
    except BrokerError as exc:
        code = exc.error_code
        logger.warning(
            "InitProducerId from %s refused: %s %s", context.peer, code.name, exc.message or ""
        )
    return build(
        response,
        throttle_time=datetime.timedelta(0),
        error_code=code,
        producer_id=producer_id,
        producer_epoch=epoch,
    )


def _check(request: Any) -> None:
    """Kafka's checks, in Kafka's order (v3+ requests carry the producer's current id)."""
    given_id = getattr(request, "producer_id", NO_PRODUCER_ID)
    given_epoch = getattr(request, "producer_epoch", NO_PRODUCER_EPOCH)
    if (given_id == NO_PRODUCER_ID) != (given_epoch == NO_PRODUCER_EPOCH):
        raise BrokerError(
            ErrorCode.invalid_request,
            f"producer id {given_id} and epoch {given_epoch}: give both or neither",
        )
    transactional_id = request.transactional_id
    if transactional_id == "":
        raise BrokerError(ErrorCode.invalid_request, "empty transactional id")
    if transactional_id is not None:
        raise BrokerError(
            ErrorCode.coordinator_not_available,
            f"transactional id {transactional_id!r}: transactions are not available yet",
        )


API = Api(API_KEY, "InitProducerId", 0, 5, handle)
