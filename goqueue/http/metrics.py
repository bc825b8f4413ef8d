"""`/metrics`: every metric of the node in the Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from goqueue.observability.metrics import BrokerMetrics


def router(metrics: BrokerMetrics) -> APIRouter:
    routes = APIRouter(tags=["metrics"])

    @routes.get("/metrics", response_class=Response)
    async def scrape() -> Response:
        """Scrape target for Prometheus (see docs/monitoring.md)."""
        return Response(await metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return routes
