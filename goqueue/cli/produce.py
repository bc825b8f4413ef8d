"""`goqueue produce`: send each line of stdin or a file as one message."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import io
import itertools
import sys
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, cast

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from goqueue.cli.client_options import Bootstrap, CommandError, fail, parse_pairs, run, stderr
from goqueue.client.cluster import DEFAULT_BOOTSTRAP, Cluster
from goqueue.client.metadata import TopicPartition
from goqueue.client.partitioner import partition_for_key
from goqueue.client.producer import produce_all
from goqueue.records.builder import NewRecord
from goqueue.records.compression import Compression

CHUNK_BYTES = 64 * 1024
ROUND_BYTES = 4 * 1024 * 1024
"""Input gathered into one round of produce requests when it is available at once."""
QUEUED_CHUNKS = 64
"""How far the stdin reader thread may run ahead of the network."""


class Codec(enum.StrEnum):
    none = "none"
    gzip = "gzip"
    snappy = "snappy"
    lz4 = "lz4"
    zstd = "zstd"


class Acks(enum.StrEnum):
    all = "all"
    minus_one = "-1"
    one = "1"
    zero = "0"

    @property
    def number(self) -> int:
        """The value of the Produce request's acks field."""
        return -1 if self in (Acks.all, Acks.minus_one) else int(self.value)


def produce(
    topic: Annotated[str, typer.Argument(help="Topic to send to (created if the broker allows)")],
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", "-f", exists=True, dir_okay=False, help="Read lines from FILE, not stdin"
        ),
    ] = None,
    key_separator: Annotated[
        str | None,
        typer.Option(
            "--key-separator",
            "-K",
            metavar="SEP",
            help="Split each line at the first SEP into key and value",
        ),
    ] = None,
    header: Annotated[
        list[str] | None,
        typer.Option("--header", "-H", help="KEY=VALUE header on every message, repeatable"),
    ] = None,
    partition: Annotated[
        int | None,
        typer.Option(
            "--partition",
            "-p",
            min=0,
            help="Send everything to this partition. Default: by key hash (as Kafka's clients"
            " do), lines without key spread over partitions",
        ),
    ] = None,
    compression: Annotated[
        Codec, typer.Option("--compression", "-z", help="Batch compression")
    ] = Codec.none,
    acks: Annotated[
        Acks, typer.Option("--acks", help="Replicas that must have a message before it counts")
    ] = Acks.all,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> None:
    """Send lines as messages: one line, one message (value, or key and value with -K)."""
    if key_separator == "":
        fail("--key-separator must not be empty")
    lines = LineParser(
        key_separator.encode() if key_separator else None,
        [(key, value.encode()) for key, value in parse_pairs(header or [], "--header")],
    )
    options = SendOptions(topic, partition, Compression[compression.value], acks.number)
    size = file.stat().st_size if file else None
    with (
        file.open("rb") if file else contextlib.nullcontext(_stdin()) as source,
        _progress(size) as progress,
    ):
        task = progress.add_task("produce", total=size, messages=0)

        def advance(consumed: int) -> None:
            progress.update(task, advance=consumed, messages=lines.count)

        run(_produce(bootstrap, source, lines, options, advance))
    verb = "Sent" if options.acks == 0 else "Produced"
    unconfirmed = " (acks=0: not confirmed by the broker)" if options.acks == 0 else ""
    plural = "s" * (lines.count != 1)
    stderr.print(f"{verb} {lines.count} message{plural} to topic {topic!r}{unconfirmed}.")


def _stdin() -> io.BufferedIOBase:
    """Binary stdin; a BufferedReader, whose read1 returns what a pipe has without waiting."""
    return cast(io.BufferedIOBase, sys.stdin.buffer)


