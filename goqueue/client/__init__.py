"""The Go-Queue Python client: asyncio first, speaking the Kafka protocol through kio."""

from goqueue.client.admin import Admin, ClusterDescription, CreatedTopic, NewTopic
from goqueue.client.cluster import Cluster
from goqueue.client.connection import Connection
from goqueue.client.errors import *  # noqa: F403 (every error class, listed in its __all__)
from goqueue.client.errors import __all__ as _errors
from goqueue.client.metadata import TopicMetadata, TopicPartition
from goqueue.client.partitioner import Partitioner
from goqueue.client.producer import Producer
from goqueue.client.record_metadata import RecordMetadata

__all__ = [
    "Admin",
    "Cluster",
    "ClusterDescription",
    "Connection",
    "CreatedTopic",
    "NewTopic",
    "Partitioner",
    "Producer",
    "RecordMetadata",
    "TopicMetadata",
    "TopicPartition",
    *_errors,
]
