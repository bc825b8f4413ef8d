"""What the metadata quorum refuses, each with the Kafka error code a client should see."""

from __future__ import annotations

from kio.schema.errors import ErrorCode


class MetadataError(Exception):
    """The metadata quorum could not carry out a change."""

    error_code: ErrorCode = ErrorCode.unknown_server_error

    def __init__(self, message: str, error_code: ErrorCode | None = None) -> None:
        super().__init__(message)
        if error_code is not None:
            self.error_code = error_code


class RecordRejectedError(MetadataError):
    """The current state refuses a record (a race lost since the request was validated): the
    command's answer, not a failure of the quorum."""


class TopicExistsError(RecordRejectedError):
    error_code = ErrorCode.topic_already_exists


class UnknownTopicError(RecordRejectedError):
    error_code = ErrorCode.unknown_topic_or_partition


class InvalidPartitionsError(RecordRejectedError):
    error_code = ErrorCode.invalid_partitions


class PartitionChangeError(RecordRejectedError):
    """A partition change built on a state that has moved on, or naming ineligible brokers
    (AlterPartition's FENCED_LEADER_EPOCH, INVALID_UPDATE_VERSION, INELIGIBLE_REPLICA...)."""


class DuplicateBrokerError(RecordRejectedError):
    """Another live process is registered with this node id."""

    error_code = ErrorCode.duplicate_broker_registration
