"""`goqueue delayed list|show|cancel`: pending delayed messages, through the broker's HTTP API."""

from __future__ import annotations

import datetime
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Annotated, Any

import typer
from rich.table import Table

from goqueue.cli.client_options import fail, stdout
from goqueue.cli.status import DEFAULT_HTTP, TIMEOUT_S

app = typer.Typer(help="Delayed and scheduled messages: list, show and cancel pending ones.")

Http = Annotated[
    str,
    typer.Option("--http", envvar="GOQUEUE_HTTP", help="The broker's HTTP API as HOST:PORT"),
]
ScheduleId = Annotated[str, typer.Argument(help="The schedule id of the message")]


@app.command("list")
def list_delayed(
    http: Http = DEFAULT_HTTP,
    topic: Annotated[str | None, typer.Option(help="Only messages for this topic")] = None,
    limit: Annotated[int, typer.Option(help="Most messages to list", min=1)] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Pending messages, the next due first."""
    query = {"limit": str(limit)} | ({"topic": topic} if topic else {})
    messages = _call(http, "GET", "/api/v1/delayed?" + urllib.parse.urlencode(query))
    if as_json:
        stdout.print_json(data=messages)
        return
    table = Table("schedule id", "topic", "partition", "due", "state")
    for message in messages:
        table.add_row(
            message["schedule_id"],
            message["topic"],
            str(message["partition"]),
            _time(message["due_ms"]),
            message["state"],
        )
    stdout.print(table)


@app.command("show")
def show(schedule_id: ScheduleId, http: Http = DEFAULT_HTTP) -> None:
    """One pending message with its key, value and headers (as JSON)."""
    message = _call(http, "GET", _path(schedule_id))
    message["due"] = _time(message["due_ms"])
    stdout.print_json(data=message)


@app.command("cancel")
def cancel(schedule_id: ScheduleId, http: Http = DEFAULT_HTTP) -> None:
    """Cancel a pending message: it will never be delivered."""
    _call(http, "DELETE", _path(schedule_id))
    stdout.print(f"Cancelled delayed message {schedule_id}")


def _path(schedule_id: str) -> str:
    return "/api/v1/delayed/" + urllib.parse.quote(schedule_id, safe="")


def _time(epoch_ms: int) -> str:
    moment = datetime.datetime.fromtimestamp(epoch_ms / 1000, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _call(http: str, method: str, path: str) -> Any:
    """One JSON request; an error status ends the command with the broker's explanation."""
    base = f"http://{http}"
    request = urllib.request.Request(base + path, method=method)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        try:
            detail = json.load(exc).get("detail")
        except (ValueError, AttributeError):
            detail = None
        fail(str(detail) if detail else f"{base}{path} answered HTTP {exc.code}")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        fail(f"cannot reach the broker's HTTP API at {base}: {reason}; is `goqueue serve` running?")
