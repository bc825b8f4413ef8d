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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from kio.schema.errors import ErrorCode

from goqueue.broker.delayed import adopt_parked_sequence, produce_delayed, produce_forwarded
from goqueue.broker.errors import BrokerError
from goqueue.broker.flusher import Flusher
from goqueue.broker.partition import Partition
from goqueue.broker.peers import Peers
from goqueue.broker.producer_ids import ProducerIdAllocator
from goqueue.broker.replica_fetcher import ReplicaFetchers
from goqueue.broker.topic_names import validate_topic_name
from goqueue.config.catalog import (
    InvalidConfigError,
    cleaner_config_for,
    cleanup_policy_for,
    compression_type_for,
    dedup_window_ms_for,
    delayed_enabled_for,
    log_append_time_for,
    log_config_for,
    max_message_bytes_for,
    min_insync_replicas_for,
    validate_topic_configs,
)
from goqueue.config.dynamic import (
    CLUSTER_DEFAULT,
    AlterOp,
    ConfigRequestError,
    DescribedConfig,
    broker_change,
    describe_broker,
    describe_topic,
    effective_settings,
    topic_change,
)
from goqueue.config.settings import BrokerSettings
from goqueue.coordinator.group.coordinator import GroupCoordinator
from goqueue.coordinator.scheduler.coordinator import Scheduler
from goqueue.coordinator.scheduler.records import SCHEDULE_TOPIC
from goqueue.coordinator.share.coordinator import ShareCoordinator
from goqueue.log.cleaner import CleanerConfig
from goqueue.log.cleaner_manager import LogCleaner
from goqueue.log.config import LogConfig
from goqueue.log.errors import OffsetOutOfRangeError
from goqueue.log.manager import LogManager
from goqueue.log.partition_log import PartitionLog
from goqueue.metadata.controller import manual_assignment_problem
from goqueue.metadata.image import MetadataImage, PartitionState, TopicInfo
from goqueue.metadata.state_machine import partition_count_problem
from goqueue.metadata.store import (
    MetadataError,
    MetadataStore,
    TopicExistsError,
    UnknownTopicError,
)
from goqueue.observability.logs import fields
from goqueue.observability.metrics import BrokerMetrics
from goqueue.records.batch import BatchHeader, read_header, scan_batches, set_log_append_time
from goqueue.records.compression import Compression
from goqueue.records.errors import RecordsError
from goqueue.records.recompress import TOPIC_CODECS, has_keyless_record, recompress

logger = logging.getLogger(__name__)

HOUSEKEEPING_INTERVAL_S = 0.1
HIGH_WATERMARK = -1
"""DeleteRecords' offset meaning 'everything committed so far'."""
DEFAULT_ACK_TIMEOUT_S = 30.0
"""How long an acks=all produce waits for the in-sync replicas unless its request says."""


@dataclass(frozen=True, slots=True)
class ProduceResult:
    base_offset: int
    log_start_offset: int
    log_append_time_ms: int = -1
    """The time the broker stamped the batch with on a LogAppendTime topic; -1 otherwise."""


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


def _check_size(batch: BatchHeader, limit: int) -> None:
    if batch.size > limit:
        raise BrokerError(
            ErrorCode.message_too_large,
            f"The batch of {batch.size} bytes exceeds max.message.bytes={limit}",
        )


def _convert_batch(
    records: bytes, batch: BatchHeader, where: str, *, compacted: bool, codec: Compression | None
) -> bytes:
    """Kafka's checks and conversions of a produced batch that depend on topic configs (they
    decode it, so they run in a worker thread): a compacted topic refuses records without a
    key, and a `compression.type` other than `producer` recompresses the batch."""
    try:
        if compacted and has_keyless_record(batch, records):
            raise BrokerError(
                ErrorCode.invalid_record,
                f"Compacted topic cannot accept message without key in topic partition {where}.",
            )
        return records if codec is None else recompress(records, codec)
    except RecordsError as exc:
        raise BrokerError(exc.error_code, str(exc)) from exc


