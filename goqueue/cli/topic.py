"""`goqueue topic`: create, list, describe, alter, grow and delete topics, and delete their
oldest records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer
from rich.table import Table

from goqueue.cli.client_options import Bootstrap, parse_pairs, stdout, with_admin
from goqueue.cli.config import alter as alter_configs
from goqueue.cli.config import ops_from
from goqueue.client.admin import HIGH_WATERMARK, Admin, NewTopic
from goqueue.client.cluster import DEFAULT_BOOTSTRAP
from goqueue.client.configs import ConfigResource
from goqueue.client.errors import UnsupportedVersionError
from goqueue.client.metadata import TopicMetadata, TopicPartition
from goqueue.client.offsets import EARLIEST, LATEST

app = typer.Typer(
    help="Create, list, describe, alter, grow and delete topics; delete old records.",
    no_args_is_help=True,
)


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="Topic name")],
    partitions: Annotated[
        int | None,
        typer.Option("--partitions", "-p", min=1, help="Default: the broker's num.partitions"),
    ] = None,
    replication_factor: Annotated[
        int | None,
        typer.Option(
            "--replication-factor",
            "-r",
            min=1,
            help="Default: the broker's default.replication.factor",
        ),
    ] = None,
    config: Annotated[
        list[str] | None,
        typer.Option("--config", "-c", help="KEY=VALUE topic config, repeatable"),
    ] = None,
    validate_only: Annotated[
        bool, typer.Option("--validate-only", help="Only check that the topic could be created")
    ] = False,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> None:
    """Create a topic."""
    topic = NewTopic(
        name,
        num_partitions=partitions or -1,
        replication_factor=replication_factor or -1,
        configs=dict(parse_pairs(config or [], "--config")),
    )
    (created,) = with_admin(
        bootstrap, lambda admin: admin.create_topics([topic], validate_only=validate_only)
    )
    shape = ""
    if created.num_partitions > 0:
        shape = (
            f" with {created.num_partitions} partition{'s' * (created.num_partitions != 1)},"
            f" replication factor {created.replication_factor}"
        )
    if validate_only:
        stdout.print(f"Topic {name!r} can be created{shape} (validate only: nothing created).")
    else:
        stdout.print(f"Created topic {name!r}{shape}.")


@app.command("list")
def list_topics(
    internal: Annotated[bool, typer.Option("--internal", help="Include internal topics")] = False,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> None:
    """List topics with their partition count and replication factor."""
    topics = with_admin(bootstrap, lambda admin: admin.list_topics(include_internal=internal))
    if not topics:
        stdout.print("No topics.")
        return
    table = Table("Topic", "Partitions", "Replication factor", "Topic ID")
    for topic in topics:
        table.add_row(
            topic.name,
            str(len(topic.partitions)),
            str(topic.replication_factor),
            str(topic.topic_id or "-"),
        )
    stdout.print(table)


@dataclass(frozen=True, slots=True)
class TopicDescription:
    metadata: TopicMetadata
    offsets: dict[int, tuple[int, int]]
    """Partition to (start offset, end offset)."""
    configs: dict[str, str | None] | None
    """None when the broker does not serve DescribeConfigs."""


async def _describe(admin: Admin, names: list[str]) -> list[TopicDescription]:
    described = []
    for topic in await admin.describe_topics(names):
        tps = [TopicPartition(topic.name, p.partition) for p in topic.partitions]
        starts = await admin.list_offsets(dict.fromkeys(tps, EARLIEST))
        ends = await admin.list_offsets(dict.fromkeys(tps, LATEST))
        try:
            configs: dict[str, str | None] | None = await admin.describe_topic_configs(topic.name)
        except UnsupportedVersionError:
            configs = None
        offsets = {tp.partition: (starts[tp].offset, ends[tp].offset) for tp in tps}
        described.append(TopicDescription(topic, offsets, configs))
    return described


def _ids(nodes: tuple[int, ...]) -> str:
    return ",".join(map(str, nodes)) or "-"


@app.command()
def describe(
    names: Annotated[list[str], typer.Argument(help="Topic names", show_default=False)],
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> None:
    """Show partitions, leaders, replicas and offsets (and configs) of topics."""
    for description in with_admin(bootstrap, lambda admin: _describe(admin, names)):
        topic = description.metadata
        stdout.print(
            f"[bold]Topic {topic.name}[/bold]  id {topic.topic_id or '-'}  "
            f"partitions {len(topic.partitions)}  replication factor {topic.replication_factor}"
        )
        table = Table("Partition", "Leader", "Replicas", "ISR", "Start offset", "End offset")
        for p in topic.partitions:
            start, end = description.offsets[p.partition]
            table.add_row(
                str(p.partition), str(p.leader), _ids(p.replicas), _ids(p.isr), str(start), str(end)
            )
        stdout.print(table)
        if description.configs:
            configs = Table("Config", "Value")
            for key, value in sorted(description.configs.items()):
                configs.add_row(key, "-" if value is None else value)
            stdout.print(configs)


@app.command()
def delete(
    names: Annotated[list[str], typer.Argument(help="Topic names", show_default=False)],
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> None:
    """Delete topics and all their messages."""
    with_admin(bootstrap, lambda admin: admin.delete_topics(names))
    for name in names:
        stdout.print(f"Deleted topic {name!r}.")


@app.command()
def alter(
    name: Annotated[str, typer.Argument(help="Topic name")],
    config: Annotated[
        list[str] | None,
        typer.Option("--config", "-c", help="KEY=VALUE topic config to set, repeatable"),
    ] = None,
    delete_config: Annotated[
        list[str] | None,
        typer.Option("--delete-config", "-d", help="Config to reset to the default, repeatable"),
    ] = None,
    validate_only: Annotated[
        bool, typer.Option("--validate-only", help="Only check that the change would be accepted")
    ] = False,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> None:
    """Change a topic's configs; they apply at once, without restarting the broker."""
    ops = ops_from(config or [], delete_config or [])
    alter_configs(bootstrap, ConfigResource.topic(name), ops, validate_only)


@app.command("add-partitions")
def add_partitions(
    name: Annotated[str, typer.Argument(help="Topic name")],
    total: Annotated[
        int, typer.Option("--total", "-n", min=1, help="The partition count to grow the topic to")
    ],
    validate_only: Annotated[
        bool, typer.Option("--validate-only", help="Only check that the topic could grow")
    ] = False,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> None:
    """Grow a topic to more partitions; existing messages and offsets stay where they are."""
    with_admin(
        bootstrap, lambda admin: admin.create_partitions(name, total, validate_only=validate_only)
    )
    if validate_only:
        stdout.print(f"Topic {name!r} can grow to {total} partitions (validate only).")
    else:
        stdout.print(f"Topic {name!r} now has {total} partitions.")


@app.command("delete-records")
def delete_records(
    name: Annotated[str, typer.Argument(help="Topic name")],
    partition: Annotated[int, typer.Option("--partition", "-p", min=0, help="Partition")],
    before: Annotated[
        int,
        typer.Option(
            "--before",
            min=HIGH_WATERMARK,
            help="Delete the messages below this offset; -1 deletes every message",
        ),
    ],
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> None:
    """Delete a partition's oldest messages by moving its start offset forward."""
    tp = TopicPartition(name, partition)
    starts = with_admin(bootstrap, lambda admin: admin.delete_records({tp: before}))
    stdout.print(f"Topic {name!r} partition {partition} now starts at offset {starts[tp]}.")
