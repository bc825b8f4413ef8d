"""Exceptions raised by the client: one class per Kafka error code, in Kafka's hierarchy.

Every broker error becomes a `KafkaError` carrying the kio `ErrorCode` (`code`), a message and
Kafka's `retriable` flag, so callers can catch a specific class (`UnknownTopicOrPartitionError`),
a family (`RetriableError`, `InvalidMetadataError`, `AuthorizationError`) or branch on
`error.retriable`. The families follow the Java client's: a retriable error may succeed if the
same request is sent again, and an invalid-metadata error also means the client's view of the
cluster is stale and must be refreshed first. The code-to-class table covers every code kio
knows; `error_for` turns a code into the most specific exception.
"""

from typing import Any, ClassVar

from kio.schema.errors import ErrorCode

__all__ = [
    "AuthenticationError",
    "AuthorizationError",
    "BrokerConnectionError",
    "ClientError",
    "CommitFailedError",
    "InvalidMetadataError",
    "KafkaError",
    "KafkaTimeoutError",
    "NoOffsetForPartitionError",
    "ProducerClosedError",
    "ProtocolError",
    "RetriableError",
    "error_for",
    # The per-code classes are added below, where they are defined.
]


class ClientError(Exception):
    """Base of every exception `goqueue.client` raises."""

    @property
    def retriable(self) -> bool:
        """Whether sending the same request again may succeed."""
        return False


class BrokerConnectionError(ClientError):
    """A broker could not be reached, or the connection to it broke (retriable: the client
    reconnects on the next request)."""

    def __init__(self, host: str, port: int, message: str) -> None:
        super().__init__(message)
        self.host = host
        self.port = port

    @property
    def retriable(self) -> bool:
        return True

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.host, self.port, str(self))


class ProtocolError(ClientError):
    """The broker sent bytes that do not decode as the expected response."""


class KafkaTimeoutError(ClientError):
    """A client-side time limit ran out: a producer's `max_block_ms` while waiting for metadata
    or buffer space, or its `delivery_timeout_ms` for a record. Kafka's `TimeoutException`."""

    @property
    def retriable(self) -> bool:
        return True


class ProducerClosedError(ClientError):
    """The producer is closed (or failed fatally) and takes no more records."""


class NoOffsetForPartitionError(ClientError):
    """A consumer with `auto_offset_reset="none"` has no committed offset to start a partition
    from (or its position fell out of the log). Kafka's `NoOffsetForPartitionException`."""

    def __init__(self, partitions: Any) -> None:
        super().__init__(f"no committed offset and no reset policy for {sorted(partitions)}")
        self.partitions = partitions

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.partitions,)


class CommitFailedError(ClientError):
    """A consumer's commit was refused because its group rebalanced (or fenced it) since it
    got its partitions: they may now belong to another member. Kafka's
    `CommitFailedException`."""


class KafkaError(ClientError):
    """An error code returned by the broker, with its message if the broker sent one.

    Subclasses name their code as a class keyword (`class X(KafkaError, code=...)`), which
    registers them for `error_for`; they can be raised with just a message
    (`UnknownTopicOrPartitionError("no topic 'orders'")`).
    """

    error_code: ClassVar[ErrorCode | None] = None
    _by_code: ClassVar[dict[ErrorCode, type["KafkaError"]]] = {}

    def __init__(self, code: ErrorCode | str | None = None, message: str | None = None) -> None:
        if isinstance(code, str):
            code, message = None, code
        self.code = code if code is not None else self.error_code or ErrorCode.unknown_server_error
        self.message = message or _describe(self.code)
        super().__init__(self.message)

    def __init_subclass__(cls, code: ErrorCode | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if code is not None:
            cls.error_code = code
            KafkaError._by_code[code] = cls
            __all__.append(cls.__name__)

    @property
    def retriable(self) -> bool:
        """Kafka's flag: whether the same request may succeed if sent again later."""
        return self.code.retriable

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.code, self.message)


class RetriableError(KafkaError):
    """A transient condition (a leader moving, a coordinator loading, a timeout): the same
    request may succeed later. Kafka's `RetriableException`."""


class InvalidMetadataError(RetriableError):
    """The client's metadata (leaders, topic ids) is stale: refresh it, then retry. Kafka's
    `InvalidMetadataException`."""


class AuthorizationError(KafkaError):
    """The principal may not perform the operation on the resource."""