def _manual_counts(
    image: MetadataImage,
    assignments: Mapping[int, tuple[int, ...]],
    num_partitions: int,
    replication_factor: int,
) -> tuple[int, int]:
    """Partition count and replication factor of a manual assignment, checked as Kafka does."""
    for value, what in (
        (replication_factor, "replication factor"),
        (num_partitions, "numPartitions"),
    ):
        if value != -1:
            raise BrokerError(
                ErrorCode.invalid_request,
                f"A manual partition assignment was specified, but {what} was not set to -1.",
            )
    problem = manual_assignment_problem(image, assignments)
    if problem:
        raise BrokerError(ErrorCode.invalid_replica_assignment, problem)
    return len(assignments), len(assignments[0])


def _check_added_assignments(
    image: MetadataImage, topic: TopicInfo, count: int, assignments: Sequence[tuple[int, ...]]
) -> None:
    """CreatePartitions' manual assignment: one valid replica list per new partition, each as
    long as the topic's replication factor (Kafka's checks)."""
    added = count - topic.partitions
    if len(assignments) != added:
        raise BrokerError(
            ErrorCode.invalid_replica_assignment,
            f"Increasing the number of partitions by {added} but {len(assignments)} "
            "assignments provided.",
        )
    factor = len(topic.partition_states[0].target_replicas) if topic.partition_states else 0
    for replicas in assignments:
        problem = manual_assignment_problem(image, {0: replicas})
        if problem is None and factor and len(replicas) != factor:
            problem = (
                f"Inconsistent replication factor between partitions, partition 0 has {factor} "
                f"while a new partition has {len(replicas)}."
            )
        if problem:
            raise BrokerError(ErrorCode.invalid_replica_assignment, problem)


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """Turn what config validation and the metadata quorum refuse into Kafka errors."""
    try:
        yield
    except InvalidConfigError as exc:
        raise BrokerError(ErrorCode.invalid_config, str(exc)) from exc
    except ConfigRequestError as exc:
        raise BrokerError(ErrorCode.invalid_request, str(exc)) from exc
    except MetadataError as exc:
        raise BrokerError(exc.error_code, str(exc)) from exc


