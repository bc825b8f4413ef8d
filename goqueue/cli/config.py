"""`goqueue config`: show and change topic and broker configs on a running cluster.

Every change goes through the metadata quorum and applies at once, without a restart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer
from rich.table import Table

from goqueue.cli.client_options import Bootstrap, fail, parse_pairs, stdout, with_admin
from goqueue.client.cluster import DEFAULT_BOOTSTRAP
from goqueue.client.configs import AlterConfigOp, ConfigEntry, ConfigResource, OpType

app = typer.Typer(
    help="Show and change topic and broker configs without restarting anything.",
    no_args_is_help=True,
)

Topic = Annotated[str | None, typer.Option("--topic", "-t", help="A topic's configs")]
BrokerId = Annotated[
    int | None, typer.Option("--broker", help="One broker's settings, by node id", min=0)
]
BrokerDefault = Annotated[
    bool,
    typer.Option("--broker-default", help="The dynamic defaults of every broker in the cluster"),
]
ValidateOnly = Annotated[
    bool, typer.Option("--validate-only", help="Only check that the change would be accepted")
]


def resource_of(topic: str | None, broker: int | None, broker_default: bool) -> ConfigResource:
    """The one resource that exactly one of --topic, --broker and --broker-default names."""
    if (topic is not None) + (broker is not None) + broker_default != 1:
        fail("name exactly one of --topic NAME, --broker ID or --broker-default")
    if topic is not None:
        return ConfigResource.topic(topic)
    return ConfigResource.broker(broker)


def alter(
    bootstrap: str, resource: ConfigResource, ops: list[AlterConfigOp], validate_only: bool
) -> None:
    """Apply incremental changes (all or none) and say what happened."""
    if not ops:
        fail("nothing to change: give at least one config")
    with_admin(
        bootstrap,
        lambda admin: admin.incremental_alter_configs(resource, ops, validate_only=validate_only),
    )
    done = "; ".join(_describe_op(op) for op in ops)
    if validate_only:
        stdout.print(f"Valid for {resource} (validate only: nothing changed): {done}.")
    else:
        stdout.print(f"Updated {resource}: {done}.")


def _describe_op(op: AlterConfigOp) -> str:
    if op.op is OpType.DELETE:
        return f"reset {op.name}"
    if op.op is OpType.SET:
        return f"set {op.name}={op.value}"
    verb = "appended to" if op.op is OpType.APPEND else "subtracted from"
    return f"{op.value} {verb} {op.name}"


def ops_from(
    set_pairs: Sequence[str],
    delete: Sequence[str],
    append: Sequence[str] = (),
    subtract: Sequence[str] = (),
) -> list[AlterConfigOp]:
    """Incremental operations from KEY=VALUE arguments and names to reset."""
    ops = [AlterConfigOp(k, OpType.SET, v) for k, v in parse_pairs(set_pairs, "KEY=VALUE")]
    ops += [AlterConfigOp(k, OpType.APPEND, v) for k, v in parse_pairs(append, "--append")]
    ops += [AlterConfigOp(k, OpType.SUBTRACT, v) for k, v in parse_pairs(subtract, "--subtract")]
    return ops + [AlterConfigOp(name, OpType.DELETE) for name in delete]


@app.command()
def get(
    names: Annotated[
        list[str] | None, typer.Argument(help="Only these configs", show_default=False)
    ] = None,
    topic: Topic = None,
    broker: BrokerId = None,
    broker_default: BrokerDefault = False,
    synonyms: Annotated[
        bool, typer.Option("--synonyms", help="Also show every level that sets each config")
    ] = False,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> None:
    """Show configs with their values and where each value comes from."""
    resource = resource_of(topic, broker, broker_default)
    entries = with_admin(
        bootstrap, lambda admin: admin.describe_configs(resource, names or None, synonyms=synonyms)
    )
    if not entries:
        stdout.print(f"No configs set for {resource}.")
        return
    stdout.print(config_table(entries, synonyms))


def config_table(entries: list[ConfigEntry], synonyms: bool) -> Table:
    table = Table("Config", "Value", "Source", "Read-only", *(["Synonyms"] if synonyms else []))
    for entry in sorted(entries, key=lambda e: e.name):
        row = [
            entry.name,
            "(sensitive)" if entry.sensitive else "-" if entry.value is None else entry.value,
            entry.source.name,
            "yes" if entry.read_only else "",
        ]
        if synonyms:
            row.append(", ".join(f"{s.source.name}: {s.name}={s.value}" for s in entry.synonyms))
        table.add_row(*row)
    return table


@app.command("set")
def set_configs(
    pairs: Annotated[
        list[str] | None, typer.Argument(help="KEY=VALUE to set", show_default=False)
    ] = None,
    topic: Topic = None,
    broker: BrokerId = None,
    broker_default: BrokerDefault = False,
    append: Annotated[
        list[str] | None,
        typer.Option("--append", help="KEY=ITEMS to add to a list config, repeatable"),
    ] = None,
    subtract: Annotated[
        list[str] | None,
        typer.Option("--subtract", help="KEY=ITEMS to remove from a list config, repeatable"),
    ] = None,
    validate_only: ValidateOnly = False,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> None:
    """Set configs; all of them apply at once or none does."""
    resource = resource_of(topic, broker, broker_default)
    ops = ops_from(pairs or [], [], append or [], subtract or [])
    alter(bootstrap, resource, ops, validate_only)


@app.command()
def delete(
    names: Annotated[list[str], typer.Argument(help="Configs to reset", show_default=False)],
    topic: Topic = None,
    broker: BrokerId = None,
    broker_default: BrokerDefault = False,
    validate_only: ValidateOnly = False,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> None:
    """Remove configs, so the next level's value (in the end the default) applies again."""
    alter(bootstrap, resource_of(topic, broker, broker_default), ops_from([], names), validate_only)
