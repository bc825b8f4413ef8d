"""Topic management on a running broker with kafka-python, aiokafka and confluent-kafka admin
clients: configs change without a restart and take effect at once (retention, max message size,
segment size), partitions are added and used, records are deleted, and bad requests are refused
with Kafka's error codes while nothing changes.

The broker checks retention every 100 ms (GOQUEUE_LOG_RETENTION_CHECK_INTERVAL_MS), so a lower
retention shows within a poll deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import TopicPartition as AioTopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.admin import NewPartitions as AioNewPartitions
from aiokafka.admin import NewTopic as AioNewTopic
from aiokafka.admin.config_resource import ConfigResource as AioConfigResource
from aiokafka.admin.config_resource import ConfigResourceType as AioResourceType
from client_compat import unique_topic, wait_for
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka import TopicPartition as CkTopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigSource
from confluent_kafka.admin import ConfigResource as CkConfigResource
from confluent_kafka.admin import NewPartitions as CkNewPartitions
from confluent_kafka.admin import NewTopic as CkNewTopic
from confluent_kafka.admin import ResourceType as CkResourceType
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition
from kafka.admin import (
    ConfigResource,
    ConfigResourceType,
    KafkaAdminClient,
    NewPartitions,
    NewTopic,
)
from kafka.errors import (
    InvalidPartitionsError,
    MessageSizeTooLargeError,
    OffsetOutOfRangeError,
)
from kio.schema.errors import ErrorCode

from goqueue.client.admin import Admin
from goqueue.client.cluster import Cluster
from goqueue.client.configs import (
    INCREMENTAL_ALTER_CONFIGS,
    AlterConfigOp,
    OpType,
    incremental_alter_configs_request,
)
from goqueue.client.configs import ConfigResource as ConfigResource_
from goqueue.client.errors import OffsetOutOfRangeError as GoOffsetOutOfRangeError
from goqueue.client.fetcher import fetch
from goqueue.client.metadata import TopicPartition
from goqueue.testing.process import BrokerProcess

pytestmark = pytest.mark.integration

RETENTION_CHECK = {"GOQUEUE_LOG_RETENTION_CHECK_INTERVAL_MS": "100"}
SMALL_SEGMENTS = {"segment.bytes": "1024"}
HOUR_MS = 3_600_000
TIMEOUT_S = 15.0


@pytest.fixture(scope="module")
def hot_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One broker for the module; tests change only their own topics' configs."""
    with BrokerProcess(tmp_path_factory.mktemp("hot") / "data", env=RETENTION_CHECK) as process:
        yield process


@pytest.fixture(scope="module")
def kp_admin(hot_broker: BrokerProcess) -> Iterator[KafkaAdminClient]:
    admin = KafkaAdminClient(bootstrap_servers=hot_broker.bootstrap)
    yield admin
    admin.close()


@pytest.fixture(scope="module")
def kp_producer(hot_broker: BrokerProcess) -> Iterator[KafkaProducer]:
    producer = KafkaProducer(bootstrap_servers=hot_broker.bootstrap, enable_idempotence=False)
    yield producer
    producer.close()


def segment_files(broker: BrokerProcess, topic: str, partition: int = 0) -> list[str]:
    return sorted(path.name for path in (broker.data_dir / f"{topic}-{partition}").glob("*.log"))


def offsets(broker: BrokerProcess, topic: str, partition: int = 0) -> tuple[int, int]:
    """(log start offset, high watermark) of a partition, as a consumer sees them."""
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    try:
        tp = KpTopicPartition(topic, partition)
        return consumer.beginning_offsets([tp])[tp], consumer.end_offsets([tp])[tp]
    finally:
        consumer.close()


def kp_produce(producer: KafkaProducer, topic: str, values: list[bytes], **kwargs: Any) -> None:
    """One batch per message (each send waits), so segments hold few batches each."""
    for value in values:
        producer.send(topic, value, **kwargs).get(timeout=TIMEOUT_S)


