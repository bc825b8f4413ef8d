"""The replicated metadata state machine: pure record transitions plus the pysyncobj wrapper.

Records are small JSON objects with a `type`, like the records of Kafka's metadata log.
`apply_record` is a pure function from (image, record) to the next image, so every node that
replays the same records reaches the same image; it runs on pysyncobj's thread.

All records go through one replicated method, `_apply_journaled`, because pysyncobj numbers
replicated methods by sorted name in its journal: adding a method would renumber the
commands already journaled. New record types are added to `_TRANSITIONS` instead.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from pysyncobj import SyncObj, SyncObjConf, SyncObjException, replicated
from pysyncobj.dns_resolver import globalDnsResolver
from pysyncobj.encryptor import HAS_CRYPTO
from pysyncobj.node import TCPNode

from goqueue.config.settings import parse_host_port
from goqueue.metadata import controller
from goqueue.metadata.errors import (
    DuplicateBrokerError,
    InvalidPartitionsError,
    MetadataError,
    RecordRejectedError,
    TopicExistsError,
    UnknownTopicError,
)
from goqueue.metadata.image import NO_LEADER, BrokerInfo, MetadataImage, PartitionState, TopicInfo

logger = logging.getLogger(__name__)

Record = Mapping[str, Any]
Callback = Callable[[object, int], None]
"""pysyncobj's command callback: (result, FAIL_REASON); called on the Raft thread."""

DUMP_FORMAT = 1
SINGLE_NODE_TIMING = {"appendEntriesPeriod": 0.01, "raftMinTimeout": 0.04, "raftMaxTimeout": 0.08}
"""A one-member quorum elects itself within ~0.1 s of starting."""
CLUSTER_TIMING = {
    "appendEntriesPeriod": 0.05,
    "raftMinTimeout": 0.4,
    "raftMaxTimeout": 0.8,
    "connectionTimeout": 2.0,
    "connectionRetryTime": 0.5,
    "leaderFallbackTimeout": 3.0,
}
"""Several voters: a leader is replaced within about a second, a leader cut off from the
majority steps down within three (not pysyncobj's 30, during which it would still call itself
the controller), and a restarted voter is reconnected within half a second."""
BUSY_TICK_S = 0.002
"""Tick period while a command of ours awaits commit, so it applies within milliseconds."""