class AuthenticationError(KafkaError):
    """The connection could not be authenticated."""


def _describe(code: ErrorCode) -> str:
    return f"{code.name.replace('_', ' ')} (Kafka error {int(code)})"


def error_for(code: ErrorCode, message: str | None = None) -> KafkaError:
    """The most specific `KafkaError` for `code`."""
    return KafkaError._by_code.get(code, KafkaError)(code, message)


class UnknownServerError(KafkaError, code=ErrorCode.unknown_server_error):
    """The server experienced an unexpected error when processing the request."""


class OffsetOutOfRangeError(KafkaError, code=ErrorCode.offset_out_of_range):
    """The requested offset is not within the range of offsets maintained by the server."""


class CorruptMessageError(RetriableError, code=ErrorCode.corrupt_message):
    """This message has failed its CRC checksum, exceeds the valid size, has a null key for a
    compacted topic, or is otherwise corrupt."""


class UnknownTopicOrPartitionError(InvalidMetadataError, code=ErrorCode.unknown_topic_or_partition):
    """This server does not host this topic-partition."""


class InvalidFetchSizeError(KafkaError, code=ErrorCode.invalid_fetch_size):
    """The requested fetch size is invalid."""


class LeaderNotAvailableError(InvalidMetadataError, code=ErrorCode.leader_not_available):
    """There is no leader for this topic-partition as we are in the middle of a leadership
    election."""


class NotLeaderOrFollowerError(InvalidMetadataError, code=ErrorCode.not_leader_or_follower):
    """For requests intended only for the leader, this error indicates that the broker is not the
    current leader. For requests intended for any replica, this error indicates that the broker
    is not a replica of the topic partition."""


class RequestTimedOutError(RetriableError, code=ErrorCode.request_timed_out):
    """The request timed out."""


class BrokerNotAvailableError(KafkaError, code=ErrorCode.broker_not_available):
    """The broker is not available."""


class ReplicaNotAvailableError(InvalidMetadataError, code=ErrorCode.replica_not_available):
    """The replica is not available for the requested topic-partition. Produce/Fetch requests and
    other requests intended only for the leader or follower return NOT_LEADER_OR_FOLLOWER if the
    broker is not a replica of the topic-partition."""


class MessageTooLargeError(KafkaError, code=ErrorCode.message_too_large):
    """The request included a message larger than the max message size the server will accept."""


class StaleControllerEpochError(KafkaError, code=ErrorCode.stale_controller_epoch):
    """The controller moved to another broker."""


class OffsetMetadataTooLargeError(KafkaError, code=ErrorCode.offset_metadata_too_large):
    """The metadata field of the offset request was too large."""


class NetworkError(InvalidMetadataError, code=ErrorCode.network_exception):
    """The server disconnected before a response was received."""


class CoordinatorLoadInProgressError(RetriableError, code=ErrorCode.coordinator_load_in_progress):
    """The coordinator is loading and hence can't process requests."""


class CoordinatorNotAvailableError(RetriableError, code=ErrorCode.coordinator_not_available):
    """The coordinator is not available."""


class NotCoordinatorError(RetriableError, code=ErrorCode.not_coordinator):
    """This is not the correct coordinator."""


class InvalidTopicError(KafkaError, code=ErrorCode.invalid_topic_exception):
    """The request attempted to perform an operation on an invalid topic."""


class RecordListTooLargeError(KafkaError, code=ErrorCode.record_list_too_large):
    """The request included message batch larger than the configured segment size on the server."""


class NotEnoughReplicasError(RetriableError, code=ErrorCode.not_enough_replicas):
    """Messages are rejected since there are fewer in-sync replicas than required."""


class NotEnoughReplicasAfterAppendError(
    RetriableError, code=ErrorCode.not_enough_replicas_after_append
):
    """Messages are written to the log, but to fewer in-sync replicas than required."""


class InvalidRequiredAcksError(KafkaError, code=ErrorCode.invalid_required_acks):
    """Produce request specified an invalid value for required acks."""


class IllegalGenerationError(KafkaError, code=ErrorCode.illegal_generation):
    """Specified group generation id is not valid."""


class InconsistentGroupProtocolError(KafkaError, code=ErrorCode.inconsistent_group_protocol):
    """The group member's supported protocols are incompatible with those of existing members or
    first group member tried to join with empty protocol type or empty protocol list."""


class InvalidGroupIdError(KafkaError, code=ErrorCode.invalid_group_id):
    """The group id is invalid."""


