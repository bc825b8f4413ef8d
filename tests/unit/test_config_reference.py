"""The committed configuration reference is exactly what the declarations render."""

from pathlib import Path

from goqueue.config.reference import render

DOC = Path(__file__).parents[2] / "docs" / "configuration.md"


def test_configuration_reference_matches_declarations() -> None:
    assert DOC.read_text() == render(), (
        "docs/configuration.md is stale: run "
        "`python -m goqueue.config.reference > docs/configuration.md`"
    )
