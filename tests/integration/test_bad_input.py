"""Bad input against a real broker: each case gets the Kafka error code or a closed connection,
leaves a line in the broker's log, and never stops the broker serving a well-behaved client.

Requests are built with kio; only the deliberately broken frames are written by hand.
"""

from __future__ import annotations

import datetime
import io
import socket
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kio.index import load_response_schema
from kio.schema.api_versions.v0.response import ApiVersionsResponse as ApiVersionsResponseV0
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.create_topics.v7.request import (
    CreatableTopic,
    CreatableTopicConfig,
    CreateTopicsRequest,
)
from kio.schema.errors import ErrorCode
from kio.schema.fetch.v9 import request as fetch_v9
from kio.schema.fetch.v10 import request as fetch_v10
from kio.schema.list_offsets.v11.request import (
    ListOffsetsPartition,
    ListOffsetsRequest,
    ListOffsetsTopic,
)
from kio.schema.metadata.v12.request import MetadataRequest, MetadataRequestTopic
from kio.schema.produce.v3 import request as produce_v3
from kio.schema.produce.v9.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.schema.request_header.v1.header import RequestHeader as RequestHeaderV1
from kio.schema.response_header.v0.header import ResponseHeader as ResponseHeaderV0
from kio.serial import entity_reader, entity_writer

from goqueue.records.builder import NewRecord, build_batch
from goqueue.records.compression import Compression
from goqueue.records.reader import iter_records
from goqueue.testing.process import BrokerProcess

pytestmark = pytest.mark.integration

REQUEST_MAX_BYTES = 65536
"""A small socket.request.max.bytes, so an oversized frame is cheap to announce."""
IO_TIMEOUT_S = 10.0
LOG_TIMEOUT_S = 3.0
BYSTANDER_TOPIC = "bystander"
CLIENT_ID = "bad-input-test"
_SIZE = struct.Struct(">i")
_API_KEY_LIST_OFFSETS = 2
_API_KEY_API_VERSIONS = 18


class BrokerClosedConnection(Exception):
    """The broker closed (or reset) the connection while we waited for bytes."""