class UnknownMemberIdError(KafkaError, code=ErrorCode.unknown_member_id):
    """The coordinator is not aware of this member."""


class InvalidSessionTimeoutError(KafkaError, code=ErrorCode.invalid_session_timeout):
    """The session timeout is not within the range allowed by the broker (as configured by
    group.min.session.timeout.ms and group.max.session.timeout.ms)."""


class RebalanceInProgressError(KafkaError, code=ErrorCode.rebalance_in_progress):
    """The group is rebalancing, so a rejoin is needed."""


class InvalidCommitOffsetSizeError(KafkaError, code=ErrorCode.invalid_commit_offset_size):
    """The committing offset data size is not valid."""


class TopicAuthorizationFailedError(AuthorizationError, code=ErrorCode.topic_authorization_failed):
    """Topic authorization failed."""


class GroupAuthorizationFailedError(AuthorizationError, code=ErrorCode.group_authorization_failed):
    """Group authorization failed."""


class ClusterAuthorizationFailedError(
    AuthorizationError, code=ErrorCode.cluster_authorization_failed
):
    """Cluster authorization failed."""


class InvalidTimestampError(KafkaError, code=ErrorCode.invalid_timestamp):
    """The timestamp of the message is out of acceptable range."""


class UnsupportedSaslMechanismError(AuthenticationError, code=ErrorCode.unsupported_sasl_mechanism):
    """The broker does not support the requested SASL mechanism."""


class IllegalSaslStateError(AuthenticationError, code=ErrorCode.illegal_sasl_state):
    """Request is not valid given the current SASL state."""


class UnsupportedVersionError(KafkaError, code=ErrorCode.unsupported_version):
    """The version of API is not supported."""


class TopicAlreadyExistsError(KafkaError, code=ErrorCode.topic_already_exists):
    """Topic with this name already exists."""


class InvalidPartitionsError(KafkaError, code=ErrorCode.invalid_partitions):
    """Number of partitions is below 1."""


class InvalidReplicationFactorError(KafkaError, code=ErrorCode.invalid_replication_factor):
    """Replication factor is below 1 or larger than the number of available brokers."""


class InvalidReplicaAssignmentError(KafkaError, code=ErrorCode.invalid_replica_assignment):
    """Replica assignment is invalid."""


class InvalidConfigError(KafkaError, code=ErrorCode.invalid_config):
    """Configuration is invalid."""


class NotControllerError(RetriableError, code=ErrorCode.not_controller):
    """This is not the correct controller for this cluster."""


class InvalidRequestError(KafkaError, code=ErrorCode.invalid_request):
    """This most likely occurs because of a request being malformed by the client library or the
    message was sent to an incompatible broker. See the broker logs for more details."""


class UnsupportedForMessageFormatError(KafkaError, code=ErrorCode.unsupported_for_message_format):
    """The message format version on the broker does not support the request."""


class PolicyViolationError(KafkaError, code=ErrorCode.policy_violation):
    """Request parameters do not satisfy the configured policy."""


class OutOfOrderSequenceNumberError(KafkaError, code=ErrorCode.out_of_order_sequence_number):
    """The broker received an out of order sequence number."""


class DuplicateSequenceNumberError(KafkaError, code=ErrorCode.duplicate_sequence_number):
    """The broker received a duplicate sequence number."""


class InvalidProducerEpochError(KafkaError, code=ErrorCode.invalid_producer_epoch):
    """Producer attempted to produce with an old epoch."""


class InvalidTxnStateError(KafkaError, code=ErrorCode.invalid_txn_state):
    """The producer attempted a transactional operation in an invalid state."""


class InvalidProducerIdMappingError(KafkaError, code=ErrorCode.invalid_producer_id_mapping):
    """The producer attempted to use a producer id which is not currently assigned to its
    transactional id."""


class InvalidTransactionTimeoutError(KafkaError, code=ErrorCode.invalid_transaction_timeout):
    """The transaction timeout is larger than the maximum value allowed by the broker (as
    configured by transaction.max.timeout.ms)."""


class ConcurrentTransactionsError(RetriableError, code=ErrorCode.concurrent_transactions):
    """The producer attempted to update a transaction while another concurrent operation on the
    same transaction was ongoing."""


