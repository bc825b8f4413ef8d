"""Kafka's topic naming rules."""

import pytest
from kio.schema.errors import ErrorCode

from goqueue.broker.errors import BrokerError
from goqueue.broker.topic_names import validate_topic_name


@pytest.mark.parametrize("name", ["orders", "a.b_c-D9", "x" * 249])
def test_legal_names_pass(name: str) -> None:
    assert validate_topic_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "x" * 250, "has space", "ünïcode", "a/b", None])
def test_illegal_names_are_invalid_topic(name: str | None) -> None:
    with pytest.raises(BrokerError) as raised:
        validate_topic_name(name)
    assert raised.value.error_code == ErrorCode.invalid_topic_exception


def test_internal_topics_cannot_be_created_by_clients() -> None:
    with pytest.raises(BrokerError) as raised:
        validate_topic_name("__consumer_offsets")
    assert raised.value.error_code == ErrorCode.invalid_request
    assert "internal topic" in str(raised.value)
