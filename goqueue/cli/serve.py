"""Placeholder: `goqueue serve`."""


def serve() -> None:
    """Not implemented yet."""