def new_cluster_id() -> str:
    """Kafka's format: 16 random bytes, URL-safe base64 without padding (22 characters)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


# -- records and their pure transitions ---------------------------------------------------


def broker_to_json(broker: BrokerInfo) -> dict[str, Any]:
    return {
        "node_id": broker.node_id,
        "host": broker.host,
        "port": broker.port,
        "rack": broker.rack,
        "fenced": broker.fenced,
        "incarnation_id": broker.incarnation_id,
        "epoch": broker.epoch,
    }


def broker_from_json(data: Mapping[str, Any]) -> BrokerInfo:
    return BrokerInfo(
        int(data["node_id"]),
        str(data["host"]),
        int(data["port"]),
        data["rack"],
        bool(data.get("fenced", False)),
        str(data.get("incarnation_id", "")),
        int(data.get("epoch", 0)),
    )


def partition_to_json(index: int, state: PartitionState) -> dict[str, Any]:
    return {
        "partition": index,
        "replicas": list(state.replicas),
        "leader": state.leader,
        "leader_epoch": state.leader_epoch,
        "isr": list(state.isr),
        "partition_epoch": state.partition_epoch,
        "adding": list(state.adding),
        "removing": list(state.removing),
    }


def partition_from_json(data: Mapping[str, Any]) -> tuple[int, PartitionState]:
    def nodes(key: str) -> tuple[int, ...]:
        return tuple(int(node) for node in data.get(key, ()))

    state = PartitionState(
        nodes("replicas"),
        int(data["leader"]),
        int(data["leader_epoch"]),
        nodes("isr"),
        int(data["partition_epoch"]),
        nodes("adding"),
        nodes("removing"),
    )
    return int(data["partition"]), state


def topic_to_json(topic: TopicInfo) -> dict[str, Any]:
    return {
        "name": topic.name,
        "topic_id": str(topic.topic_id),
        "partitions": topic.partitions,
        "replication_factor": topic.replication_factor,
        "configs": dict(topic.configs),
        "partition_states": [
            partition_to_json(index, state) for index, state in topic.partition_states.items()
        ],
    }


def topic_from_json(data: Mapping[str, Any]) -> TopicInfo:
    return TopicInfo(
        str(data["name"]),
        uuid.UUID(data["topic_id"]),
        int(data["partitions"]),
        int(data["replication_factor"]),
        {str(key): str(value) for key, value in data["configs"].items()},
        dict(partition_from_json(item) for item in data.get("partition_states", ())),
    )


def _single_node_states(image: MetadataImage, first: int, last: int) -> dict[int, PartitionState]:
    """Partitions written before records carried assignments (single-node metadata): they
    live on the one registered broker."""
    node = min(image.brokers, default=NO_LEADER)
    replicas = (node,) if node != NO_LEADER else ()
    return {index: PartitionState.initial(replicas) for index in range(first, last)}


def _init_cluster(image: MetadataImage, record: Record) -> MetadataImage:
    """The first proposed cluster id wins; later proposals (a restart racing) change nothing."""
    return image if image.cluster_id else image.with_cluster_id(str(record["cluster_id"]))


def _elect_controller(image: MetadataImage, record: Record) -> MetadataImage:
    node_id = int(record["node_id"])
    return image if image.controller_id == node_id else image.with_controller(node_id)


def _register_broker(image: MetadataImage, record: Record) -> MetadataImage:
    """Register a broker (again). A different incarnation of a live broker at another address
    is a second process claiming the id: refused. At the same address it is the same broker
    restarted (the old process cannot still listen there), so it replaces the registration.
    The broker epoch is the metadata offset of the registration."""
    broker = broker_from_json(record["broker"])
    current = image.brokers.get(broker.node_id)
    if current is not None and current.incarnation_id == broker.incarnation_id:
        return image
    if (
        current is not None
        and not current.fenced
        and current.incarnation_id
        and (current.host, current.port) != (broker.host, broker.port)
    ):
        raise DuplicateBrokerError(
            f"Node id {broker.node_id} is already registered by a live broker at "
            f"{current.host}:{current.port} (incarnation {current.incarnation_id}); give this "
            "node another --node-id, or stop the other one and wait for its session to expire."
        )
    image = image.with_broker(replace(broker, fenced=False, epoch=image.offset + 1))
    return controller.elect_offline_leaders(image)


def _broker_heartbeat(image: MetadataImage, record: Record) -> MetadataImage:
    """A heartbeat changes the image only when it brings a fenced broker back: the
    controller keeps the time of the others (not replicated)."""
    broker = image.brokers.get(int(record["node_id"]))
    if broker is None or not broker.fenced or broker.incarnation_id != record["incarnation_id"]:
        return image
    return controller.elect_offline_leaders(image.with_broker(replace(broker, fenced=False)))


def _fence_broker(image: MetadataImage, record: Record) -> MetadataImage:
    """Fence a broker that stopped heartbeating, or one shutting down under control (only its
    current incarnation: a late record must not fence its successor)."""
    node = int(record["node_id"])
    broker = image.brokers.get(node)
    if broker is None or broker.incarnation_id != record.get(
        "incarnation_id", broker.incarnation_id
    ):
        return image
    return controller.fence_broker(image, node)


def _unregister_broker(image: MetadataImage, record: Record) -> MetadataImage:
    """Forget a broker removed from the cluster (its partitions need reassigning first)."""
    node = int(record["node_id"])
    if node not in image.brokers:
        return image
    image = controller.fence_broker(image, node)
    return image.without_broker(node)


def _alter_partition(image: MetadataImage, record: Record) -> MetadataImage:
    topic = _topic_by_id(image, record["topic_id"])
    index = int(record["partition"])
    state = controller.partition_state(image, topic.topic_id, index)
    request = controller.AlterPartitionRequest(
        int(record["leader_id"]),
        int(record["leader_epoch"]),
        int(record["partition_epoch"]),
        tuple(int(node) for node in record["new_isr"]),
    )
    new = controller.alter_partition(image, state, request)
    return image.with_topic(topic.with_partition_states({index: new}))


def _topic_by_id(image: MetadataImage, topic_id: str) -> TopicInfo:
    topic = image.topics_by_id.get(uuid.UUID(topic_id))
    if topic is None:
        raise UnknownTopicError(f"Topic id {topic_id} does not exist.")
    return topic


def _elect_leaders(image: MetadataImage, record: Record) -> MetadataImage:
    """ElectLeaders: preferred or unclean elections of the listed partitions; the ones whose
    election is not possible (any more) stay as they are."""
    preferred = record["election"] == "preferred"
    electable = controller.electable_in(image)
    for name, index in record["partitions"]:
        topic = image.topics.get(name)
        state = topic.partition_states.get(int(index)) if topic else None
        if topic is None or state is None:
            continue
        new, _ = controller.elect(state, electable, preferred=preferred)
        if new is not state:
            image = image.with_topic(topic.with_partition_states({int(index): new}))
    return image


def _reassign_partitions(image: MetadataImage, record: Record) -> MetadataImage:
    """AlterPartitionReassignments: start (replicas given) or cancel (null) reassignments."""
    electable = controller.electable_in(image)
    for name, index, replicas in record["partitions"]:
        topic = _topic(image, {"name": name})
        state = topic.partition_states.get(int(index))
        if state is None:
            raise UnknownTopicError(f"Partition {name}-{index} does not exist.")
        if replicas is None:
            new = controller.cancel_reassignment(state, electable)
        else:
            new = controller.reassign(state, tuple(int(n) for n in replicas), electable)
        image = image.with_topic(topic.with_partition_states({int(index): new}))
    return image


def _set_voters(image: MetadataImage, record: Record) -> MetadataImage:
    """The quorum's members by node id, so the controller id can name the Raft leader.
    `only_if_empty` is the first node's bootstrap from its --voters setting."""
    if record.get("only_if_empty") and image.voters:
        return image
    voters = {int(node): str(address) for node, address in record["voters"].items()}
    return image if voters == image.voters else replace(image, voters=voters)


