"""Idempotent producers against a real broker: InitProducerId, Kafka's sequence rules on the
wire, and confluent-kafka and kafka-python producers with idempotence on while the broker is
SIGKILLed and restarted: afterwards every partition holds each message once, in order."""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from client_compat import read_back, unique_topic
from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaProducer
from kio.schema.errors import ErrorCode

from goqueue.client.cluster import Cluster
from goqueue.client.errors import KafkaError as GoqueueKafkaError
from goqueue.client.metadata import TopicPartition as GoqueueTopicPartition
from goqueue.client.producer import produce_batches
from goqueue.records.builder import NewRecord, build_batch
from goqueue.testing.process import BrokerProcess

pytestmark = pytest.mark.integration

INIT_PRODUCER_ID = 22
IO_TIMEOUT_S = 30.0


# InitProducerId and the sequence rules, spoken directly with goqueue.client.


async def init_producer_id(cluster: Cluster, **fields: Any) -> Any:
    connection = await cluster.any_connection()
    timeout = datetime.timedelta(minutes=1)
    request = {"transactional_id": None, "transaction_timeout": timeout, **fields}
    return await connection.request(INIT_PRODUCER_ID, request)


def run(broker: BrokerProcess, scenario: Callable[[Cluster], Any]) -> Any:
    async def main() -> Any:
        async with Cluster(broker.bootstrap) as cluster:
            return await scenario(cluster)

    return asyncio.run(main())


def new_producer_id(broker: BrokerProcess) -> int:
    async def scenario(cluster: Cluster) -> int:
        response = await init_producer_id(cluster)
        assert response.error_code == ErrorCode.none
        assert response.producer_epoch == 0
        return int(response.producer_id)

    return int(run(broker, scenario))


def test_producer_ids_are_never_handed_out_twice_across_restarts(broker: BrokerProcess) -> None:
    ids = [new_producer_id(broker), new_producer_id(broker)]
    broker.restart()
    ids.append(new_producer_id(broker))
    broker.kill()
    broker.start()
    ids.append(new_producer_id(broker))
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)


def test_init_producer_id_answers_as_kafka_without_transactions(
    shared_broker: BrokerProcess,
) -> None:
    async def scenario(cluster: Cluster) -> None:
        first = await init_producer_id(cluster)
        assert first.error_code == ErrorCode.none
        again = await init_producer_id(
            cluster, producer_id=first.producer_id, producer_epoch=first.producer_epoch
        )
        assert again.error_code == ErrorCode.none
        assert (again.producer_id != first.producer_id, again.producer_epoch) == (True, 0)
        half = await init_producer_id(cluster, producer_id=first.producer_id, producer_epoch=-1)
        assert (half.error_code, half.producer_id) == (ErrorCode.invalid_request, -1)
        empty = await init_producer_id(cluster, transactional_id="")
        assert empty.error_code == ErrorCode.invalid_request
        transactional = await init_producer_id(cluster, transactional_id="payments")
        assert transactional.error_code == ErrorCode.coordinator_not_available
        assert (transactional.producer_id, transactional.producer_epoch) == (-1, -1)

    run(shared_broker, scenario)


