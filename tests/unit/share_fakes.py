"""An in-memory share-group broker for ShareConsumer unit tests: one topic of one partition,
share sessions with epochs, acquisition and acknowledgement as KIP-932 describes them."""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass, field
from typing import Any

from client_fakes import FakeBroker, api_versions, connect
from kio.index import load_response_schema
from kio.schema.errors import ErrorCode

from goqueue.client.connection import API_VERSIONS, Connection
from goqueue.client.errors import BrokerConnectionError
from goqueue.client.protocol import build_entity
from goqueue.client.share_consumer import (
    SHARE_ACKNOWLEDGE,
    SHARE_FETCH,
    SHARE_GROUP_HEARTBEAT,
    ShareConsumer,
)
from goqueue.records.builder import NewRecord, build_batch

TOPIC = "jobs"
TOPIC_ID = uuid.UUID(int=0xC0FFEE)
METADATA = 3
FIND_COORDINATOR = 10
LOCK_MS = 30_000


@dataclass
class FakeShareBroker:
    """Records at offsets 0..n-1; `acquired` maps offset to holder; sessions map member to the
    epoch expected next."""

    values: list[bytes]
    share_versions: tuple[int, int] = (1, 2)
    available: set[int] = field(default_factory=set)
    acquired: dict[int, str] = field(default_factory=dict)
    accepted: set[int] = field(default_factory=set)
    rejected: set[int] = field(default_factory=set)
    deliveries: dict[int, int] = field(default_factory=dict)
    sessions: dict[str, int] = field(default_factory=dict)
    fail_next: ErrorCode | None = None
    requests: list[tuple[int, Any]] = field(default_factory=list)
    connections: list[FakeBroker] = field(default_factory=list)
    down: bool = False

    def __post_init__(self) -> None:
        self.available = set(range(len(self.values)))

    def of(self, api_key: int) -> list[Any]:
        return [request for key, request in self.requests if key == api_key]

    async def open(self, host: str, port: int) -> Connection:
        if self.down:
            raise BrokerConnectionError(host, port, f"cannot connect to {host}:{port}")
        self.connections.append(FakeBroker(self.handle))
        return await connect(self.connections[-1])

    def crash(self) -> None:
        """Drop every connection and refuse new ones, forgetting the share sessions."""
        self.down = True
        self.sessions.clear()
        for connection in self.connections:
            connection.hang_up()

    def attach(self, consumer: ShareConsumer) -> ShareConsumer:
        consumer.cluster._open = self.open  # type: ignore[method-assign]
        return consumer

    def handle(self, header: Any, request: Any) -> Any:
        key, version = header.request_api_key, header.request_api_version
        self.requests.append((key, request))
        if key == API_VERSIONS:
            return api_versions(
                version,
                {
                    API_VERSIONS: (0, 4),
                    METADATA: (0, 13),
                    FIND_COORDINATOR: (0, 6),
                    SHARE_GROUP_HEARTBEAT: (1, 1),
                    SHARE_FETCH: self.share_versions,
                    SHARE_ACKNOWLEDGE: self.share_versions,
                },
            )
        fields = {
            METADATA: self.metadata,
            FIND_COORDINATOR: self.find_coordinator,
            SHARE_GROUP_HEARTBEAT: self.heartbeat,
            SHARE_FETCH: self.share_fetch,
            SHARE_ACKNOWLEDGE: self.share_acknowledge,
        }[key](request)
        fields.setdefault("throttle_time", datetime.timedelta(0))
        return build_entity(load_response_schema(key, version), fields)

    def metadata(self, request: Any) -> dict[str, Any]:
        partition = {
            "error_code": ErrorCode.none,
            "partition_index": 0,
            "leader_id": 1,
            "leader_epoch": 0,
            "replica_nodes": [1],
            "isr_nodes": [1],
            "offline_replicas": [],
        }
        return {
            "brokers": [{"node_id": 1, "host": "fake", "port": 9092, "rack": None}],
            "cluster_id": "fake",
            "controller_id": 1,
            "error_code": ErrorCode.none,
            "topics": [
                {
                    "error_code": ErrorCode.none,
                    "name": TOPIC,
                    "topic_id": TOPIC_ID,
                    "is_internal": False,
                    "partitions": [partition],
                    "topic_authorized_operations": 0,
                }
            ],
        }

    def find_coordinator(self, request: Any) -> dict[str, Any]:
        found = {"error_code": ErrorCode.none, "error_message": None, "node_id": 1}
        found |= {"host": "fake", "port": 9092}
        return {**found, "coordinators": [{"key": "g", **found}]}

    def heartbeat(self, request: Any) -> dict[str, Any]:
        epoch = 0 if request.member_epoch == -1 else request.member_epoch + 1
        return {
            "error_code": ErrorCode.none,
            "member_id": request.member_id,
            "member_epoch": epoch if request.member_epoch != -1 else -1,
            "heartbeat_interval": datetime.timedelta(seconds=5),
            "assignment": {"topic_partitions": [{"topic_id": TOPIC_ID, "partitions": [0]}]},
        }

    def _session(self, member: str, epoch: int, has_acks: bool) -> ErrorCode:
        if self.fail_next is not None:
            code, self.fail_next = self.fail_next, None
            return code
        if epoch == 0:
            if has_acks:
                return ErrorCode.invalid_request
            self.sessions[member] = 1
            return ErrorCode.none
        expected = self.sessions.get(member)
        if expected is None:
            return ErrorCode.share_session_not_found
        if epoch == -1:
            del self.sessions[member]
            return ErrorCode.none
        if epoch != expected:
            return ErrorCode.invalid_share_session_epoch
        self.sessions[member] = expected + 1
        return ErrorCode.none

    def _apply(self, member: str, batches: Any) -> ErrorCode:
        changes: list[tuple[int, int]] = []
        for batch in batches:
            span = range(batch.first_offset, batch.last_offset + 1)
            types = batch.acknowledge_types
            for index, offset in enumerate(span):
                kind = types[0] if len(types) == 1 else types[index]
                if kind not in (0, 1, 2, 3, 4):
                    return ErrorCode.invalid_request
                if self.acquired.get(offset) != member:
                    return ErrorCode.invalid_record_state
                changes.append((offset, kind))
        for offset, kind in changes:
            if kind == 4:
                continue
            del self.acquired[offset]
            if kind in (0, 1):
                self.accepted.add(offset)
            elif kind == 2:
                self.available.add(offset)
            else:
                self.rejected.add(offset)
        return ErrorCode.none

    def _release_all(self, member: str) -> None:
        for offset, holder in list(self.acquired.items()):
            if holder == member:
                del self.acquired[offset]
                self.available.add(offset)

    def _ack_codes(self, request: Any) -> dict[int, ErrorCode]:
        return {
            p.partition_index: self._apply(request.member_id, p.acknowledgement_batches)
            for topic in request.topics
            for p in topic.partitions
            if p.acknowledgement_batches
        }

    def share_fetch(self, request: Any) -> dict[str, Any]:
        has_acks = any(p.acknowledgement_batches for t in request.topics for p in t.partitions)
        code = self._session(request.member_id, request.share_session_epoch, has_acks)
        if code != ErrorCode.none:
            return _share_answer(code, [])
        ack_codes = self._ack_codes(request)
        wanted = request.share_session_epoch != -1 and any(
            t.topic_id == TOPIC_ID for t in request.topics
        )
        taken = sorted(self.available)[: request.max_records] if wanted or ack_codes else []
        if request.share_session_epoch == 0 and not request.topics:
            taken = []
        for offset in taken:
            self.available.discard(offset)
            self.acquired[offset] = request.member_id
            self.deliveries[offset] = self.deliveries.get(offset, 0) + 1
        partition = {
            "partition_index": 0,
            "error_code": ErrorCode.none,
            "acknowledge_error_code": ack_codes.get(0, ErrorCode.none),
            "current_leader": {"leader_id": 1, "leader_epoch": 0},
            "records": self.batch() if taken else None,
            "acquired_records": [
                {"first_offset": o, "last_offset": o, "delivery_count": self.deliveries[o]}
                for o in taken
            ],
        }
        listed = taken or ack_codes or request.topics
        return _share_answer(ErrorCode.none, [partition] if listed else [])

    def share_acknowledge(self, request: Any) -> dict[str, Any]:
        code = self._session(request.member_id, request.share_session_epoch, True)
        if code != ErrorCode.none:
            return _share_answer(code, [])
        ack_codes = self._ack_codes(request)
        if request.share_session_epoch == -1:
            self._release_all(request.member_id)
        partitions = [
            {
                "partition_index": index,
                "error_code": code,
                "current_leader": {"leader_id": 1, "leader_epoch": 0},
            }
            for index, code in ack_codes.items()
        ]
        return _share_answer(ErrorCode.none, partitions)

    def batch(self) -> bytes:
        return build_batch([NewRecord(key=None, value=v, timestamp_ms=1) for v in self.values])


def _share_answer(code: ErrorCode, partitions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "error_code": code,
        "acquisition_lock_timeout": datetime.timedelta(milliseconds=LOCK_MS),
        "responses": [{"topic_id": TOPIC_ID, "partitions": partitions}] if partitions else [],
        "node_endpoints": [],
    }


def consumer(broker: FakeShareBroker, **options: Any) -> ShareConsumer:
    """A ShareConsumer of group `g` on the fake broker's topic."""
    return broker.attach(ShareConsumer("fake:9092", group_id="g", topics=[TOPIC], **options))
