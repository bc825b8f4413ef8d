"""The active controller: what the Raft leader does on its own initiative.

Every node runs this loop; it acts only while its node leads the quorum. It names itself the
controller in the image and fences brokers whose heartbeats stopped arriving (the records
fencing them move their leaderships and shrink their ISRs, see controller.py). A new leader
first gives every broker one full session, since it may have missed heartbeats before its
election (Kafka does the same on controller failover).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from goqueue.config.settings import BrokerSettings
from goqueue.metadata.background import BackgroundTask
from goqueue.metadata.controller import imbalanced_partitions
from goqueue.metadata.errors import MetadataError
from goqueue.metadata.image import MetadataImage
from goqueue.metadata.state_machine import MetadataStateMachine

if TYPE_CHECKING:
    from goqueue.metadata.store import MetadataStore

logger = logging.getLogger(__name__)

TICK_S = 0.2


def expired_brokers(
    image: MetadataImage,
    heartbeats: dict[int, tuple[str, float]],
    *,
    now: float,
    since: float,
    session_timeout: float,
) -> list[tuple[int, str]]:
    """(node id, incarnation) of unfenced brokers whose current incarnation has not
    heartbeated within `session_timeout` of `now`, counting from `since` at the earliest."""
    expired = []
    for broker in image.brokers.values():
        if broker.fenced:
            continue
        incarnation, seen = heartbeats.get(broker.node_id, ("", since))
        last = max(seen if incarnation == broker.incarnation_id else since, since)
        if now - last > session_timeout:
            expired.append((broker.node_id, broker.incarnation_id))
    return expired


class ControllerLoop(BackgroundTask):
    def __init__(
        self, store: MetadataStore, raft: MetadataStateMachine, settings: BrokerSettings
    ) -> None:
        self._store = store
        self._raft = raft
        self._settings = settings

    async def _run(self) -> None:
        leading_since: float | None = None
        next_rebalance = 0.0
        while True:
            await asyncio.sleep(TICK_S)
            if not self._raft.is_leader():
                leading_since = None
                continue
            now = time.monotonic()
            if leading_since is None:
                leading_since = now
                next_rebalance = now + self._settings.leader_imbalance_check_interval_seconds
                logger.info("this node is now the controller")
            try:
                await self._act(leading_since)
                if now >= next_rebalance and self._settings.auto_leader_rebalance_enable:
                    next_rebalance = now + self._settings.leader_imbalance_check_interval_seconds
                    await self._rebalance()
            except MetadataError as exc:
                logger.warning("controller action failed, retrying: %s", exc)

    async def _act(self, leading_since: float) -> None:
        store = self._store
        me = self._settings.node_id
        if store.image.controller_id != me:
            await store.submit({"type": "elect_controller", "node_id": me})
        expired = expired_brokers(
            store.image,
            self._raft.heartbeats,
            now=time.monotonic(),
            since=leading_since,
            session_timeout=self._settings.broker_session_timeout_ms / 1000,
        )
        for node, incarnation in expired:
            logger.warning(
                "fencing broker %d: no heartbeat for %d ms; its leaderships move to other "
                "in-sync replicas",
                node,
                self._settings.broker_session_timeout_ms,
            )
            await store.submit(
                {"type": "fence_broker", "node_id": node, "incarnation_id": incarnation}
            )

    async def _rebalance(self) -> None:
        """Kafka's auto leader rebalance: preferred elections where a broker's share of
        preferred partitions led elsewhere is above leader.imbalance.per.broker.percentage."""
        store = self._store
        partitions = imbalanced_partitions(
            store.image, self._settings.leader_imbalance_per_broker_percentage
        )
        if partitions:
            logger.info("rebalancing leaders of %d partition(s)", len(partitions))
            await store.elect_leaders(partitions, preferred=True)