def test_sequence_rules_on_the_wire_survive_a_kill(broker: BrokerProcess) -> None:
    """Duplicates get their original offsets and are not written again, gaps and stale epochs
    are refused, and all of it holds after a SIGKILL (state rebuilt from the log)."""
    topic = unique_topic("sequences")
    tp = GoqueueTopicPartition(topic, 0)
    producer_id = new_producer_id(broker)

    def batch(seq: int, count: int = 1, epoch: int = 0) -> bytes:
        records = [NewRecord(None, b"%d" % (seq + i)) for i in range(count)]
        return build_batch(
            records, producer_id=producer_id, producer_epoch=epoch, base_sequence=seq
        )

    async def send(cluster: Cluster, data: bytes) -> int | ErrorCode:
        try:
            results = await produce_batches(cluster, {tp: data})
        except GoqueueKafkaError as exc:
            return exc.code
        return results[tp].base_offset

    async def before_kill(cluster: Cluster) -> None:
        await cluster.topic(topic, auto_create=True)
        assert await send(cluster, batch(0, 3)) == 0
        assert await send(cluster, batch(3, 2)) == 3
        assert await send(cluster, batch(0, 3)) == 0
        assert await send(cluster, batch(6)) == ErrorCode.out_of_order_sequence_number

    async def after_kill(cluster: Cluster) -> None:
        assert await send(cluster, batch(3, 2)) == 3
        assert await send(cluster, batch(5)) == 5
        assert await send(cluster, batch(0, epoch=1)) == 6
        assert await send(cluster, batch(6)) == ErrorCode.invalid_producer_epoch
        assert await send(cluster, batch(2, epoch=2)) == ErrorCode.out_of_order_sequence_number

    run(broker, before_kill)
    broker.kill()
    broker.start()
    run(broker, after_kill)
    assert broker.log_text().count("unclean") >= 1


# Real idempotent producers while the broker is killed.

PARTITIONS = 3
KILL_AT_ACKED = (400, 1300, 2200)
FINAL_ACKED = 3000
MAX_OUTSTANDING = 600
BURST = 200
"""Messages sent just before each kill without waiting, so that it catches some in flight."""
TEST_BUDGET_S = 60.0


@dataclass
class Ledger:
    """Delivery reports by (partition, sequence number within the partition)."""

    acked: dict[tuple[int, int], int] = field(default_factory=dict)
    """(partition, sequence) -> the offset its acknowledgement named."""
    failed: dict[tuple[int, int], str] = field(default_factory=dict)

    def done(self, partition: int, seq: int, offset: int | None, error: str | None) -> None:
        if error is None:
            assert offset is not None
            self.acked[(partition, seq)] = offset
        else:
            self.failed[(partition, seq)] = error

    @property
    def reported(self) -> int:
        return len(self.acked) + len(self.failed)

    def reported_at_least(self, count: int) -> Callable[[], bool]:
        return lambda: self.reported >= count


