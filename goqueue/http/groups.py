"""`/api/v1/groups`: consumer groups with their lag, from the group coordinator."""

from __future__ import annotations

from fastapi import FastAPI

from goqueue.http.models import GroupModel
from goqueue.observability.lag import GroupPartitionLag, LagReader, largest_lags


def add_group_routes(app: FastAPI, read_lag: LagReader) -> None:
    """Serve the groups that `read_lag` reports, each with its partitions' lag."""

    @app.get("/api/v1/groups", response_model=list[GroupModel], tags=["groups"])
    async def list_groups() -> list[GroupModel]:
        lags = await read_lag()
        partitions: dict[str, list[GroupPartitionLag]] = {}
        for lag in lags:
            partitions.setdefault(lag.group, []).append(lag)
        return [
            GroupModel(
                group=group.group,
                max_lag=group.max_lag,
                max_lag_seconds=group.max_lag_seconds,
                partitions=partitions[group.group],
            )
            for group in largest_lags(lags)
        ]