class RawConnection:
    """A plain socket speaking kio-encoded Kafka to the broker, able to misbehave on purpose."""

    def __init__(self, broker: BrokerProcess) -> None:
        self.sock = socket.create_connection(("127.0.0.1", broker.port), timeout=IO_TIMEOUT_S)
        host, port = self.sock.getsockname()[:2]
        self.peer = f"{host}:{port}"
        """How the broker names this connection in its log."""
        self._correlation_id = 0

    def close(self) -> None:
        self.sock.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, request: Any, *, version: int | None = None) -> int:
        """Send `request` with the header its kio schema declares; `version` overrides the
        version named in the header (to claim one the broker does not serve)."""
        self._correlation_id += 1
        self.send_raw(
            frame(
                request,
                correlation_id=self._correlation_id,
                version=request.__version__ if version is None else version,
            )
        )
        return self._correlation_id

    def request(self, request: Any) -> Any:
        """One round trip; checks the correlation id and that the response is fully consumed."""
        correlation_id = self.send(request)
        response_type = load_response_schema(request.__api_key__, request.__version__)
        header, body = self.receive(response_type.__header_schema__, response_type)
        assert header.correlation_id == correlation_id
        return body

    def receive(self, header_type: type[Any], body_type: type[Any]) -> tuple[Any, Any]:
        data = self._read_frame()
        header, header_size = entity_reader(header_type)(data, 0)
        body, body_size = entity_reader(body_type)(data, header_size)
        assert header_size + body_size == len(data), "response frame has trailing bytes"
        return header, body

    def assert_closed_by_broker(self) -> None:
        """The broker must close the connection without sending anything back."""
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            return
        except TimeoutError:
            pytest.fail(f"broker kept the connection open for {IO_TIMEOUT_S}s")
        assert data == b"", f"expected the broker to close the connection, got {data!r}"

    def _read_frame(self) -> bytes:
        (size,) = _SIZE.unpack(self._read_exactly(_SIZE.size))
        return self._read_exactly(size)

    def _read_exactly(self, size: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < size:
            try:
                chunk = self.sock.recv(size - len(chunks))
            except ConnectionResetError as exc:
                raise BrokerClosedConnection from exc
            if not chunk:
                raise BrokerClosedConnection
            chunks += chunk
        return bytes(chunks)


def frame(request: Any, *, correlation_id: int, version: int) -> bytes:
    """A size-prefixed request: the kio header for `request`'s schema, then its body."""
    header_type = request.__header_schema__
    buffer = io.BytesIO()
    entity_writer(header_type)(
        buffer,
        header_type(
            request_api_key=request.__api_key__,
            request_api_version=version,
            correlation_id=correlation_id,
            client_id=CLIENT_ID,
        ),
    )
    entity_writer(type(request))(buffer, request)
    return _SIZE.pack(buffer.tell()) + buffer.getvalue()


def header_only_frame(api_key: int, version: int) -> bytes:
    """A v1 request header with no body, for API keys no schema describes."""
    buffer = io.BytesIO()
    entity_writer(RequestHeaderV1)(
        buffer,
        RequestHeaderV1(
            request_api_key=api_key,
            request_api_version=version,
            correlation_id=1,
            client_id=CLIENT_ID,
        ),
    )
    return _SIZE.pack(buffer.tell()) + buffer.getvalue()


def api_versions_request() -> ApiVersionsRequest:
    return ApiVersionsRequest(client_software_name=CLIENT_ID, client_software_version="1")


def metadata_request(*names: str) -> MetadataRequest:
    return MetadataRequest(
        topics=tuple(MetadataRequestTopic(topic_id=None, name=name) for name in names),
        allow_auto_topic_creation=True,
        include_topic_authorized_operations=False,
    )


def produce_request(topic: str, records: bytes) -> ProduceRequest:
    return ProduceRequest(
        transactional_id=None,
        acks=-1,
        timeout=datetime.timedelta(seconds=10),
        topic_data=(
            TopicProduceData(
                name=topic, partition_data=(PartitionProduceData(index=0, records=records),)
            ),
        ),
    )


def create_topic_request(name: str, configs: dict[str, str] | None = None) -> CreateTopicsRequest:
    return CreateTopicsRequest(
        topics=(
            CreatableTopic(
                name=name,
                num_partitions=1,
                replication_factor=1,
                assignments=(),
                configs=tuple(
                    CreatableTopicConfig(name=key, value=value)
                    for key, value in (configs or {}).items()
                ),
            ),
        ),
        timeout=datetime.timedelta(seconds=10),
        validate_only=False,
    )


def advertised_versions(connection: RawConnection) -> dict[int, tuple[int, int]]:
    response = connection.request(api_versions_request())
    assert response.error_code == ErrorCode.none
    return {entry.api_key: (entry.min_version, entry.max_version) for entry in response.api_keys}


def topic_names(connection: RawConnection) -> set[str]:
    response = connection.request(
        MetadataRequest(
            topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=False
        )
    )
    return {topic.name for topic in response.topics}


class Bystander:
    """A well-behaved kafka-python producer and consumer, connected before each bad case and
    expected to keep working after it."""

    def __init__(self, broker: BrokerProcess) -> None:
        admin = RawConnection(broker)
        try:
            _create_topic(admin, BYSTANDER_TOPIC)
        finally:
            admin.close()
        self.producer = KafkaProducer(
            bootstrap_servers=broker.bootstrap, acks="all", enable_idempotence=False
        )
        self.consumer = KafkaConsumer(
            bootstrap_servers=broker.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
        )
        self._partition = TopicPartition(BYSTANDER_TOPIC, 0)
        self.consumer.assign([self._partition])
        self._sent = 0

    def round_trip(self) -> None:
        """Produce one message and consume it back at the offset its acknowledgement named."""
        value = f"bystander-{self._sent}".encode()
        metadata = self.producer.send(BYSTANDER_TOPIC, value=value, partition=0).get(
            timeout=IO_TIMEOUT_S
        )
        assert metadata.offset == self._sent
        self._sent += 1
        deadline = time.monotonic() + IO_TIMEOUT_S
        while time.monotonic() < deadline:
            for record in self.consumer.poll(timeout_ms=500).get(self._partition, []):
                if record.offset == metadata.offset:
                    assert record.value == value
                    return
        pytest.fail(f"bystander did not consume its message at offset {metadata.offset}")

    def close(self) -> None:
        self.producer.close(timeout=5)
        self.consumer.close()


@pytest.fixture(scope="module")
def limited_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One broker for the whole module, with a small socket.request.max.bytes."""
    data_dir: Path = tmp_path_factory.mktemp("bad-input") / "data"
    env = {"GOQUEUE_SOCKET_REQUEST_MAX_BYTES": str(REQUEST_MAX_BYTES)}
    with BrokerProcess(data_dir, env=env) as process:
        yield process


@pytest.fixture(scope="module")
def bystander(limited_broker: BrokerProcess) -> Iterator[Bystander]:
    client = Bystander(limited_broker)
    yield client
    client.close()


@pytest.fixture
def misbehaving(
    limited_broker: BrokerProcess, bystander: Bystander
) -> Iterator[tuple[RawConnection, LogWatch]]:
    """A raw connection for one bad case; afterwards the broker must still serve a fresh
    connection and the bystander's already-open ones."""
    watch = LogWatch(limited_broker)
    connection = RawConnection(limited_broker)
    yield connection, watch
    connection.close()
    assert_still_serving(limited_broker, bystander)


class LogWatch:
    """The part of the broker's log written since a case began."""

    def __init__(self, broker: BrokerProcess) -> None:
        self._broker = broker
        self._offset = broker.log_path.stat().st_size

    def wait_for_line(self, *needles: str) -> str:
        """The first new log line mentioning any of `needles` (the broker may log a moment
        after it answers, so poll until a deadline)."""
        deadline = time.monotonic() + LOG_TIMEOUT_S
        while True:
            lines = self._broker.log_text(self._offset).splitlines()
            for line in lines:
                if any(needle in line for needle in needles):
                    return line
            if time.monotonic() > deadline:
                new = "\n".join(lines) or "(nothing)"
                pytest.fail(f"no broker log line mentions any of {needles}; new log lines:\n{new}")
            time.sleep(0.05)


def assert_still_serving(broker: BrokerProcess, bystander: Bystander) -> None:
    fresh = RawConnection(broker)
    try:
        assert _API_KEY_API_VERSIONS in advertised_versions(fresh)
        response = fresh.request(metadata_request(BYSTANDER_TOPIC))
        assert [topic.error_code for topic in response.topics] == [ErrorCode.none]
    finally:
        fresh.close()
    bystander.round_trip()


def assert_closed_and_logged(connection: RawConnection, watch: LogWatch) -> str:
    connection.assert_closed_by_broker()
    return watch.wait_for_line(connection.peer)


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", id="http-request"),
        pytest.param(
            _SIZE.pack(12) + b"\x00\x12\x00\x03" + b"\x00\x00\x00\x07" + b"\x7f\xff\xab\xcd",
            id="client-id-overruns-frame",
        ),
    ],
)
def test_garbage_bytes_close_the_connection(
    misbehaving: tuple[RawConnection, LogWatch], garbage: bytes
) -> None:
    connection, watch = misbehaving
    connection.send_raw(garbage)
    assert_closed_and_logged(connection, watch)


