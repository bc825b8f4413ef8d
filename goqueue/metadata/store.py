"""The broker's asyncio view of cluster metadata.

The Raft state machine applies records on its own thread; this facade moves every new image
and every command result onto the event loop with `call_soon_threadsafe`, in the order the
Raft thread produced them. So when `await create_topic(...)` returns, `image` already holds
the topic and every listener has seen it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from kio.schema.errors import ErrorCode
from pysyncobj import FAIL_REASON

from goqueue.config.settings import BrokerSettings
from goqueue.metadata.active_controller import ControllerLoop
from goqueue.metadata.controller import (
    OK,
    Outcome,
    all_partitions,
    partition_state,
    plan_elections,
    reassignment_problem,
)
from goqueue.metadata.errors import (
    InvalidPartitionsError,
    MetadataError,
    TopicExistsError,
    UnknownTopicError,
)
from goqueue.metadata.image import BrokerInfo, MetadataImage, PartitionState, TopicInfo
from goqueue.metadata.placement import assign_replicas, start_index_of
from goqueue.metadata.registration import BrokerLifecycle, check_secret, register, same_address
from goqueue.metadata.state_machine import (
    MetadataStateMachine,
    Record,
    new_cluster_id,
    topic_to_json,
)

__all__ = [
    "InvalidPartitionsError",
    "Listener",
    "MetadataError",
    "MetadataStore",
    "TopicExistsError",
    "UnknownTopicError",
]

logger = logging.getLogger(__name__)

Listener = Callable[[MetadataImage, MetadataImage], None]
METADATA_DIR = "__metadata"
START_TIMEOUT_S = 30.0
COMMAND_TIMEOUT_S = 30.0
RETRY_S = 0.2
_RETRIABLE = {
    FAIL_REASON.MISSING_LEADER,
    FAIL_REASON.NOT_LEADER,
    FAIL_REASON.LEADER_CHANGED,
    FAIL_REASON.DISCARDED,
}


class MetadataStore:
    """Starts the node's metadata quorum member and serves its images to the event loop."""

    def __init__(self, settings: BrokerSettings) -> None:
        self._settings = settings
        self._image = MetadataImage.empty()
        self._listeners: list[Listener] = []
        self._raft: MetadataStateMachine | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[asyncio.Future[Any]] = set()
        self._random = random.Random()
        self.lifecycle: BrokerLifecycle | None = None
        self._controller: ControllerLoop | None = None
        self.incarnation_id = uuid.uuid4().hex
        """New on every start: tells this process from an earlier or a second one."""

    @property
    def image(self) -> MetadataImage:
        """The current image; replaced whole (never mutated) when a record applies."""
        return self._image

    def add_listener(self, listener: Listener) -> None:
        """Call `listener(old, new)` on the event loop after every change of the image."""
        self._listeners.append(listener)

    async def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Join (for a single node: form) the quorum, replay the stored metadata, and make sure
        the cluster has an id, a controller and this broker registered."""
        self._loop = asyncio.get_running_loop()
        directory = self._settings.data_dir / METADATA_DIR
        directory.mkdir(parents=True, exist_ok=True)
        ready = asyncio.Event()
        settings = self._settings
        voters = settings.voter_addresses()
        secret = settings.cluster_secret or secrets.token_urlsafe(32)
        peers = [address for node, address in voters.items() if node != settings.node_id]
        routes = settings.raft_route_addresses()
        if peers:
            await asyncio.to_thread(
                check_secret, [routes.get(peer, peer) for peer in peers], secret
            )
        self._raft = MetadataStateMachine(
            settings.raft if settings.is_voter() else None,
            directory,
            secret,
            on_change=lambda _old, new: self._to_loop(self._publish, new),
            on_ready=lambda: self._to_loop(ready.set),
            peers=peers,
            routes=routes,
        )
        try:
            await self._wait(ready.wait(), timeout, "replay the metadata and elect a leader")
            if self._raft.fatal_error is not None:
                raise self._raft.fatal_error
            await self._bootstrap(self._raft)
        except BaseException:
            await self.close()
            raise
        self.lifecycle = BrokerLifecycle(self, settings)
        self.lifecycle.start()
        self._controller = ControllerLoop(self, self._raft, settings)
        self._controller.start()

    async def _bootstrap(self, raft: MetadataStateMachine) -> None:
        node_id = self._settings.node_id
        if not self._image.cluster_id:
            await self.settle({"type": "init_cluster", "cluster_id": new_cluster_id()})
        voters = self._settings.voter_addresses() or {node_id: self._settings.raft}
        await self.settle({"type": "set_voters", "voters": voters, "only_if_empty": True})
        if raft.is_leader() and self._image.controller_id != node_id:
            await self.settle({"type": "elect_controller", "node_id": node_id})
        host, port = self._settings.advertised_host_port()
        me = BrokerInfo(
            node_id, host, port, self._settings.rack, incarnation_id=self.incarnation_id
        )
        await register(self, me, self._settings)

    @property
    def controller_id(self) -> int:
        """The node id of the Raft leader as this node knows it now (the image's controller
        record lags a leader change by one commit), or -1."""
        raft = self._raft
        address = raft.leader_address() if raft is not None else None
        for node, voter in self._image.voters.items():
            if address is not None and same_address(voter, address):
                return node
        return self._image.controller_id if address is not None else -1

    def is_controller(self) -> bool:
        """Whether this node leads the metadata quorum now."""
        return self._raft is not None and self._raft.is_leader()

    async def elect_leaders(
        self, partitions: Sequence[tuple[str, int]] | None, *, preferred: bool
    ) -> dict[tuple[str, int], Outcome]:
        """ElectLeaders: elect the preferred (or, unclean, any live) replica of `partitions`
        (None: every partition, answering only for those that needed an election)."""
        wanted = all_partitions(self._image) if partitions is None else partitions
        outcomes = plan_elections(self._image, wanted, preferred=preferred)
        if partitions is None:
            outcomes = {
                key: outcome
                for key, outcome in outcomes.items()
                if outcome[0] != ErrorCode.election_not_needed
            }
        chosen = [list(key) for key, outcome in outcomes.items() if outcome == OK]
        if chosen:
            election = "preferred" if preferred else "unclean"
            await self._command(
                {"type": "elect_leaders", "election": election, "partitions": chosen}
            )
        return outcomes

    async def reassign_partitions(
        self,
        changes: Sequence[tuple[str, int, tuple[int, ...] | None]],
        *,
        allow_replication_factor_change: bool = True,
    ) -> dict[tuple[str, int], Outcome]:
        """AlterPartitionReassignments: start moving partitions to new replicas (None
        cancels); the move completes when every new replica has joined the ISR."""
        outcomes = {
            (topic, index): reassignment_problem(
                self._image,
                topic,
                index,
                replicas,
                allow_replication_factor_change=allow_replication_factor_change,
            )
            for topic, index, replicas in changes
        }
        accepted = [
            [topic, index, None if replicas is None else list(replicas)]
            for topic, index, replicas in changes
            if outcomes[(topic, index)] == OK
        ]
        if accepted:
            await self._command({"type": "reassign_partitions", "partitions": accepted})
        return outcomes

    async def transfer_leadership(self, timeout: float) -> None:
        """If this node leads the quorum and has fellow voters, hand the leadership to one,
        so the quorum does not wait an election timeout after this node stops."""
        raft = self._raft
        if raft is None or not raft.is_leader() or len(self._image.voters) < 2:
            return
        await self._raft_call(lambda done: raft.transfer_leadership(done), timeout, "transfer")

    async def change_voters(self, change: str, node_id: int, address: str) -> None:
        """Add or remove a voter of the metadata quorum (on the leader), then record the new
        membership so every node maps the Raft leader to a node id."""
        raft = self._raft
        if raft is None or not raft.is_leader():
            raise MetadataError(
                "Only the controller changes the quorum's membership.", ErrorCode.not_controller
            )
        await self._raft_call(
            lambda done: raft.membership(change, address, done),
            COMMAND_TIMEOUT_S,
            f"{change} voter {node_id}",
        )
        voters = dict(self._image.voters)
        if change == "add":
            voters[node_id] = address
        else:
            voters.pop(node_id, None)
        await self._command({"type": "set_voters", "voters": voters})

    async def quorum_status(self) -> dict[str, Any]:
        """pysyncobj's view of the quorum from this node: term, commit index, leader, and on
        the leader how far each voter has replicated (`match_idx_server_HOST:PORT`)."""
        raft = self._raft
        if raft is None or self._loop is None:
            raise MetadataError("The metadata store is not running.")
        future: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        raft.on_raft_thread(lambda: self._to_loop(_set_result, future, raft.getStatus()))
        result: dict[str, Any] = await self._wait(future, COMMAND_TIMEOUT_S, "report its status")
        return result

    async def _raft_call(
        self, call: Callable[[Callable[[object, int], None]], None], timeout: float, what: str
    ) -> None:
        """Run a pysyncobj call that reports through a callback and wait for its outcome."""
        assert self._loop is not None
        future: asyncio.Future[object] = self._loop.create_future()
        call(lambda result, error: self._to_loop(self._resolve, future, result, error))
        await self._wait(future, timeout, what)

    async def settle(self, record: Record, patience: float = START_TIMEOUT_S) -> object:
        """Submit a record, again while the quorum is between leaders (a node starting with
        its peers sees elections), as Kafka brokers retry their registration."""
        deadline = time.monotonic() + patience
        while True:
            try:
                return await self._command(record)
            except MetadataError as exc:
                if exc.error_code != ErrorCode.not_controller or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(RETRY_S)

    async def submit(self, record: Record, timeout: float = COMMAND_TIMEOUT_S) -> object:
        """Replicate one record and wait until it applies here (the controller's commands)."""
        return await self._command(record, timeout)

    async def create_topic(
        self,
        name: str,
        partitions: int,
        replication_factor: int,
        configs: Mapping[str, str],
        assignments: Sequence[tuple[int, ...]] | None = None,
    ) -> TopicInfo:
        """Create a topic with a fresh topic id, its replicas placed over the live brokers
        (or as `assignments` says); TopicExistsError if the name is taken. The caller
        validates name, counts and configs."""
        if assignments is None:
            assignments = assign_replicas(
                self._image.live_brokers(), partitions, replication_factor, self._random
            )
        states = {
            index: PartitionState.initial(replicas) for index, replicas in enumerate(assignments)
        }
        topic = TopicInfo(name, uuid.uuid4(), partitions, replication_factor, configs, states)
        await self._command({"type": "create_topic", "topic": topic_to_json(topic)})
        return self._image.topics_by_id[topic.topic_id]

    async def alter_partition(
        self,
        topic_id: uuid.UUID,
        partition: int,
        *,
        leader_id: int,
        leader_epoch: int,
        partition_epoch: int,
        new_isr: Sequence[int],
    ) -> PartitionState:
        """A partition leader's ISR change (Kafka's AlterPartition): applied only if the
        epochs are current and every new member is unfenced, else PartitionChangeError with
        FENCED_LEADER_EPOCH, NOT_LEADER_OR_FOLLOWER, INVALID_UPDATE_VERSION, INVALID_REQUEST or
        INELIGIBLE_REPLICA. Returns the partition's new state (a completed reassignment may
        have changed its replicas too)."""
        await self._command(
            {
                "type": "alter_partition",
                "topic_id": str(topic_id),
                "partition": partition,
                "leader_id": leader_id,
                "leader_epoch": leader_epoch,
                "partition_epoch": partition_epoch,
                "new_isr": list(new_isr),
            }
        )
        return partition_state(self._image, topic_id, partition)

    async def delete_topic(self, name: str) -> None:
        """Delete a topic; UnknownTopicError if there is none."""
        await self._command({"type": "delete_topic", "name": name})

    async def alter_topic_configs(
        self, name: str, set_: Mapping[str, str], delete: Sequence[str]
    ) -> None:
        """Set and remove a topic's configs in one record; UnknownTopicError if there is none.
        The caller validates the resulting configs."""
        await self._alter({"type": "alter_topic_configs", "name": name}, set_, delete)

    async def alter_broker_configs(
        self, level: str, set_: Mapping[str, str], delete: Sequence[str]
    ) -> None:
        """Set and remove dynamic broker settings of one level ("" for the cluster default,
        else a node id) in one record. The caller validates them."""
        await self._alter({"type": "alter_broker_configs", "level": level}, set_, delete)

    async def _alter(
        self, record: dict[str, object], set_: Mapping[str, str], delete: Sequence[str]
    ) -> None:
        await self._command({**record, "set": dict(set_), "delete": list(delete)})

    async def create_partitions(
        self, name: str, count: int, assignments: Sequence[tuple[int, ...]] | None = None
    ) -> None:
        """Grow a topic to `count` partitions, the new ones placed as Kafka continues a
        topic's placement (or as `assignments` says); InvalidPartitionsError unless that is
        more."""
        topic = self._image.topics.get(name)
        if assignments is None and topic is not None and count > topic.partitions:
            brokers = self._image.live_brokers()
            first = topic.partition_states.get(0)
            assignments = assign_replicas(
                brokers,
                count - topic.partitions,
                len(first.target_replicas) if first else topic.replication_factor,
                self._random,
                start_partition=topic.partitions,
                start_index=start_index_of(brokers, first.replicas[0]) if first else -1,
            )
        record: dict[str, object] = {"type": "create_partitions", "name": name, "partitions": count}
        if assignments is not None:
            record["assignments"] = [list(replicas) for replicas in assignments]
        await self._command(record)

    async def allocate_producer_ids(self, node_id: int, block_size: int) -> int:
        """Reserve the next `block_size` producer ids for `node_id`; returns the first."""
        record = {"type": "allocate_producer_ids", "node_id": node_id, "block_size": block_size}
        await self._command(record)
        return self._image.producer_id_blocks[node_id]

    async def update_share_groups(
        self,
        added: Collection[str] = (),
        removed: Collection[str] = (),
        timeout: float = COMMAND_TIMEOUT_S,
    ) -> None:
        """List share groups a share coordinator created and drop those it deleted, so every
        broker knows which group ids are share groups."""
        record = {"type": "share_groups", "add": sorted(added), "remove": sorted(removed)}
        await self._command(record, timeout)

    async def close(self) -> None:
        """Leave the quorum, flush its journal and fail commands still waiting."""
        if self._controller is not None:
            await self._controller.stop()
        if self.lifecycle is not None:
            await self.lifecycle.stop()
        raft, self._raft = self._raft, None
        for future in list(self._pending):
            if not future.done():
                future.set_exception(MetadataError("The metadata store was closed."))
        if raft is not None:
            await asyncio.to_thread(raft.destroy_synchronous)

    async def _command(self, record: Record, timeout: float = COMMAND_TIMEOUT_S) -> object:
        """Replicate a record and wait for it to apply here; raise its rejection if any."""
        if self._raft is None or self._loop is None:
            raise MetadataError("The metadata store is not running.")
        future: asyncio.Future[object] = self._loop.create_future()
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        self._raft.submit(
            record, lambda result, error: self._to_loop(self._resolve, future, result, error)
        )
        return await self._wait(future, timeout, f"apply {record['type']}")

    async def _wait(self, awaitable: Any, timeout: float, what: str) -> Any:
        try:
            return await asyncio.wait_for(awaitable, timeout)
        except TimeoutError:
            raise MetadataError(
                f"The metadata quorum did not {what} within {timeout:g} s; check that a "
                f"majority of its members is reachable (raft address {self._settings.raft}).",
                ErrorCode.request_timed_out,
            ) from None

    @staticmethod
    def _resolve(future: asyncio.Future[object], result: object, error: int) -> None:
        if future.done():
            return
        if error != FAIL_REASON.SUCCESS:
            code = (
                ErrorCode.not_controller if error in _RETRIABLE else ErrorCode.unknown_server_error
            )
            future.set_exception(
                MetadataError(
                    f"The metadata quorum did not apply the change (reason {error}).", code
                )
            )
        elif isinstance(result, MetadataError):
            future.set_exception(result)
        else:
            future.set_result(result)

    def _to_loop(self, callback: Callable[..., None], *args: object) -> None:
        """Run `callback` on the event loop; called from the Raft thread."""
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            logger.debug("event loop closed; dropping a metadata notification")

    def _publish(self, new: MetadataImage) -> None:
        old, self._image = self._image, new
        for listener in list(self._listeners):
            try:
                listener(old, new)
            except Exception:
                logger.exception("metadata listener %r failed", listener)


def _set_result(future: asyncio.Future[Any], result: object) -> None:
    if not future.done():
        future.set_result(result)
