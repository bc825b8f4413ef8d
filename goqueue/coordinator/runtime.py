"""The coordinator runtime: event-sourced state machines over the partitions of an internal topic.

A coordinator (consumer groups today; transactions, share groups, the scheduler and the trace
index later) is one *shard* per partition of its internal compacted topic. A shard is a pure
state machine: `replay` rebuilds its state from records, and each operation returns the
records to write together with its response. The runtime does all the I/O: it creates the
topic, replays every partition this broker leads on load (answering
COORDINATOR_LOAD_IN_PROGRESS meanwhile), appends an operation's records through the partition's
normal append path, answers only once everything written to the partition is fsynced and on
every in-sync replica, and runs the shards' timers. A shard lives where its partition's leader
is: it is loaded when this broker becomes the leader and unloaded when leadership moves away,
so in a cluster the coordinators follow the partition leaders.

Operations are plain functions run on the event loop, so each one sees and changes its shard
atomically; only the wait for the fsync is asynchronous.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, NamedTuple, Protocol, TypeVar

from kio.schema.errors import ErrorCode

from goqueue.broker.errors import BrokerError
from goqueue.broker.partition import Partition
from goqueue.config.catalog import max_message_bytes_for, min_insync_replicas_for
from goqueue.metadata.image import BrokerInfo, MetadataImage
from goqueue.records.batch import iter_batches, read_header
from goqueue.records.builder import NewRecord, build_batch
from goqueue.records.reader import batch_records

if TYPE_CHECKING:
    from goqueue.broker.broker import Broker

logger = logging.getLogger(__name__)

T = TypeVar("T")
LOAD_CHUNK_BYTES = 1024 * 1024
_BATCH_HEADER_BYTES = 61
_RECORD_OVERHEAD_BYTES = 32
"""Most bytes a record adds beyond its key and value: attributes, five varints, no headers."""
WRITE_TIMEOUT_S = 5.0
"""How long a write waits for the in-sync replicas (Kafka's offsets.commit.timeout.ms)."""
_WRITE_ERRORS = {
    ErrorCode.not_leader_or_follower: ErrorCode.not_coordinator,
    ErrorCode.unknown_topic_or_partition: ErrorCode.coordinator_not_available,
    ErrorCode.not_enough_replicas: ErrorCode.coordinator_not_available,
    ErrorCode.not_enough_replicas_after_append: ErrorCode.coordinator_not_available,
    ErrorCode.request_timed_out: ErrorCode.coordinator_not_available,
}
"""How Kafka's coordinators report a failed replicated write to their clients."""


class Record(NamedTuple):
    """One record of an internal topic; a None value is a tombstone for compaction."""

    key: bytes
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Result(Generic[T]):
    """What an operation returns: its response and the records to write before answering."""

    response: T
    records: Sequence[Record] = ()
    replay: bool = True
    """Whether the runtime applies the records to the shard (through `replay`) once they are
    appended. False when the operation already changed the shard itself, as Kafka's classic
    groups do for state that is only persisted in snapshots."""


class Timer(Protocol):
    """A shard's clock and timers. A timer's operation runs like any other operation: its
    records are written, and a newer schedule of the same key replaces the older one."""

    def now_ms(self) -> int: ...

    def schedule(self, key: str, delay_ms: int, operation: Callable[[], Result[None]]) -> None: ...

    def cancel(self, key: str) -> None: ...


class Shard(Protocol):
    """The state machine of one partition."""

    def replay(self, offset: int, record: Record) -> None:
        """Apply one record, on load or after an operation appended it."""

    def on_loaded(self) -> None:
        """Every record is replayed: start the timers the loaded state needs."""

    def on_unloaded(self) -> None:
        """The shard stops serving: answer requests still waiting on it."""


S = TypeVar("S", bound=Shard)
ShardFactory = Callable[[int, Timer], S]
"""Builds the empty shard of a partition index, with the timer it must use."""


class _State(enum.Enum):
    LOADING = "loading"
    ACTIVE = "active"
    FAILED = "failed"
    CLOSED = "closed"


class _PartitionTimer:
    """`Timer` on the event loop; firing runs the operation through the runtime."""

    def __init__(self, run: Callable[[Callable[[], Result[None]]], None]) -> None:
        self._run = run
        self._handles: dict[str, asyncio.TimerHandle] = {}

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def schedule(self, key: str, delay_ms: int, operation: Callable[[], Result[None]]) -> None:
        self.cancel(key)
        loop = asyncio.get_running_loop()
        self._handles[key] = loop.call_later(max(delay_ms, 0) / 1000, self._fire, key, operation)

    def cancel(self, key: str) -> None:
        handle = self._handles.pop(key, None)
        if handle is not None:
            handle.cancel()

    def cancel_all(self) -> None:
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()

    def _fire(self, key: str, operation: Callable[[], Result[None]]) -> None:
        self._handles.pop(key, None)
        self._run(operation)


class _Context(Generic[S]):
    """One partition of the internal topic and its shard."""

    def __init__(self, index: int, shard: S, timer: _PartitionTimer, leader_epoch: int) -> None:
        self.index = index
        self.leader_epoch = leader_epoch
        self.shard = shard
        self.timer = timer
        self.state = _State.LOADING
        self.load_task: asyncio.Task[None] | None = None


class CoordinatorRuntime(Generic[S]):
    """Hosts the shards of one internal topic on this broker."""

    def __init__(
        self,
        broker: Broker,
        topic: str,
        num_partitions: int,
        configs: Mapping[str, str],
        factory: ShardFactory[S],
    ) -> None:
        self._broker = broker
        self.topic = topic
        self._num_partitions = num_partitions
        self._configs = configs
        self._factory = factory
        self._contexts: dict[int, _Context[S]] = {}
        self._running = False
        self._creating: asyncio.Task[None] | None = None

    @property
    def num_partitions(self) -> int:
        """Partitions of the topic as created (a later setting cannot re-key existing data)."""
        return self._num_partitions

    async def start(self) -> None:
        """Create the topic on first start (once enough brokers registered for its
        replication factor), then load the partitions this broker leads in the background and
        follow leadership changes."""
        self._running = True
        info = self._broker.image.topics.get(self.topic)
        if info is None and self._enough_brokers(self._broker.image):
            await self._create_topic()
        elif info is not None and info.partitions != self._num_partitions:
            logger.info(
                "internal topic %s keeps its %d partitions (setting asks for %d)",
                self.topic,
                info.partitions,
                self._num_partitions,
            )
        self._broker.metadata.add_listener(self._on_metadata)
        self._sync_leadership()

    async def stop(self) -> None:
        """Stop loading, cancel every timer and let the shards answer their waiting requests."""
        self._running = False
        if self._creating is not None:
            self._creating.cancel()
        contexts, self._contexts = list(self._contexts.values()), {}
        for context in contexts:
            task = self._unload(context)
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _replication_factor(self) -> int:
        """Kafka's offsets.topic.replication.factor, capped by the size of the cluster (the
        metadata quorum's voters; one for a single node)."""
        settings = self._broker.settings
        return min(settings.offsets_topic_replication_factor, len(settings.voter_addresses()) or 1)

    def _enough_brokers(self, image: MetadataImage) -> bool:
        return len(image.live_brokers()) >= self._replication_factor()

    async def _create_topic(self) -> None:
        """Create the internal topic; another broker may have been first, which is fine."""
        try:
            info = await self._broker.create_topic(
                self.topic,
                self._num_partitions,
                self._replication_factor(),
                self._configs,
                internal=True,
            )
        except BrokerError as exc:
            if exc.error_code != ErrorCode.topic_already_exists:
                raise
            return
        logger.info(
            "created internal topic %s with %d partitions and %d replicas",
            self.topic,
            info.partitions,
            info.replication_factor,
        )

    async def _create_in_background(self) -> None:
        try:
            await self._create_topic()
        except BrokerError as exc:
            logger.warning("cannot create internal topic %s yet: %s", self.topic, exc.message)
        finally:
            self._creating = None

    def _on_metadata(self, _old: MetadataImage, new: MetadataImage) -> None:
        if not self._running:
            return
        if self.topic not in new.topics and self._creating is None and self._enough_brokers(new):
            self._creating = asyncio.create_task(self._create_in_background())
        self._sync_leadership()

    def _sync_leadership(self) -> None:
        """Load the shards of partitions this broker now leads (again, for a new leader epoch)
        and unload those it no longer leads."""
        info = self._broker.image.topics.get(self.topic)
        if info is None:
            return
        self._num_partitions = info.partitions
        for index in range(info.partitions):
            partition = self._broker.hosted_partition(self.topic, index)
            epoch = (
                partition.leader_epoch if partition is not None and partition.is_leader else None
            )
            context = self._contexts.get(index)
            if context is not None and context.leader_epoch != epoch:
                del self._contexts[index]
                self._unload(context)
                context = None
            if context is None and epoch is not None:
                context = self._contexts[index] = self._new_context(index, epoch)
                context.load_task = asyncio.create_task(self._load(context))

    def _unload(self, context: _Context[S]) -> asyncio.Task[None] | None:
        """Stop a shard: cancel its loading and timers, let it answer its waiting requests.
        Returns the cancelled load task, if any, for the caller to await."""
        task = context.load_task
        if task is not None and not task.done():
            task.cancel()
        else:
            task = None
        context.timer.cancel_all()
        if context.state is _State.ACTIVE:
            context.shard.on_unloaded()
            if self._running:
                logger.info("unloaded %s-%d: leadership moved", self.topic, context.index)
        context.state = _State.CLOSED
        return task

    def coordinator_for(self, key: str) -> BrokerInfo | None:
        """The live broker leading the partition that owns `key`: the coordinator that
        FindCoordinator names."""
        image = self._broker.image
        info = image.topics.get(self.topic)
        if info is None:
            return None
        state = info.partition_states.get(partition_for(key, info.partitions))
        if state is None:
            return None
        broker = image.brokers.get(state.leader)
        return broker if broker is not None and not broker.fenced else None

    def partition_for(self, key: str) -> int:
        """The partition owning a key, as Kafka computes it (so tools agree on placement)."""
        return partition_for(key, self._num_partitions)

    async def wait_loaded(self) -> None:
        """Return once every partition has finished loading (or failed to)."""
        tasks = [c.load_task for c in self._contexts.values() if c.load_task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    def shard(self, index: int) -> S:
        """The active shard of a partition, or the error a request for it must get."""
        context = self._contexts.get(index)
        if context is None and self.topic in self._broker.image.topics:
            raise BrokerError(
                ErrorCode.not_coordinator,
                f"Broker {self._broker.settings.node_id} does not lead partition {index} of "
                f"{self.topic}.",
            )
        if context is None or context.state in (_State.CLOSED, _State.FAILED):
            raise BrokerError(
                ErrorCode.coordinator_not_available,
                f"The coordinator for partition {index} of {self.topic} is not available.",
            )
        if context.state is _State.LOADING:
            raise BrokerError(
                ErrorCode.coordinator_load_in_progress,
                f"Partition {index} of {self.topic} is still loading.",
            )
        return context.shard

    def active_shards(self) -> Iterator[tuple[int, S]]:
        for index, context in self._contexts.items():
            if context.state is _State.ACTIVE:
                yield index, context.shard

    def loading(self) -> bool:
        return any(c.state is _State.LOADING for c in self._contexts.values())

    async def write(self, index: int, operation: Callable[[S], Result[T]]) -> T:
        """Run an operation on a shard, write its records and answer once they are durable."""
        shard = self.shard(index)
        result = self._apply(index, lambda: operation(shard))
        await self.durable(index)
        return result.response

    async def read(self, index: int, query: Callable[[S], T]) -> T:
        """Answer a query from a shard once everything it may have seen is durable."""
        response = query(self.shard(index))
        await self.durable(index)
        return response

    async def settle(self, index: int, waiting: Awaitable[T]) -> T:
        """Await a response another operation completes, then its durability."""
        response = await waiting
        await self.durable(index)
        return response

    async def durable(self, index: int) -> None:
        """Wait until everything appended to the partition so far is fsynced here and on every
        in-sync replica (Kafka's coordinators write with acks=all)."""
        partition = self._partition(index)
        log = partition.log
        end = log.log_end_offset
        await self._broker.flusher.flush(log, end)
        configs = self._broker.image.topics[self.topic].configs
        min_insync = min_insync_replicas_for(configs, self._broker.settings)
        try:
            await partition.wait_replicated(end, WRITE_TIMEOUT_S, min_insync)
        except BrokerError as exc:
            code = _WRITE_ERRORS.get(exc.error_code, ErrorCode.unknown_server_error)
            raise BrokerError(code, exc.message) from exc

    def _new_context(self, index: int, leader_epoch: int) -> _Context[S]:
        timer = _PartitionTimer(lambda operation: self._run_timer(index, operation))
        return _Context(index, self._factory(index, timer), timer, leader_epoch)

    def _partition(self, index: int) -> Partition:
        try:
            return self._broker.partition(self.topic, index)
        except BrokerError as exc:
            raise BrokerError(
                ErrorCode.coordinator_not_available,
                f"Partition {index} of {self.topic} does not exist.",
            ) from exc

    def _apply(self, index: int, operation: Callable[[], Result[T]]) -> Result[T]:
        result = operation()
        if result.records:
            base_offset = self._append(index, result.records)
            if result.replay:
                shard = self._contexts[index].shard
                for delta, record in enumerate(result.records):
                    shard.replay(base_offset + delta, record)
        return result

    def _append(self, index: int, records: Sequence[Record]) -> int:
        """Append the records as one batch; returns the offset of the first."""
        partition = self._partition(index)
        now_ms = int(time.time() * 1000)
        batch = build_batch([NewRecord(r.key, r.value) for r in records], now_ms=now_ms)
        configs = self._broker.image.topics[self.topic].configs
        limit = max_message_bytes_for(configs, self._broker.settings)
        if len(batch) > limit:
            raise BrokerError(
                ErrorCode.message_too_large,
                f"{len(records)} coordinator records take {len(batch)} bytes, more than "
                f"max.message.bytes={limit} of {self.topic}",
            )
        result = partition.append(bytearray(batch), read_header(batch), now_ms)
        return result.base_offset

    def _run_timer(self, index: int, operation: Callable[[], Result[None]]) -> None:
        context = self._contexts.get(index)
        if context is None or context.state is not _State.ACTIVE:
            return
        try:
            result = self._apply(index, operation)
        except Exception:
            logger.exception("timer operation of %s-%d failed", self.topic, index)
            return
        if result.records:
            self._broker.flusher.flush_soon(self._partition(index).log)

    async def _load(self, context: _Context[S]) -> None:
        """Replay the partition from its start; the shard serves once it has seen everything."""
        started = time.monotonic()
        try:
            await self._partition(context.index).epochs_durable()
            count = await self._replay_log(context)
        except asyncio.CancelledError:
            raise
        except Exception:
            context.state = _State.FAILED
            logger.exception("loading %s-%d failed; it will not serve", self.topic, context.index)
            return
        context.state = _State.ACTIVE
        context.shard.on_loaded()
        if count:
            logger.info(
                "loaded %s-%d: %d records in %.3f s",
                self.topic,
                context.index,
                count,
                time.monotonic() - started,
            )

    async def _replay_log(self, context: _Context[S]) -> int:
        log = self._partition(context.index).log
        loop = asyncio.get_running_loop()
        offset = log.log_start_offset
        end = log.log_end_offset
        count = 0
        while offset < end:
            file_slice = log.read(offset, LOAD_CHUNK_BYTES)
            if file_slice is None:
                break
            data = await loop.run_in_executor(
                None, os.pread, file_slice.fd, file_slice.size, file_slice.position
            )
            progress = offset
            for header, batch in iter_batches(data):
                if not header.is_control:
                    for record in batch_records(header, batch):
                        if record.offset >= offset and record.key is not None:
                            context.shard.replay(record.offset, Record(record.key, record.value))
                            count += 1
                offset = header.next_offset
            if offset == progress:
                raise RuntimeError(f"no progress replaying {log} at offset {offset}")
        return count


def batch_size_bound(records: Sequence[Record]) -> int:
    """An upper bound of the size of the batch `_append` writes for these records, so an
    operation that changes its shard before writing can check first that the write fits."""
    return _BATCH_HEADER_BYTES + sum(
        len(r.key) + len(r.value or b"") + _RECORD_OVERHEAD_BYTES for r in records
    )


def java_string_hash(text: str) -> int:
    """Java's `String.hashCode` (over UTF-16 code units, wrapping at 32 bits)."""
    value = 0
    data = text.encode("utf-16-be")
    for i in range(0, len(data), 2):
        value = (31 * value + (data[i] << 8 | data[i + 1])) & 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def partition_for(key: str, num_partitions: int) -> int:
    """Kafka's `Utils.abs(key.hashCode()) % partitions` for coordinator keys."""
    value = java_string_hash(key)
    return (0 if value == -(1 << 31) else abs(value)) % num_partitions