class TransactionCoordinatorFencedError(KafkaError, code=ErrorCode.transaction_coordinator_fenced):
    """Indicates that the transaction coordinator sending a WriteTxnMarker is no longer the current
    coordinator for a given producer."""


class TransactionalIdAuthorizationFailedError(
    AuthorizationError, code=ErrorCode.transactional_id_authorization_failed
):
    """Transactional Id authorization failed."""


class SecurityDisabledError(KafkaError, code=ErrorCode.security_disabled):
    """Security features are disabled."""


class OperationNotAttemptedError(KafkaError, code=ErrorCode.operation_not_attempted):
    """The broker did not attempt to execute this operation. This may happen for batched RPCs where
    some operations in the batch failed, causing the broker to respond without trying the rest."""


class KafkaStorageError(InvalidMetadataError, code=ErrorCode.kafka_storage_error):
    """Disk error when trying to access log file on the disk."""


class LogDirNotFoundError(KafkaError, code=ErrorCode.log_dir_not_found):
    """The user-specified log directory is not found in the broker config."""


class SaslAuthenticationFailedError(AuthenticationError, code=ErrorCode.sasl_authentication_failed):
    """SASL Authentication failed."""


class UnknownProducerIdError(KafkaError, code=ErrorCode.unknown_producer_id):
    """This exception is raised by the broker if it could not locate the producer metadata
    associated with the producerId in question. This could happen if, for instance, the
    producer's records were deleted because their retention time had elapsed. Once the last
    records of the producerId are removed, the producer's metadata is removed from the broker,
    and future appends by the producer will return this exception."""


class ReassignmentInProgressError(KafkaError, code=ErrorCode.reassignment_in_progress):
    """A partition reassignment is in progress."""


class DelegationTokenAuthDisabledError(KafkaError, code=ErrorCode.delegation_token_auth_disabled):
    """Delegation Token feature is not enabled."""


class DelegationTokenNotFoundError(KafkaError, code=ErrorCode.delegation_token_not_found):
    """Delegation Token is not found on server."""


class DelegationTokenOwnerMismatchError(KafkaError, code=ErrorCode.delegation_token_owner_mismatch):
    """Specified Principal is not valid Owner/Renewer."""


class DelegationTokenRequestNotAllowedError(
    KafkaError, code=ErrorCode.delegation_token_request_not_allowed
):
    """Delegation Token requests are not allowed on PLAINTEXT/1-way SSL channels and on delegation
    token authenticated channels."""


class DelegationTokenAuthorizationFailedError(
    AuthorizationError, code=ErrorCode.delegation_token_authorization_failed
):
    """Delegation Token authorization failed."""


class DelegationTokenExpiredError(KafkaError, code=ErrorCode.delegation_token_expired):
    """Delegation Token is expired."""


class InvalidPrincipalTypeError(KafkaError, code=ErrorCode.invalid_principal_type):
    """Supplied principalType is not supported."""


class NonEmptyGroupError(KafkaError, code=ErrorCode.non_empty_group):
    """The group is not empty."""


class GroupIdNotFoundError(KafkaError, code=ErrorCode.group_id_not_found):
    """The group id does not exist."""


class FetchSessionIdNotFoundError(RetriableError, code=ErrorCode.fetch_session_id_not_found):
    """The fetch session ID was not found."""


class InvalidFetchSessionEpochError(RetriableError, code=ErrorCode.invalid_fetch_session_epoch):
    """The fetch session epoch is invalid."""


class ListenerNotFoundError(InvalidMetadataError, code=ErrorCode.listener_not_found):
    """There is no listener on the leader broker that matches the listener on which metadata
    request was processed."""


class TopicDeletionDisabledError(KafkaError, code=ErrorCode.topic_deletion_disabled):
    """Topic deletion is disabled."""


class FencedLeaderEpochError(InvalidMetadataError, code=ErrorCode.fenced_leader_epoch):
    """The leader epoch in the request is older than the epoch on the broker."""


class UnknownLeaderEpochError(RetriableError, code=ErrorCode.unknown_leader_epoch):
    """The leader epoch in the request is newer than the epoch on the broker."""


class UnsupportedCompressionTypeError(KafkaError, code=ErrorCode.unsupported_compression_type):
    """The requesting client does not support the compression type of given partition."""


class StaleBrokerEpochError(KafkaError, code=ErrorCode.stale_broker_epoch):
    """Broker epoch has changed."""


