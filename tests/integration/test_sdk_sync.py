"""`goqueue.client.sync` against a real broker: the blocking clients over the async ones."""

from __future__ import annotations

import threading

import pytest
from client_compat import collect, unique_topic
from group_helpers import group_broker

from goqueue.client import TopicAlreadyExistsError
from goqueue.client.configs import AlterConfigOp, ConfigResource, OpType
from goqueue.client.metadata import TopicPartition
from goqueue.client.offsets import LATEST
from goqueue.client.sync import Admin, Consumer, Producer
from goqueue.testing.process import BrokerProcess

pytestmark = pytest.mark.integration
__all__ = ["group_broker"]
"""The group broker fixture: rebalances in 100 ms rather than the default 3 s."""


def test_sync_admin_manages_topics_configs_and_groups(group_broker: BrokerProcess) -> None:
    name = unique_topic("sync-admin")
    group = unique_topic("sync-group")
    tp = TopicPartition(name, 0)
    with Admin(group_broker.bootstrap) as admin:
        created = admin.create_topic(name, 2, configs={"retention.ms": "60000"})
        assert created.num_partitions == 2
        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topic(name)
        assert name in [t.name for t in admin.list_topics()]
        admin.create_partitions(name, 3)
        (described,) = admin.describe_topics([name])
        assert len(described.partitions) == 3
        topic = ConfigResource.topic(name)
        admin.incremental_alter_configs(topic, [AlterConfigOp("retention.ms", OpType.SET, "5000")])
        assert admin.describe_topic_configs(name)["retention.ms"] == "5000"
        assert admin.list_offsets({tp: LATEST})[tp].offset == 0
        admin.alter_group_offsets(group, {tp: 0})
        (lag,) = admin.group_lag(group)
        assert (lag.topic, lag.partition, lag.lag) == (name, 0, 0)
        admin.delete_groups([group])
        assert admin.describe_cluster().brokers[0].port == group_broker.port
        admin.delete_topics([name])
        assert name not in [t.name for t in admin.list_topics()]


def test_sync_admins_work_from_several_threads_at_once(group_broker: BrokerProcess) -> None:
    """Each thread blocks on its own call while the one loop thread serves them all."""
    names = [unique_topic(f"sync-thread-{i}") for i in range(4)]
    errors: list[BaseException] = []

    def create(name: str) -> None:
        try:
            with Admin(group_broker.bootstrap) as admin:
                admin.create_topic(name, 1)
                admin.describe_topics([name])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with Admin(group_broker.bootstrap) as admin:
        listed = {t.name for t in admin.list_topics()}
        assert set(names) <= listed
        admin.delete_topics(names)


def test_sync_producer_sends_enqueues_and_flushes(group_broker: BrokerProcess) -> None:
    name = unique_topic("sync-producer")
    tp = TopicPartition(name, 0)
    delivered: list[int] = []
    with Admin(group_broker.bootstrap) as admin:
        admin.create_topic(name, 1)
    with Producer(group_broker.bootstrap, linger_ms=20) as producer:
        first = producer.send(name, b"first", key=b"k", headers=[("h", b"v")])
        assert (first.topic, first.partition, first.offset) == (name, 0, 0)
        futures = [
            producer.enqueue(name, b"%d" % i, on_delivery=lambda m: delivered.append(m.offset))
            for i in range(500)
        ]
        producer.flush()
        assert all(future.done() for future in futures)
        assert [future.result().offset for future in futures] == list(range(1, 501))
    assert sorted(delivered) == list(range(1, 501))
    with Admin(group_broker.bootstrap) as admin:
        assert admin.list_offsets({tp: LATEST})[tp].offset == 501


def test_sync_consumer_iterates_a_group_commits_and_seeks(group_broker: BrokerProcess) -> None:
    name = unique_topic("sync-consumer")
    group = unique_topic("sync-consumer-group")
    tp = TopicPartition(name, 0)
    with Admin(group_broker.bootstrap) as admin:
        admin.create_topic(name, 1)
    with Producer(group_broker.bootstrap) as producer:
        for i in range(20):
            producer.enqueue(name, b"value %d" % i, key=b"k", headers={"n": str(i).encode()})
        producer.flush()
    with Consumer(
        group_broker.bootstrap,
        group_id=group,
        topics=[name],
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    ) as consumer:
        received = []
        for message in consumer:
            received.append(message)
            if len(received) == 10:
                break
        assert [m.value for m in received] == [b"value %d" % i for i in range(10)]
        assert (received[3].topic, received[3].partition, received[3].offset) == (name, 0, 3)
        assert received[3].key == b"k"
        assert dict(received[3].headers) == {"n": b"3"}
        consumer.commit()
        assert consumer.committed([tp])[tp].offset == 10
        assert consumer.assignment() == {tp}
        consumer.seek(tp, 18)
        rest = collect(
            lambda missing: [
                m.value for ms in consumer.getmany(1000, missing).values() for m in ms
            ],
            2,
            "the last two messages",
        )
        assert rest == [b"value 18", b"value 19"]
        consumer.commit_async({tp: 5}).result(timeout=30)
    with Admin(group_broker.bootstrap) as admin:
        assert admin.list_group_offsets(group)[tp].offset == 5