def _create_topic(image: MetadataImage, record: Record) -> MetadataImage:
    topic = topic_from_json(record["topic"])
    if topic.name in image.topics or topic.topic_id in image.topics_by_id:
        raise TopicExistsError(f"Topic '{topic.name}' already exists.")
    if not topic.partition_states:
        topic = topic.with_partition_states(_single_node_states(image, 0, topic.partitions))
    return image.with_topic(topic)


def _delete_topic(image: MetadataImage, record: Record) -> MetadataImage:
    name = str(record["name"])
    if name not in image.topics:
        raise UnknownTopicError(f"Topic '{name}' does not exist.")
    return image.without_topic(name)


def _changed_configs(configs: Mapping[str, str], record: Record) -> dict[str, str]:
    """`configs` after a record's `set` values and `delete` names (validated by the broker
    that wrote the record, against the image it saw)."""
    doomed = set(record["delete"])
    kept = {name: value for name, value in configs.items() if name not in doomed}
    return {**kept, **{str(name): str(value) for name, value in record["set"].items()}}


def _topic(image: MetadataImage, record: Record) -> TopicInfo:
    name = str(record["name"])
    topic = image.topics.get(name)
    if topic is None:
        raise UnknownTopicError(f"Topic '{name}' does not exist.")
    return topic


def _alter_topic_configs(image: MetadataImage, record: Record) -> MetadataImage:
    topic = _topic(image, record)
    configs = _changed_configs(topic.configs, record)
    if configs == topic.configs:
        return image
    return image.with_topic(replace(topic, configs=configs))


def _alter_broker_configs(image: MetadataImage, record: Record) -> MetadataImage:
    level = str(record["level"])
    current = image.broker_configs.get(level, {})
    configs = _changed_configs(current, record)
    return image if configs == current else image.with_broker_configs(level, configs)


def partition_count_problem(current: int, requested: int) -> str | None:
    """Why a topic of `current` partitions cannot grow to `requested`, in Kafka's words."""
    if requested < current:
        return (
            f"Topic currently has {current} partitions, which is higher than the requested "
            f"{requested}."
        )
    if requested == current:
        return f"Topic already has {current} partitions."
    return None


