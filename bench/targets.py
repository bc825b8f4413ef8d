"""What `python -m bench compare` can measure: a system (server) and the client that drives it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.drivers.base import Client
from bench.drivers.goqueue_sdk import GoQueueSdkClient
from bench.drivers.kafka import KafkaDriver
from bench.drivers.nats_jetstream import NatsJetStreamClient
from bench.drivers.rabbitmq import RabbitQueueClient, RabbitStreamClient
from bench.drivers.redis_streams import RedisStreamsClient
from bench.systems.goqueue import GoQueueSystem
from bench.systems.nats import NatsSystem
from bench.systems.rabbitmq import RabbitMqSystem
from bench.systems.redis import RedisSystem
from bench.systems.server import System

SYSTEMS: dict[str, Callable[[Path], System]] = {
    "goqueue": GoQueueSystem,
    "redis": RedisSystem,
    "nats": NatsSystem,
    "rabbitmq": RabbitMqSystem,
}


@dataclass(frozen=True, slots=True)
class Target:
    """One row of the results: a system with one client, and what its terms map to."""

    name: str
    system: str
    label: str
    partition: str
    group: str
    client: Callable[[Any], Client]
    many_partitions: bool = True
    """Whether the many-partitions workload runs: it measures the broker, so one client of a
    system is enough when two write the same structures; RabbitMQ streams are left out because
    each takes about 0.2 s to create here (100 in 22 s), so 10,000 would not fit a run."""


TARGETS = {
    target.name: target
    for target in (
        Target(
            "goqueue-kafka",
            "goqueue",
            "Go-Queue / confluent-kafka",
            "a topic partition",
            "a reader with its own position (manual assign, no group coordination)",
            lambda s: KafkaDriver(s.bootstrap),
        ),
        Target(
            "goqueue-sdk",
            "goqueue",
            "Go-Queue / goqueue.client",
            "a topic partition",
            "a reader with its own position (the SDK's fetcher)",
            lambda s: GoQueueSdkClient(s.bootstrap),
            many_partitions=False,
        ),
        Target(
            "redis",
            "redis",
            "Redis Streams / redis-py",
            "a stream key",
            "a consumer group (XREADGROUP, one XACK per batch)",
            lambda s: RedisStreamsClient("127.0.0.1", s.port),
        ),
        Target(
            "nats",
            "nats",
            "NATS JetStream / nats-py",
            "a stream (file storage) with one subject",
            "a durable pull consumer (AckAll, one ack per fetched batch)",
            lambda s: NatsJetStreamClient(s.url),
        ),
        Target(
            "rabbitmq-queue",
            "rabbitmq",
            "RabbitMQ queue / aio-pika",
            "a durable classic queue per group, bound to a direct exchange by partition key",
            "its own durable queue (acks with multiple=true every 500)",
            lambda s: RabbitQueueClient("127.0.0.1", s.port),
        ),
        Target(
            "rabbitmq-stream",
            "rabbitmq",
            "RabbitMQ stream / rstream",
            "a stream",
            "an independent stream consumer from the first offset",
            lambda s: RabbitStreamClient("127.0.0.1", s.stream_port),
            many_partitions=False,
        ),
    )
}
