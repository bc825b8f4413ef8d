"""Clean shutdown on SIGTERM and Ctrl-C, and what survives a restart."""

from __future__ import annotations

import signal

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from goqueue.testing.process import BrokerProcess

MESSAGES = 500
DEADLINE_S = 30.0


def _create(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=2, config={"retention.ms": "-1"})])[
        topic
    ].result(DEADLINE_S)


def _produce(bootstrap: str, topic: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for number in range(MESSAGES):
        producer.produce(topic, value=str(number).encode(), partition=number % 2)
    assert producer.flush(DEADLINE_S) == 0


def _consume_all(bootstrap: str, topic: str) -> list[bytes]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "lifecycle", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, partition, 0) for partition in (0, 1)])
    values: list[bytes] = []
    try:
        while len(values) < MESSAGES:
            message = consumer.poll(DEADLINE_S)
            assert message is not None, f"only {len(values)} of {MESSAGES} messages came back"
            assert message.error() is None, message.error()
            values.append(message.value())
    finally:
        consumer.close()
    return values


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_clean_shutdown_keeps_topics_and_data_and_skips_recovery(
    broker: BrokerProcess, sig: signal.Signals
) -> None:
    _create(broker.bootstrap, "kept")
    _produce(broker.bootstrap, "kept")

    assert broker.stop(sig=sig) == 0
    assert (broker.data_dir / ".clean-shutdown").exists()
    assert "shutdown complete" in broker.log_text()

    log_offset = len(broker.log_text())
    broker.start()
    assert "unclean" not in broker.log_text(log_offset)
    assert not (broker.data_dir / ".clean-shutdown").exists()

    metadata = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(
        "kept", timeout=DEADLINE_S
    )
    assert sorted(metadata.topics["kept"].partitions) == [0, 1]
    assert sorted(int(value) for value in _consume_all(broker.bootstrap, "kept")) == list(
        range(MESSAGES)
    )


def test_unclean_shutdown_is_noticed_on_restart(broker: BrokerProcess) -> None:
    _create(broker.bootstrap, "after-crash")
    _produce(broker.bootstrap, "after-crash")
    broker.kill()
    assert not (broker.data_dir / ".clean-shutdown").exists()
    log_offset = len(broker.log_text())
    broker.start()
    assert "unclean" in broker.log_text(log_offset)
    assert len(_consume_all(broker.bootstrap, "after-crash")) == MESSAGES
