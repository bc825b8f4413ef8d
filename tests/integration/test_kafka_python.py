"""kafka-python against a real broker: admin, every codec, offsets, auto-creation, and the
API-version handling of old clients (Debian ships kafka-python 2.0.x as python3-kafka).

Consumers use manual assignment without a group: the broker has no group coordinator yet.
"""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from client_compat import CODECS, Sample, collect, samples, unique_topic, wait_for
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import TopicAlreadyExistsError

from goqueue.testing.process import BrokerProcess

DEBIAN_PYTHON = "/usr/bin/python3"


@pytest.fixture(scope="module")
def admin(shared_broker: BrokerProcess) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=shared_broker.bootstrap, client_id="compat-admin")
    yield client
    client.close()


def create_topic(admin: KafkaAdminClient, partitions: int = 1) -> str:
    name = unique_topic("kafka-python")
    admin.create_topics({name: {"num_partitions": partitions, "replication_factor": 1}})
    return name


def produce(bootstrap: str, topic: str, records: list[Sample], **config: Any) -> list[int]:
    """Send `records` to partition 0 and return the offsets the broker acknowledged.

    kafka-python 3 makes producers idempotent by default; these tests are about encodings and
    offsets, so they use a plain producer (test_idempotence.py covers idempotence)."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        enable_idempotence=False,
        **config,
    )
    try:
        futures = [
            producer.send(
                topic,
                value=r.value,
                key=r.key,
                headers=list(r.headers),
                partition=0,
                timestamp_ms=r.timestamp_ms,
            )
            for r in records
        ]
        producer.flush()
        return [future.get(timeout=10).offset for future in futures]
    finally:
        producer.close()


def consumer(bootstrap: str, **config: Any) -> KafkaConsumer:
    return KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **config,
    )


def consume(consumer: KafkaConsumer, count: int) -> list[Any]:
    """Poll until `count` records arrived (or fail at the deadline)."""

    def fetch(missing: int) -> list[Any]:
        batches = consumer.poll(timeout_ms=500, max_records=missing)
        return [record for records in batches.values() for record in records]

    return collect(fetch, count, "records")


def as_sample(record: Any) -> Sample:
    return Sample(record.key, record.value, tuple(record.headers), record.timestamp)


def consume_all(bootstrap: str, topic: str, count: int, **config: Any) -> list[Any]:
    tp = TopicPartition(topic, 0)
    client = consumer(bootstrap, **config)
    try:
        client.assign([tp])
        client.seek_to_beginning(tp)
        return consume(client, count)
    finally:
        client.close()


def test_create_list_delete_topics(admin: KafkaAdminClient) -> None:
    name = unique_topic("kafka-python-admin")
    result = admin.create_topics(
        {
            name: {
                "num_partitions": 3,
                "replication_factor": 1,
                "configs": {"retention.ms": "600000"},
            }
        }
    )
    assert [(t["name"], t["error_code"]) for t in result["topics"]] == [(name, 0)]
    assert name in admin.list_topics()
    (described,) = admin.describe_topics([name])
    assert sorted(p["partition_index"] for p in described["partitions"]) == [0, 1, 2]

    with pytest.raises(TopicAlreadyExistsError):
        admin.create_topics({name: {"num_partitions": 1, "replication_factor": 1}})

    admin.delete_topics([name])
    wait_for(lambda: True if name not in admin.list_topics() else None, f"{name} deleted")


def test_create_topics_validate_only_creates_nothing(admin: KafkaAdminClient) -> None:
    name = unique_topic("kafka-python-validate")
    result = admin.create_topics(
        {name: {"num_partitions": 2, "replication_factor": 1}}, validate_only=True
    )
    assert [(t["name"], t["error_code"]) for t in result["topics"]] == [(name, 0)]
    assert name not in admin.list_topics()


@pytest.mark.parametrize("codec", CODECS)
def test_codec_round_trip_keeps_keys_headers_timestamps(
    shared_broker: BrokerProcess, admin: KafkaAdminClient, codec: str
) -> None:
    topic = create_topic(admin)
    sent = samples(50, codec)
    compression = None if codec == "none" else codec
    offsets = produce(shared_broker.bootstrap, topic, sent, compression_type=compression)
    assert offsets == list(range(len(sent)))

    records = consume_all(shared_broker.bootstrap, topic, len(sent))
    assert [r.offset for r in records] == offsets
    assert [r.timestamp_type for r in records] == [0] * len(sent)
    assert [as_sample(r) for r in records] == sent


def test_auto_detected_api_version(shared_broker: BrokerProcess) -> None:
    """Detection must see at least Kafka 0.11: the broker serves only RecordBatch v2
    (Produce v3+, Fetch v4+), which older client modes cannot speak."""
    client = consumer(shared_broker.bootstrap)
    try:
        detected = client.config["api_version"]
    finally:
        client.close()
    assert isinstance(detected, tuple)
    assert detected >= (0, 11)


def test_list_offsets_earliest_and_latest(
    shared_broker: BrokerProcess, admin: KafkaAdminClient
) -> None:
    topic = create_topic(admin, partitions=2)
    tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
    client = consumer(shared_broker.bootstrap)
    try:
        assert client.beginning_offsets(tps) == {tps[0]: 0, tps[1]: 0}
        assert client.end_offsets(tps) == {tps[0]: 0, tps[1]: 0}
        produce(shared_broker.bootstrap, topic, samples(7, "offsets"))
        assert client.beginning_offsets(tps) == {tps[0]: 0, tps[1]: 0}
        assert client.end_offsets(tps) == {tps[0]: 7, tps[1]: 0}
    finally:
        client.close()


def test_consume_from_timestamp(shared_broker: BrokerProcess, admin: KafkaAdminClient) -> None:
    topic = create_topic(admin)
    sent = samples(10, "by-time", step_ms=1000)
    produce(shared_broker.bootstrap, topic, sent)
    tp = TopicPartition(topic, 0)
    client = consumer(shared_broker.bootstrap)
    try:
        found = client.offsets_for_times({tp: sent[4].timestamp_ms - 500})[tp]
        assert (found.offset, found.timestamp) == (4, sent[4].timestamp_ms)
        exact = client.offsets_for_times({tp: sent[7].timestamp_ms})[tp]
        assert (exact.offset, exact.timestamp) == (7, sent[7].timestamp_ms)
        assert client.offsets_for_times({tp: sent[-1].timestamp_ms + 1})[tp] is None

        client.assign([tp])
        client.seek(tp, found.offset)
        records = consume(client, len(sent) - 4)
    finally:
        client.close()
    assert [r.offset for r in records] == list(range(4, len(sent)))
    assert [as_sample(r) for r in records] == sent[4:]


def test_produce_to_unknown_topic_creates_it(
    shared_broker: BrokerProcess, admin: KafkaAdminClient
) -> None:
    topic = unique_topic("kafka-python-auto")
    assert topic not in admin.list_topics()
    sent = samples(3, "auto")
    assert produce(shared_broker.bootstrap, topic, sent) == [0, 1, 2]
    assert topic in admin.list_topics()
    assert [as_sample(r) for r in consume_all(shared_broker.bootstrap, topic, 3)] == sent


@pytest.mark.parametrize("codec", ["none", "gzip"])
def test_round_trip_with_api_version_pinned_to_2_0(
    shared_broker: BrokerProcess, admin: KafkaAdminClient, codec: str
) -> None:
    """An old client does not ask which versions the broker serves: it assumes Kafka 2.0's."""
    topic = create_topic(admin)
    sent = samples(20, f"pinned-{codec}")
    old = {"api_version": (2, 0, 0)}
    compression = None if codec == "none" else codec
    assert produce(shared_broker.bootstrap, topic, sent, compression_type=compression, **old) == (
        list(range(20))
    )
    records = consume_all(shared_broker.bootstrap, topic, len(sent), **old)
    assert [as_sample(r) for r in records] == sent


