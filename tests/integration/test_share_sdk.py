"""The SDK's ShareConsumer against a real broker: competing consumers, redelivery after a
consumer dies, release with backoff, the delivery limit, reject and replay, message TTL, FIFO
message groups, lock renewal and the sync twin."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from group_helpers import goqueue
from share_helpers import (
    LOCK_MS,
    new_topic,
    produce,
    share_broker,
    share_group,
    take,
    wait_records,
)

from goqueue.client import ShareConsumer, ShareMessage
from goqueue.client import sync as sync_client
from goqueue.client.dead_letters import DeadLetter
from goqueue.client.metadata import TopicPartition
from goqueue.testing.process import BrokerProcess

__all__ = ["share_broker"]
LOCK_S = LOCK_MS / 1000


def run(main: Callable[[], Awaitable[Any]], timeout: float = 60.0) -> Any:
    return asyncio.run(asyncio.wait_for(main(), timeout))


def values(count: int, tag: str = "m") -> list[bytes]:
    return [f"{tag}-{i}".encode() for i in range(count)]


def test_competing_consumers_each_get_distinct_records(share_broker: BrokerProcess) -> None:
    bootstrap = share_broker.bootstrap
    topic = new_topic(bootstrap, "compete")
    group = share_group(bootstrap, "compete")
    produce(bootstrap, topic, values(60))

    async def main() -> list[list[ShareMessage]]:
        consumers = [
            ShareConsumer(bootstrap, group_id=group, topics=[topic], max_records=5)
            for _ in range(3)
        ]
        got: list[list[ShareMessage]] = [[] for _ in consumers]
        done = asyncio.Event()
        for consumer in consumers:
            await consumer.start()
        # Each holds its first batch unacknowledged until all three have one: the batches
        # are locked, so they must be distinct records.
        firsts = await asyncio.gather(*(anext(c) for c in consumers))
        for index, message in enumerate(firsts):
            got[index].append(message)

        async def work(index: int) -> None:
            await got[index][0].ack()
            async for message in consumers[index]:
                got[index].append(message)
                await message.ack()
                if sum(len(g) for g in got) >= 60:
                    done.set()

        tasks = [asyncio.create_task(work(i)) for i in range(3)]
        await asyncio.wait_for(done.wait(), 30)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for consumer in consumers:
            await consumer.close()
        return got

    got = run(main)
    offsets = [m.offset for batch in got for m in batch]
    assert sorted(offsets) == list(range(60))
    assert all(batch for batch in got)
    assert all(m.delivery_count == 1 for batch in got for m in batch)


DYING_CONSUMER = """
import asyncio, json, sys
from goqueue.client import ShareConsumer