def kp_describe(admin: KafkaAdminClient, topic: str) -> dict[str, dict[str, Any]]:
    resource = ConfigResource(ConfigResourceType.TOPIC, topic)
    described = admin.describe_configs([resource], include_synonyms=True, config_filter="all")
    return described["topic"][topic]  # type: ignore[no-any-return]


def old_and_new(count_old: int, count_new: int) -> tuple[list[bytes], list[bytes]]:
    return (
        [b"old %03d " % i * 20 for i in range(count_old)],
        [b"new %03d " % i * 20 for i in range(count_new)],
    )


# -- kafka-python ---------------------------------------------------------------------------


def test_kafka_python_lower_retention_deletes_old_segments_without_restart(
    hot_broker: BrokerProcess, kp_admin: KafkaAdminClient, kp_producer: KafkaProducer
) -> None:
    topic = unique_topic("kp-retention")
    kp_admin.create_topics([NewTopic(topic, 1, 1, topic_configs=SMALL_SEGMENTS)])
    old, new = old_and_new(20, 10)
    kp_produce(kp_producer, topic, old, timestamp_ms=int(time.time() * 1000) - HOUR_MS)
    kp_produce(kp_producer, topic, new)
    segments_before = len(segment_files(hot_broker, topic))
    assert segments_before > 4
    assert offsets(hot_broker, topic) == (0, 30)

    resource = ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "600000"})
    assert kp_admin.alter_configs([resource]) == {"topic": {topic: "OK"}}
    retention = kp_describe(kp_admin, topic)["retention.ms"]
    assert (retention["value"], retention["config_source"]) == ("600000", "DYNAMIC_TOPIC_CONFIG")

    start = wait_for(
        lambda: offsets(hot_broker, topic)[0] or None, "retention to delete the old segments"
    )
    assert 0 < start <= 20
    assert len(segment_files(hot_broker, topic)) < segments_before
    consumer = KafkaConsumer(
        topic, bootstrap_servers=hot_broker.bootstrap, auto_offset_reset="earliest"
    )
    try:
        got = []
        deadline = time.monotonic() + TIMEOUT_S
        while len(got) < 30 - start and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                got += [(r.offset, r.value) for r in records]
    finally:
        consumer.close()
    assert [offset for offset, _ in got] == list(range(start, 30))
    assert [value for _, value in got][-10:] == new