def _create_partitions(image: MetadataImage, record: Record) -> MetadataImage:
    """Partitions are only ever added: existing ones keep their data and offsets."""
    topic = _topic(image, record)
    count = int(record["partitions"])
    problem = partition_count_problem(topic.partitions, count)
    if problem:
        raise InvalidPartitionsError(problem)
    assignments = record.get("assignments")
    if assignments is None:
        states = _single_node_states(image, topic.partitions, count)
    else:
        states = {
            topic.partitions + offset: PartitionState.initial(tuple(int(n) for n in replicas))
            for offset, replicas in enumerate(assignments)
        }
    return image.with_topic(topic.with_partition_states(states))


def _allocate_producer_ids(image: MetadataImage, record: Record) -> MetadataImage:
    """A block of producer ids for one broker, which hands them out from memory: ids stay
    unique across brokers and restarts because the quorum never gives out a block twice."""
    return image.with_producer_id_block(int(record["node_id"]), int(record["block_size"]))


def _share_groups(image: MetadataImage, record: Record) -> MetadataImage:
    """Share groups created (`add`) and deleted (`remove`) by their share coordinator."""
    added = (str(group_id) for group_id in record.get("add", ()))
    removed = (str(group_id) for group_id in record.get("remove", ()))
    return image.with_share_groups(added, removed)


_TRANSITIONS: dict[str, Callable[[MetadataImage, Record], MetadataImage]] = {
    "init_cluster": _init_cluster,
    "elect_controller": _elect_controller,
    "register_broker": _register_broker,
    "broker_heartbeat": _broker_heartbeat,
    "fence_broker": _fence_broker,
    "unregister_broker": _unregister_broker,
    "alter_partition": _alter_partition,
    "elect_leaders": _elect_leaders,
    "reassign_partitions": _reassign_partitions,
    "set_voters": _set_voters,
    "create_topic": _create_topic,
    "delete_topic": _delete_topic,
    "alter_topic_configs": _alter_topic_configs,
    "alter_broker_configs": _alter_broker_configs,
    "create_partitions": _create_partitions,
    "allocate_producer_ids": _allocate_producer_ids,
    "share_groups": _share_groups,
}


def apply_record(image: MetadataImage, record: Record) -> MetadataImage:
    """The image after `record`; the same image object if the record changes nothing.
    Raises a RecordRejectedError (TopicExistsError, UnknownTopicError, ...) for a record the
    state refuses."""
    transition = _TRANSITIONS.get(record.get("type", ""))
    if transition is None:
        raise MetadataError(
            f"Unknown metadata record type {record.get('type')!r}: this node runs an older "
            "Go-Queue than the node that wrote it; upgrade it."
        )
    new = transition(image, record)
    return image if new is image else replace(new, offset=image.offset + 1)


def image_to_json(image: MetadataImage) -> dict[str, Any]:
    return {
        "cluster_id": image.cluster_id,
        "controller_id": image.controller_id,
        "offset": image.offset,
        "brokers": [broker_to_json(broker) for broker in image.brokers.values()],
        "topics": [topic_to_json(topic) for topic in image.topics.values()],
        "broker_configs": {level: dict(values) for level, values in image.broker_configs.items()},
        "next_producer_id": image.next_producer_id,
        "producer_id_blocks": {
            str(node): first for node, first in image.producer_id_blocks.items()
        },
        "voters": {str(node): address for node, address in image.voters.items()},
        "share_groups": sorted(image.share_groups),
    }


def image_from_json(data: Mapping[str, Any]) -> MetadataImage:
    image = MetadataImage.empty()
    for broker in data["brokers"]:
        image = image.with_broker(broker_from_json(broker))
    for topic in data["topics"]:
        image = image.with_topic(topic_from_json(topic))
    for level, configs in data.get("broker_configs", {}).items():
        image = image.with_broker_configs(str(level), configs)
    image = image.with_cluster_id(str(data["cluster_id"])).with_controller(
        int(data["controller_id"])
    )
    return replace(
        image,
        offset=int(data["offset"]),
        next_producer_id=int(data.get("next_producer_id", 0)),
        producer_id_blocks={
            int(node): int(first) for node, first in data.get("producer_id_blocks", {}).items()
        },
        voters={int(node): str(address) for node, address in data.get("voters", {}).items()},
        share_groups=frozenset(str(group_id) for group_id in data.get("share_groups", ())),
    )


# -- the pysyncobj wrapper -------------------------------------------------------------------


def _encode_entry(entry: tuple[bytes, int, int]) -> list[Any]:
    command, index, term = entry
    return [base64.b64encode(command).decode(), index, term]


