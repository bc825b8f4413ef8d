"""The `goqueue` command: one entry point whose subcommands live in their own modules."""

import typer

from goqueue.cli import (
    cluster,
    config,
    consume,
    delayed,
    dlq,
    group,
    log,
    produce,
    serve,
    status,
    topic,
)

app = typer.Typer(
    name="goqueue",
    help="Go-Queue: a message broker that speaks the Kafka protocol.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("serve")(serve.serve)
app.command("status")(status.status)
app.add_typer(topic.app, name="topic")
app.add_typer(config.app, name="config")
app.add_typer(cluster.app, name="cluster")
app.add_typer(group.app, name="group")
app.add_typer(dlq.app, name="dlq")
app.add_typer(delayed.app, name="delayed")
app.command("produce")(produce.produce)
app.command("consume")(consume.consume)
app.add_typer(log.app, name="log")


if __name__ == "__main__":
    app()
