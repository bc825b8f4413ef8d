"""`/api/v1/delayed`: list, show and cancel pending delayed messages, of the whole cluster.

Each broker holds the pending messages of the schedule shards it leads. A cancel goes to every
shard's leader through the scheduler (over the Kafka protocol, as a cancel header would); list
and show ask this broker's scheduler and, in parallel, the same endpoint of every other live
broker with `scope=local` (their HTTP addresses from DescribeConfigs of each broker's `http`
setting, asked once per broker incarnation), and merge the answers. A broker that cannot be
asked makes the answer 503 rather than silently incomplete.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from fastapi import APIRouter, HTTPException, Query
from kio.schema.errors import ErrorCode
from pydantic import BaseModel

from goqueue.broker.broker import Broker
from goqueue.broker.errors import BrokerError
from goqueue.coordinator.scheduler.coordinator import PendingView, Scheduler
from goqueue.coordinator.scheduler.shard import CancelOutcome

T = TypeVar("T")
NOT_FOUND = 404
CONFLICT = 409
UNAVAILABLE = 503
MAX_LIMIT = 10_000
DESCRIBE_CONFIGS = 32
BROKER_RESOURCE = 4
PEER_TIMEOUT_S = 10.0
_ANY_HOST = frozenset({"", "0.0.0.0", "::", "[::]"})


class Scope(enum.Enum):
    CLUSTER = "cluster"
    LOCAL = "local"
    """Only the shards this broker leads: what a broker asks of its peers."""


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


class PeerApis:
    """The HTTP APIs of the other live brokers of the cluster."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._addresses: dict[tuple[int, str], str] = {}

    async def ask_all(self, path: str, query: dict[str, Any]) -> list[Any]:
        """GET `/api/v1<path>` of every other live broker, in parallel: their JSON answers
        (None for a 404). Any other failure is a 503 naming the broker."""
        image = self._broker.image
        me = self._broker.settings.node_id
        others = [b for b in image.brokers.values() if b.node_id != me and not b.fenced]
        return list(await asyncio.gather(*(self.ask(b.node_id, path, query) for b in others)))

    async def ask(self, node_id: int, path: str, query: dict[str, Any]) -> Any:
        """GET `/api/v1<path>` of one broker: its JSON answer, None for a 404, else a 503."""
        try:
            address = await self._address(node_id)
            async with httpx.AsyncClient(timeout=PEER_TIMEOUT_S) as client:
                response = await client.get(f"http://{address}/api/v1{path}", params=query)
        except (BrokerError, httpx.HTTPError) as exc:
            raise HTTPException(UNAVAILABLE, f"Cannot ask broker {node_id}: {exc}") from exc
        if response.status_code == NOT_FOUND:
            return None
        if response.is_error:
            raise HTTPException(UNAVAILABLE, f"Broker {node_id}: {_detail(response)}")
        return response.json()

    async def _address(self, node_id: int) -> str:
        """The broker's HTTP address: its `http` setting, with the host it registered when the
        setting listens on every interface."""
        info = self._broker.image.brokers[node_id]
        key = (node_id, info.incarnation_id)
        address = self._addresses.get(key)
        if address is None:
            request = {
                "resources": [
                    {
                        "resource_type": BROKER_RESOURCE,
                        "resource_name": str(node_id),
                        "configuration_keys": ["http"],
                    }
                ],
                "include_synonyms": False,
                "include_documentation": False,
            }
            response = await self._broker.peers.request(
                node_id, DESCRIBE_CONFIGS, request, PEER_TIMEOUT_S
            )
            values = [c.value for r in response.results for c in r.configs if c.name == "http"]
            if not values or not values[0]:
                raise BrokerError(ErrorCode.unknown_server_error, "no http setting described")
            host, _, port = values[0].rpartition(":")
            address = f"{info.host if host in _ANY_HOST else host}:{port}"
            self._addresses[key] = address
        return address


def _detail(response: httpx.Response) -> str:
    """A peer's explanation of an error status (FastAPI's `detail`), else the status."""
    try:
        return str(response.json()["detail"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


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