class NumberedSender:
    """Sends 0, 1, 2, ... to each partition in turn (value "<partition>:<sequence>") through
    one client, keeping many messages in flight so a kill catches some."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.sent = [0] * PARTITIONS
        self._next = 0

    def send_next(self) -> None:
        partition = self._next % PARTITIONS
        self._next += 1
        seq = self.sent[partition]
        self.sent[partition] += 1
        self.send(partition, seq, b"%d:%d" % (partition, seq))

    def send(self, partition: int, seq: int, value: bytes) -> None:
        raise NotImplementedError

    def outstanding(self) -> int:
        return self._next - self.ledger.reported

    def serve(self, timeout: float) -> None:
        """Let the client deliver and report for up to `timeout` seconds."""
        raise NotImplementedError

    def run_until(self, done: Callable[[], bool], deadline: float, what: str) -> None:
        """Keep the pipeline full until `done()`."""
        while not done():
            self._check(deadline, what)
            if self.outstanding() < MAX_OUTSTANDING:
                self.send_next()
                self.serve(0)
            else:
                self.serve(0.05)

    def wait_until(self, done: Callable[[], bool], deadline: float, what: str) -> None:
        """Send nothing more until `done()`."""
        while not done():
            self._check(deadline, what)
            self.serve(0.001)

    def _check(self, deadline: float, what: str) -> None:
        if time.monotonic() > deadline:
            pytest.fail(
                f"timed out waiting for {what}: {len(self.ledger.acked)} acknowledged, "
                f"{len(self.ledger.failed)} failed, {self.outstanding()} outstanding"
            )

    def drain(self, deadline: float) -> None:
        while self.outstanding():
            assert time.monotonic() < deadline, f"{self.outstanding()} never acknowledged"
            self.serve(0.1)


class ConfluentSender(NumberedSender):
    def __init__(self, bootstrap: str, topic: str, ledger: Ledger) -> None:
        super().__init__(ledger)
        self.topic = topic
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "linger.ms": 2,
                "batch.num.messages": 40,
                "message.timeout.ms": int(TEST_BUDGET_S * 1000),
                "retry.backoff.ms": 20,
                "retry.backoff.max.ms": 200,
                "reconnect.backoff.ms": 20,
                "reconnect.backoff.max.ms": 200,
            }
        )

    def send(self, partition: int, seq: int, value: bytes) -> None:
        def report(error: KafkaError | None, message: Message) -> None:
            self.ledger.done(partition, seq, message.offset(), str(error) if error else None)

        self.producer.produce(self.topic, value=value, partition=partition, on_delivery=report)

    def serve(self, timeout: float) -> None:
        self.producer.poll(timeout)


class KafkaPythonSender(NumberedSender):
    def __init__(self, bootstrap: str, topic: str, ledger: Ledger) -> None:
        super().__init__(ledger)
        self.topic = topic
        self.producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            linger_ms=2,
            batch_size=256,
            retry_backoff_ms=20,
            reconnect_backoff_ms=20,
            reconnect_backoff_max_ms=200,
            delivery_timeout_ms=int(TEST_BUDGET_S * 1000),
        )
        assert self.producer.config["enable_idempotence"], "idempotence is kafka-python's default"

    def send(self, partition: int, seq: int, value: bytes) -> None:
        future = self.producer.send(self.topic, value=value, partition=partition)
        future.add_callback(lambda meta: self.ledger.done(partition, seq, meta.offset, None))
        future.add_errback(lambda exc: self.ledger.done(partition, seq, None, repr(exc)))

    def serve(self, timeout: float) -> None:
        if timeout:
            time.sleep(timeout)


def create_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS)])
    futures[topic].result(timeout=IO_TIMEOUT_S)


SENDERS = {"confluent-kafka": ConfluentSender, "kafka-python": KafkaPythonSender}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("client", sorted(SENDERS))
def test_idempotent_producer_through_sigkills_writes_each_message_once_in_order(
    broker: BrokerProcess, client: str
) -> None:
    started = time.monotonic()
    deadline = started + TEST_BUDGET_S
    topic = unique_topic(f"idempotence-{client}")
    create_topic(broker.bootstrap, topic)
    ledger = Ledger()
    sender = SENDERS[client](broker.bootstrap, topic, ledger)

    for target in KILL_AT_ACKED:
        sender.run_until(ledger.reported_at_least(target), deadline, f"{target} reports")
        before = ledger.reported
        for _ in range(BURST):
            sender.send_next()
        sender.wait_until(ledger.reported_at_least(before + 1), deadline, "the burst's first ack")
        assert sender.outstanding() > 0, "the kill should catch messages in flight"
        broker.kill()
        broker.start()
    sender.run_until(ledger.reported_at_least(FINAL_ACKED), deadline, f"{FINAL_ACKED} reports")
    sender.drain(deadline)
    assert not ledger.failed, f"failed deliveries: {dict(list(ledger.failed.items())[:5])}"

    stored = read_back(broker.bootstrap, topic, PARTITIONS)
    for partition in range(PARTITIONS):
        expected = [b"%d:%d" % (partition, seq) for seq in range(sender.sent[partition])]
        got = [value for _, value in stored[partition]]
        first_wrong = next(
            (i for i, pair in enumerate(zip(got, expected, strict=False)) if pair[0] != pair[1]),
            min(len(got), len(expected)),
        )
        assert got == expected, (
            f"partition {partition}: {len(got)} stored for {len(expected)} sent; first "
            f"difference at {first_wrong}: {got[first_wrong : first_wrong + 3]} vs "
            f"{expected[first_wrong : first_wrong + 3]}"
        )
        offsets = dict(stored[partition])
        for seq in range(len(expected)):
            offset = ledger.acked[(partition, seq)]
            assert offsets[offset] == expected[seq], f"ack of {partition}:{seq} named {offset}"
    assert broker.log_text().count("unclean") >= len(KILL_AT_ACKED)
