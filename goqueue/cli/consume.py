"""`goqueue consume`: print a topic's messages, one formatted line each."""

from __future__ import annotations

import datetime
import os
import string
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, TextIO

import typer

from goqueue.cli.client_options import Bootstrap, CommandError, fail, run, stderr
from goqueue.client.cluster import DEFAULT_BOOTSTRAP, Cluster
from goqueue.client.fetcher import FetchLimits, fetch
from goqueue.client.metadata import TopicPartition
from goqueue.client.offsets import EARLIEST, LATEST, list_offsets
from goqueue.records.reader import ConsumedRecord

POLL_MS = 500
"""Longest a fetch waits at the broker, so --timeout is checked at least this often."""


def _text(data: bytes | None) -> str:
    return "" if data is None else data.decode("utf-8", "backslashreplace")


FIELDS: Mapping[str, Callable[[TopicPartition, ConsumedRecord], object]] = {
    "topic": lambda tp, r: tp.topic,
    "partition": lambda tp, r: tp.partition,
    "offset": lambda tp, r: r.offset,
    "key": lambda tp, r: _text(r.key),
    "value": lambda tp, r: _text(r.value),
    "headers": lambda tp, r: ",".join(f"{k}={_text(v)}" for k, v in r.headers),
    "timestamp": lambda tp, r: r.timestamp_ms,
    "time": lambda tp, r: datetime.datetime.fromtimestamp(
        r.timestamp_ms / 1000, datetime.UTC
    ).isoformat(timespec="milliseconds"),
}


class Formatter:
    """Renders records with a `str.format` template over the names in FIELDS."""

    def __init__(self, template: str) -> None:
        try:
            names = {
                name for _, name, _, _ in string.Formatter().parse(template) if name is not None
            }
        except ValueError as exc:
            raise CommandError(f"bad --format {template!r}: {exc}") from exc
        unknown = sorted(names - FIELDS.keys())
        if unknown:
            raise CommandError(
                f"unknown placeholder {{{unknown[0]}}} in --format;"
                f" available: {' '.join(f'{{{n}}}' for n in FIELDS)}"
            )
        self.template = template
        self.fields = {name: FIELDS[name] for name in names}

    def render(self, tp: TopicPartition, record: ConsumedRecord) -> str:
        return self.template.format_map({name: f(tp, record) for name, f in self.fields.items()})


@dataclass(frozen=True, slots=True)
class Start:
    """Where to start in each partition: exactly one of the fields is set, or none (the end)."""

    beginning: bool = False
    offset: int | None = None
    timestamp_ms: int | None = None

    @property
    def at_end(self) -> bool:
        return not self.beginning and self.offset is None and self.timestamp_ms is None


@dataclass(frozen=True, slots=True)
class Stop:
    follow: bool
    max_messages: int | None
    idle_timeout: float | None


def parse_timestamp(text: str) -> int:
    """Epoch milliseconds, or an ISO 8601 date/time (local time unless it has an offset)."""
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(
            f"--timestamp {text!r} is neither epoch milliseconds nor an ISO 8601 time"
            " such as 2024-05-01T12:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return int(moment.timestamp() * 1000)


def consume(
    topic: Annotated[str, typer.Argument(help="Topic to read")],
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the first message")
    ] = False,
    offset: Annotated[
        int | None,
        typer.Option(
            "--offset",
            "-o",
            help="Start at this offset; negative: that many messages before the end",
        ),
    ] = None,
    timestamp: Annotated[
        str | None,
        typer.Option(
            "--timestamp",
            help="Start at the first message at or after this time: ISO 8601 or epoch ms",
        ),
    ] = None,
    partition: Annotated[
        int | None, typer.Option("--partition", "-p", min=0, help="Read only this partition")
    ] = None,
    max_messages: Annotated[
        int | None, typer.Option("--max-messages", "-n", min=1, help="Exit after N messages")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=0, help="Exit after this many seconds without a message"),
    ] = None,
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            "-F",
            help="Output line with {topic} {partition} {offset} {key} {value} {headers}"
            " {timestamp} (epoch ms) {time} (ISO 8601)",
        ),
    ] = "{value}",
    follow: Annotated[
        bool | None,
        typer.Option(
            "--follow/--no-follow",
            help="Keep waiting for new messages at the end. Default: only when starting at the end",
        ),
    ] = None,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> None:
    """Print messages, by default new ones as they arrive, one line each (see --format)."""
    if sum((from_beginning, offset is not None, timestamp is not None)) > 1:
        fail("choose one of --from-beginning, --offset and --timestamp")
    try:
        formatter = Formatter(output_format)
        start = Start(
            from_beginning, offset, None if timestamp is None else parse_timestamp(timestamp)
        )
    except CommandError as exc:
        fail(str(exc))
    stop = Stop(start.at_end if follow is None else follow, max_messages, timeout)
    try:
        count = run(_consume(bootstrap, topic, partition, start, stop, formatter, sys.stdout))
    except BrokenPipeError:
        # The reader went away (`| head`): that ends the command, successfully.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    if stderr.is_terminal:
        stderr.print(f"Consumed {count} message{'s' * (count != 1)}.")


