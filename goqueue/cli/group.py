"""`goqueue group`: list, describe (with lag) and delete consumer groups, reset their offsets."""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Annotated

import typer
from rich.table import Table

from goqueue.cli import share_view
from goqueue.cli.client_options import Bootstrap, CommandError, fail, stdout, with_admin
from goqueue.client.admin import Admin
from goqueue.client.cluster import DEFAULT_BOOTSTRAP
from goqueue.client.groups import Committed, GroupDescription, OffsetMove, OffsetReset
from goqueue.client.metadata import TopicPartition
from goqueue.coordinator.group.lag import PartitionLag

app = typer.Typer(
    help="List, describe (with lag) and delete consumer groups; reset their offsets.",
    no_args_is_help=True,
)


@app.command("list")
def list_groups(
    state: Annotated[
        list[str] | None,
        typer.Option("--state", "-s", help="Only groups in this state (Stable...), repeatable"),
    ] = None,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> None:
    """List consumer groups with their type, state and protocol type."""
    groups = with_admin(bootstrap, lambda admin: admin.list_groups(states=state or ()))
    if not groups:
        stdout.print("No groups.")
        return
    table = Table("Group", "Type", "State", "Protocol type")
    for g in groups:
        table.add_row(g.group_id, g.group_type or "-", g.state or "-", g.protocol_type or "-")
    stdout.print(table)


@dataclass(frozen=True, slots=True)
class PartitionView:
    """One row of `group describe`: a partition's lag and who consumes it."""

    lag: PartitionLag
    member_id: str | None
    client_id: str | None
    host: str | None


async def describe_with_lag(
    admin: Admin, group_id: str
) -> tuple[GroupDescription, list[PartitionView]]:
    """The group and, for every partition it committed to or is assigned, the lag."""
    group = await admin.describe_group(group_id)
    lags = await admin.group_lag(group_id)
    owners = {
        tp: (member.member_id, member.client_id, member.client_host)
        for member in group.members
        for tp in member.partitions
    }
    views = [
        PartitionView(lag, *owners.get(TopicPartition(lag.topic, lag.partition), (None,) * 3))
        for lag in lags
    ]
    return group, views


@app.command()
def describe(
    group_id: Annotated[str, typer.Argument(help="Group id", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables")] = False,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    http: share_view.Http = share_view.DEFAULT_HTTP,
) -> None:
    """Show a group's state and members, and per partition its committed offset, the log
    end offset, the lag in messages and how long the next unconsumed message has waited.
    For a share group: its records in flight, available, acquired, acknowledged, archived
    and dead-lettered, and the age of the oldest unacknowledged one (from --http)."""
    group, views = with_admin(bootstrap, lambda admin: describe_with_lag(admin, group_id))
    dead = group.state == "Dead" and not views
    if dead and share_view.describe_share(bootstrap, http, group_id, as_json, _duration):
        return
    if as_json:
        document = {
            "group": group.group_id,
            "type": group.group_type,
            "state": group.state,
            "protocol_type": group.protocol_type,
            "protocol": group.protocol,
            "members": [
                {
                    "member_id": m.member_id,
                    "group_instance_id": m.group_instance_id,
                    "client_id": m.client_id,
                    "host": m.client_host,
                }
                for m in group.members
            ],
            "partitions": [
                {**asdict(v.lag), "member_id": v.member_id, "client_id": v.client_id}
                | {"host": v.host}
                for v in views
            ],
        }
        print(json.dumps(document, indent=2))
        return
    if group.state == "Dead" and not views:
        fail(f"group {group_id!r} does not exist")
    stdout.print(
        f"[bold]Group {group.group_id}[/bold]  type {group.group_type}  state {group.state}  "
        f"protocol {group.protocol_type or '-'}/{group.protocol or '-'}  "
        f"members {len(group.members)}"
    )
    if views:
        table = Table(
            "Topic", "Partition", "Committed", "Log end", "Lag", "Time lag", "Member", "Host"
        )
        for v in views:
            table.add_row(
                v.lag.topic,
                str(v.lag.partition),
                _or_dash(v.lag.committed_offset),
                str(v.lag.log_end_offset),
                _or_dash(v.lag.lag),
                "-" if v.lag.time_lag_ms is None else _duration(v.lag.time_lag_ms),
                v.member_id or "-",
                v.host or "-",
            )
        stdout.print(table)
    if group.members:
        members = Table("Member", "Instance", "Client", "Host")
        for m in group.members:
            members.add_row(m.member_id, m.group_instance_id or "-", m.client_id, m.client_host)
        stdout.print(members)


@app.command()
def delete(
    group_ids: Annotated[list[str], typer.Argument(help="Group ids", show_default=False)],
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> None:
    """Delete groups that have no active members, with their committed offsets."""
    with_admin(bootstrap, lambda admin: admin.delete_groups(group_ids))
    for group_id in group_ids:
        stdout.print(f"Deleted group {group_id!r}.")


async def plan_reset(
    admin: Admin, group_id: str, topics: Sequence[str], all_topics: bool, to: OffsetReset
) -> dict[TopicPartition, OffsetMove]:
    """Per partition, the current and new committed offset (see `Admin.reset_group_offsets`,
    which refuses while the group has active members)."""
    if all_topics and not topics:
        return await admin.reset_group_offsets(group_id, to, None, dry_run=True)
    committed = await admin.list_group_offsets(group_id) if all_topics else {}
    partitions = await _reset_partitions(admin, topics, all_topics, committed)
    return await admin.reset_group_offsets(group_id, to, partitions, dry_run=True)


async def _reset_partitions(
    admin: Admin,
    topics: Sequence[str],
    all_topics: bool,
    committed: dict[TopicPartition, Committed],
) -> list[TopicPartition]:
    """`--topic name` (every partition) or `--topic name:0,2`, or with `--all-topics` every
    partition of the topics the group has committed offsets for."""
    names = sorted({tp.topic for tp in committed}) if all_topics else []
    partitions: set[TopicPartition] = set()
    for spec in [*topics, *names]:
        name, _, listed = spec.partition(":")
        (metadata,) = await admin.describe_topics([name])
        indexes = [p.partition for p in metadata.partitions]
        if listed:
            try:
                wanted = [int(item) for item in listed.split(",")]
            except ValueError:
                raise CommandError(f"--topic expects NAME or NAME:P,P,..., got {spec!r}") from None
            missing = sorted(set(wanted) - set(indexes))
            if missing:
                raise CommandError(f"topic {name!r} has no partition {missing[0]}")
            indexes = wanted
        partitions.update(TopicPartition(name, i) for i in indexes)
    if not partitions:
        raise CommandError("name the partitions to reset: --topic NAME[:P,...] or --all-topics")
    return sorted(partitions)


@app.command("reset-offsets")
def reset_offsets(
    group_id: Annotated[str, typer.Argument(help="Group id", show_default=False)],
    topic: Annotated[
        list[str] | None,
        typer.Option("--topic", "-t", help="NAME or NAME:P,P,... to reset, repeatable"),
    ] = None,
    all_topics: Annotated[
        bool, typer.Option("--all-topics", help="Every topic the group has offsets for")
    ] = False,
    to_earliest: Annotated[bool, typer.Option("--to-earliest", help="To the log start")] = False,
    to_latest: Annotated[bool, typer.Option("--to-latest", help="To the log end")] = False,
    to_datetime: Annotated[
        str | None,
        typer.Option(
            "--to-datetime",
            help="To the first message at or after this time (ISO 8601, e.g. "
            "2024-05-01T12:00:00Z; without a zone: local time)",
        ),
    ] = None,
    to_offset: Annotated[int | None, typer.Option("--to-offset", help="To this offset")] = None,
    shift_by: Annotated[
        int | None, typer.Option("--shift-by", help="Move the committed offsets by N (±)")
    ] = None,
    execute: Annotated[
        bool, typer.Option("--execute", help="Apply the new offsets (default: only show them)")
    ] = False,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> None:
    """Move a group's committed offsets. Shows the plan unless --execute is given; refused
    while the group has active members (stop its consumers first)."""
    chosen = [
        to_earliest,
        to_latest,
        to_datetime is not None,
        to_offset is not None,
        shift_by is not None,
    ]
    if sum(chosen) != 1:
        fail(
            "give exactly one of --to-earliest, --to-latest, --to-datetime, --to-offset "
            "or --shift-by"
        )
    if to_earliest:
        to = OffsetReset.earliest()
    elif to_latest:
        to = OffsetReset.latest()
    elif to_datetime is not None:
        to = OffsetReset.timestamp(_parse_datetime(to_datetime))
    elif to_offset is not None:
        to = OffsetReset.offset(to_offset)
    else:
        to = OffsetReset.shift(shift_by or 0)

    async def run(admin: Admin) -> dict[TopicPartition, OffsetMove]:
        plan = await plan_reset(admin, group_id, topic or [], all_topics, to)
        if execute:
            await admin.alter_group_offsets(
                group_id, {tp: Committed(move.new) for tp, move in plan.items()}
            )
        return plan

    plan = with_admin(bootstrap, run)
    table = Table("Topic", "Partition", "Current offset", "New offset")
    for tp, move in plan.items():
        table.add_row(tp.topic, str(tp.partition), _or_dash(move.current), str(move.new))
    stdout.print(table)
    if execute:
        stdout.print(f"Reset the offsets of group {group_id!r}.")
    else:
        stdout.print("Dry run: nothing changed. Add --execute to apply these offsets.")


def _parse_datetime(text: str) -> int:
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--to-datetime expects an ISO 8601 time such as 2024-05-01T12:00:00Z, got {text!r}")
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return int(moment.timestamp() * 1000)


def _or_dash(value: int | None) -> str:
    return "-" if value is None else str(value)


def _duration(ms: int) -> str:
    """A time lag as people read it: 850ms, 12.3s, 4m05s, 2h03m, 3d04h."""
    if ms < 1000:
        return f"{ms}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"
