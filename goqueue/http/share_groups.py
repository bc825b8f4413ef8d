"""`/api/v1/share-groups`: share groups with their records by state, from the share
coordinator (what `goqueue group describe` shows for a share group)."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from goqueue.broker.errors import BrokerError
from goqueue.coordinator.share.coordinator import ShareCoordinator
from goqueue.coordinator.share.messages import ShareGroupStats

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

    @routes.get("/share-groups", response_model=list[str], tags=["share groups"])
    async def list_share_groups() -> list[str]:
        """The ids of the share groups of this broker."""
        _error, listed = await shares.list_groups()
        return sorted(group.group_id for group in listed)

    @routes.get("/share-groups/{group}", response_model=ShareGroupModel, tags=["share groups"])
    async def share_group(group: str) -> ShareGroupModel:
        """A share group's counts by state (in flight = acquired, backing off or being
        dead-lettered) and the age of its oldest unacknowledged record."""
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