def _decode_entry(data: list[Any]) -> tuple[bytes, int, int]:
    return base64.b64decode(data[0]), int(data[1]), int(data[2])


class RoutedNode(TCPNode):  # type: ignore[misc]
    """A voter known by its listed Raft address (pysyncobj's identity for it) but connected
    to at another address, such as a relay or a fault-injecting proxy."""

    def __init__(self, address: str, route: str) -> None:
        super().__init__(address)
        self._route_host, self._route_port = parse_host_port(route)

    @property
    def ip(self) -> str:
        return str(globalDnsResolver().resolve(self._route_host))

    @property
    def port(self) -> int:
        return self._route_port


class MetadataStateMachine(SyncObj):  # type: ignore[misc]
    """A member of the metadata Raft quorum that journals records under `directory` and
    snapshots the image as JSON. A voter listens on `address` and votes with `peers` (the
    other voters); a non-voter (`address` None) follows the voters `peers` as a pysyncobj
    read-only node: it applies every record and submits its own through the leader, but
    never votes or counts toward a majority.

    `on_change(old, new)` and `on_ready()` are called on the Raft thread: hand them to the
    event loop, do not block. `on_ready` also fires when loading fails (see fatal_error).
    Traffic on the Raft port is encrypted and authenticated with `secret`, so nothing without
    it can read the metadata or inject commands (pysyncobj unpickles what it receives).
    """

    def __init__(
        self,
        address: str | None,
        directory: Path,
        secret: str,
        on_change: Callable[[MetadataImage, MetadataImage], None],
        on_ready: Callable[[], None],
        peers: Sequence[str] = (),
        routes: Mapping[str, str] | None = None,
    ) -> None:
        if not HAS_CRYPTO:
            raise MetadataError(
                "The metadata quorum needs the 'cryptography' package: pip install cryptography"
            )
        self._image = MetadataImage.empty()
        self._routes = dict(routes or {})
        self._on_change = on_change
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()
        self._raft_calls: list[Callable[[], None]] = []
        self._on_ready = on_ready
        self.fatal_error: MetadataError | None = None
        """Why the stored metadata cannot be loaded; set before `on_ready` is called."""
        self.heartbeats: dict[int, tuple[str, float]] = {}
        """Node id -> (incarnation, monotonic time) of the last heartbeat or registration
        applied here: the controller's view of liveness, deliberately not replicated."""
        conf = SyncObjConf(
            password=secret,
            # Without bindAddress pysyncobj listens on 0.0.0.0 whatever host `address` names.
            bindAddress=address,
            journalFile=str(directory / "metadata.journal"),
            fullDumpFile=str(directory / "metadata.dump"),
            serializer=self._write_dump,
            deserializer=self._read_dump,
            onReady=on_ready,
            # Unbatched, a submitted command wakes the Raft thread at once (a pipe notifier).
            appendEntriesUseBatch=False,
            maxBindRetries=1,
            dynamicMembershipChange=True,
            **(CLUSTER_TIMING if peers else SINGLE_NODE_TIMING),
        )
        super().__init__(address, [self._node(peer) for peer in peers], conf)
        if address is None:
            return
        try:
            self.waitBinded()
        except SyncObjException:
            self._doDestroy()
            raise MetadataError(
                f"Cannot listen on the metadata quorum address {address}: it is in use or not a "
                "local address. Choose another with --raft HOST:PORT or GOQUEUE_RAFT."
            ) from None

    def _node(self, address: str) -> TCPNode:
        """The voter listed at `address`, reached through its route when it has one."""
        route = self._routes.get(address)
        return TCPNode(address) if route is None else RoutedNode(address, route)

    @property
    def image(self) -> MetadataImage:
        """The image as of the last applied record (read it on the Raft thread or via
        on_change; other threads see it only eventually)."""
        return self._image

    def is_leader(self) -> bool:
        """Whether this node leads the quorum, i.e. is the controller."""
        return bool(self._isLeader())

    def leader_address(self) -> str | None:
        """The Raft address of the last known leader (None while there is none)."""
        leader = self._getLeader()
        return None if leader is None else str(leader.address)

    def membership(self, change: str, address: str, callback: Callback) -> None:
        """Add (`change` "add") or remove ("remove") a voter; only the leader can."""
        if change == "add":
            self.addNodeToCluster(address, callback=callback)
        else:
            self.removeNodeFromCluster(address, callback=callback)

    def transfer_leadership(self, callback: Callback) -> None:
        """Hand the leadership to the most caught-up voter (Raft TimeoutNow)."""
        self.on_raft_thread(lambda: self.transferLeadership(callback=callback))

    def on_raft_thread(self, call: Callable[[], None]) -> None:
        """Run `call` on the Raft thread at its next tick: pysyncobj's state is not safe to
        touch from other threads."""
        with self._in_flight_lock:
            self._raft_calls.append(call)

    @replicated  # type: ignore[untyped-decorator]
    def _apply_journaled(self, record: str) -> MetadataError | None:
        """Apply one journaled record; a rejection is the command's result, not a failure.
        A record that cannot be applied at all stops this node's metadata (see fatal_error)."""
        try:
            data = json.loads(record)
            new = apply_record(self._image, data)
        except RecordRejectedError as exc:
            return exc
        except Exception as exc:
            self._fail(MetadataError(f"Cannot apply metadata record {record[:200]}: {exc}"))
            raise
        self._set_image(new)
        if data["type"] in ("broker_heartbeat", "register_broker"):
            broker = data.get("broker", data)
            self.heartbeats[int(broker["node_id"])] = (
                str(broker["incarnation_id"]),
                time.monotonic(),
            )
        return None

    def submit(self, record: Record, callback: Callback) -> None:
        """Propose a record; `callback(result, fail_reason)` runs on the Raft thread."""

        def done(result: object, error: int) -> None:
            with self._in_flight_lock:
                self._in_flight -= 1
            callback(result, error)

        with self._in_flight_lock:
            self._in_flight += 1
        self._apply_journaled(json.dumps(record), callback=done)

    def _onTick(self, timeToWait: float = 0.0) -> None:
        """Run the calls handed to the Raft thread, and tick fast while one of our commands
        waits, so it commits without idle polling."""
        with self._in_flight_lock:
            calls, self._raft_calls = self._raft_calls, []
        for call in calls:
            call()
        busy = self._in_flight or self._raft_calls
        super()._onTick(min(timeToWait, BUSY_TICK_S) if busy else timeToWait)

    def _fail(self, error: MetadataError) -> None:
        """Record why this node cannot serve metadata and wake whoever waits for readiness."""
        if self.fatal_error is None:
            self.fatal_error = error
            self._on_ready()

    def _set_image(self, new: MetadataImage) -> None:
        old, self._image = self._image, new
        if new is not old:
            self._on_change(old, new)

    def _write_dump(self, path: str, raft_data: tuple[Any, Any, Any]) -> None:
        """Snapshot for log compaction: the image plus the Raft entries pysyncobj needs back.

        pysyncobj trims the journal only on the tick after the snapshot, and a restart that
        finds an untrimmed journal replaces it with the snapshot's two entries. So refuse to
        snapshot while our commands are journaled but not applied: one of them could commit
        in between and be lost to a crash. pysyncobj logs the refusal and retries later.
        """
        if self._in_flight:
            raise MetadataError("metadata snapshot postponed: commands are awaiting commit")
        last, previous, cluster = raft_data
        dump = {
            "format": DUMP_FORMAT,
            "image": image_to_json(self._image),
            "last": _encode_entry(last),
            "previous": _encode_entry(previous),
            "cluster": sorted(node.id for node in cluster),
        }
        with open(path, "w", encoding="utf-8") as f:
            json.dump(dump, f)
            f.flush()
            os.fsync(f.fileno())

    def _read_dump(self, path: str) -> tuple[Any, Any, Any]:
        """Load a snapshot (pysyncobj then replays the journal after it)."""
        try:
            with open(path, encoding="utf-8") as f:
                dump = json.load(f)
            if dump.get("format") != DUMP_FORMAT:
                raise ValueError(f"unsupported snapshot format {dump.get('format')!r}")
            image = image_from_json(dump["image"])
            raft_data = (
                _decode_entry(dump["last"]),
                _decode_entry(dump["previous"]),
                {self._node(address) for address in dump["cluster"]},
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self._fail(MetadataError(f"Metadata snapshot {path} is unreadable: {exc}"))
            raise
        self._set_image(image)
        return raft_data
