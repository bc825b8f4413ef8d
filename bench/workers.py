"""Clients run in worker processes (one per producer or consumer), started together.

Python clients are bound by their GIL: a producer and a consumer in one process would measure
the interpreter, not the broker. Each worker connects, reports ready and waits for one start
signal, so connection setup is outside every timed window; every wait is bounded.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from typing import Any

from bench.drivers.base import (
    BenchError,
    Client,
    ConsumeResult,
    ConsumeSpec,
    ProduceResult,
    ProduceSpec,
)
from bench.machine import cpu_seconds

SETUP_TIMEOUT_S = 60.0
GRACE_S = 30.0
"""Past a worker's own time limit, how long the harness waits before it gives up on it."""
CONTEXT = multiprocessing.get_context("spawn")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one set of workers did, with the CPU the broker and the workers used meanwhile."""

    producers: list[ProduceResult]
    consumers: list[ConsumeResult]
    wall_s: float
    broker_cpu_s: float
    client_cpu_s: float

    @property
    def broker_cpu_pct(self) -> float:
        return 100 * self.broker_cpu_s / self.wall_s

    @property
    def client_cpu_pct(self) -> float:
        return 100 * self.client_cpu_s / self.wall_s


def _worker(client: Client, role: str, spec: Any, out: Connection, go: Event) -> None:
    """Child process: connect, report ready, wait for the start, run, report the result."""
    started = [0.0]

    def ready() -> None:
        out.send(("ready", None))
        if not go.wait(SETUP_TIMEOUT_S * 4):
            raise BenchError("no start signal")
        started[0] = time.process_time()

    try:
        if role == "send":
            result: object = client.send(spec, ready)
        elif role == "receive":
            result = client.receive(spec, ready)
        else:
            start = time.monotonic()
            getattr(client, role)(*spec)
            result = time.monotonic() - start
        out.send(("done", (result, time.process_time() - started[0])))
    except BaseException as exc:
        out.send(("error", f"{role}: {type(exc).__name__}: {exc}"))


def _expect(connection: Connection, kind: str, timeout_s: float) -> Any:
    if not connection.poll(timeout_s):
        raise BenchError(f"a worker did not report {kind} within {timeout_s:g} s")
    try:
        message, payload = connection.recv()
    except EOFError:
        raise BenchError(f"a worker exited before it reported {kind}") from None
    if message == "error":
        raise BenchError(payload)
    return payload


def _total_cpu(pids: Callable[[], list[int]]) -> float:
    total = 0.0
    for pid in pids():
        try:
            total += cpu_seconds(pid)
        except OSError:
            continue
    return total


def admin(client: Client, call: str, args: tuple[object, ...], time_limit_s: float) -> float:
    """Run `client.create` or `client.delete` in a worker, bounded in time; returns seconds."""
    parent, child = CONTEXT.Pipe(duplex=False)
    unused = CONTEXT.Event()
    process = CONTEXT.Process(target=_worker, args=(client, call, args, child, unused), daemon=True)
    process.start()
    child.close()
    try:
        seconds, _ = _expect(parent, "done", time_limit_s)
        return float(seconds)
    finally:
        _reap([process])


def run_workers(
    client: Client,
    broker_pids: Callable[[], list[int]],
    producers: list[ProduceSpec],
    consumers: list[ConsumeSpec],
) -> Outcome:
    """Start consumers and producers, wait until all are connected, start them at once."""
    go = CONTEXT.Event()
    jobs: list[tuple[str, ProduceSpec | ConsumeSpec]] = [("receive", c) for c in consumers]
    jobs += [("send", p) for p in producers]
    processes, pipes = [], []
    try:
        for role, spec in jobs:
            parent, child = CONTEXT.Pipe(duplex=False)
            process = CONTEXT.Process(
                target=_worker, args=(client, role, spec, child, go), daemon=True
            )
            process.start()
            child.close()
            processes.append(process)
            pipes.append(parent)
        for pipe in pipes:
            _expect(pipe, "ready", SETUP_TIMEOUT_S)
        broker_cpu = _total_cpu(broker_pids)
        start = time.monotonic()
        go.set()
        limit = max(spec.time_limit_s for _, spec in jobs) + GRACE_S
        answers = [_expect(pipe, "done", limit) for pipe in pipes]
        wall = time.monotonic() - start
        broker_cpu = _total_cpu(broker_pids) - broker_cpu
    finally:
        _reap(processes)
    results = [result for result, _ in answers]
    return Outcome(
        producers=[r for r in results if isinstance(r, ProduceResult)],
        consumers=[r for r in results if isinstance(r, ConsumeResult)],
        wall_s=wall,
        broker_cpu_s=broker_cpu,
        client_cpu_s=sum(cpu for _, cpu in answers),
    )


def _reap(processes: list[Any]) -> None:
    """Join workers; terminate (then kill) any that outlived the run."""
    for process in processes:
        process.join(5)
        if process.is_alive():
            process.terminate()
            process.join(5)
        if process.is_alive():
            process.kill()
            process.join()
