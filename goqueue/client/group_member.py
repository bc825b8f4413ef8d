"""A consumer's membership in a classic group: JoinGroup, SyncGroup (the leader running the
client-side assignor), heartbeats in the background, rebalances and LeaveGroup.

The member talks to the coordinator over a connection of its own, as the Java client does:
the broker answers one request per connection at a time, and a JoinGroup held for a whole
rebalance must not hold up fetches (nor a long-polling fetch the heartbeats).

Rebalances follow the assignors' protocol: eager (`range`, `roundrobin`, `sticky`) revokes
every partition before joining; cooperative (`cooperative-sticky`, KIP-429) keeps owning and
consuming its partitions through the rebalance, revokes only those the new assignment takes
away, and joins again at once so that they can move to their new owner.

`max_poll_interval_ms` is enforced as Kafka's consumer does (`PollTimer`): a member whose
application stopped polling leaves the group from its background loop, so that its partitions
go to members that make progress, and joins again at the next poll.
"""

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from kio.schema.errors import ErrorCode

from goqueue.client.assignors import Assignor, Subscription
from goqueue.client.cluster import Cluster
from goqueue.client.connection import Connection
from goqueue.client.errors import ClientError, error_for
from goqueue.client.groups import CONSUMER_PROTOCOL_TYPE, MemberIdentity, find_coordinator
from goqueue.client.metadata import TopicPartition
from goqueue.coordinator.group.consumer_protocol import (
    ConsumerProtocolError,
    assigned_partitions,
    decode_subscription,
    encode_assignment,
    encode_subscription,
)

logger = logging.getLogger(__name__)

JOIN_GROUP = 11
HEARTBEAT = 12
LEAVE_GROUP = 13
SYNC_GROUP = 14
RETRY_BACKOFF_S = 0.1
MAX_RETRY_BACKOFF_S = 1.0
COORDINATOR_ERRORS = frozenset(
    {
        ErrorCode.coordinator_load_in_progress,
        ErrorCode.coordinator_not_available,
        ErrorCode.not_coordinator,
    }
)
MEMBER_RESET_ERRORS = frozenset(
    {ErrorCode.unknown_member_id, ErrorCode.illegal_generation, ErrorCode.fenced_member_epoch}
)
"""The coordinator no longer knows this member (or this generation of it): its partitions
may already belong to others, so they are lost rather than revoked."""
POLL_TIMEOUT_WARNING = (
    "group %s: consumer poll timeout has expired: the time between subsequent polls was longer"
    " than max_poll_interval_ms (%d ms), which typically implies that the poll loop is spending"
    " too much time processing messages; leaving the group. Consider increasing"
    " max_poll_interval_ms or reducing max_poll_records."
)


class GroupHooks(Protocol):
    """What a group member asks of its consumer."""

    def subscribed(self) -> Sequence[str] | None:
        """The topics named by the subscription; None for a pattern (resolved by
        `topic_partitions`)."""

    def pattern(self) -> str | None:
        """The subscription's regular expression (None for topic names)."""

    async def topic_partitions(self, topics: Sequence[str] | None) -> dict[str, int]:
        """Fresh partition counts of `topics` (None: of every topic the subscription's pattern
        matches), leaving out topics that do not exist."""

    def owned(self) -> list[TopicPartition]:
        """The partitions the consumer owns now."""

    async def assign(self, partitions: Sequence[TopicPartition]) -> None:
        """Start consuming partitions (then call the rebalance listener)."""

    async def revoke(self, partitions: Sequence[TopicPartition]) -> None:
        """Give partitions up in order: listener, commit, stop consuming."""

    async def lose(self, partitions: Sequence[TopicPartition]) -> None:
        """Partitions that are no longer ours (no commit possible): stop consuming them."""