class Broker:
    """One node's partitions and the operations on them.

    `settings` are the ones in force: `static_settings` (command line, environment, file)
    overridden by the dynamic broker configs of the metadata image, replaced whenever those
    change.
    """

    def __init__(self, settings: BrokerSettings, metrics: BrokerMetrics | None = None) -> None:
        self.metrics = metrics or BrokerMetrics()
        self.static_settings = settings
        self.settings = settings
        self.metadata = MetadataStore(settings)
        self.logs = LogManager(settings.data_dir)
        self.flusher = Flusher(on_fsync=self.metrics.fsync_seconds.observe)
        self._partitions: dict[tuple[str, int], Partition] = {}
        self._housekeeping: asyncio.Task[None] | None = None
        self.producer_ids = ProducerIdAllocator(self._reserve_producer_ids)
        self.cleaner = LogCleaner(settings.log_cleaner_dedupe_buffer_size)
        self._cleaning: asyncio.Task[bool] | None = None
        self._next_cleaning = time.monotonic()
        self.groups = GroupCoordinator(self)
        self.replica_fetchers = ReplicaFetchers(self)
        self.peers = Peers(self)
        self._isr_changes: set[asyncio.Task[None]] = set()
        self.shares = ShareCoordinator(self)
        self.scheduler = Scheduler(self)

    @property
    def image(self) -> MetadataImage:
        return self.metadata.image

    async def start(self) -> None:
        """Load metadata, then the logs it names, then start flushing and retention."""
        await self.metadata.start()
        self.settings = effective_settings(self.static_settings, self.image.broker_configs)
        await asyncio.to_thread(self.logs.load, self._log_config)
        if self.logs.recovered_unclean:
            logger.warning("previous shutdown was unclean: recovered the tails of all logs")
        self._sync_partitions(self.image)
        self.metadata.add_listener(self._on_metadata)
        self._housekeeping = asyncio.create_task(self._run_housekeeping())
        await self.groups.start()
        await self.shares.start()
        await self.scheduler.start()

    async def stop(self) -> None:
        """Flush and close every log and leave the clean-shutdown marker."""
        await self.replica_fetchers.close()
        for task in self._isr_changes:
            task.cancel()
        await self.scheduler.stop()
        await self.shares.stop()
        await self.groups.stop()
        await self.peers.close()
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping
        self.cleaner.stop()
        if self._cleaning is not None:
            await self._cleaning
        await self.flusher.close()
        for partition in self._partitions.values():
            partition.save_producer_state()
        self.logs.close()
        await self.metadata.close()

    def partition(self, topic: str, index: int) -> Partition:
        """The replica this node holds; a partition that exists elsewhere only is
        NOT_LEADER_OR_FOLLOWER here, as in Kafka (the client refreshes its metadata)."""
        partition = self._partitions.get((topic, index))
        if partition is None:
            info = self.image.topics.get(topic)
            if info is not None and 0 <= index < info.partitions:
                raise BrokerError(
                    ErrorCode.not_leader_or_follower,
                    f"Broker {self.settings.node_id} holds no replica of {topic}-{index}",
                )
            raise BrokerError(
                ErrorCode.unknown_topic_or_partition,
                f"This server does not host this topic-partition: {topic}-{index}",
            )
        return partition

    def hosted_partition(self, topic: str, index: int) -> Partition | None:
        """The replica this node holds, leader or follower, if any."""
        return self._partitions.get((topic, index))

    def is_fenced(self, node_id: int) -> bool:
        info = self.image.brokers.get(node_id)
        return info is None or info.fenced

    def topic_id(self, topic: str) -> uuid.UUID | None:
        info = self.image.topics.get(topic)
        return info.topic_id if info else None

    async def produce(
        self,
        topic: str,
        index: int,
        records: bytes,
        acks: int,
        *,
        timeout: float = DEFAULT_ACK_TIMEOUT_S,
    ) -> ProduceResult:
        """Validate and append one partition's batches on its leader; wait for fsync where
        durability asks, and for the in-sync replicas with acks=all.

        `acks=-1` always waits for the fsync (group-committed with concurrent producers) and
        then until every in-sync replica has the batch, at most `timeout` seconds; with fewer
        in-sync replicas than `min.insync.replicas` it is refused before anything is appended
        (NOT_ENOUGH_REPLICAS). Other acks wait only when the topic's `flush.messages`
        threshold is reached.
        """
        partition = self.partition(topic, index)
        partition.check_leader()
        min_insync = min_insync_replicas_for(self.image.topics[topic].configs, self.settings)
        if acks == -1 and len(partition.isr) < min_insync:
            raise BrokerError(
                ErrorCode.not_enough_replicas,
                f"The size of the current ISR {list(partition.isr)} is insufficient to satisfy "
                f"the min.isr requirement of {min_insync} for partition {topic}-{index}",
            )
        await partition.epochs_durable()
        try:
            batches = scan_batches(records)
        except RecordsError as exc:
            raise BrokerError(exc.error_code, str(exc)) from exc
        _check_client_batches(batches)
        configs = self.image.topics[topic].configs
        limit = max_message_bytes_for(configs, self.settings)
        _check_size(batches[0], limit)
        if topic == SCHEDULE_TOPIC:
            answer = await produce_forwarded(self, index, records, batches[0])
            return ProduceResult(answer, partition.log.log_start_offset)
        if delayed_enabled_for(configs):
            await adopt_parked_sequence(self, partition, batches[0])
            parked = await produce_delayed(self, partition, records, batches[0], configs)
            if parked is not None:
                return ProduceResult(parked, partition.log.log_start_offset)
        compacted = "compact" in cleanup_policy_for(configs, self.settings)
        codec = TOPIC_CODECS.get(compression_type_for(configs, self.settings))
        if codec == batches[0].compression:
            codec = None
        if compacted or codec is not None:
            where = f"{topic}-{index}"
            records = await asyncio.to_thread(
                _convert_batch, records, batches[0], where, compacted=compacted, codec=codec
            )
            batches = [read_header(records)]
            _check_size(batches[0], limit)
        now_ms = int(time.time() * 1000)
        append_time_ms = -1
        if log_append_time_for(configs, self.settings):
            append_time_ms = now_ms
            stamped = bytearray(records)
            set_log_append_time(stamped, 0, batches[0], append_time_ms)
            records, batches = bytes(stamped), [read_header(stamped)]
        window_ms = dedup_window_ms_for(configs)
        if window_ms > 0:
            result = await partition.append_deduplicated(records, batches[0], now_ms, window_ms)
        else:
            partition.dedup = None
            result = partition.append(bytearray(records), batches[0], now_ms)
        if self.metrics.traffic is not None:
            self.metrics.traffic.produced(
                topic, len(records), result.last_offset - result.base_offset + 1
            )
        log = partition.log
        if acks == -1 or log.unflushed_messages >= log.config.flush_messages:
            await self.flusher.flush(log, result.last_offset + 1)
        if acks == -1:
            await partition.wait_replicated(result.last_offset + 1, timeout, min_insync)
        return ProduceResult(result.base_offset, log.log_start_offset, append_time_ms)

    async def create_topic(
        self,
        name: str,
        num_partitions: int,
        replication_factor: int,
        configs: Mapping[str, str | None],
        *,
        validate_only: bool = False,
        internal: bool = False,
        assignments: Mapping[int, tuple[int, ...]] | None = None,
    ) -> TopicInfo:
        """Create a topic through the metadata quorum; -1 means the broker's default.
        Only the broker's coordinators create `internal` topics, whose names clients may not use.
        `assignments` (partition -> replicas) replaces the placement, as in Kafka's CreateTopics
        with counts of -1."""
        if not internal:
            validate_topic_name(name)
        if assignments:
            num_partitions, replication_factor = _manual_counts(
                self.image, assignments, num_partitions, replication_factor
            )
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
        live = len(self.image.live_brokers())
        if not assignments and (replicas < 1 or replicas > live):
            raise BrokerError(
                ErrorCode.invalid_replication_factor,
                f"Replication factor {replicas} must be between 1 and the number of live "
                f"brokers ({live})",
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
            placed = [assignments[index] for index in range(partitions)] if assignments else None
            await self.metadata.create_topic(name, partitions, replicas, valid_configs, placed)
        except TopicExistsError as exc:
            raise BrokerError(ErrorCode.topic_already_exists, str(exc)) from exc
        return self.image.topics[name]

    async def delete_topic(self, name: str) -> None:
        try:
            await self.metadata.delete_topic(name)
        except UnknownTopicError as exc:
            raise BrokerError(ErrorCode.unknown_topic_or_partition, str(exc)) from exc

    def _topic(self, name: str) -> TopicInfo:
        info = self.image.topics.get(name)
        if info is None:
            raise BrokerError(
                ErrorCode.unknown_topic_or_partition, f"Topic '{name}' does not exist."
            )
        return info

    def describe_topic_configs(self, name: str) -> list[DescribedConfig]:
        return describe_topic(
            self._topic(name).configs, self.static_settings, self.image.broker_configs
        )

    def describe_broker_configs(self, resource_name: str) -> list[DescribedConfig]:
        """This broker's settings (resource named by its id), or the cluster-wide dynamic
        defaults (resource named "")."""
        level = self._broker_level(resource_name, " or empty string")
        return describe_broker(
            self.static_settings,
            self.image.broker_configs,
            per_broker=level != CLUSTER_DEFAULT,
        )

    async def alter_topic_configs(
        self,
        name: str,
        ops: list[AlterOp],
        *,
        incremental: bool,
        validate_only: bool = False,
    ) -> None:
        """Validate the whole change, then write it as one metadata record; the metadata
        listener applies it to the topic's logs. Legacy AlterConfigs (`incremental=False`)
        replaces every config of the topic."""
        current = self._topic(name).configs
        with _refusals():
            change = topic_change(current, ops, self.settings, incremental=incremental)
            if validate_only or not (change.set or change.delete):
                return
            await self.metadata.alter_topic_configs(name, change.set, change.delete)
        logger.info("topic %s configs: set %s, removed %s", name, change.set, change.delete)

    async def alter_broker_configs(
        self,
        resource_name: str,
        ops: list[AlterOp],
        *,
        incremental: bool,
        validate_only: bool = False,
    ) -> None:
        """Change dynamic settings of this broker (resource named by its id) or the cluster-wide
        defaults (resource named ""); every topic without its own value follows at once."""
        level = self._broker_level(resource_name, "")
        current = self.image.broker_configs.get(level, {})
        with _refusals():
            change = broker_change(current, ops, self.settings, incremental=incremental)
            if validate_only or not (change.set or change.delete):
                return
            await self.metadata.alter_broker_configs(level, change.set, change.delete)
        logger.info(
            "broker configs (%s): set %s, removed %s",
            f"broker {level}" if level else "cluster default",
            change.set,
            change.delete,
        )

    def _broker_level(self, resource_name: str, alternative: str) -> str:
        """The dynamic config level a broker resource names; Kafka's errors for other ids."""
        if resource_name == CLUSTER_DEFAULT:
            return CLUSTER_DEFAULT
        try:
            node_id = int(resource_name)
        except ValueError:
            raise BrokerError(
                ErrorCode.invalid_request,
                f"Broker id must be an integer, but it is: {resource_name}",
            ) from None
        if node_id != self.settings.node_id:
            raise BrokerError(
                ErrorCode.invalid_request,
                f"Unexpected broker id, expected {self.settings.node_id}{alternative}, "
                f"but received {resource_name}",
            )
        return str(node_id)

    async def create_partitions(
        self,
        name: str,
        count: int,
        *,
        validate_only: bool,
        assignments: Sequence[tuple[int, ...]] | None = None,
    ) -> None:
        """Grow a topic to `count` partitions (placed as `assignments` says, if given); the
        metadata listener opens their logs."""
        topic = self._topic(name)
        problem = partition_count_problem(topic.partitions, count)
        if problem:
            raise BrokerError(ErrorCode.invalid_partitions, problem)
        if assignments:
            _check_added_assignments(self.image, topic, count, assignments)
        if validate_only:
            return
        with _refusals():
            await self.metadata.create_partitions(name, count, assignments or None)
        logger.info("topic %s now has %d partitions", name, count)

    async def delete_records(self, topic: str, index: int, offset: int) -> int:
        """Move a partition's log start offset to `offset` (-1: the high watermark), durably;
        returns the new log start offset (Kafka's low watermark)."""
        partition = self.partition(topic, index)
        partition.check_leader()
        high_watermark = partition.high_watermark
        target = high_watermark if offset == HIGH_WATERMARK else offset
        if not 0 <= target <= high_watermark:
            raise BrokerError(
                ErrorCode.offset_out_of_range,
                f"Cannot delete records of {topic}-{index} before offset {offset}: it is "
                f"outside 0..{high_watermark} (the high watermark)",
            )
        log = partition.log
        try:
            deleted = log.delete_records_before(target)
        except OffsetOutOfRangeError as exc:
            raise BrokerError(ErrorCode.offset_out_of_range, str(exc)) from exc
        await asyncio.to_thread(log.checkpoint_log_start_offset)
        logger.info(
            "deleted records of %s-%d before %d (%d whole segment(s)); log start is now %d",
            topic,
            index,
            target,
            deleted,
            log.log_start_offset,
        )
        return log.log_start_offset

    async def allocate_producer_id(self) -> int:
        """A producer id that no producer of the cluster had before (InitProducerId). When the
        metadata quorum cannot reserve a block, answer as Kafka's ProducerIdManager does:
        COORDINATOR_LOAD_IN_PROGRESS, which clients retry."""
        try:
            return await self.producer_ids.next_id()
        except MetadataError as exc:
            raise BrokerError(
                ErrorCode.coordinator_load_in_progress,
                f"No producer id block available yet: {exc}",
            ) from exc

    async def _reserve_producer_ids(self, block_size: int) -> int:
        return await self.metadata.allocate_producer_ids(self.settings.node_id, block_size)

    def _expire_producer_state(self) -> None:
        """Forget idempotent producers past `producer.id.expiration.ms`, and dedup ids past
        their topic's window on partitions that have not been produced to lately (a produce
        expires them anyway)."""
        now_ms = int(time.time() * 1000)
        for partition in self._partitions.values():
            partition.producers.remove_expired(now_ms, self.settings.producer_id_expiration_ms)
            if partition.dedup is not None:
                window_ms = dedup_window_ms_for(self.image.topics[partition.topic].configs)
                if window_ms > 0:
                    partition.dedup.expire(now_ms - window_ms)
                else:
                    partition.dedup = None

    def _log_config(self, topic: str) -> LogConfig:
        info = self.image.topics.get(topic)
        return log_config_for(info.configs if info else {}, self.settings)

    def _on_metadata(self, old: MetadataImage, new: MetadataImage) -> None:
        if new.broker_configs != old.broker_configs:
            self.settings = effective_settings(self.static_settings, new.broker_configs)
        self._sync_partitions(new)

    def _sync_partitions(self, image: MetadataImage) -> None:
        """Open logs for the partitions the image places here, delete those of deleted topics,
        hand changed configs to the logs that exist (so they apply without a restart), make each
        replica leader or follower as the controller decided, and point the replica fetchers at
        the leaders."""
        for topic in self.logs.topics() - set(image.topics):
            logger.info("deleting the logs of deleted topic %s", topic)
            for key in [key for key in self._partitions if key[0] == topic]:
                del self._partitions[key]
            self.logs.delete_topic(topic)
        node_id = self.settings.node_id
        following: dict[tuple[str, int], int] = {}
        for info in image.topics.values():
            config = log_config_for(info.configs, self.settings)
            for index in range(info.partitions):
                key = (info.name, index)
                state = info.partition_states.get(index)
                if state is not None and node_id not in state.replicas:
                    self._drop_replica(key)
                    continue
                partition = self._partitions.get(key)
                if partition is None:
                    log = self.logs.get(info.name, index) or self.logs.create(
                        info.name, index, config
                    )
                    partition = Partition.open(
                        info.name, index, log, self.settings.producer_id_expiration_ms, node_id
                    )
                    partition.on_isr_change = self._propose_isr
                    self._partitions[key] = partition
                elif partition.log.config != config:
                    partition.log.update_config(config)
                if state is not None:
                    self._apply_partition_state(partition, state)
                    if state.leader != node_id and state.leader in image.brokers:
                        following[key] = state.leader
        self.replica_fetchers.update(following)

    def _apply_partition_state(self, partition: Partition, state: PartitionState) -> None:
        """Become leader or follower of a partition as its metadata state says (Kafka's
        makeLeader / makeFollower); nothing happens if neither epoch changed."""
        partition.confirm(state.isr)
        current = (partition.leader_epoch, partition.partition_epoch, partition.replicas)
        leads = state.leader == self.settings.node_id
        if current == (state.leader_epoch, state.partition_epoch, state.replicas) and (
            partition.is_leader == leads and partition.isr == state.isr
        ):
            return
        if leads:
            new_epoch = not partition.is_leader or partition.leader_epoch != state.leader_epoch
            partition.become_leader(
                state.leader_epoch,
                state.partition_epoch,
                state.replicas,
                state.isr,
                int(time.time() * 1000),
            )
        else:
            new_epoch = partition.is_leader or partition.leader_epoch != state.leader_epoch
            partition.become_follower(
                state.leader, state.leader_epoch, state.partition_epoch, state.replicas, state.isr
            )
        if new_epoch:
            logger.info(
                "%s-%d: %s at leader epoch %d (replicas %s, ISR %s)",
                partition.topic,
                partition.index,
                "leader" if partition.is_leader else f"follower of {state.leader}",
                state.leader_epoch,
                list(state.replicas),
                list(state.isr),
                extra=fields(topic=partition.topic, partition=partition.index),
            )

    def _drop_replica(self, key: tuple[str, int]) -> None:
        """A reassignment moved this replica away: stop serving it and delete its log (Kafka's
        StopReplica with deletion); if the replica ever comes back it copies the leader's log
        afresh."""
        partition = self._partitions.pop(key, None)
        if partition is not None:
            logger.info("%s-%d: no longer a replica here; deleting its log", *key)
            partition.become_follower(-1, partition.leader_epoch + 1, -1, (), ())
        self.logs.delete_partition(*key)

    def _propose_isr(self, partition: Partition, isr: tuple[int, ...]) -> None:
        """Send a leader's ISR change to the controller in the background."""
        task = asyncio.create_task(self._alter_partition(partition, isr))
        self._isr_changes.add(task)
        task.add_done_callback(self._isr_changes.discard)

    async def _alter_partition(self, partition: Partition, isr: tuple[int, ...]) -> None:
        """AlterPartition through the metadata quorum; the new state comes back as a metadata
        change. A refusal (stale epochs, a fenced replica) only allows the next proposal."""
        info = self.image.topics.get(partition.topic)
        try:
            if info is None:
                raise MetadataError(f"topic {partition.topic} no longer exists")
            await self.metadata.alter_partition(
                info.topic_id,
                partition.index,
                leader_id=self.settings.node_id,
                leader_epoch=partition.leader_epoch,
                partition_epoch=partition.partition_epoch,
                new_isr=isr,
            )
        except MetadataError as exc:
            logger.warning(
                "%s-%d: ISR change to %s refused: %s", partition.topic, partition.index, isr, exc
            )
            partition.isr_change_failed(isr)

    def _topic_configs(self, topic: str) -> Mapping[str, str]:
        info = self.image.topics.get(topic)
        return info.configs if info else {}

    async def _run_housekeeping(self) -> None:
        """Bound unsynced data by `flush.ms`, apply retention on its interval and keep the log
        cleaner going."""
        next_retention = next_expiration = next_checkpoint = time.monotonic()
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)
            logs = [partition.log for partition in self._partitions.values()]
            self.flusher.flush_due(logs)
            self._shrink_isrs()
            if time.monotonic() >= next_checkpoint:
                next_checkpoint = time.monotonic() + (
                    self.settings.replica_high_watermark_checkpoint_interval_ms / 1000
                )
                partitions = list(self._partitions.values())
                await asyncio.to_thread(_checkpoint_high_watermarks, partitions)
            if time.monotonic() >= next_expiration:
                next_expiration = time.monotonic() + (
                    self.settings.producer_id_expiration_check_interval_ms / 1000
                )
                self._expire_producer_state()
            self._schedule_cleaning()
            if time.monotonic() >= next_retention:
                next_retention = time.monotonic() + (
                    self.settings.log_retention_check_interval_ms / 1000
                )
                now_ms = int(time.time() * 1000)
                for log in logs:
                    if "delete" not in cleanup_policy_for(
                        self._topic_configs(log.topic), self.settings
                    ):
                        continue
                    deleted = log.delete_expired_segments(now_ms)
                    if deleted:
                        logger.info(
                            "retention deleted %d segment(s) of %s-%d; log start is now %d",
                            deleted,
                            log.topic,
                            log.partition,
                            log.log_start_offset,
                            extra=fields(topic=log.topic, partition=log.partition),
                        )

    def _shrink_isrs(self) -> None:
        """Propose dropping followers that lag more than `replica.lag.time.max.ms`."""
        now_ms = int(time.time() * 1000)
        max_lag_ms = self.settings.replica_lag_time_max_ms
        for partition in self._partitions.values():
            if partition.leader is not None and partition.leader.followers:
                partition.maybe_shrink_isr(now_ms, max_lag_ms)

    def _schedule_cleaning(self) -> None:
        """Start a log cleaner pass unless one is running. As Kafka's cleaner, look again at
        once after a pass that cleaned something, else after `log.cleaner.backoff.ms`."""
        now = time.monotonic()
        if self._cleaning is not None:
            if not self._cleaning.done():
                return
            cleaned = self._cleaning.result()
            self._cleaning = None
            self._next_cleaning = now + (
                0 if cleaned else self.settings.log_cleaner_backoff_ms / 1000
            )
        if now < self._next_cleaning or not self.settings.log_cleaner_enable:
            return
        logs = []
        for partition in self._partitions.values():
            config = cleaner_config_for(self._topic_configs(partition.topic), self.settings)
            if config is not None:
                logs.append((partition.log, config))
        self._next_cleaning = now + self.settings.log_cleaner_backoff_ms / 1000
        if logs:
            self._cleaning = asyncio.create_task(self._clean(logs))

    async def _clean(self, logs: list[tuple[PartitionLog, CleanerConfig]]) -> bool:
        """One cleaner pass; True if it cleaned a log. Failures are logged, never raised."""
        try:
            return await self.cleaner.clean_dirtiest(logs, int(time.time() * 1000)) is not None
        except Exception:
            logger.exception("the log cleaner failed")
            return False


def _checkpoint_high_watermarks(partitions: list[Partition]) -> None:
    """Save the high watermarks that moved; in a worker thread, off the event loop."""
    for partition in partitions:
        partition.checkpoint_high_watermark()
