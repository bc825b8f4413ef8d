"""Version-independent request building and framing with kio."""

from __future__ import annotations

import datetime
import struct
import uuid

import pytest
from kio.index import load_request_schema
from kio.serial import entity_reader

from goqueue.client.admin import (
    CREATE_PARTITIONS,
    CREATE_TOPICS,
    DELETE_RECORDS,
    DESCRIBE_CLUSTER,
    DESCRIBE_CLUSTER_REQUEST,
    NewTopic,
    create_partitions_request,
    create_topics_request,
    delete_records_request,
    delete_topics_request,
)
from goqueue.client.configs import (
    DESCRIBE_CONFIGS,
    INCREMENTAL_ALTER_CONFIGS,
    AlterConfigOp,
    ConfigResource,
    OpType,
    describe_configs_request,
    incremental_alter_configs_request,
)
from goqueue.client.fetcher import FETCH, FetchLimits, fetch_request
from goqueue.client.metadata import METADATA, TopicPartition, metadata_request
from goqueue.client.offsets import EARLIEST, LIST_OFFSETS, list_offsets_request
from goqueue.client.partitioner import murmur2, partition_for_key
from goqueue.client.producer import (
    PRODUCE,
    RECORD_OVERHEAD,
    estimated_size,
    produce_request,
    split_batches,
)
from goqueue.client.protocol import Fields, build_entity, encode_request, kio_versions, pick_version
from goqueue.records.batch import HEADER_SIZE
from goqueue.records.builder import NewRecord, build_batch

DELETE_TOPICS = 20
TOPIC_ID = uuid.UUID("6f1c0c7e-9f1b-4a57-8a3e-2d8f4f2b9c10")
TP = TopicPartition("orders", 0)
FETCH_FIELDS = {
    "max_wait": datetime.timedelta(milliseconds=100),
    "min_bytes": 1,
    "topics": [
        {
            "topic": "orders",
            "topic_id": TOPIC_ID,
            "partitions": [{"partition": 0, "fetch_offset": 5, "partition_max_bytes": 1024}],
        }
    ],
    "forgotten_topics_data": [],
}


def test_one_description_builds_every_version_keeping_the_fields_each_has() -> None:
    old = build_entity(load_request_schema(FETCH, 12), FETCH_FIELDS)
    new = build_entity(load_request_schema(FETCH, 13), FETCH_FIELDS)
    assert old.topics[0].topic == "orders"
    assert not hasattr(old.topics[0], "topic_id")
    assert new.topics[0].topic_id == TOPIC_ID
    assert not hasattr(new.topics[0], "topic")
    assert new.topics[0].partitions[0].fetch_offset == 5
    assert new.topics[0].partitions[0].current_leader_epoch == -1  # schema default


def test_renamed_fields_reach_both_layouts_of_delete_topics() -> None:
    fields = {
        "topic_names": ["a"],
        "topics": [{"name": "a", "topic_id": None}],
        "timeout": datetime.timedelta(seconds=1),
    }
    assert build_entity(load_request_schema(DELETE_TOPICS, 5), fields).topic_names == ("a",)
    assert build_entity(load_request_schema(DELETE_TOPICS, 6), fields).topics[0].name == "a"


def test_pick_version_is_the_highest_common_version() -> None:
    ours = kio_versions(FETCH)
    assert pick_version(FETCH, 0, 12) == 12
    assert pick_version(FETCH, 0, 1000) == ours.stop - 1
    assert pick_version(FETCH, 0, ours.start - 1) is None


def test_frames_carry_the_header_version_the_payload_needs() -> None:
    for version, flexible in ((8, False), (12, True)):
        request_type = load_request_schema(METADATA, version)
        assert request_type.__flexible__ is flexible
        request = build_entity(request_type, metadata_request(["t"]))
        frame = encode_request(request, 42, "cli")
        (size,) = struct.unpack_from(">i", frame)
        assert size == len(frame) - 4
        body = frame[4:]
        header, offset = entity_reader(request_type.__header_schema__)(body, 0)
        assert (header.request_api_key, header.request_api_version) == (METADATA, version)
        assert (header.correlation_id, header.client_id) == (42, "cli")
        decoded, used = entity_reader(request_type)(body, offset)
        assert decoded == request
        assert offset + used == len(body)


