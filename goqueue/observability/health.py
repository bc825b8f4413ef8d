"""Readiness: named checks that must all pass before load balancers and orchestrators send
clients to this node; liveness needs nothing but a running event loop."""

from __future__ import annotations

from collections.abc import Callable


class Readiness:
    """The checks of `/health/ready`, evaluated on every probe (each reads in-memory state)."""

    def __init__(self) -> None:
        self._checks: dict[str, Callable[[], bool]] = {}

    def add(self, name: str, check: Callable[[], bool]) -> None:
        self._checks[name] = check

    def report(self) -> dict[str, bool]:
        return {name: check() for name, check in self._checks.items()}

    def ready(self) -> bool:
        return all(check() for check in self._checks.values())
