"""`/api/v1/share-groups`: share groups with their records by state, from the share
coordinator (what `goqueue group describe` shows for a share group).

A share group's state lives on its coordinator (the leader of its `__share_group_state`
partition). Any broker answers for it: one that is not the coordinator asks the same endpoint
of the coordinator's HTTP API with `scope=local` (as the delayed messages API asks its peers),
and the list of groups merges every live broker's own.
"""

from __future__ import annotations

import dataclasses
import urllib.parse

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from goqueue.broker.errors import BrokerError
from goqueue.coordinator.share.coordinator import ShareCoordinator
from goqueue.coordinator.share.messages import ShareGroupStats
from goqueue.http.peer_apis import PeerApis, Scope

NOT_FOUND = 404
UNAVAILABLE = 503


class SharePartitionModel(BaseModel):
    topic: str
    partition: int
    start_offset: int
    """The share-partition start offset (SPSO): every record below it is finished."""
    end_offset: int
    """One past the last record the group has read (SPEO + 1)."""
    available: int
    acquired: int
    backing_off: int
    dead_lettering: int
    in_flight: int
    acknowledged: int
    archived: int
    dead_lettered: int


class ShareGroupModel(BaseModel):
    group: str
    state: str
    members: int
    dlq_topic: str
    available: int
    acquired: int
    in_flight: int
    archived: int
    dead_lettered: int
    acknowledged: int
    oldest_unacknowledged_age_ms: int | None
    partitions: list[SharePartitionModel]


def router(shares: ShareCoordinator) -> APIRouter:
    routes = APIRouter()
    peers = PeerApis(shares.broker)

    @routes.get("/share-groups", response_model=list[str], tags=["share groups"])
    async def list_share_groups(scope: Scope = Scope.CLUSTER) -> list[str]:
        """The ids of the share groups of the cluster (`scope=local`: of this broker)."""
        _error, listed = await shares.list_groups()
        found = {group.group_id for group in listed}
        if scope is Scope.CLUSTER:
            for answer in await peers.ask_all("/share-groups", {"scope": Scope.LOCAL.value}):
                found.update(answer or ())
        return sorted(found)

    @routes.get("/share-groups/{group}", response_model=ShareGroupModel, tags=["share groups"])
    async def share_group(group: str, scope: Scope = Scope.CLUSTER) -> ShareGroupModel:
        """A share group's counts by state (in flight = acquired, backing off or being
        dead-lettered) and the age of its oldest unacknowledged record."""
        if scope is Scope.CLUSTER and shares.coordinated_elsewhere(group):
            coordinator = shares.runtime.coordinator_for(group)
            if coordinator is None:
                raise HTTPException(UNAVAILABLE, f"share group {group} has no coordinator")
            path = "/share-groups/" + urllib.parse.quote(group, safe="")
            answer = await peers.ask(coordinator.node_id, path, {"scope": Scope.LOCAL.value})
            if answer is None:
                raise HTTPException(NOT_FOUND, f"share group {group} does not exist")
            return ShareGroupModel(**answer)
        try:
            stats = await shares.stats(group)
        except BrokerError as exc:
            raise HTTPException(UNAVAILABLE, exc.message or exc.error_code.name) from exc
        if stats is None:
            raise HTTPException(NOT_FOUND, f"share group {group} does not exist")
        return model(stats)

    return routes


def model(stats: ShareGroupStats) -> ShareGroupModel:
    return ShareGroupModel(
        group=stats.group_id,
        state=stats.state,
        members=stats.members,
        dlq_topic=stats.dlq_topic,
        oldest_unacknowledged_age_ms=stats.oldest_unacknowledged_age_ms,
        partitions=[
            SharePartitionModel(**dataclasses.asdict(p), in_flight=p.in_flight)
            for p in stats.partitions
        ],
        **{
            name: stats.total(name)
            for name in (
                "available",
                "acquired",
                "in_flight",
                "archived",
                "dead_lettered",
                "acknowledged",
            )
        },
    )
