"""Compaction and the compression policy against a real broker, with confluent-kafka.

A compacted topic with small segments gets many updates to a few keys and some tombstones;
the log cleaner (run every 100 ms here) must leave exactly the newest record of each key at
its original offset, drop the tombstones once delete.retention.ms has passed, and survive a
SIGKILL in the middle of a pass. A topic with compression.type=zstd must store what an
uncompressed producer sends as zstd batches and hand consumers the same records.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from client_compat import unique_topic, wait_for
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from goqueue.log.cleaner_manager import CHECKPOINT_FILE
from goqueue.log.layout import segment_bases, segment_path
from goqueue.records.batch import iter_batches
from goqueue.records.compression import Compression
from goqueue.testing.process import BrokerProcess

TIMEOUT_S = 30.0
DELETE_RETENTION_MS = 3000
KEYS = [f"key-{i}".encode() for i in range(6)]
Record = tuple[int, bytes | None, bytes | None, tuple[tuple[str, bytes], ...]]
"""offset, key, value, headers"""


@pytest.fixture
def cleaning_broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    """A broker whose log cleaner looks for work every 100 ms."""
    env = {"GOQUEUE_LOG_CLEANER_BACKOFF_MS": "100"}
    with BrokerProcess(tmp_path / "data", env=env) as process:
        yield process


def create_topic(bootstrap: str, **configs: str) -> str:
    name = unique_topic("compaction")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    (future,) = admin.create_topics([NewTopic(name, 1, 1, config=configs)]).values()
    future.result(TIMEOUT_S)
    return name


def compacted_topic(bootstrap: str) -> str:
    return create_topic(
        bootstrap,
        **{
            "cleanup.policy": "compact",
            "segment.bytes": "4096",
            "min.cleanable.dirty.ratio": "0.01",
            "delete.retention.ms": str(DELETE_RETENTION_MS),
        },
    )


def produce(
    bootstrap: str, topic: str, pairs: list[tuple[bytes | None, bytes | None]], **config: str
) -> list[Record]:
    """Send (key, value) pairs, each with a header naming its index, a few per batch; return
    what the broker acknowledged, in offset order."""
    acked: list[Record] = []
    errors: list[KafkaError] = []

    def on_delivery(
        headers: tuple[tuple[str, bytes], ...], error: KafkaError | None, message: Message
    ) -> None:
        if error is not None:
            errors.append(error)
        else:
            acked.append((message.offset(), message.key(), message.value(), headers))

    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 2, "batch.num.messages": 4, **config}
    )
    for n, (key, value) in enumerate(pairs):
        headers = (("n", str(n).encode()),)
        producer.produce(
            topic, value, key, headers=list(headers), on_delivery=partial(on_delivery, headers)
        )
        producer.poll(0)
    assert producer.flush(TIMEOUT_S) == 0
    assert not errors, errors
    return sorted(acked)


def updates(rounds: int, tag: str) -> list[tuple[bytes | None, bytes | None]]:
    return [(key, f"{tag}-{n}-{key.decode()}".encode() * 4) for n in range(rounds) for key in KEYS]


def consume_all(bootstrap: str, topic: str) -> list[Record]:
    """Every record from the log start to the high watermark, in offset order."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False}
    )
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), TIMEOUT_S)
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        got: list[Record] = []

        def poll() -> bool | None:
            for message in consumer.consume(500, 0.5):
                assert message.error() is None, message.error()
                headers = tuple((name, value or b"") for name, value in message.headers() or [])
                got.append((message.offset(), message.key(), message.value(), headers))
            done = got[-1][0] >= high - 1 if got else high == 0
            return True if done else None

        wait_for(poll, f"records up to offset {high} of {topic}")
        return got
    finally:
        consumer.close()


def partition_dir(broker: BrokerProcess, topic: str) -> Path:
    return broker.data_dir / f"{topic}-0"


def active_base(broker: BrokerProcess, topic: str) -> int:
    return segment_bases(partition_dir(broker, topic))[-1]


def cleaned_up_to(broker: BrokerProcess, topic: str) -> int:
    try:
        return int((partition_dir(broker, topic) / CHECKPOINT_FILE).read_text())
    except (OSError, ValueError):
        return -1


def compacted(acked: list[Record], below: int) -> list[Record]:
    """The newest record of each key below ``below``, and every record from ``below`` on."""
    newest = {key: offset for offset, key, _, _ in acked if offset < below}
    return [r for r in acked if r[0] >= below or newest[r[1]] == r[0]]


