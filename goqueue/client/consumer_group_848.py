"""A consumer's membership in a consumer group of the new protocol (KIP-848): one
ConsumerGroupHeartbeat loop, the broker computing assignments (`group_remote_assignor` picks
its assignor).

Each heartbeat carries the subscription and the partitions the member owns; an answer with an
assignment is reconciled at once (revoke what it leaves out, then assign what it adds) and
acknowledged by the next heartbeat, sent without waiting for the interval. A pattern is sent
as SubscribedTopicRegex and resolved by the broker (as Kafka's consumer does with an RE2J
`SubscriptionPattern`), so a matching topic created later joins the group's assignment at the
broker's next rebalance, without the client watching the metadata; the broker, like Kafka's,
also matches internal topics.

A member whose application stops polling for `max_poll_interval_ms` leaves with epoch -1 (a
static member -2, for which Kafka's broker keeps the partitions until its session expires),
loses its partitions, and joins again with epoch 0 at the next poll (Kafka's
`transitionToStale`).
"""

import asyncio
import contextlib
import datetime
import logging
import time
import uuid
from typing import Any

from kio.schema.errors import ErrorCode

from goqueue.client.cluster import Cluster
from goqueue.client.errors import ClientError, error_for
from goqueue.client.group_member import (
    COORDINATOR_ERRORS,
    MAX_RETRY_BACKOFF_S,
    MEMBER_RESET_ERRORS,
    RETRY_BACKOFF_S,
    Coordinator,
    GroupHooks,
    PollTimer,
)
from goqueue.client.groups import MemberIdentity
from goqueue.client.metadata import TopicPartition

logger = logging.getLogger(__name__)

CONSUMER_GROUP_HEARTBEAT = 68
JOIN_EPOCH = 0
LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2
DEFAULT_HEARTBEAT_S = 5.0


