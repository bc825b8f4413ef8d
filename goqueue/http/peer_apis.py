"""The HTTP APIs of the other brokers of the cluster, for views of state that one broker owns.

Pending delayed messages live with their schedule shard's leader and a share group's counts
with its coordinator, so an endpoint asked anywhere asks the same endpoint of its peers with
`scope=local` (only what that broker owns) and merges or passes on the answers. A peer's HTTP
address is its `http` setting, learnt through DescribeConfigs once per broker incarnation.
"""

from __future__ import annotations

import asyncio
import enum
from typing import TYPE_CHECKING, Any

import httpx
from fastapi import HTTPException
from kio.schema.errors import ErrorCode

from goqueue.broker.errors import BrokerError

if TYPE_CHECKING:
    from goqueue.broker.broker import Broker

NOT_FOUND = 404
UNAVAILABLE = 503
DESCRIBE_CONFIGS = 32
BROKER_RESOURCE = 4
PEER_TIMEOUT_S = 10.0
_ANY_HOST = frozenset({"", "0.0.0.0", "::", "[::]"})


class Scope(enum.Enum):
    CLUSTER = "cluster"
    LOCAL = "local"
    """Only the shards this broker leads: what a broker asks of its peers."""


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