def test_log_append_time_topics_stamp_batches_with_the_broker_clock(
    hot_broker: BrokerProcess, kp_admin: KafkaAdminClient, kp_producer: KafkaProducer
) -> None:
    topic = unique_topic("kp-append-time")
    configs = {"message.timestamp.type": "LogAppendTime"}
    kp_admin.create_topics([NewTopic(topic, 1, 1, topic_configs=configs)])
    an_hour_ago = int(time.time() * 1000) - HOUR_MS
    before = int(time.time() * 1000)
    sent = kp_producer.send(topic, b"stamped", timestamp_ms=an_hour_ago).get(timeout=TIMEOUT_S)
    after = int(time.time() * 1000)
    assert before <= sent.timestamp <= after, "the Produce answer carries the append time"

    consumer = KafkaConsumer(bootstrap_servers=hot_broker.bootstrap, consumer_timeout_ms=10_000)
    try:
        consumer.assign([KpTopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        record = next(consumer)
    finally:
        consumer.close()
    assert (record.value, record.timestamp_type, record.timestamp) == (
        b"stamped",
        1,
        sent.timestamp,
    )


def test_kafka_python_smaller_max_message_bytes_rejects_the_next_large_batch(
    hot_broker: BrokerProcess, kp_admin: KafkaAdminClient, kp_producer: KafkaProducer
) -> None:
    topic = unique_topic("kp-max-message")
    kp_admin.create_topics([NewTopic(topic, 1, 1, topic_configs=SMALL_SEGMENTS)])
    kp_produce(kp_producer, topic, [b"x" * 2000])
    legacy = ConfigResource(ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": "1000"})
    assert kp_admin.alter_configs([legacy], incremental=False) == {"topic": {topic: "OK"}}
    with pytest.raises(MessageSizeTooLargeError):
        kp_produce(kp_producer, topic, [b"x" * 2000])
    kp_produce(kp_producer, topic, [b"y" * 100])
    assert offsets(hot_broker, topic) == (0, 2)
    limit = kp_describe(kp_admin, topic)["max.message.bytes"]
    assert (limit["value"], limit["config_source"]) == ("1000", "DYNAMIC_TOPIC_CONFIG")


def test_kafka_python_refusals_change_nothing(
    hot_broker: BrokerProcess, kp_admin: KafkaAdminClient, kp_producer: KafkaProducer
) -> None:
    topic = unique_topic("kp-refusals")
    kp_admin.create_topics([NewTopic(topic, 3, 1, topic_configs={"flush.ms": "500"})])
    kp_produce(kp_producer, topic, [b"a", b"b"], partition=0)

    def alter(resource: ConfigResource) -> str:
        (result,) = kp_admin.alter_configs([resource], raise_on_unknown=False)[
            resource.resource_type.name.lower()
        ].values()
        return str(result)

    topic_resource = ConfigResourceType.TOPIC
    half_bad = {"flush.ms": "10", "retention.ms": "-5"}
    refused = alter(ConfigResource(topic_resource, topic, configs=half_bad))
    assert "InvalidConfigurationError" in refused
    assert "Invalid value -5 for configuration retention.ms: Value must be at least -1" in refused
    unknown = alter(ConfigResource(topic_resource, topic, configs={"retention.hours": "1"}))
    assert "Unknown topic config name: retention.hours" in unknown
    missing = alter(ConfigResource(topic_resource, f"{topic}-missing", configs={"flush.ms": "1"}))
    assert "UnknownTopicOrPartitionError" in missing
    broker = ConfigResourceType.BROKER
    read_only = alter(ConfigResource(broker, "0", configs={"num.partitions": "5"}))
    assert "InvalidRequestError" in read_only
    assert "Cannot update these configs dynamically: num.partitions" in read_only
    assert kp_describe(kp_admin, topic)["flush.ms"]["value"] == "500"

    for total in (2, 3):
        with pytest.raises(InvalidPartitionsError):
            kp_admin.create_partitions({topic: NewPartitions(total)})
    with pytest.raises(OffsetOutOfRangeError):
        kp_admin.delete_records({KpTopicPartition(topic, 0): 3})
    metadata = kp_admin.describe_topics([topic])
    assert len(metadata[0]["partitions"]) == 3
    assert offsets(hot_broker, topic) == (0, 2)
    kp_produce(kp_producer, topic, [b"still serving"], partition=0)
    assert offsets(hot_broker, topic) == (0, 3)


def test_a_broker_resource_naming_another_broker_is_refused(hot_broker: BrokerProcess) -> None:
    """Clients route broker resources to the broker they name; sent elsewhere, Kafka refuses."""

    async def send_to_the_wrong_broker() -> tuple[int, str]:
        async with Cluster(hot_broker.bootstrap) as cluster:
            connection = await cluster.any_connection()
            ops = [AlterConfigOp("log.retention.ms", OpType.SET, "5")]
            request = incremental_alter_configs_request(ConfigResource_.broker(7), ops, False)
            response = await connection.request(INCREMENTAL_ALTER_CONFIGS, request)
            (result,) = response.responses
            return result.error_code, result.error_message

    code, message = asyncio.run(send_to_the_wrong_broker())
    assert code == ErrorCode.invalid_request
    assert message == "Unexpected broker id, expected 0, but received 7"


def test_kafka_python_describes_broker_settings_with_sources(
    kp_admin: KafkaAdminClient,
) -> None:
    resource = ConfigResource(ConfigResourceType.BROKER, "0")
    described = kp_admin.describe_configs([resource], include_synonyms=True, config_filter="all")
    configs = described["broker"]["0"]
    assert configs["num.partitions"]["read_only"] is True
    assert configs["log.retention.ms"]["read_only"] is False
    assert configs["log.retention.ms"]["config_source"] == "DEFAULT_CONFIG"
    assert configs["cluster.secret"]["value"] is None
    assert configs["cluster.secret"]["is_sensitive"] is True
    interval = configs["log.retention.check.interval.ms"]
    assert (interval["value"], interval["config_source"]) == ("100", "STATIC_BROKER_CONFIG")


# -- aiokafka -------------------------------------------------------------------------------


def test_aiokafka_new_segment_bytes_rolls_at_the_new_size_and_new_partitions_are_usable(
    hot_broker: BrokerProcess,
) -> None:
    topic = unique_topic("aio-segments")

    async def scenario() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=hot_broker.bootstrap)
        await admin.start()
        producer = AIOKafkaProducer(bootstrap_servers=hot_broker.bootstrap, linger_ms=0)
        try:
            await admin.create_topics([AioNewTopic(topic, 1, 1, topic_configs={"flush.ms": "500"})])
            await producer.start()
            for i in range(5):
                await producer.send_and_wait(topic, b"before %d " % i * 40, partition=0)
            assert len(segment_files(hot_broker, topic)) == 1
            resource = AioConfigResource(AioResourceType.TOPIC, topic, {"segment.bytes": "1024"})
            (response,) = await admin.alter_configs([resource])
            assert [error_code for error_code, *_ in response.resources] == [0]
            # Legacy AlterConfigs replaces every config of the topic: flush.ms is reset.
            described = await admin.describe_configs(
                [AioConfigResource(AioResourceType.TOPIC, topic)]
            )
            configs = {name: value for name, value, *_ in described[0].resources[0][4]}
            assert (configs["segment.bytes"], configs["flush.ms"]) == ("1024", "1000")
            for i in range(12):
                await producer.send_and_wait(topic, b"after %d " % i * 40, partition=0)
            files = segment_files(hot_broker, topic)
            assert len(files) >= 4
            sizes = [(hot_broker.data_dir / f"{topic}-0" / name).stat().st_size for name in files]
            assert all(size <= 1024 for size in sizes[1:])

            await admin.create_partitions({topic: AioNewPartitions(total_count=3)})
        finally:
            await producer.stop()
            await admin.close()
        await produce_and_consume_on_partition_2(hot_broker.bootstrap, topic)

    asyncio.run(scenario())


async def produce_and_consume_on_partition_2(bootstrap: str, topic: str) -> None:
    """A producer and consumer started after the expansion see and use the new partition."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        assert await producer.partitions_for(topic) == {0, 1, 2}
        sent = await producer.send_and_wait(topic, b"on the new partition", partition=2)
        assert (sent.partition, sent.offset) == (2, 0)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tp = AioTopicPartition(topic, 2)
        consumer.assign([tp])
        batch = await consumer.getmany(tp, timeout_ms=int(TIMEOUT_S * 1000))
        assert [r.value for r in batch[tp]] == [b"on the new partition"]
    finally:
        await consumer.stop()


def test_aiokafka_delete_records_moves_the_start_for_consumers(hot_broker: BrokerProcess) -> None:
    topic = unique_topic("aio-delete")

    async def scenario() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=hot_broker.bootstrap)
        await admin.start()
        producer = AIOKafkaProducer(bootstrap_servers=hot_broker.bootstrap)
        await producer.start()
        tp = AioTopicPartition(topic, 0)
        try:
            await admin.create_topics([AioNewTopic(topic, 1, 1, topic_configs=SMALL_SEGMENTS)])
            for i in range(10):
                await producer.send_and_wait(topic, b"message %d " % i * 30, partition=0)
            deleted = await admin.delete_records({tp: RecordsToDelete(before_offset=6)})
            assert deleted == {tp: 6}
        finally:
            await producer.stop()
            await admin.close()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=hot_broker.bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            consumer.assign([tp])
            consumer.seek(tp, 0)
            batch = await consumer.getmany(tp, timeout_ms=int(TIMEOUT_S * 1000))
            assert [r.offset for r in batch[tp]][:1] == [6]
        finally:
            await consumer.stop()

    asyncio.run(scenario())
    assert offsets(hot_broker, topic) == (6, 10)
    assert segment_files(hot_broker, topic)[0] != f"{0:020d}.log"


# -- confluent-kafka -------------------------------------------------------------------------


def ck_topic_configs(admin: AdminClient, topic: str) -> dict[str, ConfigEntry]:
    resource = CkConfigResource(CkResourceType.TOPIC, topic)
    return admin.describe_configs([resource])[resource].result(TIMEOUT_S)  # type: ignore[no-any-return]


def ck_alter(admin: AdminClient, resource: CkConfigResource, **kwargs: Any) -> None:
    admin.incremental_alter_configs([resource], **kwargs)[resource].result(TIMEOUT_S)


def test_confluent_incremental_alter_set_delete_append_subtract(hot_broker: BrokerProcess) -> None:
    admin = AdminClient({"bootstrap.servers": hot_broker.bootstrap})
    topic = unique_topic("ck-incremental")
    admin.create_topics([CkNewTopic(topic, 1, 1, config={"flush.ms": "500"})])[topic].result(
        TIMEOUT_S
    )
    changes = [
        ConfigEntry("retention.ms", "60000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("flush.ms", None, incremental_operation=AlterConfigOpType.DELETE),
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
    ]
    ck_alter(admin, CkConfigResource(CkResourceType.TOPIC, topic, incremental_configs=changes))
    configs = ck_topic_configs(admin, topic)
    assert configs["retention.ms"].value == "60000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["flush.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert configs["cleanup.policy"].value == "delete,compact"

    subtract = [
        ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SUBTRACT)
    ]
    ck_alter(admin, CkConfigResource(CkResourceType.TOPIC, topic, incremental_configs=subtract))
    assert ck_topic_configs(admin, topic)["cleanup.policy"].value == "compact"

    appended_to_a_number = [
        ConfigEntry("retention.ms", "5", incremental_operation=AlterConfigOpType.APPEND)
    ]
    resource = CkConfigResource(
        CkResourceType.TOPIC, topic, incremental_configs=appended_to_a_number
    )
    with pytest.raises(KafkaException) as refused:
        ck_alter(admin, resource)
    assert refused.value.args[0].code() == KafkaError.INVALID_CONFIG
    assert ck_topic_configs(admin, topic)["retention.ms"].value == "60000"


def ck_produce(bootstrap: str, topic: str, values: list[bytes], partition: int) -> None:
    """A fresh producer, so it knows partitions added since the last one started."""
    producer = Producer({"bootstrap.servers": bootstrap})
    for value in values:
        producer.produce(topic, value, partition=partition)
    assert producer.flush(TIMEOUT_S) == 0


def test_confluent_create_partitions_validate_only_then_for_real_and_delete_records(
    hot_broker: BrokerProcess,
) -> None:
    admin = AdminClient({"bootstrap.servers": hot_broker.bootstrap})
    topic = unique_topic("ck-partitions")
    admin.create_topics([CkNewTopic(topic, 2, 1)])[topic].result(TIMEOUT_S)
    ck_produce(hot_broker.bootstrap, topic, [b"p0 %d" % i for i in range(5)], partition=0)

    admin.create_partitions([CkNewPartitions(topic, 4)], validate_only=True)[topic].result(
        TIMEOUT_S
    )
    assert len(admin.list_topics(topic).topics[topic].partitions) == 2
    admin.create_partitions([CkNewPartitions(topic, 4)])[topic].result(TIMEOUT_S)
    assert len(admin.list_topics(topic).topics[topic].partitions) == 4
    assert offsets(hot_broker, topic, 0) == (0, 5)
    ck_produce(hot_broker.bootstrap, topic, [b"p3"], partition=3)
    assert offsets(hot_broker, topic, 3) == (0, 1)

    shrink = admin.create_partitions([CkNewPartitions(topic, 3)])[topic]
    with pytest.raises(KafkaException) as refused:
        shrink.result(TIMEOUT_S)
    assert refused.value.args[0].code() == KafkaError.INVALID_PARTITIONS

    futures = admin.delete_records([CkTopicPartition(topic, 0, -1)])
    (deleted,) = (future.result(TIMEOUT_S) for future in futures.values())
    assert deleted.low_watermark == 5
    beyond = admin.delete_records([CkTopicPartition(topic, 3, 2)])
    with pytest.raises(KafkaException) as refused:
        next(iter(beyond.values())).result(TIMEOUT_S)
    assert refused.value.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE
    assert offsets(hot_broker, topic, 0) == (5, 5)
    assert offsets(hot_broker, topic, 3) == (0, 1)


# -- broker-level defaults and durability ------------------------------------------------------


def test_a_cluster_default_applies_to_topics_without_their_own_value_and_survives_restart(
    tmp_path: Path,
) -> None:
    with BrokerProcess(tmp_path / "data", env=RETENTION_CHECK) as broker:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        follows, keeps = unique_topic("follows-default"), unique_topic("keeps-own")
        topics = [
            CkNewTopic(follows, 1, 1, config=SMALL_SEGMENTS),
            CkNewTopic(keeps, 1, 1, config={**SMALL_SEGMENTS, "retention.ms": "-1"}),
        ]
        for future in admin.create_topics(topics).values():
            future.result(TIMEOUT_S)
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=False)
        old, new = old_and_new(12, 3)
        for topic in (follows, keeps):
            kp_produce(producer, topic, old, timestamp_ms=int(time.time() * 1000) - HOUR_MS)
            kp_produce(producer, topic, new)
        producer.close()

        async def set_cluster_default() -> None:
            """Kafka clients refuse a broker resource without an id; the Go-Queue one does not."""
            async with Admin(broker.bootstrap) as go_admin:
                ops = [AlterConfigOp("log.retention.ms", OpType.SET, "600000")]
                await go_admin.incremental_alter_configs(ConfigResource_.broker(), ops)

        asyncio.run(set_cluster_default())
        wait_for(lambda: offsets(broker, follows)[0] or None, "the cluster default to apply")
        assert offsets(broker, keeps) == (0, 15)
        retention = ck_topic_configs(admin, follows)["retention.ms"]
        assert retention.value == "600000"
        assert retention.source == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value

        broker.restart()
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        resource = CkConfigResource(CkResourceType.BROKER, "0")
        described = admin.describe_configs([resource])[resource].result(TIMEOUT_S)
        assert described["log.retention.ms"].value == "600000"
        assert described["log.retention.ms"].source == (
            ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
        )


def test_deleted_records_stay_deleted_after_a_restart(broker: BrokerProcess) -> None:
    topic = unique_topic("delete-restart")
    tp = TopicPartition(topic, 0)

    async def produce_and_delete() -> dict[TopicPartition, int]:
        async with Admin(broker.bootstrap) as admin:
            await admin.cluster.topic(topic, auto_create=True)
            producer = KafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=False)
            kp_produce(producer, topic, [b"m%d" % i for i in range(10)])
            producer.close()
            return await admin.delete_records({tp: 4})

    assert asyncio.run(produce_and_delete()) == {tp: 4}
    broker.kill()
    broker.start()

    async def read_below_and_at_the_start() -> int:
        async with Cluster(broker.bootstrap) as cluster:
            with pytest.raises(GoOffsetOutOfRangeError):
                await fetch(cluster, {tp: 2})
            fetched = (await fetch(cluster, {tp: 4}))[tp]
            assert fetched.log_start_offset == 4
            return fetched.records[0].offset

    assert asyncio.run(read_below_and_at_the_start()) == 4
    assert offsets(broker, topic) == (4, 10)
