"""`goqueue cluster` refuses malformed arguments before it connects anywhere."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from goqueue.cli.main import app

RUNNER = CliRunner()
NOWHERE = "127.0.0.1:1"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["reassign", "--topic", "t", "--partition", "0"], "either --replicas or --cancel"),
        (
            ["reassign", "--topic", "t", "--partition", "0", "--replicas", "1", "--cancel"],
            "either --replicas or --cancel",
        ),
        (["reassign", "--topic", "t", "--partition", "0", "--replicas", "1,x"], "node ids"),
        (["add-node", "four@127.0.0.1:9093"], "expected ID@HOST:PORT"),
        (["add-node", "4@127.0.0.1"], "expected ID@HOST:PORT"),
        (["elect-leaders", "--partition", "0"], "--partition needs --topic"),
    ],
)
def test_malformed_arguments_exit_1_with_a_message(args: list[str], message: str) -> None:
    result = RUNNER.invoke(app, ["cluster", *args, "--bootstrap", NOWHERE])
    assert result.exit_code == 1, result.stdout
    assert message in result.stderr
