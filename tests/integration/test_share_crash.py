"""SIGKILL the broker while SDK share consumers acknowledge: after the restart nothing is lost,
no acknowledgement the broker answered is undone, and no record is delivered more than once
beyond the at-least-once allowance (docs/share-groups.md, Durability)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from share_helpers import new_topic, produce, share_broker_process, share_group

from goqueue.client import AcknowledgementError, ClientError, ShareConsumer, ShareMessage
from goqueue.testing.process import BrokerProcess

RECORDS = 300
CONSUMERS = 2
KILL_AFTER = RECORDS // 3
WORK_S = 0.005
"""Work per record, so that the kill finds records delivered and not yet acknowledged."""


@pytest.fixture
def own_share_broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    process = share_broker_process(tmp_path / "data")
    process.start()
    try:
        yield process
    finally:
        process.stop()


def group_stats(broker: BrokerProcess, group: str) -> dict[str, Any] | None:
    url = f"http://127.0.0.1:{broker.http_port}/api/v1/share-groups/{group}"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            stats: dict[str, Any] = json.load(response)
            return stats
    except OSError:
        return None


def finished(stats: dict[str, Any] | None) -> bool:
    """Every record of the partition is done: the share-partition start offset is at the end."""
    if stats is None or not stats["partitions"]:
        return False
    (partition,) = stats["partitions"]
    return bool(partition["start_offset"] == RECORDS and stats["in_flight"] == 0)


def test_sigkill_while_acknowledging_loses_nothing_and_undoes_no_answered_ack(
    own_share_broker: BrokerProcess,
) -> None:
    broker = own_share_broker
    bootstrap = broker.bootstrap
    topic = new_topic(bootstrap, "crash")
    group = share_group(bootstrap, "crash", {"goqueue.retry.backoff.ms": ""})
    produce(bootstrap, topic, [b"%d" % i for i in range(RECORDS)])
    deliveries: list[tuple[int, float]] = []
    confirmed: dict[int, float] = {}

    async def work(consumer: ShareConsumer, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                messages = await consumer.poll(timeout=0.5)
            except ClientError:
                await asyncio.sleep(0.1)
                continue
            for message in messages:
                deliveries.append((message.offset, time.monotonic()))
                await asyncio.sleep(WORK_S)
                await message.ack()
            await commit(consumer, messages)

    async def commit(consumer: ShareConsumer, messages: list[ShareMessage]) -> None:
        refused: set[int] = set()
        try:
            await consumer.commit()
        except AcknowledgementError as exc:  # refused, or no answer (NETWORK_EXCEPTION)
            refused = {o for f in exc.failures for o in f.offsets}
        now = time.monotonic()
        for message in messages:
            if message.offset not in refused:
                confirmed.setdefault(message.offset, now)

    async def main() -> None:
        consumers = [
            ShareConsumer(bootstrap, group_id=group, topics=[topic], max_records=20)
            for _ in range(CONSUMERS)
        ]
        for consumer in consumers:
            await consumer.start()
        stop = asyncio.Event()
        tasks = [asyncio.create_task(work(c, stop)) for c in consumers]
        async with asyncio.timeout(30):
            while len(confirmed) < KILL_AFTER:
                await asyncio.sleep(0.01)
        broker.kill()
        await asyncio.to_thread(broker.start)
        async with asyncio.timeout(60):
            while not finished(await asyncio.to_thread(group_stats, broker, group)):
                await asyncio.sleep(0.2)
        stop.set()
        await asyncio.gather(*tasks)
        for consumer in consumers:
            await consumer.close()

    asyncio.run(main())
    counts = Counter(offset for offset, _ in deliveries)
    assert sorted(counts) == list(range(RECORDS)), "a record was never delivered"
    redelivered_after_answer = [
        offset for offset, at in deliveries if offset in confirmed and at > confirmed[offset]
    ]
    assert redelivered_after_answer == []
    assert max(counts.values()) <= 2, {o: n for o, n in counts.items() if n > 2}
    assert len(confirmed) >= KILL_AFTER
    stats = group_stats(broker, group)
    assert stats is not None
    assert (stats["archived"], stats["dead_lettered"]) == (0, 0)
