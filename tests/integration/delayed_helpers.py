"""What the delayed-message tests share: a broker with short scheduler windows (so messages a
few seconds away already go through the window files on disk), topics with delayed delivery,
and a confluent-kafka reader that notes when each message arrived."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from client_compat import DEADLINE_S, unique_topic
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from goqueue.testing.process import BrokerProcess

WINDOW_MS = 1000
DELAYED_ENV = {"GOQUEUE_SCHEDULER_WINDOW_MS": str(WINDOW_MS)}


@pytest.fixture(scope="module")
def delayed_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    with BrokerProcess(tmp_path_factory.mktemp("delayed") / "data", env=DELAYED_ENV) as process:
        yield process


def create_delayed_topic(bootstrap: str, prefix: str, partitions: int = 1, **configs: str) -> str:
    name = unique_topic(prefix)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    config = {"goqueue.delayed.enabled": "true", **configs}
    for future in admin.create_topics([NewTopic(name, partitions, 1, config=config)]).values():
        future.result(DEADLINE_S)
    return name


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Arrival:
    """A consumed message and when the consumer got it."""

    partition: int
    offset: int
    value: bytes
    headers: dict[str, bytes]
    timestamp_ms: int
    received_ms: int

    @property
    def scheduled_ms(self) -> int:
        return int(self.headers["goqueue.scheduled-at"])


class Reader:
    """A confluent-kafka consumer of every partition of a topic from its start."""

    def __init__(self, bootstrap: str, topic: str, partitions: int = 1) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "delayed-reader",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 50,
            }
        )
        self._consumer.assign(
            [TopicPartition(topic, index, OFFSET_BEGINNING) for index in range(partitions)]
        )

    def poll(self, timeout_s: float = 0.2) -> list[Arrival]:
        arrivals = []
        for message in self._consumer.consume(num_messages=10_000, timeout=timeout_s):
            assert message.error() is None, message.error()
            arrivals.append(
                Arrival(
                    message.partition(),
                    message.offset(),
                    message.value(),
                    dict(message.headers() or []),
                    message.timestamp()[1],
                    now_ms(),
                )
            )
        return arrivals

    def read(self, count: int, timeout_s: float = DEADLINE_S) -> list[Arrival]:
        got: list[Arrival] = []
        deadline = time.monotonic() + timeout_s
        while len(got) < count:
            assert time.monotonic() < deadline, f"only {len(got)} of {count} messages arrived"
            got += self.poll()
        return got

    def close(self) -> None:
        self._consumer.close()
