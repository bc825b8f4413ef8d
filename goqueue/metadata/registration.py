"""A broker's side of the controller protocol: joining, registering, heartbeating, and
stepping down under control before it stops.

Heartbeats travel as records through the quorum (one every `broker.heartbeat.interval.ms`
per broker, a few a second for a whole cluster) but change the image only when they bring a
fenced broker back; the controller keeps the times they arrived in memory, as Kafka's
BrokerHeartbeatManager does.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pysyncobj.utility import TcpUtility, UtilityException

from goqueue.config.settings import BrokerSettings, parse_host_port
from goqueue.metadata.background import BackgroundTask
from goqueue.metadata.errors import DuplicateBrokerError, MetadataError
from goqueue.metadata.image import NO_LEADER, BrokerInfo
from goqueue.metadata.state_machine import broker_to_json

if TYPE_CHECKING:
    from goqueue.metadata.store import MetadataStore

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 3.0
REGISTRATION_RETRY_S = 0.5


def same_address(a: str, b: str) -> bool:
    """Whether two HOST:PORT strings name the same endpoint (as written)."""
    return parse_host_port(a) == parse_host_port(b)


def check_secret(peers: Sequence[str], secret: str) -> None:
    """Ask the reachable voters for their Raft status with our secret before joining. A
    voter that accepts the connection but will not answer does not share the secret; if
    every reachable voter refuses, joining could only hang, so say why and stop. Voters
    that are down are no proof either way (the cluster may be starting)."""
    refused = []
    for peer in peers:
        host, port = parse_host_port(peer)
        try:
            with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
                pass
        except OSError:
            continue
        try:
            TcpUtility(secret, timeout=PROBE_TIMEOUT_S).executeCommand(peer, ["status"])
        except UtilityException:
            refused.append(peer)
            continue
        return
    if refused:
        raise MetadataError(
            f"The metadata quorum at {', '.join(refused)} refused this node's cluster secret: "
            "every node of a cluster needs the same secret (--cluster-secret-file FILE)."
        )


async def register(store: MetadataStore, me: BrokerInfo, settings: BrokerSettings) -> None:
    """Register this incarnation. While another live process holds the node id, retry for
    one session timeout (a crashed predecessor that lived at another address is fenced by
    then); if the id is still taken, stop with the reason."""
    patience = (
        settings.broker_session_timeout_ms + 2 * settings.broker_heartbeat_interval_ms
    ) / 1000
    deadline = time.monotonic() + patience
    warned = False
    while True:
        try:
            await store.settle({"type": "register_broker", "broker": broker_to_json(me)})
            return
        except DuplicateBrokerError as exc:
            if time.monotonic() > deadline:
                raise DuplicateBrokerError(f"Refusing to start: {exc}") from None
            if not warned:
                logger.warning("%s Waiting up to %.0f s for it to go away.", exc, patience)
                warned = True
        await asyncio.sleep(REGISTRATION_RETRY_S)


class BrokerLifecycle(BackgroundTask):
    """Heartbeats while the broker runs; controlled shutdown when it stops."""

    def __init__(self, store: MetadataStore, settings: BrokerSettings) -> None:
        self._store = store
        self._settings = settings

    async def _run(self) -> None:
        """Heartbeat every broker.heartbeat.interval.ms."""
        record = {
            "type": "broker_heartbeat",
            "node_id": self._settings.node_id,
            "incarnation_id": self._store.incarnation_id,
        }
        interval = self._settings.broker_heartbeat_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            try:
                # A heartbeat lost in a partition is not waited for: the next one is due.
                await self._store.submit(record, timeout=interval)
            except MetadataError as exc:
                logger.debug("heartbeat not delivered: %s", exc)

    async def controlled_shutdown(self) -> None:
        """Stop heartbeating, have the partitions this broker leads move to other in-sync
        replicas and leave their ISRs, and hand the Raft leadership over if this node holds
        it; a single node, or a cluster with no other live broker, has nothing to move."""
        await self.stop()
        me = self._settings.node_id
        store = self._store
        others = [b for b in store.image.live_brokers() if b.node_id != me]
        if not others:
            return
        if store.controller_id < 0:
            logger.warning("controlled shutdown skipped: the metadata quorum has no leader")
            return
        timeout = self._settings.controlled_shutdown_timeout_ms / 1000
        record = {
            "type": "fence_broker",
            "node_id": me,
            "incarnation_id": store.incarnation_id,
            "reason": "controlled shutdown",
        }
        try:
            await asyncio.wait_for(store.submit(record), timeout)
            offline = sum(
                1
                for topic in store.image.topics.values()
                for state in topic.partition_states.values()
                if state.leader == NO_LEADER and me in state.isr
            )
            logger.info(
                "controlled shutdown: leaderships moved to other brokers; %d partition(s) had "
                "no other in-sync replica and are offline until this broker returns",
                offline,
            )
            await store.transfer_leadership(timeout)
        except (MetadataError, TimeoutError) as exc:
            logger.warning("controlled shutdown incomplete, stopping anyway: %s", exc)