def _progress(total: int | None) -> Progress:
    """A byte progress bar for file input on a terminal; silent otherwise."""
    return Progress(
        TextColumn("{task.fields[messages]} messages"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        disable=total is None or not stderr.is_terminal,
    )


@dataclass(frozen=True, slots=True)
class SendOptions:
    topic: str
    partition: int | None
    compression: Compression
    acks: int


class LineParser:
    """Turns input lines into records, counting them so errors can name the line."""

    def __init__(self, key_separator: bytes | None, headers: Sequence[tuple[str, bytes]]) -> None:
        self.key_separator = key_separator
        self.headers = tuple(headers)
        self.count = 0
        """Lines parsed before the current round; messages sent once the round succeeds."""

    def parse(self, lines: Sequence[bytes]) -> list[NewRecord]:
        return [self._record(self.count + n, line) for n, line in enumerate(lines, 1)]

    def commit(self, records: Sequence[NewRecord]) -> None:
        self.count += len(records)

    def _record(self, line_number: int, line: bytes) -> NewRecord:
        if self.key_separator is None:
            return NewRecord(key=None, value=line, headers=self.headers)
        key, sep, value = line.partition(self.key_separator)
        if not sep:
            raise CommandError(
                f"line {line_number} has no key separator {self.key_separator.decode()!r}"
                f" ({self.count} earlier message{'s' * (self.count != 1)} were sent)"
            )
        return NewRecord(key=key, value=value, headers=self.headers)


class Router:
    """Assigns partitions like Kafka's Java client: the one asked for, else murmur2 of the key,
    else (no key) one partition per round, rotating, so unkeyed batches stay large."""

    def __init__(self, topic: str, partitions: int, fixed: int | None) -> None:
        if fixed is not None and fixed >= partitions:
            raise CommandError(f"topic {topic!r} has no partition {fixed} (it has {partitions})")
        self.topic = topic
        self.partitions = partitions
        self.fixed = fixed
        self._unkeyed = itertools.cycle(range(partitions))

    def route(self, records: Sequence[NewRecord]) -> dict[TopicPartition, list[NewRecord]]:
        unkeyed = next(self._unkeyed)
        routed: dict[TopicPartition, list[NewRecord]] = {}
        for record in records:
            if self.fixed is not None:
                partition = self.fixed
            elif record.key is None:
                partition = unkeyed
            else:
                partition = partition_for_key(record.key, self.partitions)
            routed.setdefault(TopicPartition(self.topic, partition), []).append(record)
        return routed


async def _produce(
    bootstrap: str,
    source: io.BufferedIOBase,
    lines: LineParser,
    options: SendOptions,
    advance: Callable[[int], None],
) -> None:
    async with Cluster(bootstrap, client_id="goqueue-produce") as cluster:
        topic = await cluster.topic(options.topic, auto_create=True)
        router = Router(options.topic, len(topic.partitions), options.partition)
        async for round_lines, consumed in read_rounds(source):
            records = lines.parse(round_lines)
            await produce_all(
                cluster,
                router.route(records),
                compression=options.compression,
                acks=options.acks,
            )
            lines.commit(records)
            advance(consumed)


async def read_rounds(
    source: io.BufferedIOBase, *, chunk_bytes: int = CHUNK_BYTES, round_bytes: int = ROUND_BYTES
) -> AsyncIterator[tuple[list[bytes], int]]:
    """Complete lines (without their newline) as input arrives, with the bytes they took.

    A daemon thread reads the input, so neither a slow pipe nor a terminal blocks the event
    loop and Ctrl-C still ends the command; everything available at once (up to `round_bytes`)
    forms one round, so a file goes out in large batches and typed lines go out at once.
    """
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[bytes | BaseException] = asyncio.Queue()
    space = threading.Semaphore(QUEUED_CHUNKS)

    def deliver(item: bytes | BaseException) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: the command is over
            loop.call_soon_threadsafe(chunks.put_nowait, item)

    def pump() -> None:
        try:
            while space.acquire() and (chunk := source.read1(chunk_bytes)):
                deliver(chunk)
            deliver(b"")
        except (OSError, ValueError) as exc:
            deliver(exc)

    threading.Thread(target=pump, name="goqueue-produce-input", daemon=True).start()
    partial = b""
    eof = False
    while not eof:
        parts = [partial]
        size = 0
        while not eof and (size < round_bytes and (size == 0 or not chunks.empty())):
            item = await chunks.get()
            space.release()
            if isinstance(item, BaseException):
                raise CommandError(f"cannot read input: {item}") from item
            parts.append(item)
            size += len(item)
            eof = not item
        lines = b"".join(parts).split(b"\n")
        partial = lines.pop()
        if eof and partial:
            lines.append(partial)
        yield lines, size
