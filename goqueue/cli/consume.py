"""Placeholder: `goqueue consume`."""


def consume() -> None:
    """Not implemented yet."""
