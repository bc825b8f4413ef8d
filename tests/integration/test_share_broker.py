"""Share groups on a real broker with librdkafka's KIP-932 ShareConsumer (confluent-kafka):
competing consumers, lock expiry after a consumer dies, release and reject, the delivery
limit, the dead-letter topic and its headers, message TTL and FIFO message groups."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from client_compat import wait_for
from confluent_kafka import AcknowledgeType, Message, ShareConsumer
from kio.schema.errors import ErrorCode
from share_helpers import (
    LOCK_MS,
    new_topic,
    produce,
    share_broker,
    share_broker_process,
    share_group,
    wait_records,
)

from goqueue.client.cluster import Cluster
from goqueue.testing.process import BrokerProcess

__all__ = ["share_broker"]

NO_BACKOFF = {"goqueue.retry.backoff.ms": ""}


def share_consumer(bootstrap: str, group: str, topic: str, explicit: bool = False) -> ShareConsumer:
    consumer = ShareConsumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "share.acknowledgement.mode": "explicit" if explicit else "implicit",
        }
    )
    consumer.subscribe([topic])
    return consumer


@pytest.fixture
def consumers() -> Iterator[list[ShareConsumer]]:
    """Consumers a test opens, closed at its end (close commits pending acknowledgements)."""
    opened: list[ShareConsumer] = []
    yield opened
    for consumer in opened:
        consumer.close()


def poll(consumer: ShareConsumer, timeout: float = 0.5) -> list[Message]:
    messages = consumer.poll(timeout)
    found = [] if messages is None else list(messages)
    assert not [m.error() for m in found if m.error()]
    return found


def poll_until(
    consumer: ShareConsumer,
    done: Callable[[list[Message]], bool],
    what: str,
    timeout: float = 20.0,
    each: Callable[[list[Message]], None] | None = None,
) -> list[Message]:
    """Poll until the messages received so far satisfy `done`."""
    received: list[Message] = []
    deadline = time.monotonic() + timeout
    while not done(received):
        assert time.monotonic() < deadline, f"timed out waiting for {what}; got {len(received)}"
        batch = poll(consumer)
        if each is not None and batch:
            each(batch)
        received += batch
    return received


def headers_of(record: Any) -> dict[str, str]:
    return {name: (value or b"").decode() for name, value in record.headers}


def test_competing_consumers_each_get_distinct_records(
    share_broker: BrokerProcess, consumers: list[ShareConsumer]
) -> None:
    bootstrap = share_broker.bootstrap
    topic = new_topic(bootstrap, "compete")
    group = share_group(bootstrap, "compete", {"share.partition.max.record.locks": "20"})
    produce(bootstrap, topic, [b"%d" % i for i in range(200)])
    a, b = (share_consumer(bootstrap, group, topic) for _ in range(2))
    consumers += [a, b]
    got: dict[str, list[int]] = {"a": [], "b": []}
    deadline = time.monotonic() + 30
    while len(got["a"]) + len(got["b"]) < 200:
        assert time.monotonic() < deadline, {k: len(v) for k, v in got.items()}
        for name, consumer in (("a", a), ("b", b)):
            got[name] += [m.offset() for m in poll(consumer, 0.2)]
    assert not set(got["a"]) & set(got["b"])
    assert sorted(got["a"] + got["b"]) == list(range(200))
    assert got["a"] and got["b"], "both consumers of the one partition got records"


CHILD = textwrap.dedent(
    """
    import sys, time
    from confluent_kafka import ShareConsumer
    consumer = ShareConsumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2],
                              "share.acknowledgement.mode": "explicit"})
    consumer.subscribe([sys.argv[3]])
    while True:
        messages = consumer.poll(0.5)
        offsets = [m.offset() for m in (messages or []) if not m.error()]
        if offsets:
            print(" ".join(map(str, offsets)), flush=True)
            time.sleep(600)
    """
)


def test_records_of_a_killed_consumer_are_redelivered_after_the_lock_timeout(
    share_broker: BrokerProcess, consumers: list[ShareConsumer]
) -> None:
    bootstrap = share_broker.bootstrap
    topic = new_topic(bootstrap, "killed")
    group = share_group(bootstrap, "killed", NO_BACKOFF)
    produce(bootstrap, topic, [b"job-%d" % i for i in range(5)])
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, bootstrap, group, topic],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        held = [int(o) for o in child.stdout.readline().split()]
    finally:
        child.kill()
        child.wait()
    assert held == list(range(5))
    survivor = share_consumer(bootstrap, group, topic, explicit=True)
    consumers.append(survivor)
    redelivered = poll_until(survivor, lambda got: len(got) >= 5, "redelivery")
    assert time.monotonic() - started >= LOCK_MS / 1000, "not before the lock expired"
    assert sorted(m.offset() for m in redelivered) == held
    assert {m.delivery_count() for m in redelivered} == {2}
    for message in redelivered:
        survivor.acknowledge(message)
    survivor.commit_sync()


def test_release_redelivers_after_the_backoff_and_reject_dead_letters(
    share_broker: BrokerProcess, consumers: list[ShareConsumer]
) -> None:
    bootstrap = share_broker.bootstrap
    topic = new_topic(bootstrap, "release")
    group = share_group(bootstrap, "release", {"goqueue.retry.backoff.ms": "800"})
    produce(bootstrap, topic, [b"again", b"never"])
    consumer = share_consumer(bootstrap, group, topic, explicit=True)
    consumers.append(consumer)
    first = poll_until(consumer, lambda got: len(got) >= 2, "two records")
    consumer.acknowledge(first[0], AcknowledgeType.RELEASE)
    consumer.acknowledge(first[1], AcknowledgeType.REJECT)
    released_at = time.monotonic()
    consumer.commit_sync()
    again = poll_until(consumer, lambda got: len(got) >= 1, "the released record")
    assert time.monotonic() - released_at >= 0.8, "not before the backoff"
    assert [(m.value(), m.delivery_count()) for m in again] == [(b"again", 2)]
    consumer.acknowledge(again[0], AcknowledgeType.ACCEPT)
    consumer.commit_sync()
    [(_, letter)] = wait_records(bootstrap, f"{group}.dlq", 1)
    assert letter.value == b"never"
    assert headers_of(letter)["goqueue.dlq.reason"] == "rejected"


def test_the_delivery_limit_moves_a_record_to_the_dead_letter_topic_with_headers(
    share_broker: BrokerProcess, consumers: list[ShareConsumer]
) -> None:
    bootstrap = share_broker.bootstrap
    topic = new_topic(bootstrap, "limit")
    group = share_group(bootstrap, "limit", {**NO_BACKOFF, "share.delivery.count.limit": "2"})
    produce(bootstrap, topic, [b"poison"], keys=[b"k"], headers=[("trace", b"t-1")])
    consumer = share_consumer(bootstrap, group, topic, explicit=True)
    consumers.append(consumer)
    counts = []
    for _ in range(2):
        [message] = poll_until(consumer, lambda got: len(got) >= 1, "the poison record")
        counts.append(message.delivery_count())
        consumer.acknowledge(message, AcknowledgeType.RELEASE)
        consumer.commit_sync()
    assert counts == [1, 2]
    [(_, letter)] = wait_records(bootstrap, f"{group}.dlq", 1)
    headers = headers_of(letter)
    assert (letter.key, letter.value, headers["trace"]) == (b"k", b"poison", "t-1")
    assert headers["goqueue.dlq.original-topic"] == topic
    assert headers["goqueue.dlq.original-partition"] == "0"
    assert headers["goqueue.dlq.original-offset"] == "0"
    assert int(headers["goqueue.dlq.original-timestamp"]) == letter.timestamp_ms
    assert headers["goqueue.dlq.group"] == group
    assert headers["goqueue.dlq.delivery-count"] == "2"
    assert headers["goqueue.dlq.reason"] == "delivery-limit"
    assert poll(consumer, 1.0) == [], "a dead letter is not delivered again"


def test_expired_records_are_dead_lettered_and_never_delivered(
    share_broker: BrokerProcess, consumers: list[ShareConsumer]
) -> None:
    bootstrap = share_broker.bootstrap
    topic = new_topic(bootstrap, "ttl", configs={"goqueue.message.ttl.ms": "60000"})
    group = share_group(bootstrap, "ttl")
    old = int(time.time() * 1000) - 120_000
    produce(bootstrap, topic, [b"stale-%d" % i for i in range(3)], timestamp=old)
    produce(bootstrap, topic, [b"fresh-0", b"fresh-1"])
    consumer = share_consumer(bootstrap, group, topic)
    consumers.append(consumer)
    delivered = poll_until(consumer, lambda got: len(got) >= 2, "fresh records")
    assert [m.value() for m in delivered] == [b"fresh-0", b"fresh-1"]
    letters = wait_records(bootstrap, f"{group}.dlq", 3)
    assert sorted(r.value for _, r in letters) == [b"stale-0", b"stale-1", b"stale-2"]
    assert {headers_of(r)["goqueue.dlq.reason"] for _, r in letters} == {"expired"}
    assert {headers_of(r)["goqueue.dlq.delivery-count"] for _, r in letters} == {"0"}
    assert poll(consumer, 1.0) == []


def test_fifo_groups_deliver_each_key_in_order_one_at_a_time(
    share_broker: BrokerProcess, consumers: list[ShareConsumer]
) -> None:
    bootstrap = share_broker.bootstrap
    topic = new_topic(bootstrap, "fifo")
    group = share_group(bootstrap, "fifo", {"goqueue.share.fifo": "true"})
    keys = [b"k%d" % (i % 4) for i in range(40)]
    produce(bootstrap, topic, [b"%d" % i for i in range(40)], keys=keys)
    a, b = (share_consumer(bootstrap, group, topic, explicit=True) for _ in range(2))
    consumers += [a, b]
    order: dict[bytes, list[int]] = {}
    parallel = 0
    deadline = time.monotonic() + 30
    while sum(map(len, order.values())) < 40:
        assert time.monotonic() < deadline, order
        batch_a = poll(a, 0.2)
        batch_b = poll(b, 0.2)
        keys_a = [m.key() for m in batch_a]
        keys_b = [m.key() for m in batch_b]
        assert len(set(keys_a)) == len(keys_a) and len(set(keys_b)) == len(keys_b)
        assert not set(keys_a) & set(keys_b), "one record of a key in flight at a time"
        parallel = max(parallel, len(keys_a) + len(keys_b))
        for consumer, batch in ((a, batch_a), (b, batch_b)):
            for message in batch:
                order.setdefault(message.key(), []).append(int(message.value()))
                consumer.acknowledge(message)
            if batch:
                consumer.commit_sync()
    for index, key in enumerate(sorted(order)):
        assert order[key] == list(range(index, 40, 4))
    assert parallel > 1, "different keys are delivered in parallel"


@pytest.mark.parametrize("crash", [False, True], ids=["restart", "sigkill"])
def test_acknowledged_records_stay_acknowledged_across_a_broker_restart(
    tmp_path: Any, crash: bool
) -> None:
    with share_broker_process(tmp_path / "data") as broker:
        bootstrap = broker.bootstrap
        topic = new_topic(bootstrap, "restart")
        group = share_group(bootstrap, "restart", NO_BACKOFF)
        produce(bootstrap, topic, [b"%d" % i for i in range(20)])
        consumer = share_consumer(bootstrap, group, topic, explicit=True)
        received = poll_until(consumer, lambda got: len(got) >= 10, "ten records")
        acked = sorted(m.offset() for m in received)[:10]
        for message in received:
            consumer.acknowledge(
                message,
                AcknowledgeType.ACCEPT if message.offset() in acked else AcknowledgeType.RELEASE,
            )
        consumer.commit_sync()
        if crash:
            broker.kill()
            consumer.close()
            broker.start()
        else:
            consumer.close()
            broker.restart()
        again = share_consumer(bootstrap, group, topic, explicit=True)
        try:
            rest = poll_until(again, lambda got: len(got) >= 10, "the unacknowledged records")
            assert sorted(m.offset() for m in rest) == sorted(set(range(20)) - set(acked))
            for message in rest:
                again.acknowledge(message)
            again.commit_sync()
            assert poll(again, 1.0) == []
        finally:
            again.close()


def test_share_groups_are_listed_described_and_deleted(share_broker: BrokerProcess) -> None:
    bootstrap = share_broker.bootstrap
    topic = new_topic(bootstrap, "listed")
    group = share_group(bootstrap, "listed")
    consumer = share_consumer(bootstrap, group, topic)
    try:
        poll(consumer, 0.5)
        listed = wait_for(lambda: _listed(bootstrap, group), "the share group in ListGroups")
        assert (listed.protocol_type, listed.group_state, listed.group_type) == (
            "share",
            "Stable",
            "share",
        )
        [described] = asyncio.run(
            _request(bootstrap, SHARE_GROUP_DESCRIBE, _describe(group))
        ).groups
        assert described.group_state == "Stable"
        [member] = described.members
        assert [t.topic_name for t in member.assignment.topic_partitions] == [topic]
        assert member.subscribed_topic_names == (topic,)
        produce(bootstrap, topic, [b"a", b"b", b"c"])
        poll_until(consumer, lambda got: len(got) >= 3, "three records")
        consumer.commit_sync()
        produce(bootstrap, topic, [b"d", b"e"])
        assert _offsets(bootstrap, group) == [(0, 3, 2)]
        assert _delete(bootstrap, group) == ErrorCode.non_empty_group
    finally:
        consumer.close()
    wait_for(lambda: _delete(bootstrap, group) == ErrorCode.none or None, "deletion of the group")
    assert _listed(bootstrap, group) is None


SHARE_GROUP_DESCRIBE = 77
LIST_GROUPS = 16
DELETE_GROUPS = 42
DESCRIBE_SHARE_GROUP_OFFSETS = 90


def _offsets(bootstrap: str, group: str) -> list[tuple[int, int, int]]:
    """(partition, start offset, lag) of every share partition (DescribeShareGroupOffsets)."""
    request = {"groups": [{"group_id": group, "topics": None}]}
    [described] = asyncio.run(_request(bootstrap, DESCRIBE_SHARE_GROUP_OFFSETS, request)).groups
    assert described.error_code == ErrorCode.none
    return [
        (p.partition_index, p.start_offset, p.lag)
        for topic in described.topics
        for p in topic.partitions
    ]


async def _request(bootstrap: str, api_key: int, fields: dict[str, Any]) -> Any:
    async with Cluster(bootstrap) as cluster:
        connection = await cluster.any_connection()
        return await connection.request(api_key, fields)


def _describe(group: str) -> dict[str, Any]:
    return {"group_ids": [group], "include_authorized_operations": False}


def _listed(bootstrap: str, group: str) -> Any:
    response = asyncio.run(
        _request(bootstrap, LIST_GROUPS, {"states_filter": [], "types_filter": ["share"]})
    )
    found = [g for g in response.groups if g.group_id == group]
    return found[0] if found else None


def _delete(bootstrap: str, group: str) -> ErrorCode:
    response = asyncio.run(_request(bootstrap, DELETE_GROUPS, {"groups_names": [group]}))
    return ErrorCode(response.results[0].error_code)


def test_counts_by_state_over_http_and_in_metrics(
    share_broker: BrokerProcess, consumers: list[ShareConsumer]
) -> None:
    bootstrap = share_broker.bootstrap
    topic = new_topic(bootstrap, "visible")
    group = share_group(bootstrap, "visible", {"share.record.lock.duration.ms": "60000"})
    produce(bootstrap, topic, [b"%d" % i for i in range(6)])
    consumer = share_consumer(bootstrap, group, topic, explicit=True)
    consumers.append(consumer)
    held = poll_until(consumer, lambda got: len(got) >= 6, "six records")
    consumer.acknowledge(held[0], AcknowledgeType.ACCEPT)
    consumer.acknowledge(held[1], AcknowledgeType.REJECT)
    consumer.commit_sync()
    base = f"http://127.0.0.1:{share_broker.http_port}"

    def settled() -> dict[str, Any] | None:
        body = httpx.get(f"{base}/api/v1/share-groups/{group}", timeout=10).json()
        return body if body["dead_lettered"] == 1 else None

    body = wait_for(settled, "the dead letter to be counted")
    assert (body["state"], body["members"], body["dlq_topic"]) == ("Stable", 1, f"{group}.dlq")
    assert (body["acquired"], body["in_flight"], body["acknowledged"]) == (4, 4, 1)
    assert body["available"] == 0 and body["archived"] == 1
    assert body["oldest_unacknowledged_age_ms"] >= 0
    [partition] = body["partitions"]
    assert (partition["start_offset"], partition["end_offset"]) == (2, 6)
    assert group in httpx.get(f"{base}/api/v1/share-groups", timeout=10).json()
    assert httpx.get(f"{base}/api/v1/share-groups/nope", timeout=10).status_code == 404
    metrics = httpx.get(f"{base}/metrics", timeout=10).text
    labels = f'group="{group}",partition="0",state="acquired",topic="{topic}"'
    assert f"goqueue_share_group_records{{{labels}}} 4.0" in metrics
    assert f'goqueue_share_group_in_flight_records{{group="{group}"}} 4.0' in metrics
    assert f'goqueue_share_group_members{{group="{group}"}} 1.0' in metrics
    totals = f'group="{group}",partition="0",topic="{topic}"'
    assert f"goqueue_share_group_acknowledged_records_total{{{totals}}} 1.0" in metrics
    assert f"goqueue_share_group_dead_lettered_records_total{{{totals}}} 1.0" in metrics


def test_the_share_groups_page_example_runs(share_broker: BrokerProcess) -> None:
    """docs/share-groups.md opens with a runnable example: it consumes its ten jobs."""
    page = (Path(__file__).parents[2] / "docs" / "share-groups.md").read_text()
    code = re.search(r"```python\n(.*?)```", page, re.S)
    assert code is not None
    scope: dict[str, Any] = {}
    exec(code.group(1).replace('"127.0.0.1:9092"', repr(share_broker.bootstrap)), scope)
    assert scope["done"] == 10


ALTER_SHARE_GROUP_OFFSETS = 91
DELETE_SHARE_GROUP_OFFSETS = 92


def test_offsets_of_an_empty_share_group_can_be_reset_and_deleted(
    share_broker: BrokerProcess,
) -> None:
    bootstrap = share_broker.bootstrap
    topic = new_topic(bootstrap, "reset")
    group = share_group(bootstrap, "reset")
    produce(bootstrap, topic, [b"%d" % i for i in range(5)])

    def alter(offset: int) -> Any:
        request = {
            "group_id": group,
            "topics": [
                {
                    "topic_name": topic,
                    "partitions": [{"partition_index": 0, "start_offset": offset}],
                }
            ],
        }
        return asyncio.run(_request(bootstrap, ALTER_SHARE_GROUP_OFFSETS, request))

    def delete() -> Any:
        request = {"group_id": group, "topics": [{"topic_name": topic}]}
        return asyncio.run(_request(bootstrap, DELETE_SHARE_GROUP_OFFSETS, request))

    consumer = share_consumer(bootstrap, group, topic, explicit=True)
    first = poll_until(consumer, lambda got: len(got) >= 5, "every record")
    assert [m.offset() for m in first] == list(range(5))
    assert alter(2).error_code == ErrorCode.non_empty_group, "a member is consuming"
    consumer.close()
    assert _offsets(bootstrap, group) == [(0, 0, 5)], "the records were released, not accepted"
    assert alter(3).error_code == ErrorCode.none
    assert _offsets(bootstrap, group) == [(0, 3, 2)]
    again = share_consumer(bootstrap, group, topic, explicit=True)
    try:
        rest = poll_until(again, lambda got: len(got) >= 2, "the records from offset 3")
        assert sorted(m.offset() for m in rest) == [3, 4]
        for message in rest:
            again.acknowledge(message)
        again.commit_sync()
    finally:
        again.close()
    assert delete().responses[0].error_code == ErrorCode.none
    assert _offsets(bootstrap, group) == []
    unknown = asyncio.run(
        _request(bootstrap, DELETE_SHARE_GROUP_OFFSETS, {"group_id": "nope", "topics": []})
    )
    assert unknown.error_code == ErrorCode.group_id_not_found