class PollTimer:
    """`max.poll.interval.ms` as Kafka's consumer enforces it: the application must poll at
    least this often (a poll waiting for records counts as polling all along). When it does
    not, the member's background loop goes stale: it leaves the group, loses its partitions
    and waits for the next poll to join again (the Java client's heartbeat thread calling
    `maybeLeaveGroup`, or its KIP-848 member's `transitionToStale`)."""

    def __init__(self, interval_ms: int) -> None:
        if interval_ms < 1:
            raise ValueError("max_poll_interval_ms must be at least 1")
        self.interval_ms = interval_ms
        self.stale = False
        """True while the member has left and waits for the next poll."""
        self._polled_at = time.monotonic()
        self._polling = 0
        self._polled = asyncio.Event()

    def poll(self) -> None:
        """The application polled: the timer starts again (and a stale member rejoins)."""
        self._polled_at = time.monotonic()
        self._polled.set()

    @contextlib.contextmanager
    def polling(self) -> Iterator[None]:
        """A poll in progress, however long it waits."""
        self._polling += 1
        self.poll()
        try:
            yield
        finally:
            self._polling -= 1
            self.poll()

    def remaining(self) -> float:
        """Seconds until the timer expires (the whole interval while a poll is in progress)."""
        if self._polling:
            return self.interval_ms / 1000
        return self._polled_at + self.interval_ms / 1000 - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0

    async def go_stale(self, group_id: str, leave: Callable[[], Awaitable[None]]) -> None:
        """Warn as Kafka's consumer does, `leave` the group (which loses the partitions), and
        return at the next poll, when the member joins again."""
        logger.warning(POLL_TIMEOUT_WARNING, group_id, self.interval_ms)
        self.stale = True
        try:
            await leave()
            while self.expired():
                self._polled.clear()
                await self._polled.wait()
        finally:
            self.stale = False
        logger.info("group %s: the consumer polled again; rejoining", group_id)


