"""DescribeCluster: the cluster id, the controller and the live brokers."""

from __future__ import annotations

import datetime

from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, nested, response_type

API_KEY = 60


async def handle(context: RequestContext, request: object) -> ResponsePayload:
    response = response_type(API_KEY, context.header.api_version)
    broker_type = nested(response, "DescribeClusterBroker")
    image = context.broker.image
    return build(
        response,
        throttle_time=datetime.timedelta(0),
        error_code=ErrorCode.none,
        cluster_id=image.cluster_id,
        controller_id=image.controller_id,
        brokers=tuple(
            build(
                broker_type,
                broker_id=b.node_id,
                host=b.host,
                port=b.port,
                rack=b.rack,
                is_fenced=False,
            )
            for b in image.brokers.values()
        ),
    )


API = Api(API_KEY, "DescribeCluster", 0, 2, handle)
