"""The SDK's exceptions: one class per Kafka error code, in Kafka's families."""

import pickle

import pytest
from kio.schema.errors import ErrorCode

from goqueue import client
from goqueue.client import errors

CODES = [code for code in ErrorCode if code != ErrorCode.none]


@pytest.mark.parametrize("code", CODES, ids=lambda code: code.name)
def test_every_error_code_has_its_own_exported_class(code: ErrorCode) -> None:
    error = errors.error_for(code, "why")
    assert type(error) is not errors.KafkaError
    assert type(error).error_code == code
    assert (error.code, error.message, str(error)) == (code, "why", "why")
    assert getattr(client, type(error).__name__) is type(error)


@pytest.mark.parametrize("code", CODES, ids=lambda code: code.name)
def test_retriable_is_kafkas_flag_and_family(code: ErrorCode) -> None:
    error = errors.error_for(code)
    assert error.retriable is code.retriable
    assert isinstance(error, errors.RetriableError) is code.retriable


def test_families_follow_the_java_client() -> None:
    stale = errors.error_for(ErrorCode.not_leader_or_follower)
    assert isinstance(stale, errors.InvalidMetadataError)
    denied = errors.error_for(ErrorCode.topic_authorization_failed)
    assert isinstance(denied, errors.AuthorizationError)
    failed = errors.error_for(ErrorCode.sasl_authentication_failed)
    assert isinstance(failed, errors.AuthenticationError)
    assert isinstance(errors.BrokerConnectionError("h", 1, "gone"), client.ClientError)
    assert errors.BrokerConnectionError("h", 1, "gone").retriable


def test_a_class_raised_with_only_a_message_knows_its_code() -> None:
    error = errors.TopicAlreadyExistsError("topic 'a' already exists")
    assert error.code == ErrorCode.topic_already_exists
    assert error.message == "topic 'a' already exists"
    assert not error.retriable


def test_default_message_names_the_code() -> None:
    assert str(errors.error_for(ErrorCode.not_coordinator)) == "not coordinator (Kafka error 16)"


def test_errors_survive_pickling() -> None:
    """Exceptions cross process boundaries (multiprocessing, executors) intact."""
    for error in (
        errors.error_for(ErrorCode.not_coordinator, "moved"),
        errors.BrokerConnectionError("h", 9092, "refused"),
    ):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert str(copy) == str(error)
        assert copy.retriable == error.retriable
