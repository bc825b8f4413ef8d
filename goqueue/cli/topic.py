"""Placeholder: `goqueue topic` subcommands."""

import typer

app = typer.Typer(help="topic commands", no_args_is_help=True)
