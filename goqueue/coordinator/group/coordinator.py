"""The group coordinator service: routes each group to its shard and waits for its answer.

A group lives in the partition of `__consumer_offsets` its id hashes to (as in Kafka). The
front ends call these coroutines with protocol-neutral messages; errors of the runtime
(a partition still loading, or unavailable) become the Kafka error codes clients expect.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TYPE_CHECKING, TypeVar

from kio.schema.errors import ErrorCode

from goqueue.broker.errors import BrokerError
from goqueue.coordinator.group.config import GroupConfig
from goqueue.coordinator.group.consumer import (
    ConsumerGroupDescription,
    ConsumerHeartbeat,
    ConsumerHeartbeatResponse,
)
from goqueue.coordinator.group.lag import PartitionLag, partition_lag, record_timestamp_at
from goqueue.coordinator.group.messages import (
    CommitRequest,
    DescribedGroup,
    FetchRequest,
    FetchResponse,
    HeartbeatRequest,
    JoinRequest,
    JoinResponse,
    LeaveResponse,
    LeavingMember,
    ListedGroup,
    SyncRequest,
    SyncResponse,
    TopicPartition,
)
from goqueue.coordinator.group.shard import GroupShard
from goqueue.coordinator.runtime import CoordinatorRuntime, Result, Timer

if TYPE_CHECKING:
    from goqueue.broker.broker import Broker

OFFSETS_TOPIC = "__consumer_offsets"


class _NoTimer:
    """The clock of a shard that only answers queries (it schedules nothing)."""

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def schedule(self, key: str, delay_ms: int, operation: Callable[[], Result[None]]) -> None:
        raise AssertionError("a query scheduled a timer")

    def cancel(self, key: str) -> None:
        """Nothing is scheduled."""


T = TypeVar("T")


class GroupCoordinator:
    """Consumer groups and committed offsets of the groups this broker coordinates."""

    def __init__(self, broker: Broker) -> None:
        settings = broker.settings
        self._broker = broker
        self.config = GroupConfig.from_settings(settings)
        self.topics = ImageTopics(broker)
        self.runtime: CoordinatorRuntime[GroupShard] = CoordinatorRuntime(
            broker,
            OFFSETS_TOPIC,
            settings.offsets_topic_num_partitions,
            {
                "cleanup.policy": "compact",
                "segment.bytes": str(settings.offsets_topic_segment_bytes),
            },
            self._new_shard,
        )

    def _new_shard(self, index: int, timer: Timer) -> GroupShard:
        return GroupShard(index, timer, self.config, self.topics)

    async def start(self) -> None:
        await self.runtime.start()

    async def stop(self) -> None:
        await self.runtime.stop()

    def partition_for(self, group_id: str) -> int:
        return self.runtime.partition_for(group_id)

    # The classic protocol.

    async def join(self, request: JoinRequest) -> JoinResponse:
        try:
            return await self._parked(
                request.group_id, lambda shard, waiter: shard.join(request, waiter)
            )
        except BrokerError as exc:
            return JoinResponse(exc.error_code, request.member_id)

    async def sync(self, request: SyncRequest) -> SyncResponse:
        try:
            return await self._parked(
                request.group_id, lambda shard, waiter: shard.sync(request, waiter)
            )
        except BrokerError as exc:
            return SyncResponse(exc.error_code)

    async def heartbeat(self, request: HeartbeatRequest) -> ErrorCode:
        """A heartbeat to a loading shard is answered blindly with success, as Kafka does."""
        try:
            return await self._write(request.group_id, lambda shard: shard.heartbeat(request))
        except BrokerError as exc:
            if exc.error_code == ErrorCode.coordinator_load_in_progress:
                return ErrorCode.none
            return exc.error_code

    async def leave(self, group_id: str, members: Sequence[LeavingMember]) -> LeaveResponse:
        try:
            return await self._write(group_id, lambda shard: shard.leave(group_id, members))
        except BrokerError as exc:
            return LeaveResponse(exc.error_code)

    # The consumer protocol (KIP-848).

    async def consumer_heartbeat(self, request: ConsumerHeartbeat) -> ConsumerHeartbeatResponse:
        try:
            return await self._write(request.group_id, lambda s: s.consumer_heartbeat(request))
        except BrokerError as exc:
            return ConsumerHeartbeatResponse(exc.error_code, exc.message)

    async def consumer_describe(self, group_id: str) -> ConsumerGroupDescription:
        try:
            return await self._read(group_id, lambda shard: shard.consumer_describe(group_id))
        except BrokerError as exc:
            return ConsumerGroupDescription(group_id, exc.error_code)

    # Offsets.

    async def commit_offsets(self, request: CommitRequest) -> dict[TopicPartition, ErrorCode]:
        try:
            return await self._write(request.group_id, lambda s: s.commit_offsets(request))
        except BrokerError as exc:
            code = exc.error_code
            if code == ErrorCode.message_too_large:
                code = ErrorCode.invalid_commit_offset_size
            return dict.fromkeys(request.offsets, code)

    async def fetch_offsets(self, request: FetchRequest) -> FetchResponse:
        try:
            return await self._read(request.group_id, lambda shard: shard.fetch_offsets(request))
        except BrokerError as exc:
            return FetchResponse(exc.error_code)

    async def delete_offsets(
        self, group_id: str, partitions: Collection[TopicPartition]
    ) -> tuple[ErrorCode, dict[TopicPartition, ErrorCode]]:
        try:
            return await self._write(group_id, lambda s: s.delete_offsets(group_id, partitions))
        except BrokerError as exc:
            return exc.error_code, {}

    # Administration.

    async def describe(self, group_id: str) -> DescribedGroup | None:
        """The group, None if it does not exist; raises BrokerError if its shard cannot
        answer."""
        return await self._read(group_id, lambda shard: shard.describe(group_id))

    async def list_groups(
        self, states: Collection[str] = (), types: Collection[str] = ()
    ) -> tuple[ErrorCode, list[ListedGroup]]:
        """Groups of every loaded shard; COORDINATOR_LOAD_IN_PROGRESS while some load."""
        listed = [
            group
            for _index, shard in self.runtime.active_shards()
            for group in shard.list_groups(states, types)
        ]
        error = ErrorCode.coordinator_load_in_progress if self.runtime.loading() else ErrorCode.none
        return error, listed

    async def delete_groups(self, group_ids: Sequence[str]) -> dict[str, ErrorCode]:
        by_shard: dict[int, list[str]] = {}
        for group_id in group_ids:
            by_shard.setdefault(self.partition_for(group_id), []).append(group_id)
        errors: dict[str, ErrorCode] = {}
        for index, ids in by_shard.items():
            try:
                deleted: dict[str, ErrorCode] = await self.runtime.write(index, _deleting(ids))
                errors.update(deleted)
            except BrokerError as exc:
                errors.update(dict.fromkeys(ids, exc.error_code))
        return errors

    async def lag(self, group_id: str) -> list[PartitionLag]:
        """Lag of every partition the group has committed an offset for."""
        committed = await self._read(group_id, lambda shard: shard.committed(group_id))
        now_ms = int(time.time() * 1000)
        lags = []
        for tp, offset in sorted(
            committed.items(), key=lambda item: (item[0].topic, item[0].partition)
        ):
            try:
                partition = self._broker.partition(tp.topic, tp.partition)
            except BrokerError:
                continue
            log = partition.log
            timestamp = await record_timestamp_at(log, offset)
            lags.append(
                partition_lag(
                    tp.topic,
                    tp.partition,
                    offset,
                    log.log_start_offset,
                    partition.high_watermark,
                    timestamp,
                    now_ms,
                )
            )
        return lags

    # Plumbing.

    async def _write(self, group_id: str, operation: Callable[[GroupShard], Result[T]]) -> T:
        return await self.runtime.write(self.partition_for(group_id), operation)

    async def _read(self, group_id: str, query: Callable[[GroupShard], T]) -> T:
        """`query` on the group's shard. A share group's coordinator, which clients find for
        its id (FindCoordinator), answers as the consumer group coordinator of a group it
        does not have (Kafka's group coordinator holds both kinds: a share group is not a
        classic or consumer group there)."""
        try:
            return await self.runtime.read(self.partition_for(group_id), query)
        except BrokerError as exc:
            if exc.error_code != ErrorCode.not_coordinator or not self._is_share_group(group_id):
                raise
        return query(GroupShard(-1, _NoTimer(), self.config, self.topics))

    def _is_share_group(self, group_id: str) -> bool:
        return group_id in self._broker.image.share_groups

    async def _parked(
        self,
        group_id: str,
        operation: Callable[[GroupShard, asyncio.Future[T]], Result[None]],
    ) -> T:
        """Run an operation that answers through a waiter, possibly much later (when the
        rest of the group catches up), then wait for what it answers to be durable."""
        index = self.partition_for(group_id)
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self.runtime.write(index, lambda shard: operation(shard, waiter))
        return await self.runtime.settle(index, waiter)


def _deleting(group_ids: Sequence[str]) -> Callable[[GroupShard], Result[dict[str, ErrorCode]]]:
    return lambda shard: shard.delete_groups(group_ids)


class ImageTopics:
    """The cluster's topics from the broker's current metadata image."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    def by_name(self, name: str) -> tuple[uuid.UUID, int] | None:
        info = self._broker.image.topics.get(name)
        return None if info is None else (info.topic_id, info.partitions)

    def name_of(self, topic_id: uuid.UUID) -> str | None:
        info = self._broker.image.topics_by_id.get(topic_id)
        return None if info is None else info.name

    def names(self) -> Iterable[str]:
        return self._broker.image.topics.keys()
