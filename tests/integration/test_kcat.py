"""kcat (Debian's package, with its own librdkafka) against a real broker: metadata listing,
producing with every codec, consuming to the end and from a timestamp.

kcat's consumer (-C without -G) is librdkafka's simple consumer: no group is involved.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from client_compat import CODECS, now_ms, samples, unique_topic
from confluent_kafka import Producer

from goqueue.testing.process import BrokerProcess

TIMEOUT_S = 30.0


def kcat(broker: BrokerProcess, *args: str, stdin: str = "") -> str:
    """Run kcat against `broker` and return its output; any failure fails the test."""
    done = subprocess.run(
        ["kcat", "-b", broker.bootstrap, "-m", "10", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"kcat {' '.join(args)} failed:\n{done.stderr}"
    return done.stdout


def consume_json(broker: BrokerProcess, topic: str, offset: str = "beginning") -> list[Any]:
    """Every message of partition 0 from `offset` to the end, as kcat's JSON envelopes."""
    output = kcat(broker, "-C", "-t", topic, "-p", "0", "-o", offset, "-e", "-J")
    return [json.loads(line) for line in output.splitlines() if line]


def metadata(broker: BrokerProcess, *args: str) -> Any:
    return json.loads(kcat(broker, "-L", "-J", *args))


def test_metadata_lists_broker_and_auto_created_topic(shared_broker: BrokerProcess) -> None:
    name = unique_topic("kcat-meta")
    assert name not in [topic["topic"] for topic in metadata(shared_broker)["topics"]]
    kcat(shared_broker, "-P", "-t", name, stdin="created by producing\n")

    listing = metadata(shared_broker)
    assert listing["brokers"] == [{"id": 0, "name": shared_broker.bootstrap}]
    assert name in [topic["topic"] for topic in listing["topics"]]

    (topic,) = metadata(shared_broker, "-t", name)["topics"]
    assert topic["topic"] == name
    assert [(p["partition"], p["leader"], p["replicas"]) for p in topic["partitions"]] == [
        (0, 0, [{"id": 0}])
    ]


@pytest.mark.parametrize("codec", CODECS)
def test_produce_and_consume_with_keys_and_headers(
    shared_broker: BrokerProcess, codec: str
) -> None:
    topic = unique_topic(f"kcat-{codec}")
    lines = [f"key-{i}\t{codec} value {i} " * 4 for i in range(40)]
    compression = [] if codec == "none" else ["-z", codec]
    before = now_ms()
    kcat(
        shared_broker,
        "-P",
        "-t",
        topic,
        "-p",
        "0",
        "-K",
        "\t",
        "-H",
        f"codec={codec}",
        "-H",
        "tool=kcat",
        *compression,
        stdin="\n".join(lines) + "\n",
    )
    after = now_ms()

    messages = consume_json(shared_broker, topic)
    assert [m["offset"] for m in messages] == list(range(len(lines)))
    assert [f"{m['key']}\t{m['payload']}" for m in messages] == lines
    assert all(m["headers"] == ["codec", codec, "tool", "kcat"] for m in messages)
    assert all(m["tstype"] == "create" and before <= m["ts"] <= after for m in messages)


def test_query_offset_and_consume_from_timestamp(shared_broker: BrokerProcess) -> None:
    """kcat cannot set timestamps, so confluent-kafka writes records a second apart."""
    topic = unique_topic("kcat-time")
    sent = samples(6, "kcat-time", step_ms=1000)
    producer = Producer({"bootstrap.servers": shared_broker.bootstrap, "acks": "all"})
    for r in sent:
        producer.produce(topic, r.value, r.key, partition=0, timestamp=r.timestamp_ms)
    assert producer.flush(TIMEOUT_S) == 0

    since = sent[2].timestamp_ms - 500
    queried = json.loads(kcat(shared_broker, "-Q", "-J", "-t", f"{topic}:0:{since}"))
    assert queried[topic]["0"]["offset"] == 2

    messages = consume_json(shared_broker, topic, f"s@{since}")
    assert [(m["offset"], m["ts"]) for m in messages] == [
        (i, r.timestamp_ms) for i, r in enumerate(sent) if i >= 2
    ]
    assert [m["payload"].encode() for m in messages] == [r.value for r in sent[2:]]
