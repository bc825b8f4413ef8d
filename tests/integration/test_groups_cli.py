"""`goqueue group` against a real broker: list, describe, delete and every way to reset."""

from __future__ import annotations

import asyncio
import datetime
import time

from group_helpers import create_topic, goqueue, group_broker, produce, unique_group

from goqueue.client.admin import Admin
from goqueue.client.groups import Committed
from goqueue.client.metadata import TopicPartition
from goqueue.testing.process import BrokerProcess

__all__ = ["group_broker"]


def committed(bootstrap: str, group: str) -> dict[int, int]:
    async def read() -> dict[TopicPartition, Committed]:
        async with Admin(bootstrap) as admin:
            return await admin.list_group_offsets(group)

    return {tp.partition: c.offset for tp, c in asyncio.run(read()).items()}


def commit(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    async def write() -> None:
        async with Admin(bootstrap) as admin:
            await admin.alter_group_offsets(
                group, {TopicPartition(topic, p): Committed(o) for p, o in offsets.items()}
            )

    asyncio.run(write())


def test_reset_offsets_previews_then_applies_every_kind_of_target(
    group_broker: BrokerProcess,
) -> None:
    bootstrap = group_broker.bootstrap
    topic = create_topic(bootstrap, "cli-reset", partitions=3)
    group = unique_group("cli-reset")
    early = int(time.time() * 1000) - 3_600_000
    late = early + 1_800_000
    produce(bootstrap, topic, 15, partitions=3, timestamp_ms=early)
    produce(bootstrap, topic, 15, partitions=3, start=15, timestamp_ms=late)
    commit(bootstrap, group, topic, {0: 2, 1: 3, 2: 4})

    def reset(*target: str) -> str:
        result = goqueue(bootstrap, "group", "reset-offsets", group, "--topic", topic, *target)
        assert result.returncode == 0, result.stderr
        return result.stdout

    preview = reset("--to-earliest")
    assert "Dry run" in preview
    assert committed(bootstrap, group) == {0: 2, 1: 3, 2: 4}
    reset("--to-latest", "--execute")
    assert committed(bootstrap, group) == {0: 10, 1: 10, 2: 10}
    moment = datetime.datetime.fromtimestamp(late / 1000, datetime.UTC).isoformat()
    reset("--to-datetime", moment, "--execute")
    assert committed(bootstrap, group) == {0: 5, 1: 5, 2: 5}
    reset("--shift-by", "-2", "--execute")
    assert committed(bootstrap, group) == {0: 3, 1: 3, 2: 3}
    reset("--to-offset", "100", "--execute")
    assert committed(bootstrap, group) == {0: 10, 1: 10, 2: 10}
    result = goqueue(bootstrap, "group", "reset-offsets", group, "--topic", f"{topic}:1")
    assert "--to-" in result.stderr and result.returncode != 0


def test_list_describe_and_delete(group_broker: BrokerProcess) -> None:
    bootstrap = group_broker.bootstrap
    topic = create_topic(bootstrap, "cli-groups", partitions=1)
    group = unique_group("cli-groups")
    produce(bootstrap, topic, 5, partitions=1)
    commit(bootstrap, group, topic, {0: 2})
    listed = goqueue(bootstrap, "group", "list", "--state", "Empty")
    assert group in listed.stdout
    described = goqueue(bootstrap, "group", "describe", group)
    assert described.returncode == 0
    row = next(line for line in described.stdout.splitlines() if topic in line)
    assert row.split("│")[3:6] == [" 2         ", " 5       ", " 3   "]
    assert goqueue(bootstrap, "group", "delete", group).returncode == 0
    assert group not in goqueue(bootstrap, "group", "list").stdout
    missing = goqueue(bootstrap, "group", "describe", group)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
