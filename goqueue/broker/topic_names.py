"""Kafka's rules for topic names, so that a name valid here is valid on every Kafka tool."""

import re

from kio.schema.errors import ErrorCode

from goqueue.broker.errors import BrokerError

MAX_NAME_LENGTH = 249
INTERNAL_TOPICS = frozenset(
    {"__consumer_offsets", "__transaction_state", "__share_group_state", "__goqueue_schedule"}
)
"""Names the coordinators own; Kafka refuses to let clients create them."""
_LEGAL = re.compile(r"[a-zA-Z0-9._-]+")


def validate_topic_name(name: str | None) -> str:
    """Return the name of a topic a client may create, or raise the Kafka error that says which
    rule it breaks."""
    if not name:
        raise BrokerError(ErrorCode.invalid_topic_exception, "Topic name is empty")
    if name in (".", ".."):
        raise BrokerError(ErrorCode.invalid_topic_exception, f"Topic name cannot be {name!r}")
    if len(name) > MAX_NAME_LENGTH:
        raise BrokerError(
            ErrorCode.invalid_topic_exception,
            f"Topic name is longer than {MAX_NAME_LENGTH} characters",
        )
    if not _LEGAL.fullmatch(name):
        raise BrokerError(
            ErrorCode.invalid_topic_exception,
            f"Topic name {name!r} is illegal: it may contain only ASCII letters, digits, "
            "'.', '_' and '-'",
        )
    if name in INTERNAL_TOPICS:
        raise BrokerError(
            ErrorCode.invalid_request, f"Creation of internal topic {name} is prohibited."
        )
    return name
