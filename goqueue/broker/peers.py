"""Requests this broker sends to the other brokers of its cluster, for work that must happen
where a partition is led or read where its data is.

The scheduler parks messages in schedule shards led elsewhere and delivers due messages to
partitions led elsewhere; share groups read records of partitions their coordinator does not
host and dead-letter to partitions led elsewhere. They all go through `Peers`: one connection
per peer broker (addresses from the metadata image, so no Metadata round trips), reopened after
a failure, with this broker's node id in the client id so that peers' logs name it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kio.schema.errors import ErrorCode

from goqueue.broker.errors import BrokerError
from goqueue.broker.replica_fetcher import OFFSET_FOR_LEADER_EPOCH
from goqueue.client.connection import Connection
from goqueue.client.errors import ClientError
from goqueue.client.fetcher import FETCH, FetchLimits, fetch_request
from goqueue.client.metadata import TopicPartition
from goqueue.client.produce_protocol import PRODUCE, partition_responses, produce_request
from goqueue.log.errors import OffsetOutOfRangeError

if TYPE_CHECKING:
    from goqueue.broker.broker import Broker

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 30.0
RETRY_BACKOFF_S = 0.1
READ_BYTES = 1024 * 1024
CLIENT_ID_PREFIX = "goqueue-broker-"
"""Peers' client ids are this and their node id, so a broker can tell a peer's request."""
IDLE_CONNECTIONS = 8
"""Connections kept open per peer for requests the peer may hold (`request_held`)."""
NOT_APPENDED = frozenset(
    {
        ErrorCode.not_leader_or_follower,
        ErrorCode.leader_not_available,
        ErrorCode.not_enough_replicas,
        ErrorCode.unknown_topic_or_partition,
        ErrorCode.fenced_leader_epoch,
    }
)
"""Produce errors that say the batch was not appended, so sending it again cannot duplicate
it (NOT_ENOUGH_REPLICAS_AFTER_APPEND and timeouts do not say that)."""


@dataclass(frozen=True, slots=True)
class PeerRead:
    """Whole batches of a partition read at or after an offset, below its high watermark."""

    records: bytes
    high_watermark: int
    log_start_offset: int


def peer_node_id(client_id: str | None) -> int | None:
    """The node id of the peer broker that sent a request, None for a client's request."""
    if client_id is None or not client_id.startswith(CLIENT_ID_PREFIX):
        return None
    suffix = client_id[len(CLIENT_ID_PREFIX) :]
    return int(suffix) if suffix.isdigit() else None


@dataclass(frozen=True, slots=True)
class LogOffsets:
    """Where a partition's log is committed up to and where it ends, on its leader."""

    high_watermark: int
    log_end_offset: int