class Coordinator:
    """The connection to a group's coordinator, found (again) when needed."""

    def __init__(self, cluster: Cluster, group_id: str) -> None:
        self._cluster = cluster
        self._group_id = group_id
        self._connection: Connection | None = None
        self._lock = asyncio.Lock()

    async def connection(self) -> Connection:
        async with self._lock:
            if self._connection is None or self._connection.closed:
                node_id = await find_coordinator(self._cluster, self._group_id)
                broker = self._cluster.brokers[node_id]
                self._connection = await Connection.open(
                    broker.host, broker.port, client_id=self._cluster.client_id
                )
            return self._connection

    async def request(self, api_key: int, fields: Mapping[str, object], timeout: float) -> Any:
        """Send to the coordinator; a coordinator error forgets it, so the next request looks
        it up again."""
        connection = await self.connection()
        response = await connection.request(api_key, fields, timeout=timeout)
        if getattr(response, "error_code", ErrorCode.none) in COORDINATOR_ERRORS:
            await self.reset()
        return response

    async def reset(self) -> None:
        """Forget the coordinator (it moved, or its connection broke)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    close = reset


class ClassicMember:
    """Membership of one consumer in a classic group; `start()` runs it in the background."""

    def __init__(
        self,
        cluster: Cluster,
        group_id: str,
        hooks: GroupHooks,
        *,
        assignors: Sequence[Assignor],
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        heartbeat_interval_ms: int,
        metadata_max_age_ms: int,
        group_instance_id: str | None = None,
        poll_timer: PollTimer | None = None,
    ) -> None:
        if not assignors:
            raise ValueError("a classic group member needs at least one partition assignor")
        self.coordinator = Coordinator(cluster, group_id)
        self.group_id = group_id
        self.group_instance_id = group_instance_id
        self.member_id = ""
        self.generation = -1
        self.error: ClientError | None = None
        """A fatal error (fenced static member) the consumer reports to the application."""
        self._cluster = cluster
        self._hooks = hooks
        self._assignors = {a.name: a for a in assignors}
        self._names = [a.name for a in assignors]
        self._cooperative = all(a.cooperative for a in assignors)
        self._session_timeout_ms = session_timeout_ms
        self._rebalance_timeout_ms = rebalance_timeout_ms
        self._heartbeat_s = heartbeat_interval_ms / 1000
        self._metadata_max_age_s = metadata_max_age_ms / 1000
        self._poll_timer = poll_timer or PollTimer(rebalance_timeout_ms)
        """The consumer's (default: one nobody polls, started now)."""
        self._rejoin = True
        self._wakeup = asyncio.Event()
        self._topics: dict[str, int] = {}
        """The partition counts the current assignment was made for (all the group's topics
        for the leader), compared with fresh metadata to notice a change that needs a
        rebalance."""
        self._checked_at = 0.0
        self._leader = False
        self._task: asyncio.Task[None] | None = None
        self.stable = asyncio.Event()
        """Set while the member has an assignment of the current generation."""

    @property
    def identity(self) -> MemberIdentity:
        return MemberIdentity(self.generation, self.member_id, self.group_instance_id)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"goqueue-group-{self.group_id}")

    def rejoin(self) -> None:
        """Ask for a rebalance (the subscription changed)."""
        self._rejoin = True
        self._wakeup.set()

    async def close(self) -> None:
        """Revoke what the member owns and leave the group (a static member stays, so that
        its restart within the session timeout causes no rebalance)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        owned = self._hooks.owned()
        if owned and self.generation >= 0:
            await self._hooks.revoke(owned)
        elif owned:
            await self._hooks.lose(owned)
        if self.member_id and self.group_instance_id is None:
            with contextlib.suppress(ClientError):
                await self._leave("the consumer is closing")
        await self.coordinator.close()

    async def _leave(self, reason: str) -> None:
        request = {
            "group_id": self.group_id,
            "member_id": self.member_id,
            "members": [
                {
                    "member_id": self.member_id,
                    "group_instance_id": self.group_instance_id,
                    "reason": reason,
                }
            ],
        }
        await self.coordinator.request(LEAVE_GROUP, request, self._cluster.request_timeout)
        self.member_id, self.generation = "", -1

    async def _leave_stale(self) -> None:
        """Leave after a poll timeout as Java's `maybeLeaveGroup` does: a LeaveGroup, at most
        once and only for a dynamic member (a static one stays until its session expires);
        either way the member forgets its generation, so its partitions are lost."""
        if self.member_id and self.group_instance_id is None:
            with contextlib.suppress(ClientError):
                await self._leave("consumer poll timeout has expired")
        await self._lost()

    async def _run(self) -> None:
        backoff = RETRY_BACKOFF_S
        while True:
            try:
                if self.generation >= 0 and self._poll_timer.expired():
                    await self._poll_timer.go_stale(self.group_id, self._leave_stale)
                    self._rejoin = True
                if self._rejoin:
                    await self._join()
                await self._heartbeat()
                backoff = RETRY_BACKOFF_S
            except ClientError as exc:
                if not exc.retriable:
                    logger.error("group %s: %s; the member stops", self.group_id, exc)
                    self.error = exc
                    return
                logger.info("group %s: %s; retrying in %.1f s", self.group_id, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_RETRY_BACKOFF_S)

    async def _join(self) -> None:
        """One rebalance: JoinGroup (again, while the coordinator asks for it), SyncGroup,
        then revoke and assign what changed."""
        self.stable.clear()
        if not self._cooperative:
            owned = self._hooks.owned()
            if owned:
                await self._hooks.revoke(owned)
        while True:
            self._wakeup.clear()
            subscribed = self._hooks.subscribed()
            topics = await self._hooks.topic_partitions(subscribed)
            response = await self._join_group(subscribed if subscribed is not None else topics)
            if response is None:
                continue
            assignments = await self._lead(response) if response.leader == self.member_id else {}
            assigned = await self._sync_group(response.protocol_name, assignments)
            if assigned is None:
                continue
            self._leader = response.leader == self.member_id
            if not self._leader:
                self._topics = topics
            break
        self._rejoin = False
        owned = self._hooks.owned()
        revoked = [tp for tp in owned if tp not in assigned]
        if revoked:
            await self._hooks.revoke(revoked)
            self._rejoin = self._cooperative
        added = [tp for tp in assigned if tp not in owned]
        if added:
            await self._hooks.assign(added)
        self._checked_at = time.monotonic()
        self.stable.set()
        logger.info(
            "group %s: generation %d, member %s owns %d partitions",
            self.group_id,
            self.generation,
            self.member_id,
            len(self._hooks.owned()),
        )

    async def _join_group(self, topics: Iterable[str]) -> Any:
        """JoinGroup subscribing to `topics` (named ones whether they exist yet or not, as
        Kafka's consumer does); None when it must be sent again (the coordinator gave a
        member id, or forgot this member)."""
        owned = self._hooks.owned()
        by_topic: dict[str, list[int]] = {}
        for tp in owned:
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        request = {
            "group_id": self.group_id,
            "session_timeout": datetime.timedelta(milliseconds=self._session_timeout_ms),
            "rebalance_timeout": datetime.timedelta(milliseconds=self._rebalance_timeout_ms),
            "member_id": self.member_id,
            "group_instance_id": self.group_instance_id,
            "protocol_type": CONSUMER_PROTOCOL_TYPE,
            "protocols": [
                {
                    "name": name,
                    "metadata": encode_subscription(
                        topics,
                        user_data=self._assignors[name].user_data(owned, self.generation),
                        owned=by_topic,
                        generation_id=self.generation,
                    ),
                }
                for name in self._names
            ],
            "reason": "joining" if self.generation < 0 else "rebalancing",
        }
        timeout = self._rebalance_timeout_ms / 1000 + self._cluster.request_timeout
        response = await self.coordinator.request(JOIN_GROUP, request, timeout)
        code = response.error_code
        if code == ErrorCode.member_id_required:
            self.member_id = response.member_id
            return None
        if code in MEMBER_RESET_ERRORS:
            self.member_id, self.generation = "", -1
            return None
        if code != ErrorCode.none:
            raise error_for(code, f"JoinGroup of group {self.group_id!r}: {code.name}")
        self.member_id = response.member_id
        self.generation = response.generation_id
        return response

    async def _lead(self, response: Any) -> dict[str, bytes]:
        """The leader's part: assign every member's partitions with the chosen assignor."""
        subscriptions: dict[str, Subscription] = {}
        for member in response.members:
            try:
                decoded = decode_subscription(member.metadata)
            except ConsumerProtocolError as exc:
                logger.warning("group %s: member %s: %s", self.group_id, member.member_id, exc)
                decoded = None
            subscriptions[member.member_id] = Subscription(
                topics=tuple(decoded.topics) if decoded else (),
                user_data=decoded.user_data if decoded else None,
                owned_partitions=tuple(
                    TopicPartition(t.topic, p)
                    for t in getattr(decoded, "owned_partitions", ())
                    for p in t.partitions
                ),
                generation_id=getattr(decoded, "generation_id", -1),
                group_instance_id=member.group_instance_id,
            )
        everything = sorted({t for s in subscriptions.values() for t in s.topics})
        self._topics = await self._hooks.topic_partitions(everything)
        assignment = self._assignors[response.protocol_name].assign(self._topics, subscriptions)
        encoded = {}
        for member_id, partitions in assignment.items():
            by_topic: dict[str, list[int]] = {}
            for tp in partitions:
                by_topic.setdefault(tp.topic, []).append(tp.partition)
            encoded[member_id] = encode_assignment(by_topic)
        return encoded

    async def _sync_group(
        self, protocol: str, assignments: Mapping[str, bytes]
    ) -> list[TopicPartition] | None:
        """SyncGroup: this member's partitions, or None if the group must be joined again."""
        request = {
            "group_id": self.group_id,
            "generation_id": self.generation,
            "member_id": self.member_id,
            "group_instance_id": self.group_instance_id,
            "protocol_type": CONSUMER_PROTOCOL_TYPE,
            "protocol_name": protocol,
            "assignments": [{"member_id": m, "assignment": a} for m, a in assignments.items()],
        }
        timeout = self._rebalance_timeout_ms / 1000 + self._cluster.request_timeout
        response = await self.coordinator.request(SYNC_GROUP, request, timeout)
        code = response.error_code
        if code == ErrorCode.rebalance_in_progress:
            return None
        if code in MEMBER_RESET_ERRORS:
            await self._lost()
            return None
        if code != ErrorCode.none:
            raise error_for(code, f"SyncGroup of group {self.group_id!r}: {code.name}")
        decoded = assigned_partitions(response.assignment)
        return [TopicPartition(t, p) for t, parts in sorted(decoded.items()) for p in parts]

    async def _lost(self) -> None:
        self.member_id, self.generation = "", -1
        self.stable.clear()
        owned = self._hooks.owned()
        if owned:
            await self._hooks.lose(owned)

    async def _heartbeat(self) -> None:
        """Wait one heartbeat interval (or a rejoin request, or the poll timer's expiry),
        then heartbeat; look at the metadata when it is due, to notice new topics and
        partitions."""
        wait = min(self._heartbeat_s, self._poll_timer.remaining())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), max(wait, 0.0))
        if self._rejoin or self._poll_timer.expired():
            return
        if time.monotonic() - self._checked_at >= self._metadata_max_age_s:
            await self._check_metadata()
            if self._rejoin:
                return
        request = {
            "group_id": self.group_id,
            "generation_id": self.generation,
            "member_id": self.member_id,
            "group_instance_id": self.group_instance_id,
        }
        response = await self.coordinator.request(HEARTBEAT, request, self._cluster.request_timeout)
        code = response.error_code
        if code == ErrorCode.rebalance_in_progress:
            self._rejoin = True
        elif code in MEMBER_RESET_ERRORS:
            logger.info("group %s: %s; rejoining", self.group_id, code.name)
            await self._lost()
            self._rejoin = True
        elif code != ErrorCode.none:
            raise error_for(code, f"Heartbeat of group {self.group_id!r}: {code.name}")

    async def _check_metadata(self) -> None:
        """Rebalance when the subscription matches a new topic, or (the leader watching all
        the group's topics) a topic gained partitions or went away."""
        self._checked_at = time.monotonic()
        mine = await self._hooks.topic_partitions(self._hooks.subscribed())
        if self._leader:
            watched = await self._hooks.topic_partitions(list(self._topics))
            changed = watched != self._topics or not set(mine) <= set(self._topics)
        else:
            changed = mine != self._topics
        if changed:
            logger.info("group %s: subscribed topics changed; rebalancing", self.group_id)
            self._rejoin = True
