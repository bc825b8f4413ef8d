"""What `goqueue group describe` shows for a share group: its members (ShareGroupDescribe over
the Kafka protocol) and its records by state with the oldest unacknowledged age (the broker's
HTTP API, `/api/v1/share-groups/{group}`: the Kafka protocol has no such counts)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.table import Table

from goqueue.cli.client_options import stdout, with_admin
from goqueue.client.share_admin import ShareGroupDescription, describe_share_group

DEFAULT_HTTP = "127.0.0.1:8080"
TIMEOUT_S = 5.0
COUNTS = ("in_flight", "available", "acquired", "acknowledged", "archived", "dead_lettered")

Http = Annotated[
    str,
    typer.Option(
        "--http",
        envvar="GOQUEUE_HTTP",
        help="The broker's HTTP API as HOST:PORT, for a share group's record counts",
    ),
]


def share_stats(http: str, group_id: str) -> tuple[dict[str, Any] | None, str | None]:
    """The group's counts from the HTTP API, or None and why they are missing."""
    url = f"http://{http}/api/v1/share-groups/{urllib.parse.quote(group_id, safe='')}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return json.load(response), None
    except urllib.error.HTTPError as exc:
        return None, f"{url} answered HTTP {exc.code}: {_detail(exc)}"
    except (urllib.error.URLError, OSError) as exc:
        return None, f"cannot reach the HTTP API at {http}: {getattr(exc, 'reason', exc)}"


def _detail(error: urllib.error.HTTPError) -> str:
    """The API's explanation of an error (FastAPI's `detail`), else the status text."""
    try:
        return str(json.load(error)["detail"])
    except (ValueError, KeyError, TypeError, OSError):
        return str(error.reason)


def describe_share(
    bootstrap: str, http: str, group_id: str, as_json: bool, duration: Callable[[int], str]
) -> bool:
    """Print the share group `group_id`; False (nothing printed) if there is none."""
    group = with_admin(bootstrap, lambda admin: describe_share_group(admin.cluster, group_id))
    if group is None:
        return False
    stats, missing = share_stats(http, group_id)
    if as_json:
        print(json.dumps(_document(group, stats, missing), indent=2))
        return True
    stdout.print(
        f"[bold]Group {group.group_id}[/bold]  type share  state {group.state}  "
        f"assignor {group.assignor}  members {len(group.members)}"
    )
    if stats is None:
        stdout.print(f"No record counts: {missing}")
    else:
        age = stats["oldest_unacknowledged_age_ms"]
        stdout.print(
            "  ".join(f"{name.replace('_', '-')} {stats[name]}" for name in COUNTS)
            + f"  oldest unacknowledged {'-' if age is None else duration(age)}"
            + f"  dead-letter topic {stats['dlq_topic']}"
        )
        _print_partitions(stats["partitions"])
    if group.members:
        members = Table("Member", "Client", "Host", "Partitions")
        for m in group.members:
            partitions = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in m.partitions)
            members.add_row(m.member_id, m.client_id, m.client_host, partitions or "-")
        stdout.print(members)
    return True


def _print_partitions(partitions: list[dict[str, Any]]) -> None:
    if not partitions:
        return
    table = Table(
        "Topic", "Partition", "Start", "End", "In flight", "Available", "Acquired",
        "Acknowledged", "Archived", "Dead-lettered",
    )  # fmt: skip
    for p in partitions:
        table.add_row(
            p["topic"],
            str(p["partition"]),
            str(p["start_offset"]),
            str(p["end_offset"]),
            *(str(p[name]) for name in COUNTS),
        )
    stdout.print(table)


def _document(
    group: ShareGroupDescription, stats: dict[str, Any] | None, missing: str | None
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "group": group.group_id,
        "member_count": len(group.members),
        "type": "share",
        "state": group.state,
        "assignor": group.assignor,
        "members": [
            {**asdict(m), "partitions": [list(tp) for tp in m.partitions]} for m in group.members
        ],
    }
    if stats is None:
        document["counts_missing"] = missing
    else:
        document.update({key: value for key, value in stats.items() if key not in document})
    return document
