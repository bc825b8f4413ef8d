"""The SDK consumer: `async with Consumer(bootstrap, group_id=..., topics=[...]) as consumer`,
then `async for message in consumer` or `await consumer.getmany(...)`.

Three ways to get partitions: a classic group (JoinGroup/SyncGroup with a client-side assignor
run by the group's leader), a consumer group of the new protocol (KIP-848, the broker
assigns), or manual `assign()` without group membership. Records are fetched in the
background (`Prefetcher`) into per-partition buffers, and positions advance as the application
takes records, so `commit()` commits exactly what was handed out. The application must poll
at least every `max_poll_interval_ms`, or the member leaves the group until it polls again
(`PollTimer`).
"""

import asyncio
import inspect
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

from kio.schema.errors import ErrorCode

from goqueue.client.assignors import Assignor, assignor_for
from goqueue.client.cluster import Cluster
from goqueue.client.consumer_group_848 import ConsumerGroupMember
from goqueue.client.errors import ClientError, CommitFailedError, KafkaError
from goqueue.client.fetcher import READ_COMMITTED, READ_UNCOMMITTED, ConsumerRecord, FetchLimits
from goqueue.client.group_member import (
    COORDINATOR_ERRORS,
    MEMBER_RESET_ERRORS,
    ClassicMember,
    Coordinator,
    PollTimer,
)
from goqueue.client.groups import Committed, MemberIdentity, commit_to, fetch_committed_from
from goqueue.client.lifecycle import AsyncClient
from goqueue.client.metadata import TopicPartition
from goqueue.client.offsets import EARLIEST, LATEST, OffsetAndTimestamp, list_offsets
from goqueue.client.positions import RESET_POLICIES, Positions
from goqueue.client.prefetcher import Prefetcher

logger = logging.getLogger(__name__)

Listener = Callable[[list[TopicPartition]], Awaitable[None] | None]
"""A rebalance callback: gets the partitions assigned, revoked or lost (may be async)."""
CommitCallback = Callable[[Mapping[TopicPartition, Committed], BaseException | None], Any]
ISOLATION_LEVELS = {"read_uncommitted": READ_UNCOMMITTED, "read_committed": READ_COMMITTED}
RETRY_BACKOFF_S = 0.1
STALE_EPOCH_RETRIES = 5
WAIT_FOREVER_S = 3600.0


