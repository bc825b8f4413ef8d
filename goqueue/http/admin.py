"""`/api/v1`: a read-only view of the cluster, its brokers and topics, and the log level."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from goqueue.broker.broker import Broker
from goqueue.broker.topic_names import INTERNAL_TOPICS
from goqueue.http.models import (
    BrokerModel,
    Cluster,
    LogLevel,
    LogLevels,
    PartitionModel,
    TopicModel,
)
from goqueue.metadata.image import TopicInfo
from goqueue.observability import logs
from goqueue.observability.collectors import PartitionState, partition_states
from goqueue.observability.health import Readiness
from goqueue.observability.metrics import package_version

NOT_FOUND = 404
UNPROCESSABLE = 422


def router(broker: Broker, readiness: Readiness) -> APIRouter:
    routes = APIRouter()

    @routes.get("/cluster", response_model=Cluster, tags=["cluster"])
    async def cluster() -> Cluster:
        image = broker.image
        return Cluster(
            cluster_id=image.cluster_id,
            controller_id=image.controller_id,
            node_id=broker.settings.node_id,
            version=package_version(),
            ready=readiness.ready(),
            brokers=len(image.brokers),
            topics=len(image.topics),
            partitions=sum(info.partitions for info in image.topics.values()),
            metadata_offset=image.offset,
        )

    @routes.get("/brokers", response_model=list[BrokerModel], tags=["cluster"])
    async def brokers() -> list[BrokerModel]:
        image = broker.image
        return [
            BrokerModel(
                node_id=info.node_id,
                host=info.host,
                port=info.port,
                rack=info.rack,
                controller=info.node_id == image.controller_id,
                this_node=info.node_id == broker.settings.node_id,
            )
            for info in sorted(image.brokers.values(), key=lambda info: info.node_id)
        ]

    @routes.get("/topics", response_model=list[TopicModel], tags=["topics"])
    async def topics() -> list[TopicModel]:
        """Every topic with its partitions' offsets and sizes."""
        return _topics(broker, None)

    @routes.get(
        "/topics/{name}",
        response_model=TopicModel,
        responses={NOT_FOUND: {"description": "No such topic"}},
        tags=["topics"],
    )
    async def topic(name: str) -> TopicModel:
        found = _topics(broker, name)
        if not found:
            raise HTTPException(NOT_FOUND, f"Topic '{name}' does not exist.")
        return found[0]

    @routes.get("/log-level", response_model=LogLevels, tags=["logging"])
    async def get_log_level() -> LogLevels:
        return LogLevels(levels=logs.levels())

    @routes.put("/log-level", response_model=LogLevels, tags=["logging"])
    async def put_log_level(change: LogLevel) -> LogLevels:
        """Change the log level at run time, for every logger or one (until restart)."""
        try:
            logs.set_level(change.level, change.logger)
        except ValueError as exc:
            raise HTTPException(UNPROCESSABLE, str(exc)) from exc
        return LogLevels(levels=logs.levels())

    return routes


def _topics(broker: Broker, only: str | None) -> list[TopicModel]:
    by_topic: dict[str, list[PartitionModel]] = {}
    infos: dict[str, TopicInfo] = {}
    node_id = broker.settings.node_id
    for state in partition_states(broker):
        if only is not None and state.topic.name != only:
            continue
        infos[state.topic.name] = state.topic
        by_topic.setdefault(state.topic.name, []).append(_partition(state, node_id))
    return [
        TopicModel(
            name=info.name,
            topic_id=str(info.topic_id),
            internal=info.name in INTERNAL_TOPICS,
            replication_factor=info.replication_factor,
            configs=dict(info.configs),
            partitions=by_topic[name],
        )
        for name, info in sorted(infos.items())
    ]


def _partition(state: PartitionState, node_id: int) -> PartitionModel:
    partition = state.partition
    if partition is None:
        return PartitionModel(
            partition=state.index,
            leader=-1,
            replicas=[node_id],
            in_sync_replicas=[],
            log_start_offset=None,
            log_end_offset=None,
            high_watermark=None,
            size_bytes=None,
            segments=None,
        )
    log = partition.log
    return PartitionModel(
        partition=state.index,
        leader=node_id,
        replicas=[node_id],
        in_sync_replicas=[node_id],
        log_start_offset=log.log_start_offset,
        log_end_offset=log.log_end_offset,
        high_watermark=partition.high_watermark,
        size_bytes=log.size_bytes,
        segments=log.segment_count,
    )
