"""The coordinator runtime follows partition leadership: a shard loads where its partition is
led, unloads (answering its waiting requests) when leadership moves away, and requests for a
partition led elsewhere get NOT_COORDINATOR."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from kio.schema.errors import ErrorCode

from goqueue.broker.errors import BrokerError
from goqueue.broker.flusher import Flusher
from goqueue.broker.partition import Partition
from goqueue.config.settings import BrokerSettings
from goqueue.coordinator.runtime import CoordinatorRuntime, Record, Timer
from goqueue.log.config import LogConfig
from goqueue.log.partition_log import PartitionLog
from goqueue.metadata.image import BrokerInfo, MetadataImage, PartitionState, TopicInfo
from goqueue.metadata.store import Listener

TOPIC = "__internal"
ME = 1
REPLICAS = (1, 2, 3)


class Shard:
    def __init__(self) -> None:
        self.unloaded = False

    def replay(self, offset: int, record: Record) -> None:
        pass

    def on_loaded(self) -> None:
        pass

    def on_unloaded(self) -> None:
        self.unloaded = True


class FakeMetadata:
    def __init__(self) -> None:
        self.listeners: list[Listener] = []

    def add_listener(self, listener: Listener) -> None:
        self.listeners.append(listener)


class FakeBroker:
    """What the runtime uses of a broker: the image, the partitions hosted here, fsync."""

    def __init__(self, directory: Path, leaders: dict[int, int]) -> None:
        self.settings = BrokerSettings(node_id=ME)
        self.metadata = FakeMetadata()
        self.flusher = Flusher()
        self.partitions = {
            index: Partition.open(
                TOPIC,
                index,
                PartitionLog(directory / f"p{index}", TOPIC, index, LogConfig()),
                0,
                ME,
            )
            for index in leaders
        }
        self.image = MetadataImage.empty()
        self.lead(leaders, epoch=0)

    def lead(self, leaders: dict[int, int], epoch: int) -> None:
        """Apply partition states naming these leaders, as the broker's listener does."""
        states = {
            i: PartitionState(REPLICAS, leader, epoch, REPLICAS, epoch)
            for i, leader in leaders.items()
        }
        for index, state in states.items():
            partition = self.partitions[index]
            if state.leader == ME:
                partition.become_leader(epoch, epoch, REPLICAS, (ME,), now_ms=0)
            else:
                partition.become_follower(state.leader, epoch, epoch, REPLICAS, REPLICAS)
        old = self.image
        topic = TopicInfo(TOPIC, uuid.UUID(int=1), len(states), 3, {}, states)
        brokers = {n: BrokerInfo(n, "127.0.0.1", 9000 + n) for n in REPLICAS}
        self.image = MetadataImage("c", 1, brokers, {TOPIC: topic}, {topic.topic_id: topic}, 1)
        for listener in self.metadata.listeners:
            listener(old, self.image)

    def hosted_partition(self, topic: str, index: int) -> Partition | None:
        return self.partitions.get(index) if topic == TOPIC else None

    def partition(self, topic: str, index: int) -> Partition:
        partition = self.hosted_partition(topic, index)
        if partition is None:
            raise BrokerError(ErrorCode.unknown_topic_or_partition)
        return partition


def refusal(runtime: CoordinatorRuntime[Any], index: int) -> ErrorCode:
    with pytest.raises(BrokerError) as caught:
        runtime.shard(index)
    return caught.value.error_code


def test_shards_load_where_their_partition_is_led(tmp_path: Path) -> None:
    async def scenario() -> None:
        broker = FakeBroker(tmp_path, {0: ME, 1: 2, 2: ME})
        shards: dict[int, Shard] = {}

        def factory(index: int, _timer: Timer) -> Shard:
            shards[index] = Shard()
            return shards[index]

        runtime: CoordinatorRuntime[Shard] = CoordinatorRuntime(
            broker,  # type: ignore[arg-type]
            TOPIC,
            3,
            {},
            factory,
        )
        await runtime.start()
        await runtime.wait_loaded()
        assert runtime.shard(0) is shards[0] and runtime.shard(2) is shards[2]
        assert refusal(runtime, 1) == ErrorCode.not_coordinator
        assert runtime.coordinator_for("any group") is not None

        first, kept = shards[0], shards[2]
        broker.lead({0: 3, 1: ME, 2: ME}, epoch=1)
        assert first.unloaded, "the old shard answered its waiting requests"
        assert kept.unloaded and shards[2] is not kept, "a new leader epoch reloads the shard"
        assert refusal(runtime, 0) == ErrorCode.not_coordinator
        await runtime.wait_loaded()
        assert runtime.shard(1) is shards[1]
        assert runtime.shard(2) is shards[2]
        await runtime.stop()
        await broker.flusher.close()

    asyncio.run(scenario())
