"""`goqueue group describe` for a share group: members from ShareGroupDescribe and records by
state from the broker's HTTP API, while an SDK share consumer holds, accepts and rejects
records."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from client_compat import wait_for
from group_helpers import goqueue
from share_helpers import new_topic, produce, share_broker, share_group, take

from goqueue.client import ShareConsumer
from goqueue.testing.process import BrokerProcess

__all__ = ["share_broker"]


def describe(broker: BrokerProcess, group: str, *extra: str) -> Any:
    http = f"127.0.0.1:{broker.http_port}"
    result = goqueue(broker.bootstrap, "group", "describe", group, "--http", http, *extra)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if "--json" in extra else result.stdout


def test_describe_shows_a_share_groups_members_and_records_by_state(
    share_broker: BrokerProcess,
) -> None:
    bootstrap = share_broker.bootstrap
    topic = new_topic(bootstrap, "describe")
    group = share_group(bootstrap, "describe")
    produce(bootstrap, topic, [b"%d" % i for i in range(10)])

    async def main() -> tuple[Any, Any, str]:
        async with ShareConsumer(bootstrap, group_id=group, topics=[topic]) as consumer:
            held = await take(consumer, 4, ack=False)
            await held[0].ack()
            await held[1].reject(reason="bad")
            await consumer.commit()

            def settled() -> Any:
                document = describe(share_broker, group, "--json")
                return document if document["dead_lettered"] == 1 else None

            document = await asyncio.to_thread(wait_for, settled, "the rejected record in the DLQ")
            table = await asyncio.to_thread(describe, share_broker, group)
            return document, held, table

    document, held, table = asyncio.run(main())
    assert document["type"] == "share" and document["state"] == "Stable"
    (member,) = document["members"]
    assert member["partitions"] == [[topic, 0]]
    assert document["acknowledged"] == 1 and document["dead_lettered"] == 1
    # The consumer fetched all ten: two are settled, eight still held (four in its buffer).
    assert len(held) == 4
    assert (document["acquired"], document["in_flight"], document["available"]) == (8, 8, 0)
    assert document["oldest_unacknowledged_age_ms"] is not None
    assert document["dlq_topic"] == f"{group}.dlq"
    (partition,) = document["partitions"]
    assert (partition["topic"], partition["partition"]) == (topic, 0)
    assert "type share" in table and "dead-lettered 1" in table and "oldest unacknowledged" in table


def test_describe_without_the_http_api_still_shows_the_members(
    share_broker: BrokerProcess,
) -> None:
    bootstrap = share_broker.bootstrap
    topic = new_topic(bootstrap, "describe-nohttp")
    group = share_group(bootstrap, "describe-nohttp")

    async def main() -> Any:
        async with ShareConsumer(bootstrap, group_id=group, topics=[topic]):
            result = await asyncio.to_thread(
                goqueue, bootstrap, "group", "describe", group, "--http", "127.0.0.1:1", "--json"
            )
            return json.loads(result.stdout)

    document = asyncio.run(main())
    assert len(document["members"]) == 1
    assert "cannot reach the HTTP API" in document["counts_missing"]
