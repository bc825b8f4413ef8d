"""`goqueue cluster`: see and operate a cluster (brokers, controller, leaders, ISRs), move
leaders and replicas, change the metadata quorum's voters, run a local cluster.

Every command speaks the Kafka protocol (DescribeCluster, Metadata, ElectLeaders,
AlterPartitionReassignments, AddRaftVoter, ...) to `--bootstrap`, so Kafka's own tools work
against Go-Queue the same way.
"""

from __future__ import annotations

import asyncio
import datetime
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from kio.schema.errors import ErrorCode
from rich.table import Table

from goqueue.cli.client_options import Bootstrap, CommandError, fail, stdout, with_admin
from goqueue.client.admin import Admin
from goqueue.config.settings import parse_host_port, parse_voters

app = typer.Typer(no_args_is_help=True, help="See and operate a cluster.")

DESCRIBE_CLUSTER = 60
DESCRIBE_QUORUM = 55
ELECT_LEADERS = 43
ALTER_REASSIGNMENTS = 45
LIST_REASSIGNMENTS = 46
ADD_RAFT_VOTER = 80
REMOVE_RAFT_VOTER = 81
UNREGISTER_BROKER = 64
TIMEOUT = datetime.timedelta(seconds=30)
CONTROLLER_RETRIES = 20
"""Attempts while the controller changes (a voter change lands on the new leader)."""


async def _controller_request(admin: Admin, api_key: int, fields: dict[str, Any]) -> Any:
    """Send a request to the controller; follow it while it moves (NOT_LEADER_OR_FOLLOWER,
    at the top or, as DescribeQuorum answers, in the partition)."""
    for _ in range(CONTROLLER_RETRIES):
        await admin.cluster.refresh([])
        connection = await admin.cluster.controller()
        response = await connection.request(api_key, fields, timeout=TIMEOUT.total_seconds() + 5)
        codes = {response.error_code} | {
            p.error_code for t in getattr(response, "topics", ()) for p in _partitions_of(t)
        }
        if not codes & {ErrorCode.not_leader_or_follower, ErrorCode.not_controller}:
            return response
        await asyncio.sleep(0.5)
    return response


def _partitions_of(topic: Any) -> tuple[Any, ...]:
    partitions = getattr(topic, "partitions", ())
    return tuple(p for p in partitions if hasattr(p, "error_code"))


def _error(code: ErrorCode, message: str | None) -> str:
    """An error as Kafka's tools print it: the code's name in capitals, then the message."""
    return f"{code.name.upper()} {message or ''}".strip()


def _check(response: Any) -> None:
    if response.error_code != ErrorCode.none:
        raise CommandError(_error(response.error_code, response.error_message))


@app.command()
def status(bootstrap: Bootstrap = "127.0.0.1:9092") -> None:
    """Brokers (live and fenced), the controller, leaders per broker, and partitions that are
    offline, under-replicated or being reassigned."""

    async def show(admin: Admin) -> None:
        connection = await admin.cluster.any_connection()
        described = await connection.request(
            DESCRIBE_CLUSTER,
            {"include_cluster_authorized_operations": False, "include_fenced_brokers": True},
        )
        metadata = await admin.cluster.refresh(None)
        leaders: dict[int, int] = {}
        offline, under = [], []
        for topic in metadata.topics.values():
            for p in topic.partitions:
                leaders[p.leader] = leaders.get(p.leader, 0) + 1
                name = f"{topic.name}-{p.partition}"
                if p.leader < 0:
                    offline.append(name)
                elif len(p.isr) < len(p.replicas):
                    under.append(name)
        stdout.print(
            f"Cluster {described.cluster_id}: controller {described.controller_id}, "
            f"{len(metadata.topics)} topic(s)"
        )
        table = Table(
            "broker", "address", "rack", "state", "leaders", title="Brokers", title_justify="left"
        )
        for b in sorted(described.brokers, key=lambda b: b.broker_id):
            state = "fenced" if b.is_fenced else "live"
            if b.broker_id == described.controller_id:
                state += ", controller"
            table.add_row(
                str(b.broker_id),
                f"{b.host}:{b.port}",
                b.rack or "",
                state,
                str(leaders.get(b.broker_id, 0)),
            )
        stdout.print(table)
        stdout.print(f"Offline partitions: {len(offline)} {' '.join(sorted(offline)[:20])}")
        stdout.print(f"Under-replicated partitions: {len(under)} {' '.join(sorted(under)[:20])}")
        quorum = await _controller_request(
            admin,
            DESCRIBE_QUORUM,
            {
                "topics": [
                    {"topic_name": "__cluster_metadata", "partitions": [{"partition_index": 0}]}
                ]
            },
        )
        for topic in quorum.topics:
            for p in topic.partitions:
                if p.error_code != ErrorCode.none:
                    stdout.print(f"Quorum: {_error(p.error_code, p.error_message)}")
                    continue
                voters = ", ".join(
                    f"{v.replica_id} (behind {p.high_watermark - v.log_end_offset})"
                    if v.log_end_offset >= 0
                    else f"{v.replica_id} (unknown)"
                    for v in p.current_voters
                )
                stdout.print(
                    f"Quorum: leader {p.leader_id}, term {p.leader_epoch}, committed "
                    f"{p.high_watermark}; voters {voters}; observers "
                    f"{[o.replica_id for o in p.observers]}"
                )
        moving = await _controller_request(
            admin, LIST_REASSIGNMENTS, {"timeout": TIMEOUT, "topics": None}
        )
        for topic in moving.topics:
            for p in topic.partitions:
                stdout.print(
                    f"Reassigning {topic.name}-{p.partition_index}: replicas {list(p.replicas)}, "
                    f"adding {list(p.adding_replicas)}, removing {list(p.removing_replicas)}"
                )

    with_admin(bootstrap, show)