def test_murmur2_matches_kafkas_java_implementation() -> None:
    # Vectors from Kafka's UtilsTest.testMurmur2.
    assert murmur2(b"21") == -973932308
    assert murmur2(b"foobar") == -790332482
    assert murmur2(b"a-little-bit-long-string") == -985981536
    assert murmur2(b"a-little-bit-longer-string") == -1486304829
    assert murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == -58897971
    assert murmur2(b"abc") == 479470107
    assert partition_for_key(b"21", 7) == (-973932308 & 0x7FFFFFFF) % 7


def test_estimated_size_bounds_the_encoded_record() -> None:
    records = [
        NewRecord(b"k" * n, b"v" * (3 * n), [("h", b"x" * n)], timestamp_ms=1000 + n)
        for n in (0, 1, 100, 20000)
    ]
    payload = sum(estimated_size(r) for r in records)
    assert len(build_batch(records, now_ms=1000)) <= HEADER_SIZE + payload
    assert estimated_size(NewRecord(None, None)) == RECORD_OVERHEAD


def test_split_batches_keeps_order_and_size_and_sends_oversized_records_alone() -> None:
    records = [NewRecord(None, b"x" * n) for n in (10, 10, 500, 10, 10)]
    runs = list(split_batches(records, 200))
    assert [r for run in runs for r in run] == records
    assert [len(run) for run in runs] == [2, 1, 2]
    assert list(split_batches([], 200)) == []


REQUESTS: dict[str, tuple[int, Fields]] = {
    "metadata": (METADATA, metadata_request(["orders"], auto_create=True)),
    "list_offsets": (LIST_OFFSETS, list_offsets_request({TP: EARLIEST}, 30.0)),
    "produce": (
        PRODUCE,
        produce_request({TP: build_batch([NewRecord(b"k", b"v")])}, {"orders": TOPIC_ID}, -1, 5000),
    ),
    "fetch": (FETCH, fetch_request({TP: 5}, {"orders": TOPIC_ID}, FetchLimits())),
    "create_topics": (
        CREATE_TOPICS,
        create_topics_request([NewTopic("orders", 3, 1, {"retention.ms": "1000"})], False, 5000),
    ),
    "delete_topics": (DELETE_TOPICS, delete_topics_request(["orders"], 5000)),
    "describe_configs": (
        DESCRIBE_CONFIGS,
        describe_configs_request(ConfigResource.topic("orders"), None, True, True),
    ),
    "incremental_alter_configs": (
        INCREMENTAL_ALTER_CONFIGS,
        incremental_alter_configs_request(
            ConfigResource.broker(),
            [AlterConfigOp("log.retention.ms", OpType.SET, "1"), AlterConfigOp("x", OpType.DELETE)],
            True,
        ),
    ),
    "create_partitions": (CREATE_PARTITIONS, create_partitions_request("orders", 4, False, 5000)),
    "delete_records": (DELETE_RECORDS, delete_records_request({TP: 7}, 5000)),
    "describe_cluster": (DESCRIBE_CLUSTER, DESCRIBE_CLUSTER_REQUEST),
}


@pytest.mark.parametrize("name", REQUESTS)
def test_every_request_encodes_in_every_version_kio_knows(name: str) -> None:
    api_key, fields = REQUESTS[name]
    for version in kio_versions(api_key):
        request_type = load_request_schema(api_key, version)
        request = build_entity(request_type, fields)
        frame = encode_request(request, 1, "test")[4:]
        _, offset = entity_reader(request_type.__header_schema__)(frame, 0)
        decoded, _ = entity_reader(request_type)(frame, offset)
        assert decoded == request, f"{name} v{version}"