def test_compaction_keeps_the_newest_value_per_key_and_drops_tombstones_later(
    cleaning_broker: BrokerProcess,
) -> None:
    bootstrap = cleaning_broker.bootstrap
    topic = compacted_topic(bootstrap)
    acked = produce(bootstrap, topic, updates(40, "old"))
    acked += produce(bootstrap, topic, [(KEYS[0], None), (KEYS[1], None)])
    acked += produce(bootstrap, topic, [(b"other-%d" % n, b"filler" * 20) for n in range(60)])
    end = active_base(cleaning_broker, topic)
    assert end > acked[-60][0], "the tombstones must lie in closed segments"

    wait_for(lambda: cleaned_up_to(cleaning_broker, topic) >= end or None, "a cleaner pass")
    cleaned_at = time.monotonic()
    assert consume_all(bootstrap, topic) == compacted(acked, end)
    tombstones = [r for r in consume_all(bootstrap, topic) if r[2] is None]
    assert [r[1] for r in tombstones] == [KEYS[0], KEYS[1]]

    wait_for(
        lambda: not [r for r in consume_all(bootstrap, topic) if r[2] is None] or None,
        "the tombstones to go after delete.retention.ms",
    )
    assert time.monotonic() - cleaned_at > DELETE_RETENTION_MS / 1000 - 0.5
    survivors = consume_all(bootstrap, topic)
    assert survivors == [r for r in compacted(acked, end) if r[1] not in KEYS[:2]]


def test_compacted_topics_refuse_records_without_a_key(cleaning_broker: BrokerProcess) -> None:
    bootstrap = cleaning_broker.bootstrap
    topic = compacted_topic(bootstrap)
    errors: list[KafkaError] = []
    producer = Producer({"bootstrap.servers": bootstrap, "message.send.max.retries": 0})
    producer.produce(topic, b"no key", on_delivery=lambda error, _: errors.append(error))
    producer.flush(TIMEOUT_S)
    assert [error.code() for error in errors] == [KafkaError.INVALID_RECORD]
    assert "Compacted topic cannot accept message without key" in cleaning_broker.log_text()
    assert produce(bootstrap, topic, [(b"key", b"value")])[0][0] == 0


def test_a_cleaner_killed_mid_pass_leaves_a_readable_log(cleaning_broker: BrokerProcess) -> None:
    """SIGKILL the broker while a cleaned segment exists only as a temporary file (a producer
    keeps the log dirty, so the cleaner keeps rewriting it), restart it and read everything
    back: offsets unchanged, and every key has its newest acknowledged value or a later one."""
    bootstrap = cleaning_broker.bootstrap
    topic = create_topic(
        bootstrap,
        **{"cleanup.policy": "compact", "segment.bytes": "2048", "min.cleanable.dirty.ratio": "0"},
    )
    directory = partition_dir(cleaning_broker, topic)
    acked: dict[int, Record] = {}
    sent: list[bytes] = []
    stop = threading.Event()

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        if error is None:
            acked[message.offset()] = (message.offset(), message.key(), message.value(), ())

    def keep_producing() -> None:
        producer = Producer(
            {"bootstrap.servers": bootstrap, "linger.ms": 2, "message.timeout.ms": 3000}
        )
        for key, value in updates(10_000, "v"):
            if stop.is_set():
                break
            sent.append(value)
            producer.produce(topic, value, key, on_delivery=on_delivery)
            producer.poll(0.0005)
        producer.flush(1)

    producing = threading.Thread(target=keep_producing)
    producing.start()
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not any(n.endswith((".cleaned", ".swap")) for n in os.listdir(directory)):
            assert time.monotonic() < deadline, "never saw the cleaner mid-pass"
            time.sleep(0.0005)
        cleaning_broker.kill()
    finally:
        stop.set()
        producing.join()
    cleaning_broker.start()

    survivors = consume_all(bootstrap, topic)
    offsets = [r[0] for r in survivors]
    assert offsets == sorted(set(offsets))
    assert all(acked[r[0]][1:3] == r[1:3] for r in survivors if r[0] in acked)
    order = {value: n for n, value in enumerate(sent)}
    last_acked = {key: value for _, (_, key, value, _) in sorted(acked.items())}
    last_read = {key: value for _, key, value, _ in survivors}
    assert last_read.keys() == last_acked.keys()
    for key, value in last_acked.items():
        assert value is not None and order[last_read[key]] >= order[value]
    assert not [n for n in os.listdir(directory) if n.endswith((".cleaned", ".swap"))]


def stored_codecs(broker: BrokerProcess, topic: str) -> set[Compression]:
    directory = partition_dir(broker, topic)
    codecs = set()
    for base in segment_bases(directory):
        data = segment_path(directory, base, ".log").read_bytes()
        codecs |= {header.compression for header, _ in iter_batches(data)}
    return codecs


@pytest.mark.parametrize(
    ("topic_codec", "producer_codec", "stored"),
    [
        ("zstd", "none", Compression.zstd),
        ("zstd", "gzip", Compression.zstd),
        ("uncompressed", "lz4", Compression.none),
        ("snappy", "snappy", Compression.snappy),
        ("producer", "lz4", Compression.lz4),
    ],
)
def test_compression_type_decides_the_stored_codec(
    shared_broker: BrokerProcess, topic_codec: str, producer_codec: str, stored: Compression
) -> None:
    bootstrap = shared_broker.bootstrap
    topic = create_topic(bootstrap, **{"compression.type": topic_codec})
    sent = produce(
        bootstrap, topic, updates(20, "compressible"), **{"compression.type": producer_codec}
    )
    assert stored_codecs(shared_broker, topic) == {stored}
    assert consume_all(bootstrap, topic) == sent
