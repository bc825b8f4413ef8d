"""The Go-Queue Python client: asyncio first, speaking the Kafka protocol through kio.

`Producer`, `Consumer` and `Admin` are async context managers; `goqueue.client.sync` has the
same three names as blocking wrappers over the same objects. Every exception derives from
`ClientError`; broker error codes raise a `KafkaError` subclass per code (see `errors`).
"""

from goqueue.client.admin import HIGH_WATERMARK, Admin, ClusterDescription, CreatedTopic, NewTopic
from goqueue.client.cluster import Cluster
from goqueue.client.configs import (
    AlterConfigOp,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    OpType,
    ResourceType,
)
from goqueue.client.connection import Connection
from goqueue.client.consumer import Consumer
from goqueue.client.errors import *  # noqa: F403 (every error class, listed in its __all__)
from goqueue.client.errors import __all__ as _errors
from goqueue.client.fetcher import ConsumerRecord
from goqueue.client.groups import (
    Committed,
    GroupDescription,
    GroupMember,
    ListedGroup,
    OffsetMove,
    OffsetReset,
)
from goqueue.client.metadata import BrokerAddress, PartitionMetadata, TopicMetadata, TopicPartition
from goqueue.client.offsets import EARLIEST, LATEST, MAX_TIMESTAMP, OffsetAndTimestamp
from goqueue.client.partitioner import Partitioner
from goqueue.client.producer import Producer
from goqueue.client.record_metadata import RecordMetadata
from goqueue.client.share_consumer import (
    AckFailure,
    AcknowledgementError,
    ShareConsumer,
    ShareMessage,
)
from goqueue.client.share_session import AckType
from goqueue.client.subscription_modes import (
    ExclusiveSubscriptionError,
    SubscriptionMode,
    subscribe,
)
from goqueue.coordinator.group.lag import PartitionLag

__all__ = [
    "EARLIEST",
    "HIGH_WATERMARK",
    "LATEST",
    "MAX_TIMESTAMP",
    "AckFailure",
    "AckType",
    "AcknowledgementError",
    "Admin",
    "AlterConfigOp",
    "BrokerAddress",
    "Cluster",
    "ClusterDescription",
    "Committed",
    "ConfigEntry",
    "ConfigResource",
    "ConfigSource",
    "Connection",
    "Consumer",
    "ConsumerRecord",
    "CreatedTopic",
    "ExclusiveSubscriptionError",
    "GroupDescription",
    "GroupMember",
    "ListedGroup",
    "NewTopic",
    "OffsetAndTimestamp",
    "OffsetMove",
    "OffsetReset",
    "OpType",
    "PartitionLag",
    "PartitionMetadata",
    "Partitioner",
    "Producer",
    "RecordMetadata",
    "ResourceType",
    "ShareConsumer",
    "ShareMessage",
    "SubscriptionMode",
    "TopicMetadata",
    "TopicPartition",
    "subscribe",
    *_errors,
]