class Consumer(AsyncClient):
    """An asyncio Kafka consumer; see the Consumer section of docs/client.md."""

    def __init__(
        self,
        bootstrap_servers: str | Sequence[str],
        *,
        group_id: str | None = None,
        topics: Iterable[str] | None = None,
        pattern: str | re.Pattern[str] | None = None,
        group_protocol: Literal["classic", "consumer"] = "classic",
        partition_assignment_strategy: Sequence[str | Assignor] = ("range", "cooperative-sticky"),
        group_remote_assignor: str | None = None,
        group_instance_id: str | None = None,
        enable_auto_commit: bool = True,
        auto_commit_interval_ms: int = 5000,
        auto_offset_reset: Literal["latest", "earliest", "none"] = "latest",
        isolation_level: Literal["read_uncommitted", "read_committed"] = "read_uncommitted",
        session_timeout_ms: int = 45_000,
        heartbeat_interval_ms: int = 3000,
        max_poll_interval_ms: int = 300_000,
        max_poll_records: int = 500,
        fetch_min_bytes: int = 1,
        fetch_max_wait_ms: int = 500,
        fetch_max_bytes: int = 52_428_800,
        max_partition_fetch_bytes: int = 1_048_576,
        metadata_max_age_ms: int = 300_000,
        request_timeout_ms: int = 30_000,
        client_id: str = "goqueue",
        listener: object | None = None,
        on_assign: Listener | None = None,
        on_revoke: Listener | None = None,
        on_lost: Listener | None = None,
    ) -> None:
        if auto_offset_reset not in RESET_POLICIES:
            raise ValueError(f"auto_offset_reset must be one of {', '.join(RESET_POLICIES)}")
        if isolation_level not in ISOLATION_LEVELS:
            raise ValueError(f"isolation_level must be one of {', '.join(ISOLATION_LEVELS)}")
        if group_protocol not in ("classic", "consumer"):
            raise ValueError('group_protocol must be "classic" or "consumer"')
        if max_poll_records < 1:
            raise ValueError("max_poll_records must be at least 1")
        self.group_id = group_id
        self._cluster = Cluster(
            bootstrap_servers, client_id=client_id, request_timeout=request_timeout_ms / 1000
        )
        self._group_protocol = group_protocol
        self._assignors = [
            assignor_for(a) if isinstance(a, str) else a for a in partition_assignment_strategy
        ]
        self._remote_assignor = group_remote_assignor
        self._group_instance_id = group_instance_id
        self._auto_commit = enable_auto_commit and group_id is not None
        self._auto_commit_s = auto_commit_interval_ms / 1000
        self._isolation_level = ISOLATION_LEVELS[isolation_level]
        self._session_timeout_ms = session_timeout_ms
        self._heartbeat_interval_ms = heartbeat_interval_ms
        self._poll_timer = PollTimer(max_poll_interval_ms)
        self._max_poll_records = max_poll_records
        self._metadata_max_age_ms = metadata_max_age_ms
        self._listeners = {
            "assign": on_assign or getattr(listener, "on_assign", None),
            "revoke": on_revoke or getattr(listener, "on_revoke", None),
            "lost": on_lost or getattr(listener, "on_lost", None),
        }
        self._positions = Positions()
        self._prefetcher = Prefetcher(
            self._cluster,
            self._positions,
            limits=FetchLimits(
                max_wait_ms=fetch_max_wait_ms,
                min_bytes=fetch_min_bytes,
                max_bytes=fetch_max_bytes,
                partition_max_bytes=max_partition_fetch_bytes,
            ),
            isolation_level=self._isolation_level,
            reset_policy=RESET_POLICIES[auto_offset_reset],
            initialize=self._committed_positions,
        )
        self._topics: tuple[str, ...] | None = None
        self._pattern: re.Pattern[str] | None = None
        self._member: ClassicMember | ConsumerGroupMember | None = None
        self._coordinator: Coordinator | None = None
        self._manual = False
        self._started = False
        self._closed = False
        self._last_auto_commit = time.monotonic()
        self._auto_commit_task: asyncio.Task[None] | None = None
        self._last_committed: dict[TopicPartition, Committed] = {}
        if topics is not None or pattern is not None:
            self.subscribe(topics, pattern=pattern)

    async def start(self) -> None:
        """Reach the cluster and start fetching (and joining the group, if subscribed)."""
        if self._started:
            return
        await self._cluster.connect()
        self._poll_timer.poll()
        self._started = True
        self._prefetcher.start()
        if self._topics is not None or self._pattern is not None:
            self._join()

    # Subscription and assignment

    def subscribe(
        self,
        topics: Iterable[str] | None = None,
        *,
        pattern: str | re.Pattern[str] | None = None,
    ) -> None:
        """Consume `topics` (or every topic whose whole name matches `pattern`) as a member
        of the consumer's group; replaces an earlier subscription. With
        `group_protocol="consumer"` the broker matches the pattern's text, so its flags must be
        written inline (`(?i)`)."""
        if self.group_id is None:
            raise ValueError("subscribing needs a group_id (use assign() without a group)")
        if (topics is None) == (pattern is None):
            raise ValueError("subscribe to either topics or a pattern")
        compiled = re.compile(pattern) if pattern is not None else None
        if (
            compiled is not None
            and self._group_protocol == "consumer"
            and re.compile(compiled.pattern).flags != compiled.flags
        ):
            raise ValueError("the broker matches the pattern's text: write its flags inline")
        if self._manual:
            raise ValueError("the consumer has manually assigned partitions: unsubscribe first")
        self._topics = tuple(sorted(set(topics))) if topics is not None else None
        self._pattern = compiled
        if self._member is not None:
            self._member.rejoin()
        elif self._started:
            self._join()

    def subscription(self) -> set[str]:
        """The topics subscribed to by name (empty for a pattern)."""
        return set(self._topics or ())

    async def unsubscribe(self) -> None:
        """Leave the group (revoking the partitions) or drop the manual assignment."""
        if self._member is not None:
            member, self._member = self._member, None
            await member.close()
        self._positions.unassign(list(self._positions.partitions))
        self._topics, self._pattern, self._manual = None, None, False

    def assign(self, partitions: Iterable[TopicPartition | tuple[str, int]]) -> None:
        """Consume exactly these partitions, without group membership (a group_id still
        serves for committed offsets)."""
        if self._topics is not None or self._pattern is not None:
            raise ValueError("the consumer is subscribed: unsubscribe before assigning")
        wanted = [TopicPartition(*tp) for tp in partitions]
        self._manual = True
        self._positions.unassign([tp for tp in self._positions.partitions if tp not in wanted])
        self._positions.assign(wanted)
        self._prefetcher.wake()

    def assignment(self) -> set[TopicPartition]:
        """The partitions the consumer owns now."""
        return set(self._positions.partitions)

    async def joined(self, timeout: float | None = None) -> set[TopicPartition]:
        """Wait until the consumer has joined its group (after `start()`, or a rebalance in
        progress), so its assignment is known, and return it; it may be empty: more consumers
        than partitions. Raises `TimeoutError` after `timeout` seconds. Waiting counts as
        polling (`max_poll_interval_ms`)."""
        if self._member is not None:
            with self._poll_timer.polling():
                async with asyncio.timeout(timeout):
                    await self._member.stable.wait()
        return self.assignment()

    # Polling

    async def getmany(
        self, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        """The records available now, or the first to arrive within `timeout_ms`; at most
        `max_records` (default `max_poll_records`), by partition."""
        return await self._poll(timeout_ms / 1000, max_records or self._max_poll_records)

    async def getone(self, timeout_ms: int | None = None) -> ConsumerRecord | None:
        """The next record; waits `timeout_ms` (None: until one arrives), None on timeout."""
        if self._started and not self._closed:
            self._poll_timer.poll()
            self._maybe_auto_commit()
            self._raise_errors()
            record, drained = self._positions.take_one()
            if drained:
                self._prefetcher.wake()
            if record is not None:
                return record
        timeout = WAIT_FOREVER_S if timeout_ms is None else timeout_ms / 1000
        while True:
            taken = await self._poll(timeout, 1)
            if taken:
                return next(iter(taken.values()))[0]
            if timeout_ms is not None or self._closed:
                return None

    def __aiter__(self) -> AsyncIterator[ConsumerRecord]:
        return self

    async def __anext__(self) -> ConsumerRecord:
        record = None if self._closed else await self.getone()
        if record is None:
            raise StopAsyncIteration  # closed (while waiting, perhaps)
        return record

    async def _poll(
        self, timeout: float, max_records: int
    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        if not self._started:
            raise ClientError("the consumer is not started: use `async with` or await start()")
        if self._closed:
            raise ClientError("the consumer is closed")
        with self._poll_timer.polling():
            self._maybe_auto_commit()
            deadline = time.monotonic() + timeout
            while not self._closed:
                self._raise_errors()
                taken = self._positions.take(max_records)
                if taken:
                    self._prefetcher.wake()
                    return taken
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return {}
                await self._prefetcher.wait(remaining)
        return {}

    def _raise_errors(self) -> None:
        if self._member is not None and self._member.error is not None:
            raise self._member.error
        self._prefetcher.raise_error()

    # Positions

    async def position(self, partition: TopicPartition) -> int:
        """The offset of the next record the consumer hands out for `partition` (looking up
        the committed offset or resetting first if needed)."""
        state = self._positions.state(partition)
        deadline = time.monotonic() + self._cluster.request_timeout
        while state.position is None:
            self._raise_errors()
            if time.monotonic() >= deadline:
                raise ClientError(f"no position for {partition} yet (see auto_offset_reset)")
            await self._prefetcher.prepare_positions()
            if state.position is None:
                await asyncio.sleep(RETRY_BACKOFF_S)
        return state.position

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Hand out `partition` from `offset` next."""
        if offset < 0:
            raise ValueError(f"cannot seek to negative offset {offset}")
        self._positions.state(partition).seek(offset)
        self._prefetcher.wake()

    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        """Start the partitions (default: all assigned) from their first offset."""
        self._reset(partitions, EARLIEST)

    def seek_to_end(self, *partitions: TopicPartition) -> None:
        """Start the partitions (default: all assigned) from the next record produced."""
        self._reset(partitions, LATEST)

    def seek_to_timestamp(self, timestamp_ms: int, *partitions: TopicPartition) -> None:
        """Start the partitions (default: all assigned) from the first record whose timestamp
        is at or after `timestamp_ms` (the end of the log if there is none)."""
        if timestamp_ms < 0:
            raise ValueError(f"cannot seek to negative timestamp {timestamp_ms}")
        self._reset(partitions, timestamp_ms)

    def _reset(self, partitions: Sequence[TopicPartition], query: int) -> None:
        for tp in partitions or list(self._positions.partitions):
            self._positions.state(tp).reset_to(query)
        self._prefetcher.wake()

    async def offsets_for_times(
        self, timestamps: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        """The first offset at or after each timestamp, None where no record is that late."""
        found = await list_offsets(self._cluster, timestamps, self._isolation_level)
        return {tp: (f if f.offset >= 0 else None) for tp, f in found.items()}

    async def beginning_offsets(
        self, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, int]:
        return await self._list(partitions, EARLIEST)

    async def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The high watermark (read committed: the last stable offset) of each partition."""
        return await self._list(partitions, LATEST)

    async def _list(
        self, partitions: Iterable[TopicPartition], query: int
    ) -> dict[TopicPartition, int]:
        found = await list_offsets(
            self._cluster, {tp: query for tp in partitions}, self._isolation_level
        )
        return {tp: f.offset for tp, f in found.items()}

    def highwater(self, partition: TopicPartition) -> int | None:
        """The high watermark the last fetch of `partition` reported (None before one)."""
        value = self._positions.state(partition).high_watermark
        return value if value >= 0 else None

    def last_stable_offset(self, partition: TopicPartition) -> int | None:
        value = self._positions.state(partition).last_stable_offset
        return value if value >= 0 else None

    def lag(self, partition: TopicPartition) -> int | None:
        """Records between the position and the end of the log, as of the last fetch
        (read committed: up to the last stable offset)."""
        state = self._positions.state(partition)
        end = (
            state.last_stable_offset
            if self._isolation_level == READ_COMMITTED
            else state.high_watermark
        )
        if end < 0 or state.position is None:
            return None
        return max(end - state.position, 0)

    def pause(self, *partitions: TopicPartition) -> None:
        """Stop handing out (and fetching) records of these partitions until resumed."""
        for tp in partitions:
            self._positions.state(tp).paused = True

    def resume(self, *partitions: TopicPartition) -> None:
        for tp in partitions:
            self._positions.state(tp).paused = False
        self._prefetcher.wake()

    def paused(self) -> set[TopicPartition]:
        return {tp for tp, s in self._positions.partitions.items() if s.paused}

    # Commits

    async def commit(self, offsets: Mapping[TopicPartition, int | Committed] | None = None) -> None:
        """Commit `offsets` (the next offset to consume of each partition), by default the
        positions of every assigned partition; returns once the coordinator has stored them.
        Raises `CommitFailedError` if the group rebalanced and the partitions may be
        another member's now."""
        await self._commit(self._offsets(offsets))

    def commit_async(
        self,
        offsets: Mapping[TopicPartition, int | Committed] | None = None,
        callback: CommitCallback | None = None,
    ) -> "asyncio.Task[None]":
        """Start a commit of `offsets` (default: the current positions, taken now) and return
        its task; `callback(offsets, error_or_None)` runs when it finishes."""
        chosen = self._offsets(offsets)
        task = asyncio.create_task(self._commit(chosen), name="goqueue-commit")
        if callback is not None:
            task.add_done_callback(
                lambda t: callback(chosen, None if t.cancelled() else t.exception())
            )
        return task

    async def committed(
        self, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, Committed | None]:
        """The group's committed offsets of `partitions` (None where nothing is committed)."""
        wanted = sorted(set(partitions))
        found = await self._with_coordinator(
            lambda connection: fetch_committed_from(
                self._cluster,
                connection,
                self._require_group(),
                wanted,
                require_stable=self._isolation_level == READ_COMMITTED,
            )
        )
        return {tp: found.get(tp) for tp in wanted}

    def _offsets(
        self, offsets: Mapping[TopicPartition, int | Committed] | None
    ) -> dict[TopicPartition, Committed]:
        self._require_group()
        if offsets is None:
            return {
                tp: Committed(offset, epoch)
                for tp, (offset, epoch) in self._positions.consumed().items()
            }
        return {
            TopicPartition(*tp): c if isinstance(c, Committed) else Committed(c)
            for tp, c in offsets.items()
        }

    async def _commit(self, offsets: Mapping[TopicPartition, Committed]) -> None:
        if not offsets:
            return
        group_id = self._require_group()
        try:
            await self._with_coordinator(
                lambda connection: commit_to(
                    self._cluster, connection, group_id, offsets, self._identity()
                )
            )
        except KafkaError as exc:
            if exc.code in MEMBER_RESET_ERRORS or exc.code == ErrorCode.rebalance_in_progress:
                raise CommitFailedError(
                    f"commit to group {group_id!r} failed: {exc.message}; the group rebalanced"
                    " and the partitions may belong to another member now"
                ) from exc
            raise
        self._last_committed.update(offsets)

    def _identity(self) -> MemberIdentity:
        return self._member.identity if self._member is not None else MemberIdentity()

    async def _with_coordinator(self, call: Callable[[Any], Awaitable[Any]]) -> Any:
        """Run `call` on the coordinator connection, finding the coordinator again while it
        moves or loads, until the request timeout."""
        coordinator = self._group_coordinator()
        deadline = time.monotonic() + self._cluster.request_timeout
        stale_epochs = 0
        while True:
            try:
                return await call(await coordinator.connection())
            except ClientError as exc:
                code = getattr(exc, "code", None)
                if code in COORDINATOR_ERRORS:
                    await coordinator.reset()
                elif code == ErrorCode.stale_member_epoch and stale_epochs < STALE_EPOCH_RETRIES:
                    stale_epochs += 1  # the heartbeat in flight brings the new epoch
                elif not exc.retriable or code is not None:
                    raise
                if time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(RETRY_BACKOFF_S)

    def _group_coordinator(self) -> Coordinator:
        if self._member is not None:
            return self._member.coordinator
        if self._coordinator is None:
            self._coordinator = Coordinator(self._cluster, self._require_group())
        return self._coordinator

    def _require_group(self) -> str:
        if self.group_id is None:
            raise ClientError("committed offsets need a group_id")
        return self.group_id

    def _maybe_auto_commit(self) -> None:
        if not self._auto_commit or time.monotonic() - self._last_auto_commit < self._auto_commit_s:
            return
        if self._auto_commit_task is not None and not self._auto_commit_task.done():
            return
        self._last_auto_commit = time.monotonic()
        offsets = {
            tp: c for tp, c in self._offsets(None).items() if self._last_committed.get(tp) != c
        }
        if offsets:
            self._auto_commit_task = asyncio.create_task(self._auto_commit_now(offsets))

    async def _auto_commit_now(self, offsets: Mapping[TopicPartition, Committed]) -> None:
        try:
            await self._commit(offsets)
        except ClientError as exc:
            logger.warning("group %s: auto commit failed: %s", self.group_id, exc)

    async def _committed_positions(
        self, partitions: Sequence[TopicPartition]
    ) -> Mapping[TopicPartition, Committed]:
        if self.group_id is None:
            return {}
        found = await self.committed(partitions)
        return {tp: c for tp, c in found.items() if c is not None}

    # Group membership

    def _join(self) -> None:
        hooks = _Hooks(self)
        if self._group_protocol == "consumer":
            self._member = ConsumerGroupMember(
                self._cluster,
                self._require_group(),
                hooks,
                rebalance_timeout_ms=self._poll_timer.interval_ms,
                metadata_max_age_ms=self._metadata_max_age_ms,
                poll_timer=self._poll_timer,
                server_assignor=self._remote_assignor,
                group_instance_id=self._group_instance_id,
            )
        else:
            self._member = ClassicMember(
                self._cluster,
                self._require_group(),
                hooks,
                assignors=self._assignors,
                session_timeout_ms=self._session_timeout_ms,
                rebalance_timeout_ms=self._poll_timer.interval_ms,
                heartbeat_interval_ms=self._heartbeat_interval_ms,
                metadata_max_age_ms=self._metadata_max_age_ms,
                poll_timer=self._poll_timer,
                group_instance_id=self._group_instance_id,
            )
        self._member.start()

    async def _listen(self, event: str, partitions: Sequence[TopicPartition]) -> None:
        callback = self._listeners[event]
        if callback is None and event == "lost":
            callback = self._listeners["revoke"]
        if callback is None:
            return
        try:
            result = callback(sorted(partitions))
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("rebalance listener on_%s failed", event)

    async def close(self) -> None:
        """Commit (with auto commit), leave the group, and close every connection."""
        if self._closed or not self._started:
            self._closed = True
            return
        self._closed = True
        self._prefetcher.wake_waiters()
        if self._auto_commit_task is not None:
            await asyncio.gather(self._auto_commit_task, return_exceptions=True)
        if self._member is not None:
            await self._member.close()
        elif self._auto_commit and self._positions.partitions:
            try:
                await self._commit(self._offsets(None))
            except ClientError as exc:
                logger.warning("group %s: final commit failed: %s", self.group_id, exc)
        await self._prefetcher.close()
        if self._coordinator is not None:
            await self._coordinator.close()
        await self._cluster.close()


class _Hooks:
    """The consumer as its group member sees it (`GroupHooks`)."""

    def __init__(self, consumer: Consumer) -> None:
        self._consumer = consumer

    def subscribed(self) -> Sequence[str] | None:
        return self._consumer._topics

    def pattern(self) -> str | None:
        pattern = self._consumer._pattern
        return None if pattern is None else pattern.pattern

    async def topic_partitions(self, topics: Sequence[str] | None) -> dict[str, int]:
        cluster = self._consumer._cluster
        metadata = await cluster.refresh(None if topics is None else list(topics))
        pattern = self._consumer._pattern

        def wanted(name: str, internal: bool) -> bool:
            if topics is not None:
                return True
            return pattern is not None and not internal and pattern.fullmatch(name) is not None

        return {
            name: len(topic.partitions)
            for name, topic in metadata.topics.items()
            if topic.ready and wanted(name, topic.is_internal)
        }

    def owned(self) -> list[TopicPartition]:
        return sorted(self._consumer._positions.partitions)

    async def assign(self, partitions: Sequence[TopicPartition]) -> None:
        consumer = self._consumer
        consumer._positions.assign(partitions)
        await consumer._listen("assign", partitions)
        consumer._prefetcher.wake()

    async def revoke(self, partitions: Sequence[TopicPartition]) -> None:
        consumer = self._consumer
        if consumer._auto_commit:
            revoked = set(partitions)
            offsets = {tp: c for tp, c in consumer._offsets(None).items() if tp in revoked}
            try:
                await consumer._commit(offsets)
            except ClientError as exc:
                logger.warning("group %s: commit on revoke failed: %s", consumer.group_id, exc)
        await consumer._listen("revoke", partitions)
        consumer._positions.unassign(partitions)

    async def lose(self, partitions: Sequence[TopicPartition]) -> None:
        consumer = self._consumer
        await consumer._listen("lost", partitions)
        consumer._positions.unassign(partitions)
