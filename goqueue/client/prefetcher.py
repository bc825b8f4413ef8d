"""The consumer's background fetching: positions looked up, then one Fetch in flight per
leader for every partition that has no records waiting, so records are ready when the
application asks (as the Java consumer prefetches).

Per-partition errors are handled where Kafka's consumer handles them: stale metadata
(NOT_LEADER_OR_FOLLOWER and friends) is refreshed and the fetch retried, OFFSET_OUT_OF_RANGE
resets the position by the reset policy, and anything else is kept for the application's next
poll. Lost connections are retried with exponential backoff (the cluster reconnects).
"""

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from kio.schema.errors import ErrorCode

from goqueue.client.cluster import STALE_METADATA_ERRORS, Cluster
from goqueue.client.errors import ClientError, NoOffsetForPartitionError, partition_error
from goqueue.client.fetcher import FetchLimits, consumer_records, fetch_partitions
from goqueue.client.groups import Committed
from goqueue.client.metadata import TopicPartition
from goqueue.client.offsets import list_offsets
from goqueue.client.positions import Positions

logger = logging.getLogger(__name__)

Initializer = Callable[[Sequence[TopicPartition]], Awaitable[Mapping[TopicPartition, Committed]]]
"""Looks up where partitions start (the group's committed offsets)."""
BACKOFF_S = 0.05
MAX_BACKOFF_S = 1.0


class Prefetcher:
    """Fills the positions' buffers; `wait` wakes the application when records arrive."""

    def __init__(
        self,
        cluster: Cluster,
        positions: Positions,
        *,
        limits: FetchLimits,
        isolation_level: int,
        reset_policy: int | None,
        initialize: Initializer,
    ) -> None:
        self._cluster = cluster
        self._positions = positions
        self._limits = limits
        self._isolation_level = isolation_level
        self._reset_policy = reset_policy
        self._initialize = initialize
        self._changed = asyncio.Event()
        self._arrived = asyncio.Event()
        self._errors: deque[ClientError] = deque()
        self._in_flight: set[TopicPartition] = set()
        self._backoff = BACKOFF_S
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="goqueue-consumer-fetch")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def wake(self) -> None:
        """Something changed (assignment, seek, resume): look for work again."""
        self._changed.set()

    def wake_waiters(self) -> None:
        """End every `wait` now (the consumer is closing)."""
        self._arrived.set()

    def raise_error(self) -> None:
        """Raise the oldest error not yet reported to the application."""
        if self._errors:
            raise self._errors.popleft()

    async def wait(self, timeout: float) -> None:
        """Until records or an error arrive, or `timeout` seconds pass."""
        self._arrived.clear()
        if self._errors or self._positions.has_records():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._arrived.wait(), timeout)

    def _report(self, error: ClientError) -> None:
        self._errors.append(error)
        self._arrived.set()

    async def _run(self) -> None:
        fetches: dict[int, asyncio.Task[None]] = {}
        while True:
            self._changed.clear()
            try:
                await self.prepare_positions()
                wanted = {
                    tp: offset
                    for tp, offset in self._positions.fetchable().items()
                    if tp not in self._in_flight
                }
                for node_id, tps in (await self._cluster.leaders(wanted)).items():
                    if node_id not in fetches:
                        request = {tp: wanted[tp] for tp in tps}
                        fetches[node_id] = asyncio.create_task(self._fetch(node_id, request))
            except ClientError as exc:
                await self._failed(exc)
                continue
            changed = asyncio.create_task(self._changed.wait())
            try:
                await asyncio.wait(
                    [changed, *fetches.values()], return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                changed.cancel()
            fetches = {node: task for node, task in fetches.items() if not task.done()}

    async def _failed(self, exc: ClientError) -> None:
        """Report what the application must know, then back off before trying again."""
        if not exc.retriable:
            self._report(exc)
        logger.debug("consumer fetch: %s; retrying in %.2f s", exc, self._backoff)
        await asyncio.sleep(self._backoff)
        self._backoff = min(self._backoff * 2, MAX_BACKOFF_S)

    async def prepare_positions(self) -> None:
        """Committed offsets for new partitions, then the resets (ListOffsets) still due."""
        new = self._positions.to_initialize()
        if new:
            committed = await self._initialize(new)
            for tp in new:
                state = self._positions.partitions.get(tp)
                if state is None or state.initialized:
                    continue
                state.initialized = True
                if tp in committed:
                    state.position = committed[tp].offset
                    state.leader_epoch = committed[tp].leader_epoch
                else:
                    state.reset = self._reset_policy
            missing = [tp for tp in new if tp not in committed]
            if self._reset_policy is None and missing:
                self._report(NoOffsetForPartitionError(missing))
        resets = self._positions.to_reset()
        if resets:
            found = await list_offsets(self._cluster, resets, self._isolation_level)
            for tp, answer in found.items():
                state = self._positions.partitions.get(tp)
                if state is not None and state.reset == resets[tp]:
                    state.seek(answer.offset if answer.offset >= 0 else await self._end(tp))

    async def _end(self, tp: TopicPartition) -> int:
        """Where a timestamp beyond the last record leaves the consumer: the log end."""
        found = await list_offsets(self._cluster, {tp: -1}, self._isolation_level)
        return found[tp].offset

    async def _fetch(self, node_id: int, request: dict[TopicPartition, int]) -> None:
        states = {tp: self._positions.partitions.get(tp) for tp in request}
        self._in_flight.update(request)
        try:
            answers = await fetch_partitions(
                self._cluster, node_id, request, self._limits, self._isolation_level
            )
        except ClientError as exc:
            self._in_flight.difference_update(request)
            await self._failed(exc)
            self._changed.set()
            return
        self._in_flight.difference_update(request)
        self._backoff = BACKOFF_S
        stale = False
        for tp, answer in answers.items():
            state = self._positions.partitions.get(tp)
            if state is not None and state is states.get(tp) and state.position == request[tp]:
                stale = self._take(tp, request[tp], answer) or stale
        if stale:
            await asyncio.sleep(BACKOFF_S)
        self._changed.set()

    def _take(self, tp: TopicPartition, offset: int, answer: Any) -> bool:
        """Buffer one partition's answer (or act on its error); True if metadata was stale."""
        state = self._positions.partitions[tp]
        code = answer.error_code
        if code == ErrorCode.none:
            try:
                records, next_offset = consumer_records(tp, answer, offset, self._isolation_level)
            except ClientError as exc:
                # A batch that does not decode stops the partition until the application
                # seeks past it (as Kafka's consumer does), instead of fetching it forever.
                state.position = None
                self._report(exc)
                return False
            state.high_watermark = answer.high_watermark
            state.last_stable_offset = getattr(answer, "last_stable_offset", -1)
            state.log_start_offset = getattr(answer, "log_start_offset", -1)
            if records:
                state.buffer.extend(records)
                state.buffer_end = next_offset
                self._arrived.set()
            else:
                state.position = next_offset  # past control or aborted batches, if any
        elif code == ErrorCode.offset_out_of_range:
            logger.info("%s: offset %d is out of range, resetting", tp, offset)
            state.position = None
            state.reset = self._reset_policy
            if self._reset_policy is None:
                self._report(NoOffsetForPartitionError([tp]))
        elif code in STALE_METADATA_ERRORS:
            self._cluster.invalidate(tp.topic)
            return True
        else:
            self._report(partition_error(code, tp.topic, tp.partition))
        return False
