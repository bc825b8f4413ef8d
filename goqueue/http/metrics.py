"""`/metrics`: every metric of the node in the Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter, Response

from goqueue.observability.metrics import BrokerMetrics

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The text format version that every Prometheus server (2.x and 3.x) parses; the output of
`generate_latest` is that format for names without UTF-8 characters, which ours never have."""


def router(metrics: BrokerMetrics) -> APIRouter:
    routes = APIRouter(tags=["metrics"])

    @routes.get("/metrics", response_class=Response)
    async def scrape() -> Response:
        """Scrape target for Prometheus (see docs/monitoring.md)."""
        return Response(await metrics.exposition(), media_type=CONTENT_TYPE)

    return routes
