"""Several real `goqueue serve` processes forming one cluster on loopback, for tests and for
`goqueue cluster local`.

Node ids start at 1; every node is a voter of the metadata quorum unless added later with
`add_node(voter=False)`. All nodes share one secret file.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from goqueue.testing.process import BrokerProcess

TEST_SETTINGS = {
    "GOQUEUE_BROKER_HEARTBEAT_INTERVAL_MS": "500",
    "GOQUEUE_BROKER_SESSION_TIMEOUT_MS": "3000",
    "GOQUEUE_CONTROLLED_SHUTDOWN_TIMEOUT_MS": "5000",
    "GOQUEUE_OFFSETS_TOPIC_NUM_PARTITIONS": "5",
    "GOQUEUE_SHARE_COORDINATOR_STATE_TOPIC_NUM_PARTITIONS": "5",
}
"""Heartbeat and session timeout short enough that tests see a dead broker fenced in about
three seconds (the defaults, 2 s and 9 s, are Kafka's), a stop that cannot reach the quorum
any more gives up its controlled shutdown after five, and internal topics of 5 partitions
instead of 50, so that three nodes start quickly."""


START_TIMEOUT_S = 60.0
"""A node is ready once a majority of voters runs and the internal topics exist: longer than
a single broker takes, above all on a loaded machine."""


class ClusterProcess:
    """Starts, stops and kills the nodes of one loopback cluster."""

    def __init__(
        self,
        base_dir: Path,
        size: int = 3,
        *extra_args: str,
        env: dict[str, str] | None = None,
        timings: dict[str, str] = TEST_SETTINGS,
        racks: dict[int, str] | None = None,
    ) -> None:
        self.base_dir = base_dir
        base_dir.mkdir(parents=True, exist_ok=True)
        self.secret_file = base_dir / "cluster-secret"
        self.secret_file.write_text(secrets.token_urlsafe(32))
        self.extra_args = extra_args
        self.racks = racks or {}
        self.env = {**timings, **(env or {})}
        self.nodes: dict[int, BrokerProcess] = {
            node_id: BrokerProcess(base_dir / f"node-{node_id}", env=self.env)
            for node_id in range(1, size + 1)
        }
        self.voters = ",".join(
            f"{node_id}@127.0.0.1:{node.raft_port}" for node_id, node in self.nodes.items()
        )
        for node_id, node in self.nodes.items():
            node.extra_args = self.args_for(node_id)
            node.start_timeout = START_TIMEOUT_S

    def args_for(
        self, node_id: int, *, voters: str | None = None, secret_file: Path | None = None
    ) -> tuple[str, ...]:
        """The command line options that make a node of this cluster."""
        rack = ("--rack", self.racks[node_id]) if node_id in self.racks else ()
        return (
            "--node-id",
            str(node_id),
            "--voters",
            voters or self.voters,
            "--cluster-secret-file",
            str(secret_file or self.secret_file),
            *rack,
            *self.extra_args,
        )

    def new_node(
        self, node_id: int, *, voter: bool = False, secret_file: Path | None = None
    ) -> BrokerProcess:
        """A node that is not started yet: a broker that follows the quorum, or (`voter`) a
        voter to be added with `goqueue cluster add-node` once started."""
        data_dir = self.base_dir / f"node-{node_id}"
        copy = 1
        while data_dir.exists():
            copy += 1
            data_dir = self.base_dir / f"node-{node_id}-{copy}"
        node = BrokerProcess(data_dir, env=self.env)
        node.start_timeout = START_TIMEOUT_S
        voters = f"{self.voters},{node_id}@127.0.0.1:{node.raft_port}" if voter else self.voters
        node.extra_args = self.args_for(node_id, voters=voters, secret_file=secret_file)
        return node

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes.values())

    def start(self) -> None:
        """Start every node at once (none is ready before a majority of voters runs)."""
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            for future in [pool.submit(node.start) for node in self.nodes.values()]:
                future.result()

    def stop(self) -> None:
        """Stop every node still running, one after the other: each moves its leaderships to
        the nodes still running while the quorum still has a majority."""
        hung = []
        for node in self.nodes.values():
            try:
                node.stop()
            except subprocess.TimeoutExpired:
                hung.append(node.data_dir.name)
        if hung:
            raise RuntimeError(f"nodes {hung} did not stop after SIGTERM and were killed")

    def running(self) -> Iterator[tuple[int, BrokerProcess]]:
        for node_id, node in self.nodes.items():
            if node.is_running():
                yield node_id, node

    def __enter__(self) -> ClusterProcess:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Poll `condition` until it returns something truthy (returned), or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)
