"""ApiVersions: advertise exactly the API versions this broker serves."""

from __future__ import annotations

import datetime

from kio.schema.api_versions.v0.response import ApiVersionsResponse as ApiVersionsResponseV0
from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, nested, response_type

API_KEY = 18


def versions_response(
    response: type[ResponsePayload], error_code: ErrorCode = ErrorCode.none
) -> ResponsePayload:
    """The list of served APIs in the shape of the given ApiVersionsResponse version."""
    from goqueue.protocol.kafka.handlers import APIS

    entry = nested(response, "ApiVersion")
    return build(
        response,
        error_code=error_code,
        api_keys=tuple(
            entry(api_key=api.key, min_version=api.min_version, max_version=api.max_version)
            for api in sorted(APIS.values(), key=lambda api: api.key)
        ),
        throttle_time=datetime.timedelta(0),
    )


def unsupported_version_response() -> ResponsePayload:
    """KIP-511: an ApiVersions request of a version we do not serve gets a v0 answer with
    UNSUPPORTED_VERSION and our ranges, so the client can retry with a version we know."""
    return versions_response(ApiVersionsResponseV0, ErrorCode.unsupported_version)


async def handle(context: RequestContext, request: object) -> ResponsePayload:
    return versions_response(response_type(API_KEY, context.header.api_version))


API = Api(API_KEY, "ApiVersions", 0, 4, handle)
