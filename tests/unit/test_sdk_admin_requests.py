"""Every request the SDK admin sends encodes, in every version both kio and the broker serve,
with what the caller asked for intact (no field lost to a version's layout)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from kio.serial import entity_reader

from goqueue.client import admin, configs, groups
from goqueue.client.configs import AlterConfigOp, ConfigResource, OpType
from goqueue.client.groups import Committed, OffsetReset
from goqueue.client.metadata import TopicPartition
from goqueue.client.protocol import Fields, build_entity, encode_request, kio_versions, request_type
from goqueue.protocol.kafka.handlers import APIS

TP0, TP1 = TopicPartition("orders", 0), TopicPartition("orders", 1)
TOPIC_ID = uuid.uuid4()

CASES: dict[str, tuple[int, Fields, Callable[[Any], object], object]] = {
    "create topics": (
        admin.CREATE_TOPICS,
        admin.create_topics_request(
            [admin.NewTopic("orders", 3, 1, {"retention.ms": "1000"})], False, 5000
        ),
        lambda r: [
            (t.name, t.num_partitions, [(c.name, c.value) for c in t.configs]) for t in r.topics
        ],
        [("orders", 3, [("retention.ms", "1000")])],
    ),
    "delete topics": (
        admin.DELETE_TOPICS,
        admin.delete_topics_request(["orders", "bills"], 5000),
        lambda r: [t.name for t in r.topics] if hasattr(r, "topics") else list(r.topic_names),
        ["orders", "bills"],
    ),
    "create partitions": (
        admin.CREATE_PARTITIONS,
        admin.create_partitions_request("orders", 6, True, 5000),
        lambda r: ([(t.name, t.count) for t in r.topics], r.validate_only),
        ([("orders", 6)], True),
    ),
    "delete records": (
        admin.DELETE_RECORDS,
        admin.delete_records_request({TP0: 5, TP1: admin.HIGH_WATERMARK}, 5000),
        lambda r: [(p.partition_index, p.offset) for t in r.topics for p in t.partitions],
        [(0, 5), (1, -1)],
    ),
    "describe configs": (
        configs.DESCRIBE_CONFIGS,
        configs.describe_configs_request(
            ConfigResource.broker(1), ["log.retention.ms"], True, True
        ),
        lambda r: [(x.resource_type, x.resource_name, x.configuration_keys) for x in r.resources],
        [(4, "1", ("log.retention.ms",))],
    ),
    "alter configs": (
        configs.ALTER_CONFIGS,
        configs.alter_configs_request(ConfigResource.topic("orders"), {"segment.ms": "60"}, False),
        lambda r: [(c.name, c.value) for x in r.resources for c in x.configs],
        [("segment.ms", "60")],
    ),
    "incremental alter configs": (
        configs.INCREMENTAL_ALTER_CONFIGS,
        configs.incremental_alter_configs_request(
            ConfigResource.topic("orders"),
            [AlterConfigOp("a", OpType.SET, "1"), AlterConfigOp("b", OpType.DELETE, "ignored")],
            False,
        ),
        lambda r: [(c.name, c.config_operation, c.value) for x in r.resources for c in x.configs],
        [("a", 0, "1"), ("b", 1, None)],
    ),
    "describe cluster": (
        admin.DESCRIBE_CLUSTER,
        admin.DESCRIBE_CLUSTER_REQUEST,
        lambda r: r.include_cluster_authorized_operations,
        False,
    ),
    "offset fetch": (
        groups.OFFSET_FETCH,
        groups.offset_fetch_request("billing", [TP0], {"orders": TOPIC_ID}),
        lambda r: r.groups[0].group_id if hasattr(r, "groups") else r.group_id,
        "billing",
    ),
    "offset commit (admin)": (
        groups.OFFSET_COMMIT,
        groups.offset_commit_request("billing", {TP1: Committed(7, metadata="m")}, {}),
        lambda r: [
            (p.partition_index, p.committed_offset, p.committed_metadata)
            for t in r.topics
            for p in t.partitions
        ],
        [(1, 7, "m")],
    ),
    "offset delete": (
        groups.OFFSET_DELETE,
        groups.offset_delete_request("billing", [TP1, TP0, TP1]),
        lambda r: [(t.name, [p.partition_index for p in t.partitions]) for t in r.topics],
        [("orders", [0, 1])],
    ),
}


def versions(api_key: int) -> list[int]:
    ours = kio_versions(api_key)
    broker = APIS[api_key]
    return [v for v in ours if broker.min_version <= v <= broker.max_version]


@pytest.mark.parametrize(
    ("name", "version"),
    [(name, v) for name, (key, *_) in CASES.items() for v in versions(key)],
)
def test_request_round_trips_in_every_served_version(name: str, version: int) -> None:
    api_key, fields, read, expected = CASES[name]
    request = build_entity(request_type(api_key, version), fields)
    frame = encode_request(request, 7, "test")
    header_type = request.__header_schema__
    _, offset = entity_reader(header_type)(frame[4:], 0)
    decoded, _ = entity_reader(type(request))(frame[4:], offset)
    assert decoded == request
    assert read(decoded) == expected


def test_offset_resets_name_their_kind() -> None:
    assert OffsetReset.earliest() == OffsetReset("earliest")
    assert OffsetReset.timestamp(5) == OffsetReset("timestamp", 5)
    assert OffsetReset.shift(-3).value == -3