class OffsetNotAvailableError(RetriableError, code=ErrorCode.offset_not_available):
    """The leader high watermark has not caught up from a recent leader election so the offsets
    cannot be guaranteed to be monotonically increasing."""


class MemberIdRequiredError(KafkaError, code=ErrorCode.member_id_required):
    """The group member needs to have a valid member id before actually entering a consumer
    group."""


class PreferredLeaderNotAvailableError(
    RetriableError, code=ErrorCode.preferred_leader_not_available
):
    """The preferred leader was not available."""


class GroupMaxSizeReachedError(KafkaError, code=ErrorCode.group_max_size_reached):
    """The group has reached its maximum size."""


class FencedInstanceIdError(KafkaError, code=ErrorCode.fenced_instance_id):
    """The broker rejected this static consumer since another consumer with the same
    group.instance.id has registered with a different member.id."""


class EligibleLeadersNotAvailableError(
    RetriableError, code=ErrorCode.eligible_leaders_not_available
):
    """Eligible topic partition leaders are not available."""


class ElectionNotNeededError(RetriableError, code=ErrorCode.election_not_needed):
    """Leader election not needed for topic partition."""


class NoReassignmentInProgressError(KafkaError, code=ErrorCode.no_reassignment_in_progress):
    """No partition reassignment is in progress."""


class GroupSubscribedToTopicError(KafkaError, code=ErrorCode.group_subscribed_to_topic):
    """Deleting offsets of a topic is forbidden while the consumer group is actively subscribed to
    it."""


class InvalidRecordError(KafkaError, code=ErrorCode.invalid_record):
    """This record has failed the validation on broker and hence will be rejected."""


class UnstableOffsetCommitError(RetriableError, code=ErrorCode.unstable_offset_commit):
    """There are unstable offsets that need to be cleared."""


class ThrottlingQuotaExceededError(RetriableError, code=ErrorCode.throttling_quota_exceeded):
    """The throttling quota has been exceeded."""


class ProducerFencedError(KafkaError, code=ErrorCode.producer_fenced):
    """There is a newer producer with the same transactionalId which fences the current one."""


class ResourceNotFoundError(KafkaError, code=ErrorCode.resource_not_found):
    """A request illegally referred to a resource that does not exist."""


class DuplicateResourceError(KafkaError, code=ErrorCode.duplicate_resource):
    """A request illegally referred to the same resource twice."""


class UnacceptableCredentialError(KafkaError, code=ErrorCode.unacceptable_credential):
    """Requested credential would not meet criteria for acceptability."""


class InconsistentVoterSetError(KafkaError, code=ErrorCode.inconsistent_voter_set):
    """Indicates that the either the sender or recipient of a voter-only request is not one of the
    expected voters."""


class InvalidUpdateVersionError(KafkaError, code=ErrorCode.invalid_update_version):
    """The given update version was invalid."""


class FeatureUpdateFailedError(KafkaError, code=ErrorCode.feature_update_failed):
    """Unable to update finalized features due to an unexpected server error."""


class PrincipalDeserializationFailureError(
    KafkaError, code=ErrorCode.principal_deserialization_failure
):
    """Request principal deserialization failed during forwarding. This indicates an internal error
    on the broker cluster security setup."""


class SnapshotNotFoundError(KafkaError, code=ErrorCode.snapshot_not_found):
    """Requested snapshot was not found."""


class PositionOutOfRangeError(KafkaError, code=ErrorCode.position_out_of_range):
    """Requested position is not greater than or equal to zero, and less than the size of the
    snapshot."""


class UnknownTopicIdError(InvalidMetadataError, code=ErrorCode.unknown_topic_id):
    """This server does not host this topic ID."""


class DuplicateBrokerRegistrationError(KafkaError, code=ErrorCode.duplicate_broker_registration):
    """This broker ID is already in use."""


class BrokerIdNotRegisteredError(KafkaError, code=ErrorCode.broker_id_not_registered):
    """The given broker ID was not registered."""


class InconsistentTopicIdError(InvalidMetadataError, code=ErrorCode.inconsistent_topic_id):
    """The log's topic ID did not match the topic ID in the request."""


class InconsistentClusterIdError(KafkaError, code=ErrorCode.inconsistent_cluster_id):
    """The clusterId in the request does not match that found on the server."""


class TransactionalIdNotFoundError(KafkaError, code=ErrorCode.transactional_id_not_found):
    """The transactionalId could not be found."""


