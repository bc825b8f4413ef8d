"""`goqueue log`: offline inspection of a broker's data directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from goqueue.log.verify import VerifyStats, data_dir_bytes, verify_data_dir

app = typer.Typer(no_args_is_help=True)
stdout = Console(highlight=False)
stderr = Console(stderr=True, highlight=False)


@app.callback()
def log() -> None:
    """Inspect partition logs offline."""


@app.command()
def verify(
    data_dir: Annotated[
        Path,
        typer.Argument(
            help="The broker's data directory (stop the broker first)",
            exists=True,
            file_okay=False,
            dir_okay=True,
        ),
    ],
) -> None:
    """Check every batch's CRC, record encoding, offset order and the index files."""
    stats = VerifyStats()
    with Progress(
        TextColumn("verifying"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
    ) as progress:
        task = progress.add_task("verify", total=data_dir_bytes(data_dir))
        problems = verify_data_dir(
            data_dir, stats=stats, on_segment=lambda size: progress.advance(task, size)
        )
    summary = (
        f"{stats.logs} logs, {stats.segments} segments, {stats.batches} batches, "
        f"{stats.records} records checked"
    )
    if problems:
        for problem in problems:
            stderr.print(f"[red]problem:[/red] {escape(problem)}")
        stderr.print(f"{len(problems)} problems found; {summary}")
        raise typer.Exit(1)
    stdout.print(f"OK: {summary}")
