"""The ASGI application of a node: health, metrics and the admin API on one FastAPI app."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI

from goqueue.broker.broker import Broker
from goqueue.http import admin, delayed, groups, health, metrics, share_groups
from goqueue.observability.health import Readiness
from goqueue.observability.lag import LagReader
from goqueue.observability.metrics import BrokerMetrics, package_version


@dataclass(frozen=True, slots=True)
class Node:
    """What the HTTP front end reads of its node."""

    broker: Broker
    metrics: BrokerMetrics
    readiness: Readiness


def create_app(node: Node, lag_reader: LagReader | None = None) -> FastAPI:
    """The application; `/api/v1/groups` exists once a group coordinator supplies lag."""
    app = FastAPI(
        title="Go-Queue",
        version=package_version(),
        description="Admin API, metrics and health checks of a Go-Queue broker node.",
    )
    app.include_router(health.router(node.readiness))
    app.include_router(metrics.router(node.metrics))
    app.include_router(admin.router(node.broker, node.readiness), prefix="/api/v1")
    app.include_router(delayed.router(node.broker.scheduler), prefix="/api/v1")
    app.include_router(share_groups.router(node.broker.shares), prefix="/api/v1")
    if lag_reader is not None:
        groups.add_group_routes(app, lag_reader)
    return app
