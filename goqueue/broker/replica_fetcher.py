"""Followers copy their leaders' logs: one fetcher task per leader broker, as in Kafka.

A fetcher keeps one connection to its leader and sends Fetch requests with this broker's id as
the replica id, covering every partition this broker follows there. The leader answers with its
batches (appended here verbatim, offsets and leader epochs kept) and its high watermark (which
the follower adopts as far as its log reaches); each fetch also tells the leader how far this
log reaches, which is how the leader tracks the ISR and the high watermark.

Before a partition's first fetch under a new leader epoch, the fetcher asks the leader where
this log diverges from its own (OffsetForLeaderEpoch, KIP-101/KIP-279) and truncates the
divergent suffix: data an old leader wrote that the new leader never had.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from kio.schema.errors import ErrorCode

from goqueue.broker.errors import BrokerError
from goqueue.broker.partition import Partition
from goqueue.client.connection import Connection
from goqueue.client.errors import ClientError
from goqueue.log.leader_epochs import UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET, LeaderEpochCache

if TYPE_CHECKING:
    from goqueue.broker.broker import Broker

logger = logging.getLogger(__name__)

FETCH = 1
OFFSET_FOR_LEADER_EPOCH = 23
FETCH_MAX_BYTES = 10 * 1024 * 1024
REQUEST_TIMEOUT_S = 30.0
PartitionKey = tuple[str, int]


def truncation_point(
    epochs: LeaderEpochCache,
    log_end_offset: int,
    high_watermark: int,
    leader_epoch: int,
    leader_end_offset: int,
) -> tuple[int, bool]:
    """Where a follower truncates, given the leader's OffsetForLeaderEpoch answer for the
    follower's latest epoch, and whether that settles it (Kafka's AbstractFetcherThread).

    The leader answers with the largest epoch it has at or below the one asked and where that
    epoch ends in its log. If the follower has that epoch too, both logs agree up to the
    smaller of the two ends. If not, truncate to the end of the follower's epoch below it and
    ask again with the (now smaller) latest epoch. A leader without epochs leaves only the high
    watermark as safe."""
    if leader_end_offset == UNDEFINED_EPOCH_OFFSET:
        return min(high_watermark, log_end_offset), True
    if leader_epoch == UNDEFINED_EPOCH:
        return min(leader_end_offset, log_end_offset), True
    epoch, end = epochs.end_offset_for(leader_epoch, log_end_offset)
    if end == UNDEFINED_EPOCH_OFFSET:
        return min(leader_end_offset, log_end_offset), True
    if epoch != leader_epoch:
        return min(end, log_end_offset), False
    return min(end, leader_end_offset, log_end_offset), True


class ReplicaFetchers:
    """The fetchers of this broker, one per leader it follows partitions of."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._fetchers: dict[int, ReplicaFetcher] = {}
        self._closed = False

    def update(self, leaders: Mapping[PartitionKey, int]) -> None:
        """Follow exactly these partitions, each from its leader; start and stop fetchers.
        Ignored once closed: metadata keeps changing while the broker shuts down."""
        if self._closed:
            return
        by_leader: dict[int, set[PartitionKey]] = {}
        for key, leader_id in leaders.items():
            by_leader.setdefault(leader_id, set()).add(key)
        for leader_id in list(self._fetchers):
            if leader_id not in by_leader:
                self._fetchers.pop(leader_id).stop()
        for leader_id, keys in by_leader.items():
            fetcher = self._fetchers.get(leader_id)
            if fetcher is None:
                fetcher = self._fetchers[leader_id] = ReplicaFetcher(self._broker, leader_id)
            fetcher.partitions = keys

    async def close(self) -> None:
        self._closed = True
        fetchers, self._fetchers = list(self._fetchers.values()), {}
        for fetcher in fetchers:
            fetcher.stop()
        for fetcher in fetchers:
            await fetcher.wait_stopped()