async def _consume(
    bootstrap: str,
    topic: str,
    partition: int | None,
    start: Start,
    stop: Stop,
    formatter: Formatter,
    out: TextIO,
) -> int:
    async with Cluster(bootstrap, client_id="goqueue-consume") as cluster:
        metadata = await cluster.topic(topic)
        if partition is not None and partition >= len(metadata.partitions):
            raise CommandError(
                f"topic {topic!r} has no partition {partition} (it has {len(metadata.partitions)})"
            )
        tps = [
            TopicPartition(topic, p.partition)
            for p in metadata.partitions
            if partition is None or p.partition == partition
        ]
        positions, ends = await _start_positions(cluster, tps, start)
        active = {tp: pos for tp, pos in positions.items() if stop.follow or pos < ends[tp]}
        count = 0
        last_message = time.monotonic()
        while active:
            wait_ms = POLL_MS
            if stop.idle_timeout is not None:
                idle_left = stop.idle_timeout - (time.monotonic() - last_message)
                if idle_left <= 0:
                    break
                wait_ms = max(1, min(POLL_MS, int(idle_left * 1000)))
            for tp, fetched in (await fetch(cluster, active, FetchLimits(wait_ms))).items():
                for record in fetched.records:
                    if not stop.follow and record.offset >= ends[tp]:
                        break
                    out.write(formatter.render(tp, record) + "\n")
                    count += 1
                    last_message = time.monotonic()
                    if count == stop.max_messages:
                        out.flush()
                        return count
                active[tp] = fetched.next_offset
                if not stop.follow and fetched.next_offset >= ends[tp]:
                    del active[tp]
            out.flush()
        return count


async def _offsets(
    cluster: Cluster, tps: Sequence[TopicPartition], query: int
) -> dict[TopicPartition, int]:
    return {
        tp: found.offset
        for tp, found in (await list_offsets(cluster, dict.fromkeys(tps, query))).items()
    }


async def _start_positions(
    cluster: Cluster, tps: Sequence[TopicPartition], start: Start
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    """Where each partition starts, and where it ends now (its high watermark)."""
    firsts = await _offsets(cluster, tps, EARLIEST)
    ends = await _offsets(cluster, tps, LATEST)
    if start.beginning:
        return firsts, ends
    if start.timestamp_ms is not None:
        found = await _offsets(cluster, tps, start.timestamp_ms)
        return {tp: ends[tp] if found[tp] < 0 else found[tp] for tp in tps}, ends
    if start.offset is None:
        return dict(ends), ends
    if start.offset < 0:
        return {tp: max(firsts[tp], ends[tp] + start.offset) for tp in tps}, ends
    for tp in tps:
        if not firsts[tp] <= start.offset <= ends[tp]:
            holds = (
                f"it holds offsets {firsts[tp]} to {ends[tp] - 1}"
                if ends[tp] > firsts[tp]
                else f"it is empty, next offset {ends[tp]}"
            )
            raise CommandError(
                f"offset {start.offset} is out of range for {tp.topic!r}"
                f" partition {tp.partition} ({holds})"
            )
    return dict.fromkeys(tps, start.offset), ends
