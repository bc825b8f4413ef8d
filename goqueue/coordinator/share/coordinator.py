"""The share coordinator service: share groups on the coordinator runtime over
`__share_group_state`, share sessions, share fetches and dead-letter copies.

A share group lives in the partition of `__share_group_state` its id hashes to, with the state
of all its share partitions, so one shard operation sees a member and the records it holds
together. (Kafka splits this between the group coordinator, the share-partition leader and the
share coordinator that persists `__share_group_state`; a Go-Queue node hosts all three.)

What needs I/O happens here, around the shard's pure operations: reading the log to find the
records an acquisition may take (their timestamps for the TTL, their message groups for FIFO),
long-polling fetches, and copying records the group gives up on to its dead-letter topic
before the shard archives them.

In a cluster, clients send ShareFetch and ShareAcknowledge to each data partition's leader.
A leader that is not the group's coordinator forwards them (`forward.py`); the coordinator
keeps one share session per member and per broker the member talks to (as KIP-932 does),
acquires a partition's records only for the session of the broker that leads it, and reads
records through `broker.peers` (its own replica when it has one, else from the leader).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from kio.schema.errors import ErrorCode

from goqueue.broker.errors import BrokerError
from goqueue.broker.peers import peer_node_id
from goqueue.config.catalog import GROUP_CATALOG, InvalidConfigError, validate_group_configs
from goqueue.config.dynamic import AlterOp, DescribedConfig, OpType, check_ops
from goqueue.coordinator.group.coordinator import ImageTopics
from goqueue.coordinator.group.messages import ListedGroup
from goqueue.coordinator.runtime import CoordinatorRuntime, Result, Timer
from goqueue.coordinator.share import forward
from goqueue.coordinator.share.config import describe_group_configs
from goqueue.coordinator.share.dead_letter import dead_letter_batch, message_group
from goqueue.coordinator.share.group import TopicPartition
from goqueue.coordinator.share.messages import (
    ShareGroupDescription,
    ShareGroupStats,
    ShareHeartbeat,
    ShareHeartbeatResponse,
    ShareParams,
    SharePartitionResult,
    ShareResult,
)
from goqueue.coordinator.share.partition import (
    AckBatch,
    AckType,
    Acquired,
    Candidate,
    ShareError,
)
from goqueue.coordinator.share.shard import ShareShard
from goqueue.metadata.errors import MetadataError
from goqueue.observability.share_groups import ShareGroupCollector
from goqueue.records.batch import iter_batches
from goqueue.records.reader import ConsumedRecord, batch_records

if TYPE_CHECKING:
    from goqueue.broker.broker import Broker
    from goqueue.broker.peers import PeerRead

STATE_TOPIC = "__share_group_state"
FORWARD_TIMEOUT_S = 30.0
"""How long a forwarded request may take beyond its max wait."""
DLQ_PRODUCE_TIMEOUT_S = 30.0
POLL_S = 0.1
"""How often a long-polling fetch looks again at partitions this broker does not lead (a
follower's replica does not signal its high watermark moving)."""
UNBOUNDED = sys.maxsize
INITIAL_EPOCH = 0
FINAL_EPOCH = -1
DLQ_RETRY_S = 1.0
DLQ_MAX_RETRY_S = 60.0
TTL_CONFIG = "goqueue.message.ttl.ms"
REGISTRY_ATTEMPTS = 3
"""How many metadata records one sync of the share group registry may write while groups
are created and deleted under it."""
REGISTRY_TIMEOUT_S = 5.0
"""How long a heartbeat or DeleteGroups waits for the metadata quorum to list or drop its
group before it is answered anyway (other brokers forward to the coordinator meanwhile)."""
SHARE_TYPE = "share"
T = TypeVar("T")
logger = logging.getLogger(__name__)


@dataclass(slots=True)
class ShareSession:
    """A member's share session (KIP-932): the partitions it fetches and the epoch its next
    request must carry. Sessions live in memory, as Kafka's share session cache does."""

    epoch: int
    partitions: list[TopicPartition]


class ShareCoordinator:
    """Share groups of this broker: ShareGroupHeartbeat, ShareFetch, ShareAcknowledge."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self.topics = ImageTopics(broker)
        self.runtime: CoordinatorRuntime[ShareShard] = CoordinatorRuntime(
            broker,
            STATE_TOPIC,
            broker.settings.share_coordinator_state_topic_num_partitions,
            {
                "cleanup.policy": "compact",
                "segment.bytes": str(broker.settings.offsets_topic_segment_bytes),
            },
            self._new_shard,
        )
        self._sessions: dict[tuple[str, str, int], ShareSession] = {}
        """By group, member and the broker the member talks to."""
        self._offsets: dict[tuple[str, int], tuple[int, int]] = {}
        """Log start and high watermark of partitions this broker holds no replica of, as
        last read from their leaders."""
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._dead_lettering: dict[tuple[str, TopicPartition], asyncio.Task[None]] = {}
        self._registering: set[asyncio.Task[None]] = set()
        broker.metrics.register(ShareGroupCollector(self.all_stats))

    @property
    def broker(self) -> Broker:
        return self._broker

    def _new_shard(self, index: int, timer: Timer) -> ShareShard:
        return ShareShard(
            index, timer, lambda: self._broker.settings, self.topics, self._log_offsets, self
        )

    def _log_offsets(self, topic: str, partition: int) -> tuple[int, int] | None:
        """From this broker's replica, else as last read from the leader (None if never)."""
        hosted = self._broker.hosted_partition(topic, partition)
        if hosted is None:
            return self._offsets.get((topic, partition))
        return hosted.log.log_start_offset, hosted.high_watermark

    async def _peer_read(self, topic: str, partition: int, offset: int) -> PeerRead:
        """Whole batches from the one holding `offset`, or from the log start if retention
        removed it (as a read of a local replica does)."""
        read = await self._broker.peers.read(topic, partition, offset)
        if not read.records and offset < read.log_start_offset < read.high_watermark:
            read = await self._broker.peers.read(topic, partition, read.log_start_offset)
        if self._broker.hosted_partition(topic, partition) is None:
            self._offsets[(topic, partition)] = (read.log_start_offset, read.high_watermark)
        return read

    async def _learn_offsets(self, topic: str, partitions: Iterable[int]) -> None:
        """Read where partitions without a replica here start and end, so that share
        partitions the shard initializes start at the right offset."""
        for partition in partitions:
            if self._log_offsets(topic, partition) is None:
                with contextlib.suppress(BrokerError):
                    await self._peer_read(topic, partition, 0)

    async def start(self) -> None:
        await self.runtime.start()

    async def stop(self) -> None:
        tasks = [*self._dead_lettering.values(), *self._registering]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._wake_all()
        await self.runtime.stop()

    def partition_for(self, group_id: str) -> int:
        return self.runtime.partition_for(group_id)

    # ShareListener (called by shards inside their operations).

    def records_available(self, group_id: str) -> None:
        for waiter in self._waiters.pop(group_id, ()):
            if not waiter.done():
                waiter.set_result(None)

    def dead_letters_pending(self, group_id: str, tp: TopicPartition) -> None:
        key = (group_id, tp)
        task = self._dead_lettering.get(key)
        if task is None or task.done():
            self._dead_lettering[key] = asyncio.get_running_loop().create_task(
                self._dead_letter(group_id, tp)
            )

    def member_removed(self, group_id: str, member_id: str) -> None:
        for key in [k for k in self._sessions if k[:2] == (group_id, member_id)]:
            del self._sessions[key]

    def shard_loaded(self, index: int) -> None:
        task = asyncio.get_running_loop().create_task(self._sync_registry(index))
        self._registering.add(task)
        task.add_done_callback(self._registering.discard)

    async def _sync_registry(self, index: int, group_ids: Collection[str] | None = None) -> None:
        """Make the metadata's share group ids (`image.share_groups`) agree with shard
        `index` while this broker coordinates it: for `group_ids`, else for every id that
        hashes to it (after a load: groups created before the registry existed, or whose
        record was lost with a failed coordinator). Looks again after each record, since a
        group may be created or deleted while one is written."""
        for _ in range(REGISTRY_ATTEMPTS):
            try:
                groups = self.runtime.shard(index).groups
            except BrokerError:
                return
            listed = self._broker.image.share_groups
            ids = listed | groups.keys() if group_ids is None else group_ids
            mine = [group_id for group_id in ids if self.partition_for(group_id) == index]
            added = [group_id for group_id in mine if group_id in groups and group_id not in listed]
            removed = [
                group_id for group_id in mine if group_id in listed and group_id not in groups
            ]
            if not added and not removed:
                return
            try:
                await self._broker.metadata.update_share_groups(added, removed, REGISTRY_TIMEOUT_S)
            except MetadataError as exc:
                logger.warning(
                    "share groups %s / %s not (un)listed in the cluster metadata (other brokers "
                    "forward their requests meanwhile): %s",
                    added,
                    removed,
                    exc,
                )
                return

    def _wake_all(self) -> None:
        for group_id in list(self._waiters):
            self.records_available(group_id)

    # Membership.

    async def heartbeat(self, request: ShareHeartbeat) -> ShareHeartbeatResponse:
        """A group id already used by a consumer group cannot be a share group."""
        if self._is_consumer_group(request.group_id):
            return ShareHeartbeatResponse(
                ErrorCode.group_id_not_found,
                f"Group {request.group_id} is not a share group.",
                request.member_id,
            )
        try:
            if self._forwards(request.group_id, peer_node_id(request.client_id)):
                fields = forward.heartbeat_fields(request)
                api_key = forward.SHARE_GROUP_HEARTBEAT
                return forward.heartbeat_result(
                    await self._forward(request.group_id, api_key, fields)
                )
            info = self._broker.image.topics
            for name in request.subscribed_topics or ():
                if name in info:
                    await self._learn_offsets(name, range(info[name].partitions))
            response = await self._write(request.group_id, lambda s: s.heartbeat(request))
            await self._sync_registry(self.partition_for(request.group_id), [request.group_id])
            return response
        except BrokerError as exc:
            return ShareHeartbeatResponse(exc.error_code, exc.message, request.member_id)

    def _is_consumer_group(self, group_id: str) -> bool:
        groups = self._broker.groups
        try:
            shard = groups.runtime.shard(groups.partition_for(group_id))
        except BrokerError:
            return False
        return shard.find(group_id) is not None

    # ShareFetch and ShareAcknowledge.

    async def fetch(self, params: ShareParams) -> ShareResult:
        """Open, continue or close the member's share session, apply its acknowledgements,
        then acquire records of the session's partitions, waiting up to `max_wait_ms` while
        there is nothing to acquire."""
        return await self._session_request(params, fetching=True)

    async def acknowledge(self, params: ShareParams) -> ShareResult:
        return await self._session_request(params, fetching=False)

    async def _session_request(self, params: ShareParams, *, fetching: bool) -> ShareResult:
        """Kafka's share session rules: epoch 0 opens a session (a member of the group, no
        acknowledgements), -1 closes it (releasing what the member still holds there), any
        other epoch must be the one the session expects next."""
        index = self.partition_for(params.group_id)
        try:
            if self._forwards(params.group_id, params.origin):
                api_key = forward.SHARE_FETCH if fetching else forward.SHARE_ACKNOWLEDGE
                fields = forward.request_fields(params, fetching=fetching)
                wait_s = params.max_wait_ms / 1000
                response = await self._forward(params.group_id, api_key, fields, wait_s)
                return forward.share_result(response, fetching=fetching)
            shard = self.runtime.shard(index)
        except BrokerError as exc:
            return ShareResult(exc.error_code, exc.message)
        lock_ms = shard.config(params.group_id).limits.lock_duration_ms
        origin = self._broker.settings.node_id if params.origin is None else params.origin
        key = (params.group_id, params.member_id, origin)
        session = self._sessions.get(key)
        epoch = params.session_epoch
        if epoch == INITIAL_EPOCH:
            if not fetching:
                return ShareResult(
                    ErrorCode.invalid_share_session_epoch,
                    "ShareAcknowledge cannot open a share session.",
                )
            if params.acks:
                return ShareResult(
                    ErrorCode.invalid_request, "A new share session cannot acknowledge."
                )
            member_error = shard.member_error(params.group_id, params.member_id)
            if member_error != ErrorCode.none:
                return ShareResult(member_error, f"Member {params.member_id} is not in the group.")
            session = self._sessions[key] = ShareSession(1, [])
        elif epoch == FINAL_EPOCH and fetching and params.fetch:
            return ShareResult(
                ErrorCode.invalid_request, "A share session being closed cannot fetch."
            )
        elif session is None:
            return ShareResult(
                ErrorCode.share_session_not_found,
                f"No share session for member {params.member_id}.",
            )
        elif epoch != FINAL_EPOCH and epoch != session.epoch:
            return ShareResult(
                ErrorCode.invalid_share_session_epoch,
                f"Share session epoch {epoch} is not the expected {session.epoch}.",
            )
        elif epoch != FINAL_EPOCH:
            session.epoch += 1
        for tp in params.fetch:
            if tp not in session.partitions:
                session.partitions.append(tp)
        session.partitions = [tp for tp in session.partitions if tp not in params.forget]
        results: dict[TopicPartition, SharePartitionResult] = {}
        if params.acks:
            await self._apply_acks(index, params, results)
        if epoch == FINAL_EPOCH:
            self._sessions.pop(key, None)
            await self.runtime.write(
                index,
                lambda s: s.release_member(params.group_id, params.member_id, session.partitions),
            )
        elif fetching:
            await self._acquire(index, params, origin, session, results)
            if epoch == INITIAL_EPOCH:
                for tp in session.partitions:
                    results.setdefault(tp, SharePartitionResult())
        return ShareResult(ErrorCode.none, None, lock_ms, results)

    def _forwards(self, group_id: str, origin: int | None) -> bool:
        """Whether a request for the group goes on to its coordinator: a client's request
        (not one a peer already forwarded) to a broker that does not lead the group's
        `__share_group_state` partition."""
        return origin is None and self.coordinated_elsewhere(group_id)

    def coordinated_elsewhere(self, group_id: str) -> bool:
        """Whether another broker leads the group's `__share_group_state` partition (as far as
        this broker knows): a request for the group is answered there."""
        try:
            self.runtime.shard(self.partition_for(group_id))
        except BrokerError as exc:
            return exc.error_code == ErrorCode.not_coordinator
        return False

    async def _forward(
        self, group_id: str, api_key: int, fields: Mapping[str, object], wait_s: float = 0.0
    ) -> Any:
        """Send a request on to the group's coordinator, on a connection of its own (it may
        long-poll there); raises BrokerError. Whether a request that got no answer was
        applied is unknown: a share session's next request finds out from its epoch."""
        coordinator = self.runtime.coordinator_for(group_id)
        if coordinator is None or coordinator.node_id == self._broker.settings.node_id:
            raise BrokerError(
                ErrorCode.coordinator_not_available,
                f"The coordinator of share group {group_id} is not available.",
            )
        try:
            return await self._broker.peers.request_held(
                coordinator.node_id, api_key, fields, wait_s + FORWARD_TIMEOUT_S
            )
        except BrokerError as exc:
            logger.info(
                "share group %s: request %d not forwarded to broker %d: %s",
                group_id,
                api_key,
                coordinator.node_id,
                exc,
            )
            raise

    async def _apply_acks(
        self,
        index: int,
        params: ShareParams,
        results: dict[TopicPartition, SharePartitionResult],
    ) -> None:
        acks: dict[TopicPartition, Sequence[AckBatch]] = {}
        for tp, batches in params.acks.items():
            renewing = any(AckType.RENEW in batch.types for batch in batches)
            if renewing and not params.allow_renew:
                results[tp] = SharePartitionResult(
                    ack_error=ErrorCode.invalid_request,
                    ack_message="Renew acknowledgements need is_renew_ack (ShareFetch v2).",
                )
            else:
                acks[tp] = batches
        outcome = await self.runtime.write(
            index, lambda s: s.acknowledge(params.group_id, params.member_id, acks)
        )
        for tp, (error, message) in outcome.items():
            results[tp] = SharePartitionResult(ack_error=error, ack_message=message)

    async def _acquire(
        self,
        index: int,
        params: ShareParams,
        origin: int,
        session: ShareSession,
        results: dict[TopicPartition, SharePartitionResult],
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(params.max_wait_ms, 0) / 1000
        while True:
            budget, remaining = params.max_records, params.max_bytes
            partitions = list(session.partitions)
            if partitions:
                turn = session.epoch % len(partitions)
                partitions = partitions[turn:] + partitions[:turn]
            for tp in partitions:
                if budget <= 0 or remaining <= 0:
                    break
                result = results.setdefault(tp, SharePartitionResult())
                await self._acquire_partition(index, params, origin, tp, budget, result)
                budget -= sum(run.last_offset - run.first_offset + 1 for run in result.acquired)
                remaining -= len(result.records)
            if budget < params.max_records or loop.time() >= deadline or not partitions:
                return
            await self._wait(params.group_id, partitions, deadline - loop.time())

    async def _acquire_partition(
        self,
        index: int,
        params: ShareParams,
        origin: int,
        tp: TopicPartition,
        max_records: int,
        result: SharePartitionResult,
    ) -> None:
        """Acquire records of one partition for a session of the broker leading it (another
        broker's session of the member gets NOT_LEADER_OR_FOLLOWER, so that a member never
        holds records of one partition through two brokers)."""
        name = self.topics.name_of(tp[0])
        if name is None:
            result.error = ErrorCode.unknown_topic_id
            return
        try:
            leader = self._broker.peers.leader_of(name, tp[1])
        except BrokerError as exc:
            result.error = exc.error_code
            return
        if leader != origin:
            result.error = ErrorCode.not_leader_or_follower
            return
        group_id = params.group_id
        shard = self.runtime.shard(index)
        if shard.partition(group_id, tp) is None:
            await self._learn_offsets(name, (tp[1],))
            await self.runtime.write(index, lambda s: s.ensure_partition(group_id, tp))
        hosted = self._broker.hosted_partition(name, tp[1])
        bound = UNBOUNDED if hosted is None else hosted.high_watermark
        start = shard.next_candidate(group_id, tp, bound)
        if start is None:
            return
        try:
            read = await self._peer_read(name, tp[1], start)
        except BrokerError as exc:
            result.error = exc.error_code
            return
        if not read.records:
            return
        ttl_ms = int(self._broker.image.topics[name].configs.get(TTL_CONFIG, "0") or 0)
        fifo = shard.config(group_id).limits.fifo
        candidates = _candidates(read.records, start, read.high_watermark, ttl_ms, fifo)
        acquired = await self.runtime.write(
            index,
            lambda s: s.acquire(
                group_id, params.member_id, tp, candidates, max_records, read.log_start_offset
            ),
        )
        if acquired:
            result.acquired = acquired
            result.records = _covering(read.records, acquired)

    async def _wait(
        self, group_id: str, partitions: Sequence[TopicPartition], timeout: float
    ) -> None:
        """Until new records arrive in one of the partitions, records of the group become
        available again, or the time is up; at most POLL_S while a partition is led by
        another broker, whose new records this broker may not hear of."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        hosted = []
        for topic_id, index in partitions:
            name = self.topics.name_of(topic_id)
            partition = None if name is None else self._broker.hosted_partition(name, index)
            if partition is not None:
                hosted.append(partition)
            if partition is None or not partition.is_leader:
                timeout = min(timeout, POLL_S)
        if timeout <= 0:
            return
        for partition in hosted:
            partition.add_waiter(waiter)
        self._waiters.setdefault(group_id, set()).add(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            pass
        finally:
            for partition in hosted:
                partition.remove_waiter(waiter)
            self._waiters.get(group_id, set()).discard(waiter)

    # Dead letters.

    async def _dead_letter(self, group_id: str, tp: TopicPartition) -> None:
        """Copy the share partition's DEAD_LETTERING records to the dead-letter topic, then
        archive them; retried until it succeeds (the records stay pending meanwhile, also
        across restarts)."""
        index = self.partition_for(group_id)
        delay = DLQ_RETRY_S
        while True:
            try:
                if not await self._dead_letter_once(index, group_id, tp):
                    return
                delay = DLQ_RETRY_S
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception(
                    "dead-lettering records of %s for %s failed; retrying in %.0f s",
                    tp,
                    group_id,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, DLQ_MAX_RETRY_S)

    async def _dead_letter_once(self, index: int, group_id: str, tp: TopicPartition) -> bool:
        shard = self.runtime.shard(index)
        share_partition = shard.partition(group_id, tp)
        pending = [] if share_partition is None else share_partition.dead_lettering()
        name = self.topics.name_of(tp[0])
        if not pending:
            return False
        wanted = {offset: entry for offset, entry in pending}
        found: list[ConsumedRecord] = []
        if name is not None:
            found = await self._read_records(name, tp[1], min(wanted), max(wanted), set(wanted))
        missing = set(wanted) - {record.offset for record in found}
        if missing:
            logger.warning(
                "share group %s: records %s of %s-%d are gone from the log; archived without a "
                "dead-letter copy",
                group_id,
                sorted(missing),
                name,
                tp[1],
            )
        config = shard.config(group_id)
        if found:
            topic = config.dlq_topic
            dlq_partitions = await self._dlq_partitions(topic)
            batch = dead_letter_batch(found, name or "", tp[1], group_id, wanted)
            await self._broker.peers.produce(
                topic, tp[1] % dlq_partitions, batch, timeout=DLQ_PRODUCE_TIMEOUT_S
            )
            logger.info(
                "share group %s: %d records of %s-%d dead-lettered to %s",
                group_id,
                len(found),
                name,
                tp[1],
                topic,
            )
        await self.runtime.write(
            index, lambda s: s.archive_dead_letters(group_id, tp, list(wanted))
        )
        return True

    async def _dlq_partitions(self, topic: str) -> int:
        """The dead-letter topic's partition count, creating it on first use."""
        info = self._broker.image.topics.get(topic)
        if info is None:
            with contextlib.suppress(BrokerError):
                await self._broker.create_topic(topic, -1, -1, {})
                logger.info("created dead-letter topic %s", topic)
            info = self._broker.image.topics[topic]
        return info.partitions

    async def _read_records(
        self, topic: str, index: int, first: int, last: int, wanted: set[int]
    ) -> list[ConsumedRecord]:
        found: list[ConsumedRecord] = []
        offset = first
        while offset <= last:
            read = await self._peer_read(topic, index, offset)
            progress = offset
            for header, batch in iter_batches(read.records):
                if not header.is_control:
                    found += (r for r in batch_records(header, batch) if r.offset in wanted)
                offset = header.last_offset + 1
            if offset == progress:
                break
        return found

    # Administration.

    async def describe(self, group_id: str, origin: int | None = None) -> ShareGroupDescription:
        """ShareGroupDescribe; `origin` as in `ShareParams`."""
        try:
            if self._forwards(group_id, origin):
                fields = forward.describe_fields(group_id)
                api_key = forward.SHARE_GROUP_DESCRIBE
                return forward.description(await self._forward(group_id, api_key, fields))
            return await self._read(group_id, lambda s: s.describe(group_id))
        except BrokerError as exc:
            return ShareGroupDescription(group_id, exc.error_code)

    async def list_groups(
        self, states: Collection[str] = (), types: Collection[str] = ()
    ) -> tuple[ErrorCode, list[ListedGroup]]:
        """Share groups of every loaded shard whose state and type (`share`) are among those
        asked (case-insensitive; empty: all); COORDINATOR_LOAD_IN_PROGRESS while some load."""
        wanted_states = {state.lower() for state in states}
        if types and SHARE_TYPE not in {group_type.lower() for group_type in types}:
            return ErrorCode.none, []
        listed = [
            ListedGroup(group_id, SHARE_TYPE, state, SHARE_TYPE)
            for _, shard in self.runtime.active_shards()
            for group_id, state in shard.list_groups()
            if not wanted_states or state.lower() in wanted_states
        ]
        error = ErrorCode.coordinator_load_in_progress if self.runtime.loading() else ErrorCode.none
        return error, listed

    def all_stats(self) -> list[ShareGroupStats]:
        """Every loaded share group's counts, from memory (for metrics)."""
        return [stats for _, shard in self.runtime.active_shards() for stats in shard.all_stats()]

    async def stats(self, group_id: str) -> ShareGroupStats | None:
        """Counts of a share group by state, and the age of its oldest unacknowledged record
        (the record at the lowest start offset of its share partitions)."""
        stats = await self._read(group_id, lambda s: s.stats(group_id))
        if stats is None:
            return None
        oldest: int | None = None
        for p in stats.partitions:
            if p.in_flight + p.available == 0:
                continue
            with contextlib.suppress(BrokerError):
                read = await self._peer_read(p.topic, p.partition, p.start_offset)
                timestamp = _timestamp_at(read.records, p.start_offset)
                if timestamp is not None and (oldest is None or timestamp < oldest):
                    oldest = timestamp
        if oldest is None:
            return stats
        age = max(int(time.time() * 1000) - oldest, 0)
        return ShareGroupStats(
            stats.group_id, stats.state, stats.members, stats.partitions, age, stats.dlq_topic
        )

    async def delete_group(self, group_id: str, origin: int | None = None) -> ErrorCode:
        """DeleteGroups for a share group: only without members; `origin` as in
        `ShareParams`."""
        try:
            if self._forwards(group_id, origin):
                fields = forward.delete_groups_fields(group_id)
                return forward.deleted(await self._forward(group_id, forward.DELETE_GROUPS, fields))
            error = await self._write(group_id, lambda s: s.delete_group(group_id))
            await self._sync_registry(self.partition_for(group_id), [group_id])
            return error
        except BrokerError as exc:
            return exc.error_code

    async def start_offsets(self, group_id: str) -> dict[TopicPartition, tuple[int, int]] | None:
        if self._forwards(group_id, None):
            fields = forward.describe_offsets_fields(group_id)
            response = await self._forward(group_id, forward.DESCRIBE_SHARE_GROUP_OFFSETS, fields)
            return forward.start_offsets(response)
        return await self._read(group_id, lambda s: s.start_offsets(group_id))

    async def alter_offsets(
        self, group_id: str, offsets: Mapping[TopicPartition, int]
    ) -> tuple[ErrorCode, str | None]:
        if self._forwards(group_id, None):
            by_name: dict[str, dict[int, int]] = {}
            for (topic_id, index), offset in offsets.items():
                by_name.setdefault(self.topics.name_of(topic_id) or "", {})[index] = offset
            fields = forward.alter_offsets_fields(group_id, by_name)
            return await self._forward_change(group_id, forward.ALTER_SHARE_GROUP_OFFSETS, fields)
        return await self._offsets_change(group_id, lambda s: s.alter_offsets(group_id, offsets))

    async def delete_offsets(
        self, group_id: str, topic_ids: Collection[uuid.UUID]
    ) -> tuple[ErrorCode, str | None]:
        if self._forwards(group_id, None):
            names = [self.topics.name_of(topic_id) or "" for topic_id in topic_ids]
            fields = forward.delete_offsets_fields(group_id, names)
            return await self._forward_change(group_id, forward.DELETE_SHARE_GROUP_OFFSETS, fields)
        return await self._offsets_change(group_id, lambda s: s.delete_offsets(group_id, topic_ids))

    async def _forward_change(
        self, group_id: str, api_key: int, fields: Mapping[str, object]
    ) -> tuple[ErrorCode, str | None]:
        try:
            return forward.offsets_change(await self._forward(group_id, api_key, fields))
        except BrokerError as exc:
            return exc.error_code, exc.message

    async def _offsets_change(
        self, group_id: str, operation: Callable[[ShareShard], Result[None]]
    ) -> tuple[ErrorCode, str | None]:
        """Run an operation on an empty share group; its error, if it was refused."""
        try:
            await self._write(group_id, operation)
        except (BrokerError, ShareError) as exc:
            error = exc.error_code if isinstance(exc, BrokerError) else exc.error
            logger.info("share group %s offsets unchanged: %s %s", group_id, error.name, exc)
            return error, str(exc)
        return ErrorCode.none, None

    def is_share_group(self, group_id: str) -> bool:
        with contextlib.suppress(BrokerError):
            return group_id in self.runtime.shard(self.partition_for(group_id)).groups
        return False

    async def describe_group_configs(
        self, group_id: str, origin: int | None = None
    ) -> list[DescribedConfig]:
        """DescribeConfigs of a GROUP resource, from the shard that holds the group's configs
        (BrokerError while it loads); `origin` as in `ShareParams`."""
        if not group_id:
            raise BrokerError(ErrorCode.invalid_group_id, "Group id must not be empty.")
        if self._forwards(group_id, origin):
            fields = forward.describe_configs_fields(group_id)
            response = await self._forward(group_id, forward.DESCRIBE_CONFIGS, fields)
            return forward.described_configs(response)
        shard = self.runtime.shard(self.partition_for(group_id))
        return describe_group_configs(shard.configs.get(group_id, {}), self._broker.settings)

    async def group_configs(self, group_id: str) -> dict[str, str]:
        """The configs set on a group (not its defaults)."""
        return await self._read(group_id, lambda s: dict(s.configs.get(group_id, {})))

    async def alter_group_configs(
        self, group_id: str, ops: list[AlterOp], *, incremental: bool, validate_only: bool
    ) -> None:
        """IncrementalAlterConfigs/AlterConfigs on a GROUP resource; raise BrokerError."""
        if not group_id:
            raise BrokerError(ErrorCode.invalid_group_id, "Group id must not be empty.")
        if self._forwards(group_id, None):
            api_key, fields = forward.alter_configs_request(
                group_id, ops, incremental=incremental, validate_only=validate_only
            )
            forward.check_alter_configs(await self._forward(group_id, api_key, fields))
            return
        current = await self.group_configs(group_id) if incremental else {}
        try:
            check_ops(ops)
            updated = dict(current)
            for name, op, value in ops:
                if name not in GROUP_CATALOG:
                    raise InvalidConfigError(f"Unknown group config name: {name}")
                if op is OpType.DELETE or value is None:
                    updated.pop(name, None)
                elif op is OpType.SET:
                    updated[name] = value
                else:
                    raise InvalidConfigError(
                        f"Config value append/subtract is not allowed for {name}"
                    )
            valid = validate_group_configs(updated)
        except (InvalidConfigError, ValueError) as exc:
            raise BrokerError(ErrorCode.invalid_config, str(exc)) from exc
        if not validate_only:
            await self._write(group_id, lambda s: s.alter_configs(group_id, valid))
            logger.info("group %s configs: %s", group_id, valid)

    # Plumbing.

    async def _write(self, group_id: str, operation: Callable[[ShareShard], Result[T]]) -> T:
        return await self.runtime.write(self.partition_for(group_id), operation)

    async def _read(self, group_id: str, query: Callable[[ShareShard], T]) -> T:
        return await self.runtime.read(self.partition_for(group_id), query)


def _timestamp_at(data: bytes, offset: int) -> int | None:
    """The timestamp of the first record at or after `offset` in whole batches read from
    the log, None if they hold none."""
    for header, batch in iter_batches(data):
        if header.is_control or header.last_offset < offset:
            continue
        for record in batch_records(header, batch):
            if record.offset >= offset:
                return record.timestamp_ms
    return None


def _candidates(
    data: bytes, start: int, high_watermark: int, ttl_ms: int, fifo: bool
) -> Iterator[Candidate]:
    """The records of stored batches from `start` that an acquisition may take, produced
    only as far as it reads. Records are decoded only for a TTL or FIFO message groups;
    otherwise every offset of a batch is a candidate, as Kafka acquires whole batches
    (clients acknowledge offsets a compacted batch lacks as gaps)."""
    now_ms = int(time.time() * 1000)
    for header, batch in iter_batches(data):
        if header.is_control or header.last_offset < start:
            continue
        if not (ttl_ms or fifo):
            last = min(header.last_offset + 1, high_watermark)
            yield from (
                Candidate(o, header.first_timestamp)
                for o in range(max(header.base_offset, start), last)
            )
            continue
        for record in batch_records(header, batch):
            if start <= record.offset < high_watermark:
                yield Candidate(
                    record.offset,
                    record.timestamp_ms,
                    message_group(record),
                    expired=ttl_ms > 0 and now_ms - record.timestamp_ms > ttl_ms,
                )


def _covering(data: bytes, acquired: Sequence[Acquired]) -> bytes:
    """The stored batches holding the acquired records, verbatim (clients skip the records
    outside the acquired ranges, as with Kafka)."""
    view = memoryview(data)
    parts = []
    position = 0
    for header, _batch in iter_batches(view):
        size = header.size
        if any(
            header.base_offset <= run.last_offset and header.last_offset >= run.first_offset
            for run in acquired
        ):
            parts.append(bytes(view[position : position + size]))
        position += size
    return b"".join(parts)
