"""DescribeCluster: the cluster id, the controller and the live brokers."""

from __future__ import annotations

import datetime

from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

from goqueue.protocol.kafka.api import Api, RequestContext
from goqueue.protocol.kafka.codec import build, nested, response_type
from goqueue.protocol.kafka.handlers.metadata import live_controller_id

API_KEY = 60


async def handle(context: RequestContext, request: object) -> ResponsePayload:
    response = response_type(API_KEY, context.header.api_version)
    broker_type = nested(response, "DescribeClusterBroker")
    broker = context.broker
    image = broker.image
    include_fenced = getattr(request, "include_fenced_brokers", False)
    return build(
        response,
        throttle_time=datetime.timedelta(0),
        error_code=ErrorCode.none,
        cluster_id=image.cluster_id,
        controller_id=live_controller_id(broker.metadata.controller_id, image),
        brokers=tuple(
            build(
                broker_type,
                broker_id=b.node_id,
                host=b.host,
                port=b.port,
                rack=b.rack,
                is_fenced=b.fenced,
            )
            for b in sorted(image.brokers.values(), key=lambda b: b.node_id)
            if include_fenced or not b.fenced
        ),
    )


API = Api(API_KEY, "DescribeCluster", 0, 2, handle)
