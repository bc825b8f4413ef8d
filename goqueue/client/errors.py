"""Exceptions raised by the client, one class per Kafka error code that callers act on.

Every broker error becomes a `KafkaError` carrying the kio `ErrorCode`, so callers can either
catch a specific subclass (`UnknownTopicOrPartitionError`) or branch on `error.retriable`.
"""

from typing import ClassVar

from kio.schema.errors import ErrorCode


class ClientError(Exception):
    """Base of every exception `goqueue.client` raises."""


class BrokerConnectionError(ClientError):
    """A broker could not be reached, or the connection to it broke."""

    retriable = True

    def __init__(self, host: str, port: int, message: str) -> None:
        super().__init__(message)
        self.host = host
        self.port = port


class ProtocolError(ClientError):
    """The broker sent bytes that do not decode as the expected response."""


class KafkaError(ClientError):
    """An error code returned by the broker, with its message if the broker sent one."""

    error_code: ClassVar[ErrorCode | None] = None
    _by_code: ClassVar[dict[ErrorCode, type["KafkaError"]]] = {}

    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        self.code = code
        self.message = message or _describe(code)
        super().__init__(self.message)

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        if cls.error_code is not None:
            KafkaError._by_code[cls.error_code] = cls

    @property
    def retriable(self) -> bool:
        """Whether the same request may succeed if sent again later."""
        return self.code.retriable


def _describe(code: ErrorCode) -> str:
    return f"{code.name.replace('_', ' ')} (Kafka error {int(code)})"


class OffsetOutOfRangeError(KafkaError):
    error_code = ErrorCode.offset_out_of_range


class CorruptMessageError(KafkaError):
    error_code = ErrorCode.corrupt_message


class UnknownTopicOrPartitionError(KafkaError):
    error_code = ErrorCode.unknown_topic_or_partition


class LeaderNotAvailableError(KafkaError):
    error_code = ErrorCode.leader_not_available


class NotLeaderOrFollowerError(KafkaError):
    error_code = ErrorCode.not_leader_or_follower


class RequestTimedOutError(KafkaError):
    error_code = ErrorCode.request_timed_out


class MessageTooLargeError(KafkaError):
    error_code = ErrorCode.message_too_large


class InvalidTopicError(KafkaError):
    error_code = ErrorCode.invalid_topic_exception


class RecordListTooLargeError(KafkaError):
    error_code = ErrorCode.record_list_too_large


class NotEnoughReplicasError(KafkaError):
    error_code = ErrorCode.not_enough_replicas


class UnsupportedVersionError(KafkaError):
    error_code = ErrorCode.unsupported_version


class TopicAlreadyExistsError(KafkaError):
    error_code = ErrorCode.topic_already_exists


class InvalidPartitionsError(KafkaError):
    error_code = ErrorCode.invalid_partitions


class InvalidReplicationFactorError(KafkaError):
    error_code = ErrorCode.invalid_replication_factor


class InvalidConfigError(KafkaError):
    error_code = ErrorCode.invalid_config


class PolicyViolationError(KafkaError):
    error_code = ErrorCode.policy_violation


def error_for(code: ErrorCode, message: str | None = None) -> KafkaError:
    """The most specific `KafkaError` for `code`."""
    return KafkaError._by_code.get(code, KafkaError)(code, message)


def topic_error(code: ErrorCode, topic: str, message: str | None = None) -> KafkaError:
    """The error for a per-topic error code, phrased for people who named the topic."""
    if code == ErrorCode.unknown_topic_or_partition:
        message = f"topic {topic!r} does not exist"
    elif code == ErrorCode.topic_already_exists:
        message = f"topic {topic!r} already exists"
    else:
        message = f"topic {topic!r}: {message or _describe(code)}"
    return error_for(code, message)


def partition_error(
    code: ErrorCode, topic: str, partition: int, message: str | None = None
) -> KafkaError:
    """The error for a per-partition error code, naming the partition."""
    if code == ErrorCode.unknown_topic_or_partition and message is None:
        message = f"topic {topic!r} or its partition {partition} does not exist"
    return error_for(code, f"{topic!r} partition {partition}: {message or _describe(code)}")


def raise_for(code: ErrorCode, message: str | None = None) -> None:
    """Raise `error_for(code, message)` unless `code` is `ErrorCode.none`."""
    if code != ErrorCode.none:
        raise error_for(code, message)
