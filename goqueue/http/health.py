"""`/health/live` (the event loop runs) and `/health/ready` (the node can serve clients)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from goqueue.http.models import Health
from goqueue.observability.health import Readiness

NOT_READY = 503


def router(readiness: Readiness) -> APIRouter:
    routes = APIRouter(tags=["health"])

    @routes.get("/health/live", response_model=Health)
    async def live() -> Health:
        """Answers as long as the node's event loop runs: restart the node if this fails."""
        return Health(status="live")

    @routes.get("/health/ready", response_model=Health, responses={NOT_READY: {"model": Health}})
    async def ready(response: Response) -> Health:
        """200 once logs are loaded, metadata is current, the node is registered and its
        listener accepts clients; 503 (with the failing checks) before and during shutdown."""
        checks = readiness.report()
        if all(checks.values()):
            return Health(status="ready", checks=checks)
        response.status_code = NOT_READY
        return Health(status="not ready", checks=checks)

    return routes
