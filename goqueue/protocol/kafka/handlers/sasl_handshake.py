"""SaslHandshake: this broker has no SASL mechanism enabled, and says so."""

from __future__ import annotations

from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, response_type

API_KEY = 17


async def handle(context: RequestContext, request: object) -> ResponsePayload:
    return build(
        response_type(API_KEY, context.header.api_version),
        error_code=ErrorCode.unsupported_sasl_mechanism,
        mechanisms=(),
    )


API = Api(API_KEY, "SaslHandshake", 0, 1, handle)
