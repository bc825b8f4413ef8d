"""The client's view of a cluster: bootstrap, metadata cache and one connection per broker.

Everything that sends requests (admin, producer, fetcher) goes through a `Cluster`, which finds
the broker a request must go to and hands out that broker's single shared `Connection`.
"""

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence

from kio.schema.errors import ErrorCode

from goqueue.client.connection import DEFAULT_REQUEST_TIMEOUT, Connection
from goqueue.client.errors import (
    BrokerConnectionError,
    ClientError,
    LeaderNotAvailableError,
    error_for,
    partition_error,
    raise_for,
    topic_error,
)
from goqueue.client.lifecycle import AsyncClient
from goqueue.client.metadata import (
    METADATA,
    BrokerAddress,
    ClusterMetadata,
    TopicMetadata,
    TopicPartition,
    metadata_request,
    parse_metadata,
)

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
STALE_METADATA_ERRORS = frozenset(
    {
        ErrorCode.not_leader_or_follower,
        ErrorCode.leader_not_available,
        ErrorCode.unknown_topic_or_partition,
        ErrorCode.unknown_topic_id,
        ErrorCode.fenced_leader_epoch,
    }
)
METADATA_RETRY_BACKOFF = 0.05
"""Seconds between metadata requests while a topic's partitions still lack a leader."""


def parse_bootstrap(bootstrap: str | Sequence[str]) -> list[tuple[str, int]]:
    """Split `host:port[,host:port...]` (or a list of them; IPv6 hosts in brackets)."""
    entries = bootstrap.split(",") if isinstance(bootstrap, str) else list(bootstrap)
    addresses = [_parse_address(entry.strip()) for entry in entries if entry.strip()]
    if not addresses:
        raise ClientError("no bootstrap server given: expected HOST:PORT")
    return addresses


