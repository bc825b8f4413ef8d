"""What the commands that talk to a broker share: the `--bootstrap` option, running their
coroutine, and turning client errors into one readable line and a non-zero exit."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from goqueue.client.admin import Admin
from goqueue.client.errors import BrokerConnectionError, ClientError

T = TypeVar("T")

Bootstrap = Annotated[
    str,
    typer.Option(
        "--bootstrap",
        "-b",
        envvar="GOQUEUE_BOOTSTRAP",
        help="Broker address HOST:PORT (several: comma-separated)",
    ),
]

stderr = Console(stderr=True, highlight=False, soft_wrap=True)
stdout = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 1000)
"""Tables keep their natural width when piped, instead of being cut to 80 columns."""

INTERRUPTED = 130
"""Exit status after Ctrl-C, as shells report a SIGINT death."""


class CommandError(Exception):
    """A problem with what the user asked for, found while the command runs."""


def fail(message: str) -> NoReturn:
    """Print `error: message` on stderr and exit with status 1."""
    stderr.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(1)


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; client errors end the command with a message, not a trace."""
    try:
        return asyncio.run(main)
    except BrokerConnectionError as exc:
        fail(f"{exc}; is `goqueue serve` running?")
    except (ClientError, CommandError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        raise typer.Exit(INTERRUPTED) from None


def with_admin(bootstrap: str, call: Callable[[Admin], Awaitable[T]]) -> T:
    """Connect an `Admin` to the cluster, await `call` with it, and disconnect."""

    async def main() -> T:
        async with Admin(bootstrap) as admin:
            return await call(admin)

    return run(main())


def parse_pairs(pairs: Sequence[str], option: str) -> list[tuple[str, str]]:
    """`KEY=VALUE` arguments of a repeatable option, in order; exits with a message if one
    has no `=` or an empty key."""
    parsed = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"{option} expects KEY=VALUE, got {pair!r}")
        parsed.append((key, value))
    return parsed