def test_frame_over_socket_request_max_bytes_closes_the_connection(
    misbehaving: tuple[RawConnection, LogWatch],
) -> None:
    connection, watch = misbehaving
    connection.send_raw(_SIZE.pack(REQUEST_MAX_BYTES + 1) + b"\0" * 1024)
    line = assert_closed_and_logged(connection, watch)
    assert str(REQUEST_MAX_BYTES + 1) in line


def test_negative_frame_size_closes_the_connection(
    misbehaving: tuple[RawConnection, LogWatch],
) -> None:
    connection, watch = misbehaving
    connection.send_raw(_SIZE.pack(-5) + b"\0" * 16)
    assert_closed_and_logged(connection, watch)


def test_truncated_frame_is_logged_and_closed(
    misbehaving: tuple[RawConnection, LogWatch],
) -> None:
    connection, watch = misbehaving
    whole = frame(api_versions_request(), correlation_id=1, version=3)
    connection.send_raw(whole[: len(whole) // 2])
    connection.sock.shutdown(socket.SHUT_WR)
    assert_closed_and_logged(connection, watch)


def test_unknown_api_key_closes_the_connection(
    misbehaving: tuple[RawConnection, LogWatch],
) -> None:
    connection, watch = misbehaving
    connection.send_raw(header_only_frame(api_key=32000, version=0))
    assert_closed_and_logged(connection, watch)


def test_unsupported_version_of_a_known_api_closes_the_connection(
    misbehaving: tuple[RawConnection, LogWatch],
) -> None:
    connection, watch = misbehaving
    served = advertised_versions(connection)[_API_KEY_LIST_OFFSETS]
    request = ListOffsetsRequest(
        replica_id=-1,
        isolation_level=0,
        topics=(
            ListOffsetsTopic(
                name=BYSTANDER_TOPIC,
                partitions=(ListOffsetsPartition(partition_index=0, timestamp=-2),),
            ),
        ),
        timeout=datetime.timedelta(seconds=5),
    )
    assert served[1] < request.__version__, "precondition: the broker must not serve this version"
    connection.send(request)
    assert_closed_and_logged(connection, watch)


def test_unsupported_api_versions_version_gets_a_v0_answer(
    misbehaving: tuple[RawConnection, LogWatch],
) -> None:
    """KIP-511: a client newer than the broker sends its latest ApiVersions; the broker answers
    in v0 (header v0) with UNSUPPORTED_VERSION and its ranges, and the client retries on the
    same connection. This is ordinary negotiation, so no log line is required."""
    connection, _ = misbehaving
    served = advertised_versions(connection)
    too_new = served[_API_KEY_API_VERSIONS][1] + 1
    correlation_id = connection.send(api_versions_request(), version=too_new)
    header, response = connection.receive(ResponseHeaderV0, ApiVersionsResponseV0)
    assert header.correlation_id == correlation_id
    assert response.error_code == ErrorCode.unsupported_version
    assert {
        entry.api_key: (entry.min_version, entry.max_version) for entry in response.api_keys
    } == served
    assert advertised_versions(connection) == served


def test_produce_with_wrong_crc_is_corrupt_message(
    misbehaving: tuple[RawConnection, LogWatch],
) -> None:
    connection, watch = misbehaving
    topic = f"crc-{uuid.uuid4().hex[:8]}"
    _create_topic(connection, topic)
    good = build_batch([NewRecord(key=None, value=b"payload")])
    corrupt = bytearray(good)
    corrupt[-2] ^= 0xFF  # the value's last byte (a record ends with its header count)
    assert _produce(connection, topic, good) == (ErrorCode.none, 0)
    code, _ = _produce(connection, topic, bytes(corrupt))
    assert code == ErrorCode.corrupt_message
    watch.wait_for_line(connection.peer, topic)
    assert _produce(connection, topic, good) == (ErrorCode.none, 1), "corrupt batch was stored"


def test_message_over_max_message_bytes_is_message_too_large(
    misbehaving: tuple[RawConnection, LogWatch],
) -> None:
    connection, watch = misbehaving
    topic = f"small-{uuid.uuid4().hex[:8]}"
    _create_topic(connection, topic, {"max.message.bytes": "1024"})
    fits = build_batch([NewRecord(key=None, value=b"x" * 512)])
    too_large = build_batch([NewRecord(key=None, value=b"x" * 2048)])
    code, _ = _produce(connection, topic, too_large)
    assert code == ErrorCode.message_too_large
    watch.wait_for_line(connection.peer, topic)
    assert _produce(connection, topic, fits) == (ErrorCode.none, 0)


def test_clients_cannot_append_to_internal_topics(
    misbehaving: tuple[RawConnection, LogWatch],
) -> None:
    connection, watch = misbehaving
    batch = build_batch([NewRecord(key=b"forged", value=b"state")])
    for topic in ("__consumer_offsets", "__goqueue_schedule"):
        code, _ = _produce(connection, topic, batch)
        assert code == ErrorCode.invalid_topic_exception, topic
        assert "Cannot append to internal topic" in watch.wait_for_line(connection.peer, topic)


def test_zstd_needs_produce_v7_and_fetch_v10(
    misbehaving: tuple[RawConnection, LogWatch],
) -> None:
    connection, watch = misbehaving
    topic = f"zstd-{uuid.uuid4().hex[:8]}"
    _create_topic(connection, topic, {"compression.type": "zstd"})
    batch = build_batch([NewRecord(key=None, value=b"z" * 100)], compression=Compression.zstd)
    old_produce = produce_v3.ProduceRequest(
        transactional_id=None,
        acks=-1,
        timeout=datetime.timedelta(seconds=10),
        topic_data=(
            produce_v3.TopicProduceData(
                name=topic,
                partition_data=(produce_v3.PartitionProduceData(index=0, records=batch),),
            ),
        ),
    )
    (refused,) = connection.request(old_produce).responses[0].partition_responses
    assert refused.error_code == ErrorCode.unsupported_compression_type
    watch.wait_for_line(connection.peer, topic)
    assert _produce(connection, topic, batch) == (ErrorCode.none, 0)

    def fetched(schema: Any) -> Any:
        request = schema.FetchRequest(
            replica_id=-1,
            max_wait=datetime.timedelta(0),
            min_bytes=0,
            max_bytes=1 << 20,
            isolation_level=0,
            session_id=0,
            session_epoch=-1,
            topics=(
                schema.FetchTopic(
                    topic=topic,
                    partitions=(
                        schema.FetchPartition(
                            partition=0,
                            current_leader_epoch=-1,
                            fetch_offset=0,
                            log_start_offset=-1,
                            partition_max_bytes=1 << 20,
                        ),
                    ),
                ),
            ),
            forgotten_topics_data=(),
        )
        return connection.request(request).responses[0].partitions[0]

    assert fetched(fetch_v9).error_code == ErrorCode.unsupported_compression_type
    served = fetched(fetch_v10)
    assert served.error_code == ErrorCode.none
    assert [r.value for r in iter_records(served.records)] == [b"z" * 100]


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("has space", id="space"),
        pytest.param("..", id="dot-dot"),
        pytest.param("x" * 250, id="250-chars"),
        pytest.param("slash/name", id="slash"),
    ],
)
def test_create_topics_with_invalid_name_is_invalid_topic(
    misbehaving: tuple[RawConnection, LogWatch], name: str
) -> None:
    connection, watch = misbehaving
    response = connection.request(create_topic_request(name))
    assert [(topic.name, topic.error_code) for topic in response.topics] == [
        (name, ErrorCode.invalid_topic_exception)
    ]
    watch.wait_for_line(connection.peer, name)
    assert name not in topic_names(connection)


def test_metadata_auto_create_with_invalid_name_is_invalid_topic(
    misbehaving: tuple[RawConnection, LogWatch],
) -> None:
    connection, watch = misbehaving
    name = "bad name!"
    response = connection.request(metadata_request(name))
    assert [(topic.name, topic.error_code) for topic in response.topics] == [
        (name, ErrorCode.invalid_topic_exception)
    ]
    watch.wait_for_line(connection.peer, name)
    assert name not in topic_names(connection)


def _create_topic(
    connection: RawConnection, topic: str, configs: dict[str, str] | None = None
) -> None:
    response = connection.request(create_topic_request(topic, configs))
    assert [result.error_code for result in response.topics] == [ErrorCode.none]


def _produce(connection: RawConnection, topic: str, records: bytes) -> tuple[ErrorCode, int]:
    """(error code, base offset) of a single-partition acks=all produce."""
    response = connection.request(produce_request(topic, records))
    (topic_response,) = response.responses
    (partition,) = topic_response.partition_responses
    return partition.error_code, partition.base_offset