def _parse_address(entry: str) -> tuple[str, int]:
    host, sep, port = entry.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClientError(f"invalid broker address {entry!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


def _missing_reason(topic: TopicMetadata | None) -> ErrorCode:
    """Why a topic is not usable yet, as the error code to report."""
    if topic is None:
        return ErrorCode.unknown_topic_or_partition
    if topic.error != ErrorCode.none:
        return topic.error
    errors = [p.error for p in topic.partitions if p.error != ErrorCode.none]
    return errors[0] if errors else ErrorCode.leader_not_available


class Cluster(AsyncClient):
    """Connections and metadata for one cluster; use as `async with Cluster(bootstrap) as c`."""

    def __init__(
        self,
        bootstrap: str | Sequence[str] = DEFAULT_BOOTSTRAP,
        *,
        client_id: str | None = "goqueue",
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        self.bootstrap = parse_bootstrap(bootstrap)
        self.client_id = client_id
        self.request_timeout = request_timeout
        self.cluster_id: str | None = None
        self.controller_id = -1
        self._brokers: dict[int, BrokerAddress] = {}
        self._topics: dict[str, TopicMetadata] = {}
        self._connections: dict[int, Connection] = {}
        self._bootstrap_connection: Connection | None = None
        self._locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def start(self) -> None:
        """Reach the cluster (`async with` does this): the same as `connect()`."""
        await self.connect()

    @property
    def brokers(self) -> dict[int, BrokerAddress]:
        return dict(self._brokers)

    async def connect(self) -> None:
        """Reach a bootstrap server and learn the brokers; raises `BrokerConnectionError`."""
        await self.refresh([])

    async def refresh(
        self, topics: Sequence[str] | None = None, *, auto_create: bool = False
    ) -> ClusterMetadata:
        """Ask for metadata of `topics` (None: all) and update the cache with the answer."""
        connection = await self.any_connection()
        response = await connection.request(
            METADATA,
            metadata_request(topics, auto_create=auto_create),
            timeout=self.request_timeout,
        )
        raise_for(getattr(response, "error_code", ErrorCode.none))
        metadata = parse_metadata(response)
        self.cluster_id = metadata.cluster_id
        self.controller_id = metadata.controller_id
        self._brokers = dict(metadata.brokers)
        self._adopt_bootstrap_connection()
        for name in list(self._topics) if topics is None else topics:
            self._topics.pop(name, None)
        self._topics.update((name, topic) for name, topic in metadata.topics.items() if topic.ready)
        return metadata

    async def topic(
        self, name: str, *, auto_create: bool = False, just_created: bool = False
    ) -> TopicMetadata:
        """Metadata of one topic whose partitions all have leaders, waiting for them if needed.

        Raises `UnknownTopicOrPartitionError` when the topic does not exist (and was not
        auto-created) and `LeaderNotAvailableError` if leaders are still missing after the
        request timeout. `just_created` waits for an unknown topic too: the controller has
        committed it, but the broker asked may not have applied that record yet.
        """
        cached = self._topics.get(name)
        if cached is not None:
            return cached
        deadline = time.monotonic() + self.request_timeout
        while True:
            topic = (await self.refresh([name], auto_create=auto_create)).topics.get(name)
            if topic is not None and topic.ready:
                return topic
            code = _missing_reason(topic)
            # An unknown topic stays unknown unless the controller has just created it: the
            # broker declined (or was not asked) to create it.
            unknown = code == ErrorCode.unknown_topic_or_partition
            waiting = code.retriable and (just_created or not unknown)
            if not waiting or time.monotonic() >= deadline:
                raise topic_error(code, name)
            await asyncio.sleep(METADATA_RETRY_BACKOFF)

    def cached(self, name: str) -> TopicMetadata | None:
        """A ready topic's cached metadata, without asking the cluster (None when unknown or
        invalidated): for the producer's sender, which must not wait on metadata."""
        return self._topics.get(name)

    def invalidate(self, topic: str) -> None:
        """Forget a topic's cached metadata, so the next use asks the cluster again."""
        self._topics.pop(topic, None)

    def check(
        self, code: ErrorCode, topic: str, partition: int, message: str | None = None
    ) -> None:
        """Raise a per-partition error code, first forgetting metadata it shows is stale."""
        if code == ErrorCode.none:
            return
        if code in STALE_METADATA_ERRORS:
            self.invalidate(topic)
        raise partition_error(code, topic, partition, message)

    async def leaders(
        self, partitions: Iterable[TopicPartition]
    ) -> dict[int, list[TopicPartition]]:
        """Group partitions by the node id of their leader."""
        grouped: dict[int, list[TopicPartition]] = defaultdict(list)
        for tp in partitions:
            topic = await self.topic(tp.topic)
            if not 0 <= tp.partition < len(topic.partitions):
                raise error_for(
                    ErrorCode.unknown_topic_or_partition,
                    f"topic {tp.topic!r} has no partition {tp.partition}"
                    f" (it has {len(topic.partitions)})",
                )
            grouped[topic.partitions[tp.partition].leader].append(tp)
        return grouped

    async def connection(self, node_id: int) -> Connection:
        """The shared connection to one broker, opened (again) if needed."""
        async with self._locks[node_id]:
            connection = self._connections.get(node_id)
            if connection is not None and not connection.closed:
                return connection
            broker = self._brokers.get(node_id)
            if broker is None:
                raise LeaderNotAvailableError(
                    ErrorCode.leader_not_available, f"broker {node_id} is not in the metadata"
                )
            connection = await self._open(broker.host, broker.port)
            self._connections[node_id] = connection
            return connection

    async def controller(self) -> Connection:
        """The connection to the controller, where topic administration goes."""
        if self.controller_id in self._brokers:
            return await self.connection(self.controller_id)
        return await self.any_connection()

    async def any_connection(self) -> Connection:
        """A live connection to some broker: an open one if any, else a bootstrap server."""
        for connection in (self._bootstrap_connection, *self._connections.values()):
            if connection is not None and not connection.closed:
                return connection
        self._bootstrap_connection = await self._open_bootstrap()
        self._adopt_bootstrap_connection()
        return self._bootstrap_connection

    async def _open_bootstrap(self) -> Connection:
        failures: list[BrokerConnectionError] = []
        for host, port in self.bootstrap:
            try:
                return await self._open(host, port)
            except BrokerConnectionError as exc:
                failures.append(exc)
        if len(failures) == 1:
            raise failures[0]
        reasons = "; ".join(str(f) for f in failures)
        raise BrokerConnectionError(failures[0].host, failures[0].port, reasons)

    def _adopt_bootstrap_connection(self) -> None:
        """Reuse the bootstrap connection for the broker it reached, if its address is known."""
        connection = self._bootstrap_connection
        if connection is None or connection.closed:
            return
        for node_id, broker in self._brokers.items():
            if (broker.host, broker.port) == (connection.host, connection.port):
                current = self._connections.get(node_id)
                if current is None or current.closed:
                    self._connections[node_id] = connection

    async def _open(self, host: str, port: int) -> Connection:
        return await Connection.open(host, port, client_id=self.client_id)

    async def close(self) -> None:
        """Close every connection."""
        connections = {id(c): c for c in self._connections.values()}
        if self._bootstrap_connection is not None:
            connections[id(self._bootstrap_connection)] = self._bootstrap_connection
        self._connections.clear()
        self._bootstrap_connection = None
        await asyncio.gather(*(c.close() for c in connections.values()))