class ConsumerGroupMember:
    """Membership in a KIP-848 group; `start()` runs the heartbeat loop in the background."""

    def __init__(
        self,
        cluster: Cluster,
        group_id: str,
        hooks: GroupHooks,
        *,
        rebalance_timeout_ms: int,
        metadata_max_age_ms: int,
        server_assignor: str | None = None,
        group_instance_id: str | None = None,
        poll_timer: PollTimer | None = None,
    ) -> None:
        self.coordinator = Coordinator(cluster, group_id)
        self.group_id = group_id
        self.group_instance_id = group_instance_id
        self.member_id = ""
        self.member_epoch = JOIN_EPOCH
        self.error: ClientError | None = None
        self.stable = asyncio.Event()
        """Set once the member owns the assignment the broker last gave it."""
        self._cluster = cluster
        self._hooks = hooks
        self._rebalance_timeout_ms = rebalance_timeout_ms
        self._metadata_max_age_s = metadata_max_age_ms / 1000
        self._server_assignor = server_assignor
        self._poll_timer = poll_timer or PollTimer(rebalance_timeout_ms)
        """The consumer's (default: one nobody polls, started now)."""
        self._interval_s = DEFAULT_HEARTBEAT_S
        self._wakeup = asyncio.Event()
        self._topics: list[str] = []
        self._regex = ""
        """The subscription's pattern, "" for none (what the broker takes to drop one)."""
        self._ids: dict[str, uuid.UUID] = {}
        self._checked_at = 0.0
        self._closing = False
        self._sent: tuple[list[str], str, list[TopicPartition]] | None = None
        """The topic names, pattern and owned partitions the broker last acknowledged."""
        self._task: asyncio.Task[None] | None = None

    @property
    def identity(self) -> MemberIdentity:
        return MemberIdentity(self.member_epoch, self.member_id, self.group_instance_id)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"goqueue-group-{self.group_id}")

    def rejoin(self) -> None:
        """The subscription changed: send it now."""
        self._checked_at = 0.0
        self._wakeup.set()

    async def close(self) -> None:
        """Revoke what the member owns and leave the group (a static member leaves with
        epoch -2, keeping its partitions for its restart within the session timeout)."""
        if self._task is not None and self._poll_timer.stale:
            self._task.cancel()  # the member left already and waits for a poll
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        elif self._task is not None:
            # Let a heartbeat in flight finish: its answer may carry a new epoch, which the
            # commit of the revoked partitions needs.
            self._closing = True
            self._wakeup.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self._cluster.request_timeout)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        owned = self._hooks.owned()
        if owned:
            await (self._hooks.revoke if self.member_epoch > 0 else self._hooks.lose)(owned)
        if self.member_id and self.member_epoch > 0:
            epoch = STATIC_LEAVE_EPOCH if self.group_instance_id else LEAVE_EPOCH
            with contextlib.suppress(ClientError):
                await self._heartbeat(epoch)
        await self.coordinator.close()

    async def _run(self) -> None:
        backoff = RETRY_BACKOFF_S
        while not self._closing:
            try:
                if self.member_epoch > 0 and self._poll_timer.expired():
                    await self._poll_timer.go_stale(self.group_id, self._leave_stale)
                again = await self._beat()
                backoff = RETRY_BACKOFF_S
            except ClientError as exc:
                if not exc.retriable:
                    logger.error("group %s: %s; the member stops", self.group_id, exc)
                    self.error = exc
                    return
                logger.info("group %s: %s; retrying in %.1f s", self.group_id, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_RETRY_BACKOFF_S)
                continue
            if not again and not self._closing:
                wait = min(self._interval_s, self._poll_timer.remaining())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), max(wait, 0.0))
            self._wakeup.clear()

    async def _beat(self) -> bool:
        """One heartbeat and what its answer asks for; True to send the next one at once."""
        if time.monotonic() - self._checked_at >= self._metadata_max_age_s:
            await self._resolve_topics()
        if not self.member_id and await self._client_member_ids():
            self.member_id = str(uuid.uuid4())
        response = await self._heartbeat(self.member_epoch)
        code = response.error_code
        if code in MEMBER_RESET_ERRORS:
            logger.info("group %s: %s; joining again", self.group_id, code.name)
            await self._lost()
            return True
        if code in COORDINATOR_ERRORS or code == ErrorCode.unreleased_instance_id:
            raise error_for(code, response.error_message)
        if code != ErrorCode.none:
            raise error_for(code, f"group {self.group_id!r}: {response.error_message}")
        self.member_id = response.member_id or self.member_id
        self.member_epoch = response.member_epoch
        if response.heartbeat_interval.total_seconds() > 0:
            self._interval_s = response.heartbeat_interval.total_seconds()
        if response.assignment is None:
            return False
        await self._reconcile(response.assignment)
        return True

    async def _lost(self) -> None:
        """The member is out of the group: it joins again with epoch 0, and its partitions
        may be another member's already."""
        self.member_epoch = JOIN_EPOCH
        self.stable.clear()
        owned = self._hooks.owned()
        if owned:
            await self._hooks.lose(owned)

    async def _leave_stale(self) -> None:
        """Leave after a poll timeout (at most once, the answer does not matter: the member
        joins again either way), then lose the partitions."""
        if self.member_id and self.member_epoch > 0:
            epoch = STATIC_LEAVE_EPOCH if self.group_instance_id else LEAVE_EPOCH
            with contextlib.suppress(ClientError):
                await self._heartbeat(epoch)
        await self._lost()

    async def _client_member_ids(self) -> bool:
        """ConsumerGroupHeartbeat v1+ has the client choose its member id (KIP-1082)."""
        connection = await self.coordinator.connection()
        return (connection.version(CONSUMER_GROUP_HEARTBEAT) or 0) >= 1

    async def _heartbeat(self, epoch: int) -> Any:
        """Send the fields that changed since the last answered heartbeat (all of them when
        joining or after an error), as Kafka's consumer does: a full request makes the broker
        send the whole assignment back."""
        joining = epoch == JOIN_EPOCH
        if joining:
            self._sent = None
        owned = [] if joining else self._hooks.owned()
        sent_topics, sent_regex, sent_owned = self._sent or (None, None, None)
        by_topic: dict[str, list[int]] = {}
        for tp in owned:
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        request = {
            "group_id": self.group_id,
            "member_id": self.member_id,
            "member_epoch": epoch,
            "instance_id": self.group_instance_id,
            "rack_id": None,
            "rebalance_timeout": datetime.timedelta(
                milliseconds=self._rebalance_timeout_ms if self._sent is None else -1
            ),
            "subscribed_topic_names": None if sent_topics == self._topics else self._topics,
            # "" drops a pattern the broker may hold (after a change, or an unanswered request).
            "subscribed_topic_regex": None
            if sent_regex == self._regex or (joining and not self._regex)
            else self._regex,
            "server_assignor": self._server_assignor,
            "topic_partitions": None
            if sent_owned == owned
            else [
                {"topic_id": self._ids[t], "partitions": parts}
                for t, parts in sorted(by_topic.items())
                if t in self._ids
            ],
        }
        self._sent = None
        response = await self.coordinator.request(
            CONSUMER_GROUP_HEARTBEAT, request, self._cluster.request_timeout
        )
        if response.error_code == ErrorCode.none:
            self._sent = (list(self._topics), self._regex, owned)
        return response

    async def _resolve_topics(self) -> None:
        """The subscription (names, or a pattern the broker resolves) and the topic ids."""
        self._checked_at = time.monotonic()
        self._topics = sorted(self._hooks.subscribed() or ())
        self._regex = self._hooks.pattern() or ""
        await self._learn_ids()

    async def _learn_ids(self) -> None:
        metadata = await self._cluster.refresh(None)
        self._ids = {
            name: topic.topic_id
            for name, topic in metadata.topics.items()
            if topic.topic_id is not None
        }

    async def _reconcile(self, assignment: Any) -> None:
        names = {topic_id: name for name, topic_id in self._ids.items()}
        if any(t.topic_id not in names for t in assignment.topic_partitions):
            await self._learn_ids()
            names = {topic_id: name for name, topic_id in self._ids.items()}
        target = {
            TopicPartition(names[t.topic_id], p)
            for t in assignment.topic_partitions
            if t.topic_id in names
            for p in t.partitions
        }
        owned = self._hooks.owned()
        revoked = sorted(tp for tp in owned if tp not in target)
        if revoked:
            await self._hooks.revoke(revoked)
        added = sorted(target.difference(owned))
        if added:
            await self._hooks.assign(added)
        self.stable.set()
        logger.info(
            "group %s: epoch %d, member %s owns %d partitions",
            self.group_id,
            self.member_epoch,
            self.member_id,
            len(target),
        )
