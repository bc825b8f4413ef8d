"""`ShareConsumer`: a member of a share group (KIP-932), Go-Queue's queue semantics for Python.

Many members of one share group consume the same partitions at once: the partition leader hands
each ShareFetch records that no other member holds and locks them for the group's acquisition
lock timeout. The member then accepts, releases or rejects each record; a record whose lock runs
out goes back to the others, with its delivery count raised.

How the pieces fit:

- A heartbeat task keeps the member in the group (ShareGroupHeartbeat to the group coordinator)
  and learns which partitions to fetch. The member id is a UUID this client makes up, as
  KIP-932 asks, and stays the same for the consumer's whole life, also across rejoins.
- Iterating fetches only when the buffer of fetched messages is empty, so the consumer never
  locks more records than it is about to hand out (`max_records` per round).
- `ack()`, `release()` and `reject()` only record the outcome. Recorded outcomes travel with
  the next ShareFetch to that partition's leader (piggybacked), or in a ShareAcknowledge once
  they have waited `ack_linger` without a fetch going out, or at once with `commit()`, which
  waits for the broker's answer and raises `AcknowledgementError` for every acknowledgement
  since the last commit that the broker refused or may not have applied.
- Requests of one share session carry consecutive epochs, so they go one at a time per broker
  (a lock per broker); a lost request or a session error starts a new session.
- `close()` sends what is recorded and closes the share sessions (epoch -1), on which the
  brokers release every record the member still holds; then it leaves the group.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import datetime
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from kio.schema.errors import ErrorCode

from goqueue.client.cluster import DEFAULT_BOOTSTRAP, Cluster
from goqueue.client.connection import DEFAULT_REQUEST_TIMEOUT, Connection
from goqueue.client.errors import (
    BrokerConnectionError,
    ClientError,
    KafkaError,
    RequestTimedOutError,
    UnsupportedVersionError,
    error_for,
)
from goqueue.client.groups import with_coordinator
from goqueue.client.lifecycle import AsyncClient
from goqueue.client.metadata import TopicPartition
from goqueue.client.protocol import Fields
from goqueue.client.share_session import (
    FINAL_EPOCH,
    INITIAL_EPOCH,
    AckBatch,
    AckType,
    SessionPartition,
    ShareSession,
    ack_batches,
    acquired_records,
)

logger = logging.getLogger(__name__)

SHARE_GROUP_HEARTBEAT = 76
SHARE_FETCH = 78
SHARE_ACKNOWLEDGE = 79
SESSION_ATTEMPTS = 2
"""Tries of a ShareAcknowledge whose session the broker lost (a new session each time)."""
RENEW_VERSION = 2
"""The first ShareAcknowledge version that carries RENEW acknowledgements (KIP-1222)."""
SESSION_ERRORS = frozenset(
    {
        ErrorCode.share_session_not_found,
        ErrorCode.invalid_share_session_epoch,
        ErrorCode.share_session_limit_reached,
    }
)
REJOIN_ERRORS = frozenset({ErrorCode.unknown_member_id, ErrorCode.fenced_member_epoch})
STALE_LEADER_ERRORS = frozenset(
    {ErrorCode.not_leader_or_follower, ErrorCode.fenced_leader_epoch, ErrorCode.unknown_topic_id}
)
RETRY_BACKOFF_S = 0.1
DEFAULT_HEARTBEAT_INTERVAL_S = 5.0
AckMode = Literal["explicit", "implicit"]


def new_member_id() -> str:
    """A member id as Kafka's clients make them: a random UUID in URL-safe base64."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class AckFailure:
    """Acknowledgements not confirmed, with the reason: the broker's (INVALID_RECORD_STATE:
    the records are no longer held by this member, for example because their lock ran out)
    or NETWORK_EXCEPTION (no answer came: the broker may or may not have applied them)."""

    topic_partition: TopicPartition
    offsets: tuple[int, ...]
    error: KafkaError


class ShareSessionResetError(ClientError):
    """The broker lost this member's share session; its acknowledgements are queued again."""

    retriable = True


class AcknowledgementError(ClientError):
    """Some acknowledgements were not confirmed; the records they name may be delivered
    again (at least once), the others were applied."""

    def __init__(self, failures: Sequence[AckFailure]) -> None:
        self.failures = list(failures)
        described = "; ".join(
            f"{f.topic_partition.topic}[{f.topic_partition.partition}] offsets "
            f"{_ranges(f.offsets)}: {f.error}"
            for f in self.failures
        )
        super().__init__(f"acknowledgements not confirmed: {described}")