def _partitions(topic: str | None, partitions: Sequence[int]) -> list[dict[str, Any]] | None:
    if topic is None:
        if partitions:
            fail("--partition needs --topic")
        return None
    return [{"topic": topic, "partitions": list(partitions)}]


@app.command("elect-leaders")
def elect_leaders(
    topic: Annotated[str | None, typer.Option(help="Topic (default: every topic)")] = None,
    partition: Annotated[list[int] | None, typer.Option(help="Partition (repeatable)")] = None,
    unclean: Annotated[
        bool, typer.Option(help="Elect any live replica of partitions without a leader")
    ] = False,
    bootstrap: Bootstrap = "127.0.0.1:9092",
) -> None:
    """Move leadership back to the preferred (first) replicas, or with --unclean give
    partitions without a leader an out-of-sync one (may lose acknowledged data)."""
    wanted = _partitions(topic, partition or [])
    if wanted is not None and not wanted[0]["partitions"]:
        wanted[0]["partitions"] = list(range(_partition_count(bootstrap, topic or "")))

    async def elect(admin: Admin) -> bool:
        response = await _controller_request(
            admin,
            ELECT_LEADERS,
            {"election_type": 1 if unclean else 0, "topic_partitions": wanted, "timeout": TIMEOUT},
        )
        _check(response)
        failed = False
        for result in response.replica_election_results:
            for p in result.partition_result:
                code = p.error_code
                failed |= code not in (ErrorCode.none, ErrorCode.election_not_needed)
                text = "elected" if code == ErrorCode.none else _error(code, p.error_message)
                stdout.print(f"{result.topic}-{p.partition_id}: {text}")
        return failed

    if with_admin(bootstrap, elect):
        raise typer.Exit(1)


def _partition_count(bootstrap: str, topic: str) -> int:
    async def count(admin: Admin) -> int:
        return len((await admin.describe_topics([topic]))[0].partitions)

    return with_admin(bootstrap, count)


def _replica_list(text: str) -> list[int]:
    try:
        return [int(node) for node in text.split(",") if node.strip()]
    except ValueError:
        fail(f"--replicas expects comma-separated node ids, got {text!r}")


@app.command()
def reassign(
    topic: Annotated[str, typer.Option(help="Topic to move")],
    partition: Annotated[list[int], typer.Option(help="Partition (repeatable)")],
    replicas: Annotated[
        str | None, typer.Option(help="New replicas, comma-separated, preferred leader first")
    ] = None,
    cancel: Annotated[bool, typer.Option(help="Cancel the reassignment in progress")] = False,
    wait: Annotated[bool, typer.Option(help="Wait until the reassignment completes")] = False,
    bootstrap: Bootstrap = "127.0.0.1:9092",
) -> None:
    """Move partitions to other brokers: the new replicas are added and catch up, then the old
    ones leave (AlterPartitionReassignments)."""
    if cancel == (replicas is not None):
        fail("give either --replicas or --cancel")
    target = None if cancel or replicas is None else _replica_list(replicas)
    fields = {
        "timeout": TIMEOUT,
        "topics": [
            {
                "name": topic,
                "partitions": [{"partition_index": p, "replicas": target} for p in partition],
            }
        ],
    }

    async def move(admin: Admin) -> bool:
        response = await _controller_request(admin, ALTER_REASSIGNMENTS, fields)
        _check(response)
        failed = False
        for result in response.responses:
            for p in result.partitions:
                ok = p.error_code == ErrorCode.none
                failed |= not ok
                text = "cancelled" if cancel else "started"
                stdout.print(
                    f"{result.name}-{p.partition_index}: "
                    f"{text if ok else _error(p.error_code, p.error_message)}"
                )
        while wait and not failed:
            listed = await _controller_request(
                admin,
                LIST_REASSIGNMENTS,
                {"timeout": TIMEOUT, "topics": [{"name": topic, "partition_indexes": partition}]},
            )
            if not listed.topics:
                stdout.print("reassignment complete")
                break
            await asyncio.sleep(0.5)
        return failed

    if with_admin(bootstrap, move):
        raise typer.Exit(1)


