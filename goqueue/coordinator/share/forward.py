"""ShareFetch and ShareAcknowledge forwarded to a share group's coordinator.

Clients send share fetches to each data partition's leader, but a share group's state lives
with its coordinator (the leader of its `__share_group_state` partition). A broker that is
not the coordinator sends the request on, as the same Kafka request from a peer (its client
id names the broker, so the coordinator keeps that broker's share session apart from the
member's sessions on other brokers), and turns the answer back into a `ShareResult` that the
handler encodes in the client's version, naming the data leaders itself.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from kio.schema.errors import ErrorCode

from goqueue.coordinator.share.messages import ShareParams, SharePartitionResult, ShareResult
from goqueue.coordinator.share.partition import Acquired

SHARE_FETCH = 78
SHARE_ACKNOWLEDGE = 79


def request_fields(params: ShareParams, *, fetching: bool) -> dict[str, Any]:
    """The fields of the ShareFetch (`fetching`) or ShareAcknowledge to send on: every
    partition fetched or acknowledged, with its acknowledgement batches."""
    by_topic: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for topic_id, index in dict.fromkeys([*params.fetch, *params.acks]):
        by_topic.setdefault(topic_id, []).append(
            {
                "partition_index": index,
                "acknowledgement_batches": [
                    {
                        "first_offset": batch.first_offset,
                        "last_offset": batch.last_offset,
                        "acknowledge_types": batch.types,
                    }
                    for batch in params.acks.get((topic_id, index), ())
                ],
            }
        )
    fields: dict[str, Any] = {
        "group_id": params.group_id,
        "member_id": params.member_id,
        "share_session_epoch": params.session_epoch,
        "is_renew_ack": params.allow_renew,
        "topics": [{"topic_id": t, "partitions": parts} for t, parts in by_topic.items()],
    }
    if fetching:
        forgotten: dict[uuid.UUID, list[int]] = {}
        for topic_id, index in params.forget:
            forgotten.setdefault(topic_id, []).append(index)
        fields |= {
            "max_wait": datetime.timedelta(milliseconds=params.max_wait_ms),
            "min_bytes": 0,
            "max_bytes": params.max_bytes,
            "max_records": params.max_records,
            "batch_size": params.max_records,
            "share_acquire_mode": 0,
            "forgotten_topics_data": [
                {"topic_id": t, "partitions": parts} for t, parts in forgotten.items()
            ],
        }
    return fields


def share_result(response: Any, *, fetching: bool) -> ShareResult:
    """A ShareFetch (`fetching`) or ShareAcknowledge answer as the coordinator's result."""
    partitions = {}
    for topic in response.responses:
        for p in topic.partitions:
            tp = (topic.topic_id, p.partition_index)
            if not fetching:
                partitions[tp] = SharePartitionResult(
                    ack_error=_code(p.error_code), ack_message=p.error_message
                )
                continue
            partitions[tp] = SharePartitionResult(
                error=_code(p.error_code),
                ack_error=_code(p.acknowledge_error_code),
                ack_message=p.acknowledge_error_message,
                records=bytes(p.records or b""),
                acquired=[
                    Acquired(run.first_offset, run.last_offset, run.delivery_count)
                    for run in p.acquired_records
                ],
            )
    lock_ms = int(response.acquisition_lock_timeout.total_seconds() * 1000) if fetching else 0
    return ShareResult(_code(response.error_code), response.error_message, lock_ms, partitions)


def _code(value: int) -> ErrorCode:
    try:
        return ErrorCode(value)
    except ValueError:
        return ErrorCode.unknown_server_error
