"""Crash safety: SIGKILL the broker repeatedly under an acks=all producer; every acknowledged
message must be found afterwards exactly at the offset its acknowledgement named, and the data
directory must pass `goqueue log verify`."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, TopicPartition

from goqueue.testing.process import BrokerProcess

pytestmark = pytest.mark.integration

TOPIC = "crash"
PARTITIONS = 2
KILL_AT_ACKED = (300, 1100, 1700, 3200)
"""Acknowledged-message counts at which a SIGKILL hits. Unevenly spaced, and with many
messages in flight each time, so the kills land at different points of the producer's batches."""
FINAL_ACKED = 4500
MAX_OUTSTANDING = 2000
"""Messages the producer may have unacknowledged: enough for several batches in flight."""
BATCH_MESSAGES = 50
"""Small batches, so that each kill interrupts a stream of many produce requests."""
TEST_BUDGET_S = 80.0
IO_TIMEOUT_S = 30.0


@dataclass
class Ledger:
    """What the producer's delivery reports said, keyed by sequence number."""

    acked: dict[int, tuple[int, int]] = field(default_factory=dict)
    """Sequence number -> (partition, offset) from the acknowledgement."""
    failed: dict[int, str] = field(default_factory=dict)

    def on_delivery(self, error: KafkaError | None, message: Message) -> None:
        seq = int(message.value())
        if error is None:
            self.acked[seq] = (message.partition(), message.offset())
        else:
            self.failed[seq] = str(error)

    def acked_at_least(self, count: int) -> Callable[[], bool]:
        return lambda: len(self.acked) >= count


class NumberedProducer:
    """Sends values 0, 1, 2, ... round-robin over the partitions, keeping the pipeline full."""

    def __init__(self, bootstrap: str, ledger: Ledger) -> None:
        self._ledger = ledger
        self._next_seq = 0
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "enable.idempotence": False,
                "linger.ms": 2,
                "batch.num.messages": BATCH_MESSAGES,
                "message.timeout.ms": int(TEST_BUDGET_S * 1000),
                "retry.backoff.ms": 20,
                "retry.backoff.max.ms": 200,
                "reconnect.backoff.ms": 20,
                "reconnect.backoff.max.ms": 200,
            }
        )

    def run_until(self, done: Callable[[], bool], deadline: float, what: str) -> None:
        """Produce and serve delivery reports until `done()`, failing at the deadline."""
        while not done():
            if time.monotonic() > deadline:
                pytest.fail(
                    f"timed out waiting for {what}: {len(self._ledger.acked)} acknowledged, "
                    f"{len(self._ledger.failed)} failed, {len(self.producer)} outstanding"
                )
            if len(self.producer) < MAX_OUTSTANDING:
                seq = self._next_seq
                self._next_seq += 1
                self.producer.produce(
                    TOPIC,
                    value=str(seq).encode(),
                    partition=seq % PARTITIONS,
                    on_delivery=self._ledger.on_delivery,
                )
                self.producer.poll(0)
            else:
                self.producer.poll(0.05)

    def drain(self, deadline: float) -> None:
        """Send nothing more; wait until every message sent was acknowledged or failed."""
        left = self.producer.flush(max(0.0, deadline - time.monotonic()))
        assert left == 0, f"{left} messages neither acknowledged nor failed by the deadline"


def create_topic(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(TOPIC, num_partitions=PARTITIONS)])
    futures[TOPIC].result(timeout=IO_TIMEOUT_S)


def read_all(bootstrap: str, deadline: float) -> dict[int, dict[int, int]]:
    """Every stored message, read from the beginning by manual assignment:
    partition -> offset -> sequence number."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
    )
    try:
        partitions = [TopicPartition(TOPIC, index) for index in range(PARTITIONS)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        stored: dict[int, dict[int, int]] = {index: {} for index in range(PARTITIONS)}
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            assert time.monotonic() < deadline, f"read back only {stored} of {ends}"
            for tp, records in consumer.poll(timeout_ms=500).items():
                for record in records:
                    stored[tp.partition][record.offset] = int(record.value)
        for tp in partitions:
            assert sorted(stored[tp.partition]) == list(range(ends[tp])), "offsets not dense"
        return stored
    finally:
        consumer.close()


@pytest.mark.timeout(90)
def test_acknowledged_messages_survive_sigkill(broker: BrokerProcess) -> None:
    started = time.monotonic()
    deadline = started + TEST_BUDGET_S
    create_topic(broker.bootstrap)
    ledger = Ledger()
    producer = NumberedProducer(broker.bootstrap, ledger)

    for target in KILL_AT_ACKED:
        producer.run_until(ledger.acked_at_least(target), deadline, f"{target} acks")
        assert len(producer.producer) > 0, "the kill should catch messages in flight"
        broker.kill()
        broker.start()
    producer.run_until(ledger.acked_at_least(FINAL_ACKED), deadline, f"{FINAL_ACKED} acks")
    producer.drain(deadline)

    stored = read_all(broker.bootstrap, deadline)
    misplaced = {
        seq: (partition, offset, stored[partition].get(offset))
        for seq, (partition, offset) in ledger.acked.items()
        if stored[partition].get(offset) != seq
    }
    first = dict(sorted(misplaced.items())[:10])
    assert not misplaced, (
        f"{len(misplaced)} of {len(ledger.acked)} acknowledged messages are not where their "
        f"acknowledgement said (seq: partition, offset, found): {first}"
    )
    assert broker.log_text().count("unclean") >= len(KILL_AT_ACKED), "no recovery after a kill"

    assert broker.stop() == 0
    verify = subprocess.run(
        [sys.executable, "-m", "goqueue.cli.main", "log", "verify", str(broker.data_dir)],
        capture_output=True,
        text=True,
        timeout=IO_TIMEOUT_S,
    )
    assert verify.returncode == 0, f"log verify failed:\n{verify.stdout}\n{verify.stderr}"
    assert time.monotonic() - started < 90
