"""`goqueue dlq`: list, show and replay the dead letters of share groups.

A dead-letter topic is an ordinary topic, so these commands only read it (from its start to
the end it has when the command starts) and, for `replay`, produce: nothing is deleted or
marked, and replaying the same range twice sends it twice. `replay` prints the dead-letter
offsets it sent, so a later run can start after them (`--from-offset`).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from goqueue.cli.client_options import Bootstrap, CommandError, fail, run, stdout
from goqueue.client.cluster import DEFAULT_BOOTSTRAP, Cluster
from goqueue.client.dead_letters import (
    DeadLetter,
    LetterFilter,
    Replay,
    dlq_topic_for,
    read_dead_letters,
    replay,
)
from goqueue.client.producer import Producer

app = typer.Typer(
    help="Inspect and replay the dead letters of share groups (see docs/share-groups.md).",
    no_args_is_help=True,
)
PREVIEW = 40
"""Characters of a key or value shown in `list` tables."""

TopicArgument = Annotated[
    str | None,
    typer.Argument(
        help="Dead-letter topic [default: <group>.dlq with --group]", show_default=False
    ),
]
Group = Annotated[
    str | None,
    typer.Option("--group", "-g", help="Only dead letters of this share group"),
]
Reason = Annotated[
    str | None,
    typer.Option("--reason", help="Only this reason: rejected, delivery-limit, expired"),
]
SourceTopic = Annotated[
    str | None, typer.Option("--source-topic", help="Only dead letters from this topic")
]
Key = Annotated[str | None, typer.Option("--key", help="Only records with this key")]
Partition = Annotated[
    int | None,
    typer.Option("--partition", "-p", min=0, help="Only this partition of the dead-letter topic"),
]
FromOffset = Annotated[
    int | None,
    typer.Option("--from-offset", min=0, help="Dead-letter topic offsets from here"),
]
ToOffset = Annotated[
    int | None, typer.Option("--to-offset", min=0, help="...up to here (inclusive)")
]
Limit = Annotated[int | None, typer.Option("--limit", "-n", min=1, help="At most N dead letters")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]


@dataclass(frozen=True, slots=True)
class Selection:
    """The dead letters a command works on."""

    topic: str
    letter_filter: LetterFilter
    limit: int | None


def select(
    topic: str | None,
    group: str | None,
    reason: str | None,
    source_topic: str | None,
    key: str | None,
    partition: int | None,
    from_offset: int | None,
    to_offset: int | None,
    limit: int | None,
) -> Selection:
    if topic is None and group is None:
        raise CommandError("name the dead-letter topic, or the share group with --group")
    return Selection(
        topic=topic if topic is not None else dlq_topic_for(str(group)),
        letter_filter=LetterFilter(
            reason=reason,
            original_topic=source_topic,
            group=group,
            key=None if key is None else key.encode(),
            partition=partition,
            from_offset=from_offset,
            to_offset=to_offset,
        ),
        limit=limit,
    )


async def collect(cluster: Cluster, selection: Selection) -> list[DeadLetter]:
    """The selected dead letters, at most `limit` of them."""
    letters: list[DeadLetter] = []
    async for letter in read_dead_letters(cluster, selection.topic, selection.letter_filter):
        letters.append(letter)
        if selection.limit is not None and len(letters) >= selection.limit:
            break
    return letters


def read(bootstrap: str, selection: Selection) -> list[DeadLetter]:
    async def main() -> list[DeadLetter]:
        async with Cluster(bootstrap) as cluster:
            return await collect(cluster, selection)

    return run(main())


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "backslashreplace")


def _preview(data: bytes | None) -> str:
    text = _text(data)
    if text is None:
        return "-"
    return text if len(text) <= PREVIEW else text[: PREVIEW - 1] + "…"


def _time(ms: int | None) -> str:
    if ms is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _origin(letter: DeadLetter) -> str:
    if letter.original_topic is None:
        return "-"
    return f"{letter.original_topic}[{letter.original_partition}]@{letter.original_offset}"


def as_document(letter: DeadLetter) -> dict[str, Any]:
    """A dead letter as JSON: its place, the `goqueue.dlq.*` facts, and the record."""
    return {
        "partition": letter.topic_partition.partition,
        "offset": letter.offset,
        "dead_lettered_at": _time(letter.dead_lettered_at),
        "original": {
            "topic": letter.original_topic,
            "partition": letter.original_partition,
            "offset": letter.original_offset,
            "timestamp": letter.original_timestamp,
        },
        "group": letter.group,
        "delivery_count": letter.delivery_count,
        "reason": letter.reason,
        "key": _text(letter.key),
        "value": _text(letter.value),
        "headers": {name: _text(value) for name, value in letter.headers},
    }


@app.command("list")
def list_letters(
    topic: TopicArgument = None,
    group: Group = None,
    reason: Reason = None,
    source_topic: SourceTopic = None,
    key: Key = None,
    partition: Partition = None,
    from_offset: FromOffset = None,
    to_offset: ToOffset = None,
    limit: Limit = None,
    as_json: AsJson = False,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> None:
    """One line per dead letter: where it came from, when and why it died, its key and value."""
    selection = select(
        topic, group, reason, source_topic, key, partition, from_offset, to_offset, limit
    )
    letters = read(bootstrap, selection)
    if as_json:
        print(json.dumps([as_document(letter) for letter in letters], indent=2))
        return
    if not letters:
        stdout.print(f"No dead letters in {selection.topic!r} match.")
        return
    table = Table(
        "Partition",
        "Offset",
        "Dead-lettered",
        "Original",
        "Group",
        "Deliveries",
        "Reason",
        "Key",
        "Value",
    )
    for letter in letters:
        table.add_row(
            str(letter.topic_partition.partition),
            str(letter.offset),
            _time(letter.dead_lettered_at),
            escape(_origin(letter)),
            escape(letter.group or "-"),
            "-" if letter.delivery_count is None else str(letter.delivery_count),
            escape(letter.reason or "-"),
            escape(_preview(letter.key)),
            escape(_preview(letter.value)),
        )
    stdout.print(table)
    stdout.print(f"{len(letters)} dead letter(s) in {selection.topic!r}.")


@app.command()
def show(
    offset: Annotated[int, typer.Argument(min=0, help="Offset in the dead-letter topic")],
    topic: TopicArgument = None,
    group: Group = None,
    partition: Annotated[
        int, typer.Option("--partition", "-p", min=0, help="Partition of the dead-letter topic")
    ] = 0,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> None:
    """One dead letter in full, as JSON: the `goqueue.dlq.*` facts, key, value and headers."""
    selection = select(topic, group, None, None, None, partition, offset, offset, 1)
    letters = read(bootstrap, selection)
    if not letters:
        fail(f"no dead letter at {selection.topic}[{partition}]@{offset}")
    print(json.dumps(as_document(letters[0]), indent=2))


@app.command("replay")
def replay_letters(
    topic: TopicArgument = None,
    group: Group = None,
    reason: Reason = None,
    source_topic: SourceTopic = None,
    key: Key = None,
    partition: Partition = None,
    from_offset: FromOffset = None,
    to_offset: ToOffset = None,
    limit: Limit = None,
    to: Annotated[
        str | None,
        typer.Option(
            "--to", help="Send to this topic (partition by key) instead of the original ones"
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show what would be sent where")
    ] = False,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> None:
    """Send dead letters again: to their original topic and partition (or --to another
    topic), with their key, value and headers but not the goqueue.dlq.* ones, and a new
    timestamp. The dead-letter topic is left as it is."""
    selection = select(
        topic, group, reason, source_topic, key, partition, from_offset, to_offset, limit
    )
    report = _reporter(dry_run)

    async def main() -> list[Replay]:
        async with Cluster(bootstrap) as cluster:
            letters = await collect(cluster, selection)
        if dry_run or not letters:
            return await replay(None, letters, to_topic=to, dry_run=True, on_replay=report)
        async with Producer(bootstrap, client_id="goqueue-dlq-replay") as producer:
            return await replay(producer, letters, to_topic=to, on_replay=report)

    try:
        done = run(main())
    except ValueError as exc:
        fail(str(exc))
    if not done:
        stdout.print(f"No dead letters in {selection.topic!r} match.")
    elif dry_run:
        stdout.print(f"Dry run: {len(done)} dead letter(s) would be replayed; nothing sent.")
    else:
        last = done[-1].letter
        stdout.print(
            f"Replayed {len(done)} dead letter(s) from {selection.topic!r}; the last was "
            f"partition {last.topic_partition.partition} offset {last.offset}."
        )


def _reporter(dry_run: bool) -> Callable[[Replay], None]:
    verb = "would send" if dry_run else "sent"

    def report(done: Replay) -> None:
        letter = done.letter
        where = f"{done.topic}[{'by key' if done.partition is None else done.partition}]"
        if done.sent is not None:
            where = f"{done.sent.topic}[{done.sent.partition}]@{done.sent.offset}"
        stdout.print(
            escape(
                f"{letter.topic_partition.topic}[{letter.topic_partition.partition}]"
                f"@{letter.offset} ({letter.reason or '-'}): {verb} to {where}"
            ),
            highlight=False,
        )

    return report