@app.command("add-node")
def add_node(
    voter: Annotated[str, typer.Argument(help="The new voter as ID@HOST:PORT (its Raft address)")],
    bootstrap: Bootstrap = "127.0.0.1:9092",
) -> None:
    """Make a running node a voter of the metadata quorum (start it first with --voters
    listing itself). Add voters one at a time and keep their count odd."""
    try:
        ((node_id, address),) = parse_voters(voter).items()
        host, port = parse_host_port(address)
    except ValueError as exc:
        fail(f"expected ID@HOST:PORT: {exc}")
    fields = {
        "cluster_id": None,
        "timeout": TIMEOUT,
        "voter_id": node_id,
        "voter_directory_id": None,
        "listeners": [{"name": "RAFT", "host": host, "port": port}],
        "ack_when_committed": True,
    }

    async def add(admin: Admin) -> None:
        _check(await _controller_request(admin, ADD_RAFT_VOTER, fields))

    with_admin(bootstrap, add)
    stdout.print(f"node {node_id} ({address}) is now a voter")


@app.command("remove-node")
def remove_node(
    node_id: Annotated[int, typer.Argument(help="Id of the node to remove")],
    bootstrap: Bootstrap = "127.0.0.1:9092",
) -> None:
    """Remove a node: take it out of the quorum's voters if it is one, and, once it is
    stopped (fenced), forget its registration. Reassign its partitions first."""

    async def remove(admin: Admin) -> None:
        connection = await admin.cluster.any_connection()
        described = await connection.request(
            DESCRIBE_CLUSTER,
            {"include_cluster_authorized_operations": False, "include_fenced_brokers": True},
        )
        response = await _controller_request(
            admin,
            REMOVE_RAFT_VOTER,
            {"cluster_id": None, "voter_id": node_id, "voter_directory_id": None},
        )
        if response.error_code not in (ErrorCode.none, ErrorCode.voter_not_found):
            _check(response)
        if response.error_code == ErrorCode.none:
            stdout.print(f"node {node_id} is no longer a voter")
        fenced = {b.broker_id for b in described.brokers if b.is_fenced}
        if node_id in fenced:
            _check(await _controller_request(admin, UNREGISTER_BROKER, {"broker_id": node_id}))
            stdout.print(f"broker {node_id} unregistered")
        elif response.error_code == ErrorCode.voter_not_found:
            raise CommandError(
                f"Node {node_id} is no voter and its broker is not stopped: stop it, wait for it "
                "to be fenced, and run this again."
            )

    with_admin(bootstrap, remove)


@app.command()
def local(
    nodes: Annotated[int, typer.Argument(help="Number of nodes (voters)")] = 3,
    base_dir: Annotated[Path, typer.Option(help="Directory for the nodes' data and logs")] = Path(
        "goqueue-cluster"
    ),
) -> None:
    """Run an N-node cluster on loopback for development until Ctrl-C."""
    from goqueue.testing.cluster import ClusterProcess

    cluster = ClusterProcess(base_dir, nodes, timings={})
    cluster.start()
    # Blocked only now: the nodes must not inherit the mask, or they could not be stopped.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    stdout.print(f"{nodes}-node cluster running; bootstrap: {cluster.bootstrap}")
    for node_id, node in cluster.nodes.items():
        stdout.print(
            f"  node {node_id}: kafka {node.bootstrap}, http 127.0.0.1:{node.http_port}, "
            f"raft 127.0.0.1:{node.raft_port}, log {node.log_path}"
        )
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        stdout.print("stopping the cluster")
        cluster.stop()
