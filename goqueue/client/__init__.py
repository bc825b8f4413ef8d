"""The Go-Queue Python client: asyncio first, speaking the Kafka protocol through kio."""

from goqueue.client.admin import Admin, ClusterDescription, CreatedTopic, NewTopic
from goqueue.client.cluster import Cluster
from goqueue.client.connection import Connection
from goqueue.client.errors import *  # noqa: F403 (every error class, listed in its __all__)
from goqueue.client.errors import __all__ as _errors
from goqueue.client.metadata import TopicMetadata, TopicPartition

__all__ = [
    "Admin",
    "Cluster",
    "ClusterDescription",
    "Connection",
    "CreatedTopic",
    "NewTopic",
    "TopicMetadata",
    "TopicPartition",
    *_errors,
]