class Peers:
    """This broker's connections to the other brokers of the cluster."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._connections: dict[int, Connection] = {}
        self._connecting: dict[int, asyncio.Lock] = {}
        self._idle: dict[int, list[Connection]] = {}

    @property
    def node_id(self) -> int:
        return self._broker.settings.node_id

    def leader_of(self, topic: str, index: int) -> int | None:
        """The partition's leader in this broker's metadata image, None while it has none."""
        info = self._broker.image.topics.get(topic)
        if info is None or not 0 <= index < info.partitions:
            raise BrokerError(
                ErrorCode.unknown_topic_or_partition, f"{topic}-{index} does not exist"
            )
        state = info.partition_states.get(index)
        leader = None if state is None else state.leader
        return None if leader is None or leader < 0 else leader

    async def request(
        self, node_id: int, api_key: int, fields: Mapping[str, Any], timeout: float
    ) -> Any:
        """One request to a peer; a broken connection is dropped (the next request opens a new
        one) and the failure raised as a retriable NETWORK_EXCEPTION `BrokerError`."""
        connection = await self._connection(node_id)
        try:
            return await connection.request(api_key, fields, timeout=timeout)
        except (ClientError, OSError) as exc:
            await self._drop(node_id, connection)
            raise _request_failed(node_id, exc) from exc

    async def request_held(
        self, node_id: int, api_key: int, fields: Mapping[str, Any], timeout: float
    ) -> Any:
        """A request the peer may hold for a while (a long poll): a broker answers the
        requests of one connection one at a time, so this one gets a connection of its own
        (kept for the next such request) rather than holding up the shared one. Failures are
        raised as with `request`."""
        idle = self._idle.setdefault(node_id, [])
        while idle and idle[-1].closed:
            idle.pop()
        connection = idle.pop() if idle else await self._open(node_id)
        try:
            response = await connection.request(api_key, fields, timeout=timeout)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await connection.close()
            if isinstance(exc, ClientError | OSError):
                raise _request_failed(node_id, exc) from exc
            raise
        if len(idle) < IDLE_CONNECTIONS:
            idle.append(connection)
        else:
            await connection.close()
        return response

    async def produce(self, topic: str, index: int, records: bytes, *, timeout: float) -> int:
        """Append one batch with acks=all on the partition's leader, this broker or a peer;
        returns its base offset.

        Errors that say nothing was appended (leadership moving) are retried until `timeout`;
        any other failure is raised, and then the batch may or may not be in the log: callers
        that must not duplicate it check the log before sending it again."""
        deadline = time.monotonic() + timeout
        while True:
            leader = self.leader_of(topic, index)
            try:
                if leader is None:
                    raise BrokerError(
                        ErrorCode.leader_not_available, f"{topic}-{index} has no leader"
                    )
                if leader == self.node_id:
                    result = await self._broker.produce(topic, index, records, -1, timeout=timeout)
                    return result.base_offset
                return await self._produce_remote(leader, topic, index, records, deadline)
            except BrokerError as exc:
                if exc.error_code not in NOT_APPENDED or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(RETRY_BACKOFF_S)

    async def _produce_remote(
        self, leader: int, topic: str, index: int, records: bytes, deadline: float
    ) -> int:
        topic_ids = {topic: self._broker.topic_id(topic)}
        timeout = max(deadline - time.monotonic(), RETRY_BACKOFF_S)
        tp = TopicPartition(topic, index)
        request = produce_request({tp: records}, topic_ids, -1, int(timeout * 1000))
        response = await self.request(leader, PRODUCE, request, timeout + REQUEST_TIMEOUT_S)
        for _, answer in partition_responses(response, topic_ids):
            code = ErrorCode(answer.error_code)
            if code != ErrorCode.none:
                raise BrokerError(code, answer.error_message or f"broker {leader}: {code.name}")
            return int(answer.base_offset)
        raise BrokerError(ErrorCode.unknown_server_error, f"broker {leader} did not answer {tp}")

    async def read(self, topic: str, index: int, offset: int) -> PeerRead:
        """Whole batches from the one holding `offset` (or the log start), at most about
        READ_BYTES but at least one batch, below the high watermark: from this broker's replica
        when it holds one (leader or follower: a follower's high watermark never passes the
        leader's), else fetched from the leader."""
        hosted = self._broker.hosted_partition(topic, index)
        if hosted is not None:
            log = hosted.log
            high_watermark = hosted.high_watermark
            data = b""
            with contextlib.suppress(OffsetOutOfRangeError):
                piece = log.read(max(offset, log.log_start_offset), READ_BYTES, high_watermark)
                if piece is not None:
                    data = await asyncio.to_thread(os.pread, piece.fd, piece.size, piece.position)
            return PeerRead(data, high_watermark, log.log_start_offset)
        leader = self.leader_of(topic, index)
        if leader is None:
            raise BrokerError(ErrorCode.leader_not_available, f"{topic}-{index} has no leader")
        tp = TopicPartition(topic, index)
        limits = FetchLimits(max_wait_ms=0, min_bytes=0, partition_max_bytes=READ_BYTES)
        request = fetch_request({tp: offset}, {topic: self._broker.topic_id(topic)}, limits)
        response = await self.request(leader, FETCH, request, REQUEST_TIMEOUT_S)
        for answer in (p for t in response.responses for p in t.partitions):
            code = ErrorCode(answer.error_code)
            if code == ErrorCode.offset_out_of_range:
                return PeerRead(b"", answer.high_watermark, answer.log_start_offset)
            if code != ErrorCode.none:
                raise BrokerError(code, f"broker {leader} refused to read {tp}: {code.name}")
            return PeerRead(answer.records or b"", answer.high_watermark, answer.log_start_offset)
        raise BrokerError(ErrorCode.unknown_server_error, f"broker {leader} did not answer {tp}")

    async def offsets(self, topic: str, index: int) -> LogOffsets:
        """The partition's high watermark and log end offset on its leader, this broker or a
        peer (OffsetForLeaderEpoch for the current epoch answers the leader's log end, then a
        Fetch from there its high watermark)."""
        hosted = self._broker.hosted_partition(topic, index)
        if hosted is not None and hosted.is_leader:
            return LogOffsets(hosted.high_watermark, hosted.log.log_end_offset)
        leader = self.leader_of(topic, index)
        state = self._broker.image.topics[topic].partition_states.get(index)
        if leader is None or state is None:
            raise BrokerError(ErrorCode.leader_not_available, f"{topic}-{index} has no leader")
        wanted = {
            "partition": index,
            "current_leader_epoch": state.leader_epoch,
            "leader_epoch": state.leader_epoch,
        }
        request = {"replica_id": -1, "topics": [{"topic": topic, "partitions": [wanted]}]}
        response = await self.request(leader, OFFSET_FOR_LEADER_EPOCH, request, REQUEST_TIMEOUT_S)
        for answer in (p for t in response.topics for p in t.partitions):
            code = ErrorCode(answer.error_code)
            if code != ErrorCode.none:
                raise BrokerError(code, f"broker {leader} has no log end of {topic}-{index}")
            end = int(answer.end_offset)
            return LogOffsets((await self.read(topic, index, end)).high_watermark, end)
        raise BrokerError(ErrorCode.unknown_server_error, f"broker {leader} did not answer")

    async def close(self) -> None:
        for node_id, connection in list(self._connections.items()):
            await self._drop(node_id, connection)
        for idle in self._idle.values():
            while idle:
                with contextlib.suppress(Exception):
                    await idle.pop().close()

    async def _connection(self, node_id: int) -> Connection:
        lock = self._connecting.setdefault(node_id, asyncio.Lock())
        async with lock:
            connection = self._connections.get(node_id)
            if connection is not None and not connection.closed:
                return connection
            connection = self._connections[node_id] = await self._open(node_id)
            return connection

    async def _open(self, node_id: int) -> Connection:
        info = self._broker.image.brokers.get(node_id)
        if info is None or info.fenced:
            raise BrokerError(ErrorCode.broker_not_available, f"broker {node_id} is not available")
        try:
            return await Connection.open(
                info.host, info.port, client_id=f"{CLIENT_ID_PREFIX}{self.node_id}"
            )
        except ClientError as exc:
            raise BrokerError(
                ErrorCode.network_exception, f"cannot reach broker {node_id}: {exc}"
            ) from exc

    async def _drop(self, node_id: int, connection: Connection) -> None:
        if self._connections.get(node_id) is connection:
            del self._connections[node_id]
        with contextlib.suppress(Exception):
            await connection.close()


def _request_failed(node_id: int, exc: BaseException) -> BrokerError:
    """A request to a peer that got no answer, as a retriable NETWORK_EXCEPTION."""
    return BrokerError(ErrorCode.network_exception, f"request to broker {node_id} failed: {exc}")
