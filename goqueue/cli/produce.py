"""Placeholder: `goqueue produce`."""


def produce() -> None:
    """Not implemented yet."""
