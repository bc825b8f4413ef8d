"""`goqueue status`: a summary of a running broker, read from its HTTP API."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Annotated, Any

import typer
from rich.table import Table

from goqueue.cli.client_options import fail, stdout

DEFAULT_HTTP = "127.0.0.1:8080"
TIMEOUT_S = 5.0


def status(
    http: Annotated[
        str,
        typer.Option("--http", envvar="GOQUEUE_HTTP", help="The broker's HTTP API as HOST:PORT"),
    ] = DEFAULT_HTTP,
) -> None:
    """Print a running broker's health, cluster, brokers, topics and consumer groups."""
    base = f"http://{http}"
    health = _get(base, "/health/ready")
    cluster = _get(base, "/api/v1/cluster")
    brokers = _get(base, "/api/v1/brokers")
    topics = _get(base, "/api/v1/topics")
    groups = _get(base, "/api/v1/groups", missing_ok=True)
    failing = [name for name, ok in health.get("checks", {}).items() if not ok]
    state = f"[red]not ready[/red] ({', '.join(failing)})" if failing else "[green]ready[/green]"
    stdout.print(f"Broker {cluster['node_id']} at {http}: {state}, version {cluster['version']}")
    stdout.print(
        f"Cluster {cluster['cluster_id']}: controller {cluster['controller_id']}, "
        f"{cluster['brokers']} broker(s), {cluster['topics']} topic(s), "
        f"{cluster['partitions']} partition(s)"
    )
    _print_brokers(brokers)
    _print_topics(topics)
    if groups is not None:
        _print_groups(groups)


def _print_brokers(brokers: list[dict[str, Any]]) -> None:
    table = Table("broker", "address", "rack", "role", title="Brokers", title_justify="left")
    for broker in brokers:
        role = "controller" if broker["controller"] else ""
        table.add_row(
            str(broker["node_id"]), f"{broker['host']}:{broker['port']}", broker["rack"] or "", role
        )
    stdout.print(table)


def _print_topics(topics: list[dict[str, Any]]) -> None:
    table = Table(
        "topic",
        "partitions",
        "records",
        "size",
        "offline",
        title="Topics",
        title_justify="left",
    )
    for topic in topics:
        partitions = topic["partitions"]
        online = [p for p in partitions if p["log_end_offset"] is not None]
        records = sum(p["log_end_offset"] - p["log_start_offset"] for p in online)
        size = sum(p["size_bytes"] for p in online)
        table.add_row(
            topic["name"],
            str(len(partitions)),
            str(records),
            _size(size),
            str(len(partitions) - len(online)),
        )
    stdout.print(table)


def _print_groups(groups: list[dict[str, Any]]) -> None:
    if not groups:
        stdout.print("Consumer groups: none with committed offsets")
        return
    table = Table("group", "max lag", "max lag (s)", title="Consumer groups", title_justify="left")
    for group in groups:
        table.add_row(group["group"], str(group["max_lag"]), f"{group['max_lag_seconds']:.1f}")
    stdout.print(table)


def _size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def _get(base: str, path: str, *, missing_ok: bool = False) -> Any:
    """GET a JSON document; a 503 still has one (readiness with its failing checks)."""
    try:
        with urllib.request.urlopen(base + path, timeout=TIMEOUT_S) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        if exc.code == 503:
            return json.load(exc)
        if exc.code == 404 and missing_ok:
            return None
        fail(f"{base}{path} answered HTTP {exc.code}")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        fail(f"cannot reach the broker's HTTP API at {base}: {reason}; is `goqueue serve` running?")
