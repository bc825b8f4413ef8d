"""Share requests a broker forwards to the group's coordinator: the request it sends carries
what the client's did, and the answer comes back as the coordinator's own result."""

from __future__ import annotations

import datetime
import uuid

from kio.schema.errors import ErrorCode

from goqueue.broker.peers import peer_node_id
from goqueue.client.protocol import build_entity
from goqueue.coordinator.share import forward
from goqueue.coordinator.share.messages import ShareParams, SharePartitionResult
from goqueue.coordinator.share.partition import AckBatch, Acquired
from goqueue.protocol.kafka.codec import request_type, response_type
from goqueue.protocol.kafka.handlers.share_fetch import acknowledgements

TOPIC = uuid.uuid4()


def params(**changes: object) -> ShareParams:
    values: dict[str, object] = {
        "group_id": "g",
        "member_id": "m",
        "session_epoch": 3,
        "max_wait_ms": 500,
        "max_bytes": 1 << 20,
        "max_records": 50,
        "fetch": [(TOPIC, 0), (TOPIC, 1)],
        "forget": [(TOPIC, 2)],
        "acks": {(TOPIC, 1): [AckBatch(4, 6, (1,))], (TOPIC, 3): [AckBatch(0, 0, (3,))]},
    }
    return ShareParams(**{**values, **changes})  # type: ignore[arg-type]


def test_a_forwarded_share_fetch_carries_the_clients_partitions_and_acknowledgements() -> None:
    sent = params()
    request = build_entity(
        request_type(forward.SHARE_FETCH, 2),  # type: ignore[arg-type]
        forward.request_fields(sent, fetching=True),
    )
    assert request.share_session_epoch == 3
    assert request.max_wait == datetime.timedelta(milliseconds=500)
    assert [(t.topic_id, p.partition_index) for t in request.topics for p in t.partitions] == [
        (TOPIC, 0),
        (TOPIC, 1),
        (TOPIC, 3),
    ]
    assert acknowledgements(request.topics, "acknowledgement_batches") == sent.acks
    assert [(t.topic_id, list(t.partitions)) for t in request.forgotten_topics_data] == [
        (TOPIC, [2])
    ]


def test_a_forwarded_share_acknowledge_carries_only_acknowledgements() -> None:
    request = build_entity(
        request_type(forward.SHARE_ACKNOWLEDGE, 2),  # type: ignore[arg-type]
        forward.request_fields(params(fetch=(), forget=()), fetching=False),
    )
    assert acknowledgements(request.topics, "acknowledgement_batches") == params().acks


def test_the_coordinators_share_fetch_answer_becomes_its_result() -> None:
    response = build_entity(
        response_type(forward.SHARE_FETCH, 2),
        {
            "throttle_time": datetime.timedelta(0),
            "error_code": 0,
            "error_message": None,
            "acquisition_lock_timeout": datetime.timedelta(milliseconds=1500),
            "responses": [
                {
                    "topic_id": TOPIC,
                    "partitions": [
                        {
                            "partition_index": 1,
                            "error_code": 0,
                            "error_message": None,
                            "acknowledge_error_code": ErrorCode.invalid_record_state.value,
                            "acknowledge_error_message": "not held",
                            "current_leader": {"leader_id": 2, "leader_epoch": 0},
                            "records": b"batch",
                            "acquired_records": [
                                {"first_offset": 7, "last_offset": 9, "delivery_count": 2}
                            ],
                        }
                    ],
                }
            ],
            "node_endpoints": [],
        },
    )
    result = forward.share_result(response, fetching=True)
    assert (result.error, result.lock_timeout_ms) == (ErrorCode.none, 1500)
    assert result.partitions == {
        (TOPIC, 1): SharePartitionResult(
            ErrorCode.none,
            ErrorCode.invalid_record_state,
            "not held",
            b"batch",
            [Acquired(7, 9, 2)],
        )
    }


def test_peers_are_told_from_clients_by_their_client_id() -> None:
    assert peer_node_id("goqueue-broker-3") == 3
    assert peer_node_id("goqueue") is None
    assert peer_node_id("goqueue-broker-x") is None
    assert peer_node_id(None) is None
