"""`/api/v1/groups`: consumer groups with their lag, from the group coordinator."""

from __future__ import annotations

from fastapi import FastAPI

from goqueue.http.models import GroupModel, GroupPartitionModel
from goqueue.observability.lag import LagReader, largest_lags


def add_group_routes(app: FastAPI, read_lag: LagReader) -> None:
    """Serve the groups that `read_lag` reports, each with its partitions' lag."""

    @app.get("/api/v1/groups", response_model=list[GroupModel], tags=["groups"])
    async def list_groups() -> list[GroupModel]:
        lags = await read_lag()
        partitions: dict[str, list[GroupPartitionModel]] = {}
        for lag in lags:
            partitions.setdefault(lag.group, []).append(
                GroupPartitionModel(
                    topic=lag.topic,
                    partition=lag.partition,
                    committed_offset=lag.committed_offset,
                    log_end_offset=lag.log_end_offset,
                    lag=lag.lag,
                    lag_seconds=lag.lag_seconds,
                )
            )
        return [
            GroupModel(
                group=group.group,
                max_lag=group.max_lag,
                max_lag_seconds=group.max_lag_seconds,
                partitions=partitions[group.group],
            )
            for group in largest_lags(lags)
        ]
