"""The response bodies of `/api/v1`, which FastAPI turns into the OpenAPI spec."""

from __future__ import annotations

from pydantic import BaseModel, Field

from goqueue.observability.lag import GroupPartitionLag


class Cluster(BaseModel):
    cluster_id: str
    controller_id: int = Field(description="Node id of the active controller; -1 if none.")
    node_id: int = Field(description="Id of the node that answered.")
    version: str
    ready: bool
    brokers: int
    topics: int
    partitions: int
    metadata_offset: int = Field(description="Metadata records applied by the answering node.")


class BrokerModel(BaseModel):
    node_id: int
    host: str
    port: int
    rack: str | None
    controller: bool
    this_node: bool = Field(description="Whether this is the node that answered.")


class PartitionModel(BaseModel):
    partition: int
    leader: int = Field(description="Node id of the leader; -1 when offline.")
    replicas: list[int]
    in_sync_replicas: list[int]
    log_start_offset: int | None
    log_end_offset: int | None
    high_watermark: int | None
    size_bytes: int | None
    segments: int | None


class TopicModel(BaseModel):
    name: str
    topic_id: str
    internal: bool
    replication_factor: int
    configs: dict[str, str] = Field(description="Configs set on the topic (not defaults).")
    partitions: list[PartitionModel]


class GroupModel(BaseModel):
    group: str
    max_lag: int
    max_lag_seconds: float
    partitions: list[GroupPartitionLag]


class LogLevel(BaseModel):
    level: str = Field(description="debug, info, warning, error or critical.")
    logger: str = Field("", description="A logger name such as goqueue.requests; empty: all.")


class LogLevels(BaseModel):
    levels: dict[str, str] = Field(
        description='Level by logger: "" is the root logger, others are explicitly set.'
    )


class Health(BaseModel):
    status: str
    checks: dict[str, bool] = {}
