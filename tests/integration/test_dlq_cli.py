"""`goqueue dlq list|show|replay` against a real broker, on a dead-letter topic written the way
a share group writes one (records with `goqueue.dlq.*` headers)."""

from __future__ import annotations

import json

from group_helpers import goqueue
from share_helpers import new_topic, produce, read_topic, share_broker

from goqueue.client.dead_letters import (
    DEAD_LETTERED_AT_HEADER,
    DELIVERY_COUNT_HEADER,
    GROUP_HEADER,
    OFFSET_HEADER,
    PARTITION_HEADER,
    REASON_HEADER,
    TIMESTAMP_HEADER,
    TOPIC_HEADER,
)
from goqueue.testing.process import BrokerProcess

__all__ = ["share_broker"]


def dead_letter_headers(
    topic: str, partition: int, offset: int, reason: str, group: str
) -> list[tuple[str, bytes]]:
    return [
        ("trace", b"t-1"),
        (TOPIC_HEADER, topic.encode()),
        (PARTITION_HEADER, str(partition).encode()),
        (OFFSET_HEADER, str(offset).encode()),
        (TIMESTAMP_HEADER, b"1700000000000"),
        (GROUP_HEADER, group.encode()),
        (DELIVERY_COUNT_HEADER, b"5" if reason == "delivery-limit" else b"1"),
        (REASON_HEADER, reason.encode()),
        (DEAD_LETTERED_AT_HEADER, b"1700000001000"),
    ]


def write_letters(bootstrap: str, group: str, source: str) -> str:
    """Three dead letters of `group` from partitions 0 and 1 of `source`: offsets 0, 1 and 2
    of the dead-letter topic, reasons rejected, delivery-limit, rejected."""
    dlq = new_topic(bootstrap, f"{group}.dlq")
    for offset, (partition, reason) in enumerate(
        [(0, "rejected"), (1, "delivery-limit"), (0, "rejected")]
    ):
        headers = dead_letter_headers(source, partition, 10 + offset, reason, group)
        produce(bootstrap, dlq, [f"job-{offset}".encode()], keys=[b"k%d" % offset], headers=headers)
    return dlq


def test_list_shows_where_each_dead_letter_came_from_and_filters(
    share_broker: BrokerProcess,
) -> None:
    bootstrap = share_broker.bootstrap
    source = new_topic(bootstrap, "dlq-list-src", partitions=2)
    dlq = write_letters(bootstrap, "dlq-list", source)
    table = goqueue(bootstrap, "dlq", "list", dlq)
    assert table.returncode == 0, table.stderr
    assert f"{source}[1]@11" in table.stdout and "delivery-limit" in table.stdout
    assert "3 dead letter(s)" in table.stdout
    rejected = goqueue(bootstrap, "dlq", "list", dlq, "--reason", "rejected", "--json")
    documents = json.loads(rejected.stdout)
    assert [d["offset"] for d in documents] == [0, 2]
    assert documents[0]["original"] == {
        "topic": source,
        "partition": 0,
        "offset": 10,
        "timestamp": 1700000000000,
    }
    assert documents[0]["headers"] == {"trace": "t-1"}
    assert documents[0]["dead_lettered_at"] == "2023-11-14T22:13:21.000Z"
    assert documents[0]["group"] == "dlq-list" and documents[0]["delivery_count"] == 1
    by_key = goqueue(bootstrap, "dlq", "list", dlq, "--key", "k1", "--json")
    assert [d["value"] for d in json.loads(by_key.stdout)] == ["job-1"]
    limited = goqueue(bootstrap, "dlq", "list", dlq, "--from-offset", "1", "-n", "1", "--json")
    assert [d["offset"] for d in json.loads(limited.stdout)] == [1]


def test_show_prints_one_dead_letter_and_fails_for_a_missing_one(
    share_broker: BrokerProcess,
) -> None:
    bootstrap = share_broker.bootstrap
    source = new_topic(bootstrap, "dlq-show-src", partitions=2)
    dlq = write_letters(bootstrap, "dlq-show", source)
    shown = goqueue(bootstrap, "dlq", "show", "1", dlq)
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert (document["reason"], document["key"], document["value"]) == (
        "delivery-limit",
        "k1",
        "job-1",
    )
    missing = goqueue(bootstrap, "dlq", "show", "7", dlq)
    assert missing.returncode == 1
    assert "no dead letter" in missing.stderr


def test_replay_dry_run_sends_nothing_and_replay_restores_the_records(
    share_broker: BrokerProcess,
) -> None:
    bootstrap = share_broker.bootstrap
    source = new_topic(bootstrap, "dlq-replay-src", partitions=2)
    dlq = write_letters(bootstrap, "dlq-replay", source)
    dry = goqueue(bootstrap, "dlq", "replay", dlq, "--reason", "rejected", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would send" in dry.stdout and "Dry run: 2" in dry.stdout
    assert read_topic(bootstrap, source) == []
    done = goqueue(bootstrap, "dlq", "replay", dlq, "--reason", "rejected")
    assert done.returncode == 0, done.stderr
    assert "Replayed 2" in done.stdout
    replayed = read_topic(bootstrap, source)
    assert [(p, r.key, r.value) for p, r in replayed] == [
        (0, b"k0", b"job-0"),
        (0, b"k2", b"job-2"),
    ]
    assert all(r.headers == (("trace", b"t-1"),) for _, r in replayed)
    assert len(read_topic(bootstrap, dlq)) == 3


def test_replay_to_another_topic_partitions_by_key(share_broker: BrokerProcess) -> None:
    bootstrap = share_broker.bootstrap
    source = new_topic(bootstrap, "dlq-to-src", partitions=2)
    dlq = write_letters(bootstrap, "dlq-to", source)
    elsewhere = new_topic(bootstrap, "dlq-to-target")
    done = goqueue(bootstrap, "dlq", "replay", "--group", "dlq-to", "--to", elsewhere)
    assert done.returncode == 1
    assert "does not exist" in done.stderr  # --group names dlq-to.dlq, not the unique topic
    done = goqueue(bootstrap, "dlq", "replay", dlq, "--group", "dlq-to", "--to", elsewhere)
    assert done.returncode == 0, done.stderr
    assert sorted(r.value for _, r in read_topic(bootstrap, elsewhere)) == [
        b"job-0",
        b"job-1",
        b"job-2",
    ]
    assert read_topic(bootstrap, source) == []
