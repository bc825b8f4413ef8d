"""The protocol-agnostic core of one broker node: partitions, produce, topics, housekeeping.

Front ends (the Kafka protocol today; REST and AMQP later) call these methods and translate
`BrokerError` into their own error reporting; nothing here knows which protocol is asking.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from kio.schema.errors import ErrorCode

from goqueue.broker.errors import BrokerError
from goqueue.broker.flusher import Flusher
from goqueue.broker.partition import Partition
from goqueue.broker.topic_names import validate_topic_name
from goqueue.config.catalog import (
    InvalidConfigError,
    log_config_for,
    max_message_bytes_for,
    validate_topic_configs,
)
from goqueue.config.settings import BrokerSettings
from goqueue.log.config import LogConfig
from goqueue.log.manager import LogManager
from goqueue.metadata.image import MetadataImage, TopicInfo
from goqueue.metadata.store import MetadataStore, TopicExistsError, UnknownTopicError
from goqueue.records.batch import BatchHeader, scan_batches
from goqueue.records.errors import RecordsError

logger = logging.getLogger(__name__)

HOUSEKEEPING_INTERVAL_S = 0.1


@dataclass(frozen=True, slots=True)
class ProduceResult:
    base_offset: int
    log_start_offset: int


def _check_client_batches(batches: list[BatchHeader]) -> None:
    """Kafka's rules for what a producer may send: exactly one batch per partition (Produce
    v3+), based at offset 0, and no control batches (only the broker writes those)."""
    if len(batches) != 1:
        raise BrokerError(
            ErrorCode.invalid_record,
            f"Produce requests may contain exactly one record batch per partition, "
            f"not {len(batches)}",
        )
    batch = batches[0]
    if batch.base_offset != 0:
        raise BrokerError(
            ErrorCode.invalid_record,
            f"The base offset of the record batch should be 0, but it is {batch.base_offset}",
        )
    if batch.is_control:
        raise BrokerError(
            ErrorCode.invalid_record, "Clients are not allowed to write control records"
        )


class Broker:
    """One node's partitions and the operations on them."""

    def __init__(self, settings: BrokerSettings) -> None:
        self.settings = settings
        self.metadata = MetadataStore(settings)
        self.logs = LogManager(settings.data_dir)
        self.flusher = Flusher()
        self._partitions: dict[tuple[str, int], Partition] = {}
        self._housekeeping: asyncio.Task[None] | None = None

    @property
    def image(self) -> MetadataImage:
        return self.metadata.image

    async def start(self) -> None:
        """Load metadata, then the logs it names, then start flushing and retention."""
        await self.metadata.start()
        self.logs.load(self._log_config)
        if self.logs.recovered_unclean:
            logger.warning("previous shutdown was unclean: recovered the tails of all logs")
        self._sync_partitions(self.image)
        self.metadata.add_listener(lambda _old, new: self._sync_partitions(new))
        self._housekeeping = asyncio.create_task(self._run_housekeeping())

    async def stop(self) -> None:
        """Flush and close every log and leave the clean-shutdown marker."""
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping
        await self.flusher.close()
        self.logs.close()
        await self.metadata.close()

    def partition(self, topic: str, index: int) -> Partition:
        partition = self._partitions.get((topic, index))
        if partition is None:
            raise BrokerError(
                ErrorCode.unknown_topic_or_partition,
                f"This server does not host this topic-partition: {topic}-{index}",
            )
        return partition

    def topic_id(self, topic: str) -> uuid.UUID | None:
        info = self.image.topics.get(topic)
        return info.topic_id if info else None

    async def produce(self, topic: str, index: int, records: bytes, acks: int) -> ProduceResult:
        """Validate and append one partition's batches; wait for fsync where durability asks.

        `acks=-1` always waits for the fsync (group-committed with concurrent producers); other
        acks wait only when the topic's `flush.messages` threshold is reached.
        """
        partition = self.partition(topic, index)
        try:
            batches = scan_batches(records)
        except RecordsError as exc:
            raise BrokerError(exc.error_code, str(exc)) from exc
        _check_client_batches(batches)
        limit = max_message_bytes_for(self.image.topics[topic].configs, self.settings)
        for batch in batches:
            if batch.size > limit:
                raise BrokerError(
                    ErrorCode.message_too_large,
                    f"The batch of {batch.size} bytes exceeds max.message.bytes={limit}",
                )
        result = partition.append(bytearray(records), batches, int(time.time() * 1000))
        log = partition.log
        if acks == -1 or log.unflushed_messages >= log.config.flush_messages:
            await self.flusher.flush(log, result.last_offset + 1)
        return ProduceResult(result.base_offset, log.log_start_offset)

    async def create_topic(
        self,
        name: str,
        num_partitions: int,
        replication_factor: int,
        configs: Mapping[str, str | None],
        *,
        validate_only: bool = False,
    ) -> TopicInfo:
        """Create a topic through the metadata quorum; -1 means the broker's default."""
        validate_topic_name(name)
        partitions = self.settings.num_partitions if num_partitions == -1 else num_partitions
        replicas = (
            self.settings.default_replication_factor
            if replication_factor == -1
            else replication_factor
        )
        if partitions < 1:
            raise BrokerError(
                ErrorCode.invalid_partitions,
                f"Number of partitions must be at least 1: {partitions}",
            )
        if replicas < 1 or replicas > len(self.image.brokers):
            raise BrokerError(
                ErrorCode.invalid_replication_factor,
                f"Replication factor {replicas} must be between 1 and the number of brokers "
                f"({len(self.image.brokers)})",
            )
        try:
            valid_configs = validate_topic_configs(configs)
        except InvalidConfigError as exc:
            raise BrokerError(ErrorCode.invalid_config, str(exc)) from exc
        if name in self.image.topics:
            raise BrokerError(ErrorCode.topic_already_exists, f"Topic '{name}' already exists.")
        if validate_only:
            return TopicInfo(name, uuid.uuid4(), partitions, replicas, valid_configs)
        try:
            await self.metadata.create_topic(name, partitions, replicas, valid_configs)
        except TopicExistsError as exc:
            raise BrokerError(ErrorCode.topic_already_exists, str(exc)) from exc
        return self.image.topics[name]

    async def delete_topic(self, name: str) -> None:
        try:
            await self.metadata.delete_topic(name)
        except UnknownTopicError as exc:
            raise BrokerError(ErrorCode.unknown_topic_or_partition, str(exc)) from exc

    def _log_config(self, topic: str) -> LogConfig:
        info = self.image.topics.get(topic)
        return log_config_for(info.configs if info else {}, self.settings)

    def _sync_partitions(self, image: MetadataImage) -> None:
        """Open logs for partitions the image names and delete those of deleted topics."""
        for topic in self.logs.topics() - set(image.topics):
            logger.info("deleting the logs of deleted topic %s", topic)
            for key in [key for key in self._partitions if key[0] == topic]:
                del self._partitions[key]
            self.logs.delete_topic(topic)
        for info in image.topics.values():
            config = log_config_for(info.configs, self.settings)
            for index in range(info.partitions):
                if (info.name, index) in self._partitions:
                    continue
                log = self.logs.get(info.name, index) or self.logs.create(info.name, index, config)
                self._partitions[(info.name, index)] = Partition(info.name, index, log)

    async def _run_housekeeping(self) -> None:
        """Bound unsynced data by `flush.ms` and apply retention on its interval."""
        next_retention = time.monotonic()
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)
            logs = [partition.log for partition in self._partitions.values()]
            self.flusher.flush_due(logs)
            if time.monotonic() >= next_retention:
                next_retention = time.monotonic() + (
                    self.settings.log_retention_check_interval_ms / 1000
                )
                now_ms = int(time.time() * 1000)
                for log in logs:
                    deleted = log.delete_expired_segments(now_ms)
                    if deleted:
                        logger.info(
                            "retention deleted %d segment(s) of %s-%d; log start is now %d",
                            deleted,
                            log.topic,
                            log.partition,
                            log.log_start_offset,
                        )