class FetchSessionTopicIdError(RetriableError, code=ErrorCode.fetch_session_topic_id_error):
    """The fetch session encountered inconsistent topic ID usage."""


class IneligibleReplicaError(KafkaError, code=ErrorCode.ineligible_replica):
    """The new ISR contains at least one ineligible replica."""


class NewLeaderElectedError(KafkaError, code=ErrorCode.new_leader_elected):
    """The AlterPartition request successfully updated the partition state but the leader has
    changed."""


class OffsetMovedToTieredStorageError(KafkaError, code=ErrorCode.offset_moved_to_tiered_storage):
    """The requested offset is moved to tiered storage."""


class FencedMemberEpochError(KafkaError, code=ErrorCode.fenced_member_epoch):
    """The member epoch is fenced by the group coordinator. The member must abandon all its
    partitions and rejoin."""


class UnreleasedInstanceIdError(KafkaError, code=ErrorCode.unreleased_instance_id):
    """The instance ID is still used by another member in the consumer group. That member must
    leave first."""


class UnsupportedAssignorError(KafkaError, code=ErrorCode.unsupported_assignor):
    """The assignor or its version range is not supported by the consumer group."""


class StaleMemberEpochError(KafkaError, code=ErrorCode.stale_member_epoch):
    """The member epoch is stale. The member must retry after receiving its updated member epoch
    via the ConsumerGroupHeartbeat API."""


class MismatchedEndpointTypeError(KafkaError, code=ErrorCode.mismatched_endpoint_type):
    """The request was sent to an endpoint of the wrong type."""


class UnsupportedEndpointTypeError(KafkaError, code=ErrorCode.unsupported_endpoint_type):
    """This endpoint type is not supported yet."""


class UnknownControllerIdError(KafkaError, code=ErrorCode.unknown_controller_id):
    """This controller ID is not known."""


class UnknownSubscriptionIdError(KafkaError, code=ErrorCode.unknown_subscription_id):
    """Client sent a push telemetry request with an invalid or outdated subscription ID."""


class TelemetryTooLargeError(KafkaError, code=ErrorCode.telemetry_too_large):
    """Client sent a push telemetry request larger than the maximum size the broker will accept."""


class InvalidRegistrationError(KafkaError, code=ErrorCode.invalid_registration):
    """The controller has considered the broker registration to be invalid."""


class TransactionAbortableError(KafkaError, code=ErrorCode.transaction_abortable):
    """The server encountered an error with the transaction. The client can abort the transaction
    to continue using this transactional ID."""


class InvalidRecordStateError(KafkaError, code=ErrorCode.invalid_record_state):
    """The record state is invalid. The acknowledgement of delivery could not be completed."""


class ShareSessionNotFoundError(RetriableError, code=ErrorCode.share_session_not_found):
    """The share session was not found."""


class InvalidShareSessionEpochError(RetriableError, code=ErrorCode.invalid_share_session_epoch):
    """The share session epoch is invalid."""


class FencedStateEpochError(KafkaError, code=ErrorCode.fenced_state_epoch):
    """The share coordinator rejected the request because the share-group state epoch did not
    match."""


class InvalidVoterKeyError(KafkaError, code=ErrorCode.invalid_voter_key):
    """The voter key doesn't match the receiving replica's key."""


class DuplicateVoterError(KafkaError, code=ErrorCode.duplicate_voter):
    """The voter is already part of the set of voters."""


class VoterNotFoundError(KafkaError, code=ErrorCode.voter_not_found):
    """The voter is not part of the set of voters."""


class InvalidRegularExpressionError(KafkaError, code=ErrorCode.invalid_regular_expression):
    """The regular expression is not valid."""


class RebootstrapRequiredError(KafkaError, code=ErrorCode.rebootstrap_required):
    """Client metadata is stale. The client should rebootstrap to obtain new metadata."""


class StreamsInvalidTopologyError(KafkaError, code=ErrorCode.streams_invalid_topology):
    """The supplied topology is invalid."""


class StreamsInvalidTopologyEpochError(KafkaError, code=ErrorCode.streams_invalid_topology_epoch):
    """The supplied topology epoch is invalid."""


class StreamsTopologyFencedError(KafkaError, code=ErrorCode.streams_topology_fenced):
    """The supplied topology epoch is outdated."""


class ShareSessionLimitReachedError(RetriableError, code=ErrorCode.share_session_limit_reached):
    """The limit of share sessions has been reached."""


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