DEBIAN_ROUND_TRIP = textwrap.dedent(
    """
    import sys
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    bootstrap, topic = sys.argv[1:]
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    sent = [(b"k%d" % i, b"v%d" % i, [("h", b"%d" % i)]) for i in range(10)]
    futures = [producer.send(topic, key=k, value=v, headers=h) for k, v, h in sent]
    print("offsets", [f.get(timeout=10).offset for f in futures])
    producer.close()
    print("api_version", producer.config["api_version"])
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        consumer_timeout_ms=10000,
    )
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    got = [(r.key, r.value, r.headers) for _, r in zip(range(10), consumer)]
    consumer.close()
    print("round trip", got == sent)
    """
)


def debian_kafka_python_version() -> str | None:
    """The kafka-python of Debian's python3-kafka package, if that is installed."""
    try:
        found = subprocess.run(
            [DEBIAN_PYTHON, "-c", "import kafka; print(kafka.__version__)"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except FileNotFoundError:
        return None
    return found.stdout.strip() if found.returncode == 0 else None


def test_debian_python3_kafka_round_trip(
    shared_broker: BrokerProcess, admin: KafkaAdminClient
) -> None:
    version = debian_kafka_python_version()
    if version is None:
        pytest.skip("Debian's python3-kafka is not installed (apt-get install python3-kafka)")
    topic = create_topic(admin)
    run = subprocess.run(
        [DEBIAN_PYTHON, "-c", DEBIAN_ROUND_TRIP, shared_broker.bootstrap, topic],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert f"offsets {list(range(10))}" in run.stdout, run.stdout
    assert "round trip True" in run.stdout, run.stdout