async def main():
    consumer = ShareConsumer(sys.argv[1], group_id=sys.argv[2], topics=[sys.argv[3]])
    await consumer.start()
    held = await consumer.poll()
    print(json.dumps([m.offset for m in held]), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def test_records_of_a_consumer_that_dies_are_redelivered_after_the_lock_timeout(
    share_broker: BrokerProcess,
) -> None:
    bootstrap = share_broker.bootstrap
    topic = new_topic(bootstrap, "dies")
    group = share_group(bootstrap, "dies")
    produce(bootstrap, topic, values(3))
    dying = subprocess.Popen(
        [sys.executable, "-c", DYING_CONSUMER, bootstrap, group, topic],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert dying.stdout is not None
        held = json.loads(dying.stdout.readline())
        acquired_at = time.monotonic()
        dying.kill()
        dying.wait()
    finally:
        if dying.poll() is None:
            dying.kill()
    assert held == [0, 1, 2]

    async def main() -> list[ShareMessage]:
        async with ShareConsumer(bootstrap, group_id=group, topics=[topic]) as consumer:
            return await take(consumer, 3)

    again = run(main)
    waited = time.monotonic() - acquired_at
    assert sorted(m.offset for m in again) == [0, 1, 2]
    assert all(m.delivery_count == 2 for m in again)
    assert waited >= LOCK_S - 0.05


def test_release_redelivers_no_earlier_than_the_backoff(share_broker: BrokerProcess) -> None:
    bootstrap = share_broker.bootstrap
    topic = new_topic(bootstrap, "backoff")
    group = share_group(bootstrap, "backoff", {"goqueue.retry.backoff.ms": "700"})
    produce(bootstrap, topic, values(1))

    async def main() -> tuple[float, float, list[int]]:
        async with ShareConsumer(bootstrap, group_id=group, topics=[topic]) as consumer:
            (first,) = await take(consumer, 1, ack=False)
            released = time.monotonic()
            await first.release()
            (second,) = await take(consumer, 1, ack=False)
            by_backoff = time.monotonic() - released
            released = time.monotonic()
            await second.release(delay=1.0)
            (third,) = await take(consumer, 1)
            by_delay = time.monotonic() - released
            counts = [m.delivery_count for m in (first, second, third)]
            return by_backoff, by_delay, counts

    by_backoff, by_delay, counts = run(main)
    assert counts == [1, 2, 3]
    assert by_backoff >= 0.7
    assert by_delay >= 1.0 + 0.7


def dead_letters(bootstrap: str, group: str, count: int) -> list[DeadLetter]:
    dlq = f"{group}.dlq"
    return [
        DeadLetter.of(TopicPartition(dlq, p), r) for p, r in wait_records(bootstrap, dlq, count)
    ]


def test_the_delivery_limit_moves_a_record_to_the_dead_letter_topic(
    share_broker: BrokerProcess,
) -> None:
    bootstrap = share_broker.bootstrap
    topic = new_topic(bootstrap, "limit")
    group = share_group(
        bootstrap,
        "limit",
        {"share.delivery.count.limit": "2", "goqueue.retry.backoff.ms": ""},
    )
    produce(bootstrap, topic, [b"poison"], keys=[b"k"], headers=[("trace", b"t-9")])

    async def main() -> list[int]:
        async with ShareConsumer(bootstrap, group_id=group, topics=[topic]) as consumer:
            counts = []
            for _ in range(2):
                (message,) = await take(consumer, 1, ack=False)
                counts.append(message.delivery_count)
                await message.release()
            await consumer.commit()
            return counts

    assert run(main) == [1, 2]
    (letter,) = dead_letters(bootstrap, group, 1)
    ((_, original),) = wait_records(bootstrap, topic, 1)
    assert (letter.key, letter.value) == (b"k", b"poison")
    assert letter.headers == (("trace", b"t-9"),)
    assert (letter.original_topic, letter.original_partition, letter.original_offset) == (
        topic,
        0,
        0,
    )
    assert letter.original_timestamp == original.timestamp_ms
    assert (letter.group, letter.delivery_count, letter.reason) == (group, 2, "delivery-limit")
    assert letter.dead_lettered_at is not None and letter.dead_lettered_at >= original.timestamp_ms


def test_reject_goes_to_the_dead_letter_topic_and_replay_brings_it_back(
    share_broker: BrokerProcess,
) -> None:
    bootstrap = share_broker.bootstrap
    topic = new_topic(bootstrap, "reject")
    group = share_group(bootstrap, "reject")
    produce(bootstrap, topic, [b"bad", b"good"])

    async def reject_one() -> None:
        async with ShareConsumer(bootstrap, group_id=group, topics=[topic]) as consumer:
            bad, good = await take(consumer, 2, ack=False)
            await bad.reject(reason="schema mismatch")
            await good.ack()
            await consumer.commit()

    run(reject_one)
    (letter,) = dead_letters(bootstrap, group, 1)
    assert (letter.value, letter.reason, letter.delivery_count) == (b"bad", "rejected", 1)
    replayed = goqueue(bootstrap, "dlq", "replay", "--group", group)
    assert replayed.returncode == 0, replayed.stderr

    async def consume_again() -> ShareMessage:
        async with ShareConsumer(bootstrap, group_id=group, topics=[topic]) as consumer:
            (message,) = await take(consumer, 1)
            await consumer.commit()
            return message

    again = run(consume_again)
    assert (again.value, again.offset, again.delivery_count) == (b"bad", 2, 1)


def test_expired_records_are_dead_lettered_and_never_delivered(
    share_broker: BrokerProcess,
) -> None:
    bootstrap = share_broker.bootstrap
    topic = new_topic(bootstrap, "ttl", configs={"goqueue.message.ttl.ms": "5000"})
    group = share_group(bootstrap, "ttl")
    stale = int(time.time() * 1000) - 60_000
    produce(bootstrap, topic, [b"old-0", b"old-1", b"old-2"], timestamp=stale)
    produce(bootstrap, topic, [b"fresh-0", b"fresh-1"])

    async def main() -> list[bytes | None]:
        async with ShareConsumer(bootstrap, group_id=group, topics=[topic]) as consumer:
            got = [m.value for m in await take(consumer, 2)]
            await consumer.commit()
            return got + [m.value for m in await consumer.poll(timeout=1.0)]

    assert run(main) == [b"fresh-0", b"fresh-1"]
    letters = dead_letters(bootstrap, group, 3)
    assert sorted((x.value, x.reason) for x in letters) == [
        (b"old-0", "expired"),
        (b"old-1", "expired"),
        (b"old-2", "expired"),
    ]
    assert all(x.delivery_count == 0 for x in letters)


def fifo_run(bootstrap: str, keys: int, per_key: int, work_s: float) -> tuple[float, list[str]]:
    """Four consumers of a FIFO group over `keys` keys of `per_key` records each, taking one
    record at a time and working `work_s` on each; returns the seconds it took and every
    violation seen (two of a key at once, or out of order)."""
    topic = new_topic(bootstrap, f"fifo-{keys}")
    group = share_group(bootstrap, f"fifo-{keys}", {"goqueue.share.fifo": "true"})
    records = [(f"k{i % keys}".encode(), f"{i}".encode()) for i in range(keys * per_key)]
    produce(bootstrap, topic, [v for _, v in records], keys=[k for k, _ in records])
    total = len(records)

    async def main() -> tuple[float, list[str]]:
        consumers = [
            ShareConsumer(bootstrap, group_id=group, topics=[topic], max_records=1, max_wait_ms=100)
            for _ in range(4)
        ]
        holding: dict[bytes, int] = {}
        last: dict[bytes, int] = {}
        violations: list[str] = []
        done = asyncio.Event()
        seen = 0

        async def work(consumer: ShareConsumer) -> None:
            nonlocal seen
            async for message in consumer:
                key = message.key or b""
                if key in holding:
                    violations.append(f"{key!r}: {message.offset} while {holding[key]} held")
                if message.offset <= last.get(key, -1):
                    violations.append(f"{key!r}: {message.offset} after {last[key]}")
                holding[key] = message.offset
                last[key] = message.offset
                await asyncio.sleep(work_s)
                del holding[key]
                await message.ack()
                await consumer.commit()
                seen += 1
                if seen >= total:
                    done.set()

        for consumer in consumers:
            await consumer.start()
        started = time.monotonic()
        tasks = [asyncio.create_task(work(c)) for c in consumers]
        await asyncio.wait_for(done.wait(), 45)
        elapsed = time.monotonic() - started
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for consumer in consumers:
            await consumer.close()
        return elapsed, violations

    return run(main)


def test_fifo_groups_deliver_a_key_in_order_one_at_a_time_and_scale_with_keys(
    share_broker: BrokerProcess,
) -> None:
    one_key, one_violations = fifo_run(share_broker.bootstrap, keys=1, per_key=16, work_s=0.1)
    four_keys, four_violations = fifo_run(share_broker.bootstrap, keys=4, per_key=4, work_s=0.1)
    assert one_violations == [] and four_violations == []
    assert one_key >= 16 * 0.1
    assert one_key / four_keys > 2.0


def test_renewing_keeps_a_record_past_its_lock_timeout(share_broker: BrokerProcess) -> None:
    bootstrap = share_broker.bootstrap
    topic = new_topic(bootstrap, "renew")
    group = share_group(bootstrap, "renew")
    produce(bootstrap, topic, values(1))

    async def main() -> tuple[int, list[ShareMessage]]:
        async with ShareConsumer(bootstrap, group_id=group, topics=[topic]) as mine:
            (message,) = await take(mine, 1, ack=False)
            async with (
                ShareConsumer(bootstrap, group_id=group, topics=[topic]) as other,
                message.renewing(every=LOCK_S / 3),
            ):
                stolen = await other.poll(timeout=LOCK_S * 2)
            await message.ack()
            await mine.commit()
            return message.delivery_count, stolen

    count, stolen = run(main)
    assert count == 1 and stolen == []


def test_the_sync_share_consumer_iterates_and_acknowledges(share_broker: BrokerProcess) -> None:
    bootstrap = share_broker.bootstrap
    topic = new_topic(bootstrap, "sync")
    group = share_group(bootstrap, "sync")
    produce(bootstrap, topic, values(3))
    got = []
    with sync_client.ShareConsumer(bootstrap, group_id=group, topics=[topic]) as consumer:
        for message in consumer:
            got.append((message.offset, message.value))
            message.ack()
            if len(got) == 3:
                break
        consumer.commit()
    assert got == [(0, b"m-0"), (1, b"m-1"), (2, b"m-2")]
