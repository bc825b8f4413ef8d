"""Share group administration: describe a share group's members (ShareGroupDescribe, KIP-932).

Record counts by state (available, acquired, archived...) are not in the Kafka protocol; the
broker serves them on its HTTP API (`/api/v1/share-groups/{group}`), which `goqueue group
describe` reads next to this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kio.schema.errors import ErrorCode

from goqueue.client.cluster import Cluster
from goqueue.client.connection import Connection
from goqueue.client.errors import raise_for
from goqueue.client.groups import with_coordinator
from goqueue.client.metadata import TopicPartition

SHARE_GROUP_DESCRIBE = 77


@dataclass(frozen=True, slots=True)
class ShareMemberDescription:
    member_id: str
    member_epoch: int
    client_id: str
    client_host: str
    rack_id: str | None
    subscribed_topics: tuple[str, ...]
    partitions: tuple[TopicPartition, ...]
    """The partitions the member fetches from (shared with other members)."""


@dataclass(frozen=True, slots=True)
class ShareGroupDescription:
    group_id: str
    state: str
    group_epoch: int
    assignment_epoch: int
    assignor: str
    members: tuple[ShareMemberDescription, ...]


async def describe_share_group(cluster: Cluster, group_id: str) -> ShareGroupDescription | None:
    """A share group's state and members; None if there is no share group of that id."""

    async def call(connection: Connection) -> Any:
        request = {"group_ids": [group_id], "include_authorized_operations": False}
        response = await connection.request(
            SHARE_GROUP_DESCRIBE, request, timeout=cluster.request_timeout
        )
        (group,) = response.groups
        if group.error_code == ErrorCode.group_id_not_found:
            return None
        raise_for(group.error_code, group.error_message)
        return group

    group = await with_coordinator(cluster, group_id, call)
    if group is None:
        return None
    return ShareGroupDescription(
        group_id=group.group_id,
        state=group.group_state,
        group_epoch=group.group_epoch,
        assignment_epoch=group.assignment_epoch,
        assignor=group.assignor_name,
        members=tuple(
            ShareMemberDescription(
                member_id=m.member_id,
                member_epoch=m.member_epoch,
                client_id=m.client_id,
                client_host=m.client_host,
                rack_id=m.rack_id,
                subscribed_topics=tuple(m.subscribed_topic_names),
                partitions=tuple(
                    TopicPartition(t.topic_name, p)
                    for t in m.assignment.topic_partitions
                    for p in t.partitions
                ),
            )
            for m in group.members
        ),
    )
