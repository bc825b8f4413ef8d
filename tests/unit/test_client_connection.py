"""Connection: version negotiation, pipelining by correlation id, failures (in memory)."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import pytest
from client_fakes import FakeBroker, api_versions, connect
from kio.index import load_response_schema
from kio.schema.errors import ErrorCode

from goqueue.client.connection import API_VERSIONS
from goqueue.client.errors import (
    BrokerConnectionError,
    UnknownTopicOrPartitionError,
    UnsupportedVersionError,
    error_for,
)
from goqueue.client.metadata import METADATA, metadata_request
from goqueue.client.protocol import build_entity, kio_versions

BROKER_VERSIONS = {API_VERSIONS: (0, 3), METADATA: (0, 9), 0: (3, 99)}


def answer_api_versions(header: Any, request: Any) -> Any:
    assert header.request_api_key == API_VERSIONS
    return api_versions(header.request_api_version, BROKER_VERSIONS)


def test_negotiates_the_highest_version_both_sides_serve() -> None:
    async def main() -> None:
        connection = await connect(FakeBroker(answer_api_versions))
        assert connection.version(METADATA) == 9
        assert connection.version(0) == kio_versions(0).stop - 1
        assert connection.version(1) is None
        await connection.close()

    asyncio.run(main())


def test_falls_back_to_api_versions_v0_when_v3_is_unsupported() -> None:
    def handler(header: Any, request: Any) -> Any:
        if header.request_api_version > 0:
            # An old broker answers in v0's layout, listing the one version it knows.
            return api_versions(0, {API_VERSIONS: (0, 0)}, ErrorCode.unsupported_version)
        return api_versions(0, BROKER_VERSIONS)

    async def main() -> None:
        broker = FakeBroker(handler)
        connection = await connect(broker)
        assert [h.request_api_version for h, _ in broker.requests] == [3, 0]
        assert connection.version(METADATA) == 9
        await connection.close()

    asyncio.run(main())


def test_pipelined_responses_are_matched_by_correlation_id() -> None:
    held: list[Any] = []

    def handler(header: Any, request: Any) -> Any:
        if header.request_api_key == API_VERSIONS:
            return answer_api_versions(header, request)
        held.append(header)
        return None

    async def main() -> None:
        broker = FakeBroker(handler)
        connection = await connect(broker)
        first = asyncio.ensure_future(connection.request(METADATA, metadata_request(["a"])))
        second = asyncio.ensure_future(connection.request(METADATA, metadata_request(["b"])))
        while len(held) < 2:
            await asyncio.sleep(0)
        for header, topic in reversed(list(zip(held, ["a", "b"], strict=True))):
            broker.respond(header.correlation_id, metadata_response(topic))
        assert (await first).topics[0].name == "a"
        assert (await second).topics[0].name == "b"
        await connection.close()

    asyncio.run(main())


def test_requests_waiting_when_the_broker_hangs_up_fail_with_a_connection_error() -> None:
    def handler(header: Any, request: Any) -> Any:
        return answer_api_versions(header, request) if header.request_api_key == 18 else None

    async def main() -> None:
        broker = FakeBroker(handler)
        connection = await connect(broker)
        waiting = asyncio.ensure_future(connection.request(METADATA, metadata_request(None)))
        while len(broker.requests) < 2:
            await asyncio.sleep(0)
        broker.hang_up()
        with pytest.raises(BrokerConnectionError, match="lost connection to fake:9092"):
            await waiting
        assert connection.closed
        with pytest.raises(BrokerConnectionError):
            await connection.request(METADATA, metadata_request(None))

    asyncio.run(main())


def test_an_api_the_broker_does_not_serve_raises_unsupported_version() -> None:
    async def main() -> None:
        connection = await connect(FakeBroker(answer_api_versions))
        with pytest.raises(UnsupportedVersionError, match="API key 1"):
            await connection.request(1, {})
        await connection.close()

    asyncio.run(main())


def test_error_codes_map_to_specific_exceptions_with_retriability() -> None:
    error = error_for(ErrorCode.unknown_topic_or_partition, "topic 'x' does not exist")
    assert isinstance(error, UnknownTopicOrPartitionError)
    assert error.retriable
    assert str(error) == "topic 'x' does not exist"
    unnamed = error_for(ErrorCode.invalid_fetch_size)
    assert type(unnamed).__name__ == "InvalidFetchSizeError"
    assert not unnamed.retriable
    assert str(unnamed) == "invalid fetch size (Kafka error 4)"


def metadata_response(topic: str) -> Any:
    return build_entity(
        load_response_schema(METADATA, 9),
        {
            "throttle_time": datetime.timedelta(0),
            "brokers": [],
            "topics": [{"error_code": ErrorCode.none, "name": topic, "partitions": []}],
        },
    )
