"""`goqueue serve`: run a broker node on its embedded defaults or the given settings."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer
import uvloop

from goqueue.config.settings import SettingsError, load_settings
from goqueue.metadata.errors import MetadataError
from goqueue.node import BrokerNode
from goqueue.observability.logs import setup_logging


def serve(
    data_dir: Annotated[
        Path | None, typer.Option(help="Where logs and metadata live [default: ./goqueue-data]")
    ] = None,
    listen: Annotated[
        str | None, typer.Option(help="Kafka listener HOST:PORT [default: 127.0.0.1:9092]")
    ] = None,
    advertised: Annotated[
        str | None, typer.Option(help="HOST:PORT clients are told to connect to")
    ] = None,
    http: Annotated[
        str | None, typer.Option(help="HTTP listener HOST:PORT [default: 127.0.0.1:8080]")
    ] = None,
    raft: Annotated[
        str | None, typer.Option(help="Metadata quorum HOST:PORT [default: 127.0.0.1:9093]")
    ] = None,
    node_id: Annotated[
        int | None, typer.Option(help="Id of this node in the cluster [default: 0]")
    ] = None,
    voters: Annotated[
        str | None,
        typer.Option(
            help="Metadata quorum voters, 1@HOST:PORT,2@HOST:PORT,... (Kafka's "
            "controller.quorum.voters); unset: a single node"
        ),
    ] = None,
    cluster_secret_file: Annotated[
        Path | None, typer.Option(help="File with the secret every node of the cluster shares")
    ] = None,
    rack: Annotated[str | None, typer.Option(help="Rack or zone of this broker")] = None,
    config: Annotated[
        Path | None, typer.Option(help="TOML file of settings (flags and GOQUEUE_* win)")
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
    log_format: Annotated[
        str, typer.Option(help="text (human-readable) or json (one object per line)")
    ] = "text",
) -> None:
    """Start a broker. With no flags: a complete single node on 127.0.0.1:9092."""
    cli = {
        "data_dir": data_dir,
        "listen": listen,
        "advertised": advertised,
        "http": http,
        "raft": raft,
        "node_id": node_id,
        "voters": voters,
        "cluster_secret_file": cluster_secret_file,
        "rack": rack,
    }
    try:
        settings = load_settings(
            {name: value for name, value in cli.items() if value is not None}, config, os.environ
        )
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        setup_logging(log_level, log_format)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        uvloop.run(BrokerNode(settings).run_until_signalled())
    except MetadataError as exc:
        logging.getLogger(__name__).error("cannot start: %s", exc)
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
