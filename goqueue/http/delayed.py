"""`/api/v1/delayed`: list, show and cancel pending delayed messages, of the whole cluster.

Each broker holds the pending messages of the schedule shards it leads. A cancel goes to every
shard's leader through the scheduler (over the Kafka protocol, as a cancel header would); list
and show ask this broker's scheduler and, in parallel, the same endpoint of every other live
broker with `scope=local` (`PeerApis`), and merge the answers. A broker that cannot be asked
makes the answer 503 rather than silently incomplete.
"""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import TypeVar

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from goqueue.broker.errors import BrokerError
from goqueue.coordinator.scheduler.coordinator import PendingView, Scheduler
from goqueue.coordinator.scheduler.shard import CancelOutcome
from goqueue.http.peer_apis import PeerApis, Scope

T = TypeVar("T")
NOT_FOUND = 404
CONFLICT = 409
UNAVAILABLE = 503
MAX_LIMIT = 10_000


class HeaderModel(BaseModel):
    name: str
    value: str | None
    """UTF-8 text, or `base64:` and the base64 of bytes that are not."""


class DelayedMessageModel(BaseModel):
    schedule_id: str
    topic: str
    partition: int
    due_ms: int
    state: str
    """`pending`, or `delivering` while it is being appended to its topic."""
    timestamp_ms: int | None = None
    key: str | None = None
    value: str | None = None
    headers: list[HeaderModel] | None = None


class CancelModel(BaseModel):
    schedule_id: str
    cancelled: bool


def router(scheduler: Scheduler) -> APIRouter:
    routes = APIRouter()
    peers = PeerApis(scheduler.broker)

    @routes.get("/delayed", response_model=list[DelayedMessageModel], tags=["delayed"])
    async def list_delayed(
        topic: str | None = None,
        limit: int = Query(100, ge=1, le=MAX_LIMIT),
        scope: Scope = Scope.CLUSTER,
    ) -> list[DelayedMessageModel]:
        """Pending delayed messages in due order (near ones from memory, far ones from disk)."""
        views = await _answer(lambda: scheduler.pending(topic, limit))
        found = [_model(view) for view in views]
        if scope is Scope.CLUSTER:
            query = {"limit": limit, "scope": Scope.LOCAL.value} | (
                {"topic": topic} if topic else {}
            )
            for answer in await peers.ask_all("/delayed", query):
                found.extend(DelayedMessageModel(**item) for item in answer or [])
        return sorted(found, key=lambda m: (m.due_ms, m.schedule_id))[:limit]

    @routes.get(
        "/delayed/{schedule_id}",
        response_model=DelayedMessageModel,
        responses={NOT_FOUND: {"description": "No pending message has this id"}},
        tags=["delayed"],
    )
    async def show_delayed(schedule_id: str, scope: Scope = Scope.CLUSTER) -> DelayedMessageModel:
        view = await _answer(lambda: scheduler.show(schedule_id))
        if view is not None:
            return _model(view)
        if scope is Scope.CLUSTER:
            path = "/delayed/" + urllib.parse.quote(schedule_id, safe="")
            for answer in await peers.ask_all(path, {"scope": Scope.LOCAL.value}):
                if answer is not None:
                    return DelayedMessageModel(**answer)
        raise HTTPException(NOT_FOUND, f"No pending delayed message has id {schedule_id}.")

    @routes.delete(
        "/delayed/{schedule_id}",
        response_model=CancelModel,
        responses={
            NOT_FOUND: {"description": "No pending message has this id"},
            CONFLICT: {"description": "The message is being delivered"},
        },
        tags=["delayed"],
    )
    async def cancel_delayed(schedule_id: str) -> CancelModel:
        """Cancel a pending message: it will never be delivered."""
        outcome = await _answer(lambda: scheduler.cancel(schedule_id))
        if outcome is CancelOutcome.NOT_FOUND:
            raise HTTPException(NOT_FOUND, f"No pending delayed message has id {schedule_id}.")
        if outcome is CancelOutcome.DELIVERING:
            raise HTTPException(CONFLICT, f"Delayed message {schedule_id} is being delivered.")
        return CancelModel(schedule_id=schedule_id, cancelled=True)

    return routes


async def _answer(call: Callable[[], Awaitable[T]]) -> T:
    try:
        return await call()
    except BrokerError as exc:
        raise HTTPException(UNAVAILABLE, exc.message or exc.error_code.name) from exc


def _model(view: PendingView) -> DelayedMessageModel:
    model = DelayedMessageModel(
        schedule_id=view.schedule_id,
        topic=view.topic,
        partition=view.partition,
        due_ms=view.due_ms,
        state=view.state,
    )
    message = view.message
    if message is not None:
        model.timestamp_ms = message.timestamp_ms
        model.key = _text(message.key)
        model.value = _text(message.value)
        model.headers = [HeaderModel(name=n, value=_text(v)) for n, v in message.headers]
    return model


def _text(data: bytes | None) -> str | None:
    if data is None:
        return None
    try:
        return data.decode()
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data).decode()
