"""Placeholder: `goqueue log` subcommands."""

import typer

app = typer.Typer(help="log commands", no_args_is_help=True)
