"""SIGKILL during offset commits: after the restart every group's committed offset is at least
the last one the broker acknowledged, and one that was really sent (never lost, never moved
backwards, never invented)."""

from __future__ import annotations

import asyncio
import threading

from group_helpers import create_topic, own_group_broker, unique_group

from goqueue.client.admin import Admin
from goqueue.client.errors import ClientError
from goqueue.client.groups import Committed
from goqueue.client.metadata import TopicPartition
from goqueue.testing.process import BrokerProcess

__all__ = ["own_group_broker"]
GROUPS = 4
COMMITS_BEFORE_KILL = 150


class Committer:
    """Commits increasing offsets for one group, remembering what was acknowledged."""

    def __init__(self, group: str, tp: TopicPartition) -> None:
        self.group = group
        self.tp = tp
        self.acked = 0
        self.attempted = 0

    async def run(self, admin: Admin, stop: asyncio.Event) -> None:
        while not stop.is_set():
            offset = self.attempted + 1
            self.attempted = offset
            try:
                await admin.alter_group_offsets(
                    self.group, {self.tp: Committed(offset, -1, f"commit {offset}")}
                )
            except ClientError:
                return
            self.acked = offset


def test_committed_offsets_are_never_lost_or_moved_back_by_a_crash(
    own_group_broker: BrokerProcess,
) -> None:
    broker = own_group_broker
    topic = create_topic(broker.bootstrap, "crash-commits", partitions=GROUPS)
    committers = [
        Committer(unique_group(f"crash-{i}"), TopicPartition(topic, i)) for i in range(GROUPS)
    ]

    async def commit_until_killed() -> None:
        stop = asyncio.Event()
        killed = threading.Event()
        async with Admin(broker.bootstrap, request_timeout_ms=5000) as admin:
            tasks = [asyncio.create_task(c.run(admin, stop)) for c in committers]
            while sum(c.acked for c in committers) < COMMITS_BEFORE_KILL:
                await asyncio.sleep(0.01)
            await asyncio.to_thread(lambda: (broker.kill(), killed.set()))
            stop.set()
            await asyncio.gather(*tasks)
        assert killed.is_set()

    asyncio.run(commit_until_killed())
    broker.start()

    async def read_back() -> list[Committed]:
        async with Admin(broker.bootstrap) as admin:
            return [(await admin.list_group_offsets(c.group, [c.tp]))[c.tp] for c in committers]

    for committer, committed in zip(committers, asyncio.run(read_back()), strict=True):
        assert committer.acked <= committed.offset <= committer.attempted, committer.group
        assert committed.metadata == f"commit {committed.offset}"