class ReplicaFetcher:
    """Fetches the partitions this broker follows from one leader, until stopped."""

    def __init__(self, broker: Broker, leader_id: int) -> None:
        self._broker = broker
        self.leader_id = leader_id
        self.partitions: set[PartitionKey] = set()
        self._delayed: dict[PartitionKey, float] = {}
        """Partitions the leader refused, left out of requests until the monotonic time given
        (Kafka's per-partition fetch backoff: the others keep replicating meanwhile)."""
        self._stopped = False
        self._task = asyncio.create_task(self._run(), name=f"replica-fetcher-{leader_id}")

    def stop(self) -> None:
        """Cancel the task; the flag ends its loop even if closing its connection swallowed
        the cancellation."""
        self._stopped = True
        self._task.cancel()

    async def wait_stopped(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    @property
    def _backoff_s(self) -> float:
        return self._broker.settings.replica_fetch_backoff_ms / 1000

    async def _run(self) -> None:
        """Connect, then truncate and fetch in a loop; on any failure back off, reconnect."""
        while not self._stopped:
            connection = None
            try:
                connection = await self._connect()
                if connection is not None:
                    while not self._stopped:
                        await self._truncate(connection)
                        await self._fetch(connection)
            except (ClientError, OSError, BrokerError) as exc:
                logger.warning("replica fetcher for leader %d: %s", self.leader_id, exc)
            finally:
                if connection is not None:
                    await connection.close()
            await asyncio.sleep(self._backoff_s)

    async def _connect(self) -> Connection | None:
        info = self._broker.image.brokers.get(self.leader_id)
        if info is None:
            return None
        client_id = f"goqueue-replica-{self._broker.settings.node_id}"
        return await Connection.open(info.host, info.port, client_id=client_id)

    def _following(self) -> list[tuple[PartitionKey, Partition]]:
        """The partitions this fetcher serves that still follow its leader and are not
        backing off."""
        found = []
        now = time.monotonic()
        self._delayed = {key: until for key, until in self._delayed.items() if until > now}
        for key in sorted(self.partitions - self._delayed.keys()):
            partition = self._broker.hosted_partition(*key)
            if (
                partition is not None
                and not partition.is_leader
                and partition.leader_id == self.leader_id
            ):
                found.append((key, partition))
        return found

    async def _truncate(self, connection: Connection) -> None:
        """OffsetForLeaderEpoch for the partitions that became followers of a new epoch, and
        truncation to where their logs and the leader's agree."""
        pending = [(key, p) for key, p in self._following() if p.truncation_pending]
        if not pending:
            return
        asked = {key: (p, p.leader_epoch, p.epochs.latest_epoch) for key, p in pending}
        request = {
            "replica_id": self._broker.settings.node_id,
            "topics": [
                {
                    "topic": name,
                    "partitions": [
                        {
                            "partition": index,
                            "current_leader_epoch": current,
                            "leader_epoch": latest,
                        }
                        for (topic, index), (_, current, latest) in asked.items()
                        if topic == name
                    ],
                }
                for name in sorted({topic for topic, _ in asked})
            ],
        }
        response = await connection.request(
            OFFSET_FOR_LEADER_EPOCH, request, timeout=REQUEST_TIMEOUT_S
        )
        for topic in response.topics:
            for answer in topic.partitions:
                entry = asked.get((str(topic.topic), int(answer.partition)))
                if entry is None:
                    continue
                partition, current, _ = entry
                if partition.is_leader or partition.leader_epoch != current:
                    continue
                if answer.error_code != ErrorCode.none:
                    self._delay((str(topic.topic), int(answer.partition)))
                    logger.info(
                        "%s-%d: leader %d answered OffsetForLeaderEpoch with %s",
                        topic.topic,
                        answer.partition,
                        self.leader_id,
                        ErrorCode(answer.error_code).name,
                    )
                    continue
                offset, settled = truncation_point(
                    partition.epochs,
                    partition.log.log_end_offset,
                    partition.high_watermark,
                    int(answer.leader_epoch),
                    int(answer.end_offset),
                )
                partition.truncate(offset)
                partition.truncation_pending = not settled
                await partition.epochs_durable()

    def _delay(self, key: PartitionKey) -> None:
        self._delayed[key] = time.monotonic() + self._backoff_s

    async def _fetch(self, connection: Connection) -> None:
        """One Fetch round over the partitions ready for it; partitions the leader refuses
        back off on their own."""
        following = [(key, p) for key, p in self._following() if not p.truncation_pending]
        settings = self._broker.settings
        if not following:
            wait_s = settings.replica_fetch_wait_max_ms / 1000
            if self._delayed:
                wait_s = min(wait_s, min(self._delayed.values()) - time.monotonic())
            await asyncio.sleep(max(wait_s, 0.01))
            return
        sent = {key: (p, p.leader_epoch, p.log.log_end_offset) for key, p in following}
        request = self._fetch_request(sent.items())
        response = await connection.request(
            FETCH, request, timeout=REQUEST_TIMEOUT_S + settings.replica_fetch_wait_max_ms / 1000
        )
        if response.error_code != ErrorCode.none:
            raise BrokerError(response.error_code, f"Fetch from leader {self.leader_id} failed")
        unanswered = set(sent)
        for topic in response.responses:
            name = self._topic_name(topic)
            if name is None:
                continue
            for data in topic.partitions:
                key = (name, int(data.partition_index))
                entry = sent.get(key)
                if entry is not None:
                    unanswered.discard(key)
                    if not await self._apply(name, data, *entry):
                        self._delay(key)
        for key in unanswered:
            self._delay(key)

    def _fetch_request(
        self, sent: Iterable[tuple[PartitionKey, tuple[Partition, int, int]]]
    ) -> dict[str, Any]:
        settings = self._broker.settings
        by_topic: dict[str, list[dict[str, int]]] = {}
        for (name, index), (partition, epoch, offset) in sent:
            by_topic.setdefault(name, []).append(
                {
                    "partition": index,
                    "current_leader_epoch": epoch,
                    "fetch_offset": offset,
                    "last_fetched_epoch": -1,
                    "log_start_offset": partition.log.log_start_offset,
                    "partition_max_bytes": settings.replica_fetch_max_bytes,
                }
            )
        node_id = settings.node_id
        return {
            "replica_id": node_id,
            "replica_state": {"replica_id": node_id, "replica_epoch": -1},
            "max_wait": datetime.timedelta(milliseconds=settings.replica_fetch_wait_max_ms),
            "min_bytes": 1,
            "max_bytes": FETCH_MAX_BYTES,
            "isolation_level": 0,
            "session_id": 0,
            "session_epoch": -1,
            "topics": [
                {"topic": name, "topic_id": self._broker.topic_id(name), "partitions": parts}
                for name, parts in by_topic.items()
            ],
            "forgotten_topics_data": [],
            "rack_id": "",
        }

    def _topic_name(self, topic: Any) -> str | None:
        name = getattr(topic, "topic", None)
        if name is not None:
            return str(name)
        info = self._broker.image.topics_by_id.get(topic.topic_id)
        return info.name if info else None

    async def _apply(
        self, name: str, data: Any, partition: Partition, epoch: int, offset: int
    ) -> bool:
        """Append one partition's answer if the partition is still where it was when asked;
        False if the leader refused the partition (it then backs off)."""
        if partition.is_leader or partition.leader_epoch != epoch:
            return True
        if partition.log.log_end_offset != offset:
            return True
        code = ErrorCode(data.error_code)
        if code == ErrorCode.none:
            if data.records:
                await partition.append_from_leader(data.records, epoch, int(time.time() * 1000))
            partition.follow_high_watermark(int(data.high_watermark))
            if partition.follow_log_start(int(data.log_start_offset)):
                await asyncio.to_thread(partition.log.checkpoint_log_start_offset)
            return True
        if code == ErrorCode.offset_out_of_range:
            if offset < data.log_start_offset:
                partition.truncate_fully_and_start_at(int(data.log_start_offset))
            else:
                partition.truncation_pending = True
            return True
        logger.info(
            "%s-%d: leader %d refused the fetch at %d: %s",
            name,
            partition.index,
            self.leader_id,
            offset,
            code.name,
        )
        return False