def _ranges(offsets: Sequence[int]) -> str:
    spans = [
        str(b.first_offset)
        if b.first_offset == b.last_offset
        else f"{b.first_offset}-{b.last_offset}"
        for b in ack_batches(dict.fromkeys(offsets, AckType.ACCEPT))
    ]
    return ",".join(spans)


@dataclass(eq=False)
class ShareMessage:
    """A record this member holds under an acquisition lock until it acknowledges it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    timestamp: int
    """Milliseconds since the epoch."""
    delivery_count: int
    """How many times the record has been handed out, this time included."""
    lock_expires_at: float
    """`time.monotonic()` when the broker takes the record back unless it is acknowledged."""
    _consumer: ShareConsumer = field(repr=False)
    outcome: AckType | None = None
    """How this member acknowledged the record, None while it holds it."""

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    async def ack(self) -> None:
        """Processed: the broker marks it acknowledged and never delivers it again."""
        self._consumer._record(self, AckType.ACCEPT)

    async def release(self, delay: float | None = None) -> None:
        """Give the record back for another delivery (this member's or another's).

        The broker makes a released record available again after the group's retry backoff
        (`goqueue.retry.backoff.ms`), which grows with the delivery count. ShareAcknowledge
        carries no per-record delay, so a `delay` in seconds is kept here: the consumer holds
        the record (renewing its lock where the broker supports renewal) and releases it when
        the delay is over. It is therefore delivered no earlier than `delay` from now.
        """
        if delay is None or delay <= 0:
            self._consumer._record(self, AckType.RELEASE)
        else:
            self._consumer._release_later(self, delay)

    async def reject(self, reason: str | None = None) -> None:
        """Unprocessable: the broker archives it and appends it to the group's dead-letter
        topic (reason `rejected` in its headers). `reason` is logged here: KIP-932's
        acknowledgements carry no text."""
        if reason:
            logger.info("rejecting %s[%d]@%d: %s", self.topic, self.partition, self.offset, reason)
        self._consumer._record(self, AckType.REJECT)

    async def renew(self) -> float:
        """Extend the acquisition lock by the group's lock timeout (KIP-1222 RENEW); returns
        the new `lock_expires_at`."""
        await self._consumer.renew([self])
        return self.lock_expires_at

    @contextlib.asynccontextmanager
    async def renewing(self, every: float | None = None) -> AsyncIterator[ShareMessage]:
        """Keep the lock while the body works on the record: renew it every `every` seconds
        (default: half the time the lock had when the record arrived). A renewal that fails
        (the lock was already lost) is raised when the block ends."""
        period = every or max((self.lock_expires_at - time.monotonic()) / 2, 0.05)

        async def keep() -> None:
            while True:
                await asyncio.sleep(period)
                await self.renew()

        task = asyncio.create_task(keep(), name=f"renew-{self.topic}-{self.offset}")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@dataclass(slots=True)
class _Pending:
    """Acknowledgements recorded for one partition and not yet sent."""

    acks: dict[int, AckType] = field(default_factory=dict)
    since: float = 0.0


class ShareConsumer(AsyncClient):
    """A share group member: `async with ShareConsumer(bootstrap, group_id=..., topics=[...])`,
    then `async for message in consumer`."""

    def __init__(
        self,
        bootstrap: str | Sequence[str] = DEFAULT_BOOTSTRAP,
        *,
        group_id: str,
        topics: Sequence[str],
        client_id: str | None = "goqueue",
        max_records: int = 500,
        max_wait_ms: int = 500,
        min_bytes: int = 1,
        max_bytes: int = 50 * 1024 * 1024,
        ack_linger: float = 0.1,
        acknowledgement_mode: AckMode = "explicit",
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        if not group_id:
            raise ClientError("a share consumer needs a group_id")
        if not topics:
            raise ClientError("a share consumer needs at least one topic")
        self.group_id = group_id
        self.topics = tuple(topics)
        self.member_id = new_member_id()
        self.member_epoch = INITIAL_EPOCH
        self.max_records = max_records
        self.max_wait_ms = max_wait_ms
        self.min_bytes = min_bytes
        self.max_bytes = max_bytes
        self.ack_linger = ack_linger
        self.acknowledgement_mode = acknowledgement_mode
        self.cluster = Cluster(bootstrap, client_id=client_id, request_timeout=request_timeout)
        self._assignment: frozenset[TopicPartition] = frozenset()
        self._assignment_changed = asyncio.Event()
        self._joined = asyncio.Event()
        self._topic_names: dict[uuid.UUID, str] = {}
        self._topic_ids: dict[str, uuid.UUID] = {}
        self._sessions: collections.defaultdict[int, ShareSession] = collections.defaultdict(
            ShareSession
        )
        self._session_locks: collections.defaultdict[int, asyncio.Lock] = collections.defaultdict(
            asyncio.Lock
        )
        self._buffer: collections.deque[ShareMessage] = collections.deque()
        self._pending: dict[TopicPartition, _Pending] = {}
        self._pending_added = asyncio.Event()
        self._failures: list[AckFailure] = []
        self._delayed: set[asyncio.Task[None]] = set()
        self._last_handed: ShareMessage | None = None
        self._fatal: BaseException | None = None
        self._heartbeat_interval = DEFAULT_HEARTBEAT_INTERVAL_S
        self._heartbeat_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._renewal_supported = False
        """Whether the brokers serve RENEW acknowledgements; learnt from the first fetch."""
        self._lock_timeout = 0.0
        """The acquisition lock timeout the last ShareFetch answer reported, in seconds."""

    @property
    def assignment(self) -> frozenset[TopicPartition]:
        """The partitions the group gives this member to fetch from (shared with others)."""
        return self._assignment

    async def start(self) -> None:
        """Connect, learn the topics' ids and join the group (returns once joined)."""
        await self.cluster.connect()
        await self._learn_topic_ids()
        self._tasks = [
            asyncio.create_task(self._heartbeat_loop(), name=f"share-heartbeat-{self.group_id}"),
            asyncio.create_task(self._linger_loop(), name=f"share-acks-{self.group_id}"),
        ]
        joined = asyncio.create_task(self._joined.wait())
        await asyncio.wait(
            [joined, self._tasks[0]],
            timeout=self.cluster.request_timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
        joined.cancel()
        if not self._joined.is_set():
            await self.close()
            self._raise_fatal()
            raise RequestTimedOutError(
                ErrorCode.request_timed_out,
                f"share group {self.group_id!r}: not joined in {self.cluster.request_timeout} s",
            )

    # Iteration and polling.

    def __aiter__(self) -> ShareConsumer:
        return self

    async def __anext__(self) -> ShareMessage:
        self._accept_implicitly()
        while not self._buffer:
            if self._closed:
                raise StopAsyncIteration
            self._buffer.extend(await self._fetch_round())
        message = self._buffer.popleft()
        self._last_handed = message
        return message

    async def poll(self, timeout: float | None = None) -> list[ShareMessage]:
        """Every buffered message, or else the messages of fetch rounds until some arrive or
        `timeout` seconds pass (None: wait as long as it takes)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._buffer:
            self._raise_closed()
            if deadline is not None and time.monotonic() >= deadline:
                return []
            self._buffer.extend(await self._fetch_round())
        messages = list(self._buffer)
        self._buffer.clear()
        return messages

    # Acknowledgement.

    def _require_held(self, message: ShareMessage) -> None:
        """Refuse to act on a message this consumer did not deliver or already acknowledged."""
        if message._consumer is not self:
            raise ClientError("the message was delivered by another consumer")
        if message.outcome is not None:
            raise ClientError(
                f"{message.topic}[{message.partition}]@{message.offset} was already "
                f"acknowledged ({message.outcome.name})"
            )

    def _record(self, message: ShareMessage, kind: AckType) -> None:
        """Record an outcome for a held record; it is sent with the next request to its leader."""
        self._require_held(message)
        message.outcome = kind
        self._queue(message.topic_partition, {message.offset: kind})

    def _accept_implicitly(self) -> None:
        """In implicit mode, asking for the next message accepts the previous one."""
        last, self._last_handed = self._last_handed, None
        if self.acknowledgement_mode == "implicit" and last is not None and last.outcome is None:
            self._record(last, AckType.ACCEPT)

    async def acknowledge(
        self, messages: Iterable[ShareMessage], kind: AckType = AckType.ACCEPT
    ) -> None:
        """Acknowledge many messages alike (batch acknowledgement): they go out together, as
        ranges, with the next request to each leader."""
        for message in messages:
            self._record(message, kind)

    def _release_later(self, message: ShareMessage, delay: float) -> None:
        """Hold `message` for `delay` seconds, renewing its lock if needed and possible, then
        release it."""
        self._require_held(message)

        async def wait_then_release() -> None:
            release_at = time.monotonic() + delay
            while (left := release_at - time.monotonic()) > 0:
                margin = (message.lock_expires_at - time.monotonic()) / 2
                if not self._renewal_supported or margin >= left:
                    await asyncio.sleep(left)
                    continue
                await asyncio.sleep(max(margin, 0))
                try:
                    await self.renew([message])
                except ClientError as exc:  # the lock is gone: the broker redelivers it anyway
                    logger.info("offset %d: lock not renewed: %s", message.offset, exc)
                    return
            if message.outcome is None:
                self._record(message, AckType.RELEASE)

        task = asyncio.create_task(wait_then_release(), name=f"release-{message.offset}")
        self._delayed.add(task)
        task.add_done_callback(self._delayed.discard)

    async def commit(self) -> None:
        """Send every recorded acknowledgement now and wait for the answers; raises
        `AcknowledgementError` naming each acknowledgement since the last commit (piggybacked
        ones included) that the broker refused or may not have applied (a broken connection:
        `NETWORK_EXCEPTION`). Every acknowledgement it does not name was applied."""
        try:
            await self._flush(self._pending_partitions(), final=False)
        except ClientError as exc:
            self._report(self._take_pending(self._pending_partitions()), _as_kafka_error(exc))
        failures, self._failures = self._failures, []
        if failures:
            raise AcknowledgementError(failures)

    async def renew(self, messages: Iterable[ShareMessage]) -> None:
        """Extend the locks of held messages by the lock timeout (KIP-1222 RENEW)."""
        by_tp: dict[TopicPartition, dict[int, AckType]] = {}
        renewing: dict[tuple[TopicPartition, int], ShareMessage] = {}
        for message in messages:
            self._require_held(message)
            by_tp.setdefault(message.topic_partition, {})[message.offset] = AckType.RENEW
            renewing[(message.topic_partition, message.offset)] = message
        by_leader = await self.cluster.leaders(by_tp)
        for node_id, tps in by_leader.items():
            connection = await self.cluster.connection(node_id)
            if (connection.version(SHARE_ACKNOWLEDGE) or 0) < RENEW_VERSION:
                raise UnsupportedVersionError(
                    ErrorCode.unsupported_version,
                    f"broker {connection.address} serves ShareAcknowledge below v"
                    f"{RENEW_VERSION}: it cannot renew acquisition locks",
                )
            acks = {tp: by_tp[tp] for tp in tps}
            sent_at = time.monotonic()
            lock, failures = await self._acknowledge(node_id, acks, renew=True)
            if failures:
                raise AcknowledgementError(failures)
            for tp, offsets in acks.items():
                for offset in offsets:
                    renewing[(tp, offset)].lock_expires_at = sent_at + lock

    async def close(self) -> None:
        """Send recorded acknowledgements and close the share sessions, which makes the
        brokers release every record still held (at once: closing is not a failed delivery,
        so no retry backoff applies), then leave the group."""
        if self._closed:
            return
        self._closed = True
        for task in list(self._delayed):
            task.cancel()
        self._accept_implicitly()
        self._buffer.clear()
        await self._stop_tasks()
        try:
            with contextlib.suppress(ClientError):
                await self._flush(self._pending_partitions(), final=True)
            with contextlib.suppress(ClientError):
                await self._leave()
        finally:
            await self.cluster.close()

    async def _stop_tasks(self) -> None:
        """Stop the background tasks. They also stop by themselves once `_closed` is set:
        Python 3.11's `wait_for` can swallow a cancellation that arrives as a response does."""
        self._heartbeat_wake.set()
        self._pending_added.set()
        tasks = [*self._tasks, *self._delayed]
        while tasks:
            for task in tasks:
                task.cancel()
            _, pending = await asyncio.wait(tasks, timeout=1.0)
            tasks = list(pending)

    # Heartbeats.

    async def _heartbeat_loop(self) -> None:
        while not self._closed:
            try:
                await self._heartbeat()
            except asyncio.CancelledError:
                raise
            except (BrokerConnectionError, RequestTimedOutError) as exc:
                logger.info("share group %s: heartbeat failed: %s", self.group_id, exc)
                await asyncio.sleep(RETRY_BACKOFF_S)
                continue
            except KafkaError as exc:
                if exc.code in REJOIN_ERRORS:
                    logger.info("share group %s: %s; rejoining", self.group_id, exc)
                    self.member_epoch = INITIAL_EPOCH
                    continue
                if exc.retriable:
                    await asyncio.sleep(RETRY_BACKOFF_S)
                    continue
                self._fail(exc)
                raise
            except Exception as exc:
                self._fail(exc)
                raise
            self._heartbeat_wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._heartbeat_interval):
                    await self._heartbeat_wake.wait()

    async def _heartbeat(self) -> None:
        joining = self.member_epoch == INITIAL_EPOCH
        request = {
            "group_id": self.group_id,
            "member_id": self.member_id,
            "member_epoch": self.member_epoch,
            "rack_id": None,
            "subscribed_topic_names": list(self.topics) if joining else None,
        }

        async def call(connection: Connection) -> Any:
            response = await connection.request(
                SHARE_GROUP_HEARTBEAT, request, timeout=self.cluster.request_timeout
            )
            if response.error_code != ErrorCode.none:
                raise error_for(response.error_code, response.error_message)
            return response

        response = await with_coordinator(self.cluster, self.group_id, call)
        self.member_epoch = response.member_epoch
        self._heartbeat_interval = max(response.heartbeat_interval.total_seconds(), 0.05)
        if response.assignment is not None:
            await self._assign(response.assignment.topic_partitions)
        self._joined.set()

    async def _assign(self, topic_partitions: Iterable[Any]) -> None:
        assigned: set[TopicPartition] = set()
        for entry in topic_partitions:
            name = self._topic_names.get(entry.topic_id)
            if name is None:
                await self._learn_topic_ids()
                name = self._topic_names.get(entry.topic_id)
            if name is None:
                logger.warning("share group %s: unknown topic id %s", self.group_id, entry.topic_id)
                continue
            assigned.update(TopicPartition(name, p) for p in entry.partitions)
        if assigned != self._assignment:
            logger.info("share group %s: assigned %s", self.group_id, sorted(assigned))
            self._assignment = frozenset(assigned)
            self._assignment_changed.set()

    async def _learn_topic_ids(self) -> None:
        for name in self.topics:
            self.cluster.invalidate(name)
            with contextlib.suppress(KafkaError):
                topic = await self.cluster.topic(name)
                if topic.topic_id is not None:
                    self._topic_ids[name] = topic.topic_id
                    self._topic_names[topic.topic_id] = name

    async def _leave(self) -> None:
        if self.member_epoch == INITIAL_EPOCH and not self._joined.is_set():
            return
        request = {
            "group_id": self.group_id,
            "member_id": self.member_id,
            "member_epoch": FINAL_EPOCH,
            "rack_id": None,
            "subscribed_topic_names": None,
        }

        async def call(connection: Connection) -> None:
            await connection.request(
                SHARE_GROUP_HEARTBEAT, request, timeout=self.cluster.request_timeout
            )

        await with_coordinator(self.cluster, self.group_id, call)

    # Fetching.

    async def _fetch_round(self) -> list[ShareMessage]:
        """One ShareFetch to every leader of the assigned partitions (at most `max_wait_ms`)."""
        self._raise_fatal()
        assignment = self._assignment
        if not assignment:
            self._assignment_changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.max_wait_ms / 1000):
                    await self._assignment_changed.wait()
            self._raise_fatal()
            return []
        try:
            by_leader = await self.cluster.leaders(assignment)
        except (KafkaError, BrokerConnectionError) as exc:
            if not exc.retriable:
                raise
            logger.info("share group %s: no leaders to fetch from: %s", self.group_id, exc)
            await asyncio.sleep(RETRY_BACKOFF_S)
            return []
        rounds = await asyncio.gather(
            *(self._fetch_from(node_id, tps) for node_id, tps in by_leader.items()),
            return_exceptions=True,
        )
        messages: list[ShareMessage] = []
        for tps, answer in zip(by_leader.values(), rounds, strict=True):
            if isinstance(answer, BrokerConnectionError):
                # The leader may be gone: ask the cluster where its partitions are led now.
                for tp in tps:
                    self.cluster.invalidate(tp.topic)
            if not isinstance(answer, BaseException):
                messages.extend(answer)
            elif isinstance(answer, KafkaError) and answer.code in REJOIN_ERRORS:
                # The broker no longer knows the member (a restart): the heartbeat rejoins.
                logger.info("share group %s: fetch: %s; rejoining", self.group_id, answer)
                self._heartbeat_wake.set()
                await asyncio.sleep(RETRY_BACKOFF_S)
            elif isinstance(answer, KafkaError | BrokerConnectionError) and answer.retriable:
                logger.info("share group %s: fetch failed: %s", self.group_id, answer)
                await asyncio.sleep(RETRY_BACKOFF_S)
            else:
                raise answer
        return messages

    async def _fetch_from(
        self, node_id: int, partitions: list[TopicPartition]
    ) -> list[ShareMessage]:
        async with self._session_locks[node_id]:
            session = self._sessions[node_id]
            plan = session.fetch(self._session_partition(tp) for tp in partitions)
            acks = {} if plan.opens else self._take_pending(partitions)
            entries: dict[SessionPartition, list[AckBatch]] = {p: [] for p in plan.added}
            for tp, offsets in acks.items():
                entries[self._session_partition(tp)] = ack_batches(offsets)
            request = {
                "group_id": self.group_id,
                "member_id": self.member_id,
                "share_session_epoch": plan.epoch,
                "max_wait": datetime.timedelta(milliseconds=self.max_wait_ms),
                "min_bytes": self.min_bytes,
                "max_bytes": self.max_bytes,
                "max_records": self.max_records,
                "batch_size": self.max_records,
                "share_acquire_mode": 0,
                "is_renew_ack": False,
                "topics": _topics(entries),
                "forgotten_topics_data": _forgotten(plan.forgotten),
            }
            sent_at = time.monotonic()
            with self._settled_on_failure(acks):
                response = await self._session_request(
                    node_id, SHARE_FETCH, request, self.max_wait_ms / 1000
                )
            if response is None:
                self._requeue(acks)
                return []
            self._lock_timeout = response.acquisition_lock_timeout.total_seconds()
            lock_expires_at = sent_at + self._lock_timeout
            messages: list[ShareMessage] = []
            for tp, partition in self._partitions_of(response):
                offsets = acks.pop(tp, {})
                if partition.acknowledge_error_code != ErrorCode.none and offsets:
                    code = _error_code(partition.acknowledge_error_code)
                    error = error_for(code, partition.acknowledge_error_message)
                    self._failures.append(AckFailure(tp, tuple(sorted(offsets)), error))
                if partition.error_code != ErrorCode.none:
                    self._partition_error(tp, partition.error_code, partition.error_message)
                    continue
                messages.extend(self._deliver(tp, partition, lock_expires_at))
            self._failures.extend(_unanswered(acks))
            return messages

    def _deliver(
        self, tp: TopicPartition, partition: Any, lock_expires_at: float
    ) -> list[ShareMessage]:
        """The messages of one partition of a ShareFetch answer. Acquired offsets without a
        record are acknowledged as GAP and those of corrupt batches rejected, as Kafka's
        client does, with the next request."""
        ranges = [
            (a.first_offset, a.last_offset, a.delivery_count) for a in partition.acquired_records
        ]
        if not ranges:
            return []
        delivery = acquired_records(partition.records or b"", ranges)
        housekeeping = {o: AckType.GAP for o in delivery.gaps}
        housekeeping.update(dict.fromkeys(delivery.corrupt, AckType.REJECT))
        if delivery.corrupt:
            logger.warning(
                "%s[%d]: rejecting corrupt records %s", tp.topic, tp.partition, delivery.corrupt
            )
        if housekeeping:
            self._queue(tp, housekeeping)
        return [
            ShareMessage(
                topic=tp.topic,
                partition=tp.partition,
                offset=record.offset,
                key=record.key,
                value=record.value,
                headers=record.headers,
                timestamp=record.timestamp_ms,
                delivery_count=count,
                lock_expires_at=lock_expires_at,
                _consumer=self,
            )
            for record, count in delivery.records
        ]

    def _partition_error(self, tp: TopicPartition, code: ErrorCode, message: str | None) -> None:
        if code in STALE_LEADER_ERRORS or code == ErrorCode.unknown_topic_or_partition:
            self.cluster.invalidate(tp.topic)
        logger.info("%s[%d]: share fetch: %s", tp.topic, tp.partition, message or code.name)

    # Acknowledgements on the wire.

    def _queue(self, tp: TopicPartition, acks: Mapping[int, AckType]) -> None:
        pending = self._pending.get(tp)
        if pending is None:
            pending = self._pending[tp] = _Pending(since=time.monotonic())
        pending.acks.update(acks)
        self._pending_added.set()

    def _pending_partitions(self) -> list[TopicPartition]:
        return [tp for tp, pending in self._pending.items() if pending.acks]

    def _take_pending(
        self, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, dict[int, AckType]]:
        taken = {}
        for tp in partitions:
            pending = self._pending.pop(tp, None)
            if pending is not None and pending.acks:
                taken[tp] = pending.acks
        return taken

    def _report(
        self, acks: Mapping[TopicPartition, Mapping[int, AckType]], error: KafkaError
    ) -> None:
        """Acknowledgements that may not have been applied, for the next `commit()`."""
        self._failures.extend(
            AckFailure(tp, tuple(sorted(o)), error) for tp, o in acks.items() if o
        )

    def _requeue(self, acks: Mapping[TopicPartition, Mapping[int, AckType]]) -> None:
        for tp, offsets in acks.items():
            if offsets:
                self._queue(tp, offsets)

    async def _linger_loop(self) -> None:
        """Send acknowledgements no fetch has carried within `ack_linger` seconds."""
        while not self._closed:
            await self._pending_added.wait()
            self._pending_added.clear()
            if self._closed:
                return
            await asyncio.sleep(self.ack_linger)
            cutoff = time.monotonic() - self.ack_linger
            due = [tp for tp, p in self._pending.items() if p.acks and p.since <= cutoff]
            if due:
                self._pending_added.set()
                try:
                    await self._flush(due, final=False)
                except ClientError as exc:
                    logger.info("share group %s: sending acknowledgements: %s", self.group_id, exc)
                    await asyncio.sleep(RETRY_BACKOFF_S)
            elif self._pending_partitions():
                self._pending_added.set()

    async def _flush(self, partitions: Sequence[TopicPartition], *, final: bool) -> None:
        """ShareAcknowledge to each leader concerned; with `final`, to every broker with a
        session, closing it."""
        by_leader = await self.cluster.leaders(partitions) if partitions else {}
        nodes = set(by_leader)
        if final:
            nodes.update(node for node, s in self._sessions.items() if s.open)
        results = await asyncio.gather(
            *(self._flush_node(node, by_leader.get(node, []), final) for node in nodes),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _flush_node(
        self, node_id: int, partitions: Sequence[TopicPartition], final: bool
    ) -> None:
        async with self._session_locks[node_id]:
            acks = self._take_pending(partitions)
            if acks or (final and self._sessions[node_id].open):
                _, failures = await self._acknowledge_locked(node_id, acks, final=final)
                self._failures.extend(failures)

    async def _acknowledge(
        self, node_id: int, acks: Mapping[TopicPartition, Mapping[int, AckType]], *, renew: bool
    ) -> tuple[float, list[AckFailure]]:
        async with self._session_locks[node_id]:
            return await self._acknowledge_locked(node_id, acks, renew=renew)

    async def _acknowledge_locked(
        self,
        node_id: int,
        acks: Mapping[TopicPartition, Mapping[int, AckType]],
        *,
        final: bool = False,
        renew: bool = False,
    ) -> tuple[float, list[AckFailure]]:
        """One ShareAcknowledge (the caller holds the session's lock); returns the lock
        timeout the broker reports and the acknowledgements it refused."""
        session = self._sessions[node_id]
        entries = {self._session_partition(tp): ack_batches(o) for tp, o in acks.items()}
        for _ in range(SESSION_ATTEMPTS):
            with self._settled_on_failure(acks, tracked=not renew):
                if not session.open:
                    await self._open_session(node_id)
                request = {
                    "group_id": self.group_id,
                    "member_id": self.member_id,
                    "share_session_epoch": FINAL_EPOCH if final else session.epoch,
                    "is_renew_ack": renew,
                    "topics": _topics(entries),
                }
                response = await self._session_request(node_id, SHARE_ACKNOWLEDGE, request, 0)
            if response is not None:
                break
        else:
            if not renew:
                self._requeue(acks)
            raise ShareSessionResetError(f"share session on broker {node_id} keeps resetting")
        if final:
            session.restart()
        remaining = dict(acks)
        failures = []
        for tp, partition in self._partitions_of(response):
            offsets = remaining.pop(tp, {})
            if partition.error_code != ErrorCode.none and offsets:
                error = error_for(partition.error_code, partition.error_message)
                failures.append(AckFailure(tp, tuple(sorted(offsets)), error))
        failures.extend(_unanswered(remaining))
        lock = getattr(response, "acquisition_lock_timeout", None)  # from v2 on
        return (self._lock_timeout if lock is None else lock.total_seconds()), failures

    async def _open_session(self, node_id: int) -> None:
        """Open a session that fetches nothing, so acknowledgements can follow (only a
        ShareFetch may open one, and it may not carry acknowledgements)."""
        request = {
            "group_id": self.group_id,
            "member_id": self.member_id,
            "share_session_epoch": INITIAL_EPOCH,
            "max_wait": datetime.timedelta(0),
            "min_bytes": 0,
            "max_bytes": self.max_bytes,
            "max_records": self.max_records,
            "batch_size": self.max_records,
            "topics": [],
            "forgotten_topics_data": [],
        }
        self._sessions[node_id].fetch(())
        response = await self._session_request(node_id, SHARE_FETCH, request, 0)
        if response is None:
            raise ShareSessionResetError(f"cannot open a share session on broker {node_id}")

    async def _session_request(
        self, node_id: int, api_key: int, request: Fields, wait_s: float
    ) -> Any | None:
        """Send one request of a share session; None after a session error, which the
        broker answers without applying anything. A request that gets no answer leaves the
        session's epoch unknown, so the next request starts a new session."""
        session = self._sessions[node_id]
        try:
            connection = await self.cluster.connection(node_id)
            self._renewal_supported = (connection.version(SHARE_ACKNOWLEDGE) or 0) >= RENEW_VERSION
            response = await connection.request(
                api_key, request, timeout=self.cluster.request_timeout + wait_s
            )
        except (BrokerConnectionError, RequestTimedOutError, asyncio.CancelledError):
            session.restart()
            raise
        code = response.error_code
        if code in SESSION_ERRORS:
            logger.info(
                "share group %s: broker %d: %s; new session", self.group_id, node_id, code.name
            )
            session.restart()
            return None
        session.answered()
        if code != ErrorCode.none:
            raise error_for(code, response.error_message)
        return response

    @contextlib.contextmanager
    def _settled_on_failure(
        self, acks: Mapping[TopicPartition, Mapping[int, AckType]], *, tracked: bool = True
    ) -> Iterator[None]:
        """Account for the recorded acknowledgements (`tracked`; renewals are not) of a
        request that fails: cancelled here, they are queued again (a repeat of an applied
        one is refused harmlessly); otherwise they are reported to the next `commit()`, as
        refused or, when the connection broke, as of unknown fate (NETWORK_EXCEPTION)."""
        try:
            yield
        except asyncio.CancelledError:
            if tracked:
                self._requeue(acks)
            raise
        except (BrokerConnectionError, KafkaError) as exc:
            if tracked:
                self._report(acks, _as_kafka_error(exc))
            raise

    def _session_partition(self, tp: TopicPartition) -> SessionPartition:
        return (self._topic_ids[tp.topic], tp.partition)

    def _partitions_of(self, response: Any) -> Iterator[tuple[TopicPartition, Any]]:
        """The partitions of a ShareFetch or ShareAcknowledge answer, by name."""
        for topic in response.responses:
            name = self._topic_names.get(topic.topic_id)
            if name is None:
                logger.warning(
                    "share group %s: answer for unknown topic id %s", self.group_id, topic.topic_id
                )
                continue
            for partition in topic.partitions:
                yield TopicPartition(name, partition.partition_index), partition

    def _fail(self, exc: BaseException) -> None:
        """The heartbeat cannot go on: every later call raises `exc`."""
        logger.error("share group %s: %s", self.group_id, exc)
        self._fatal = exc
        self._assignment_changed.set()

    def _raise_fatal(self) -> None:
        if self._fatal is not None:
            raise self._fatal

    def _raise_closed(self) -> None:
        if self._closed:
            raise ClientError("the share consumer is closed")
        self._raise_fatal()


def _topics(entries: Mapping[SessionPartition, Sequence[AckBatch]]) -> list[dict[str, object]]:
    by_topic: dict[uuid.UUID, list[dict[str, object]]] = {}
    for (topic_id, partition), batches in sorted(entries.items()):
        by_topic.setdefault(topic_id, []).append(
            {
                "partition_index": partition,
                "acknowledgement_batches": [b.fields() for b in batches],
            }
        )
    return [{"topic_id": topic_id, "partitions": parts} for topic_id, parts in by_topic.items()]


def _unanswered(acks: Mapping[TopicPartition, Mapping[int, AckType]]) -> list[AckFailure]:
    """Acknowledgements of partitions the answer left out: their fate is unknown."""
    error = error_for(ErrorCode.unknown_server_error, "the broker did not answer for the partition")
    return [AckFailure(tp, tuple(sorted(o)), error) for tp, o in acks.items() if o]


def _as_kafka_error(exc: ClientError) -> KafkaError:
    """The error to report for acknowledgements a failed request carried: the broker's, or
    NETWORK_EXCEPTION when no answer came (the broker may or may not have applied them)."""
    if isinstance(exc, KafkaError):
        return exc
    return error_for(ErrorCode.network_exception, str(exc))


def _error_code(code: int) -> ErrorCode:
    try:
        return ErrorCode(code)
    except ValueError:
        return ErrorCode.unknown_server_error


def _forgotten(partitions: Iterable[SessionPartition]) -> list[dict[str, object]]:
    by_topic: dict[uuid.UUID, list[int]] = {}
    for topic_id, partition in partitions:
        by_topic.setdefault(topic_id, []).append(partition)
    return [{"topic_id": topic_id, "partitions": parts} for topic_id, parts in by_topic.items()]
