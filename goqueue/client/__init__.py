"""The Go-Queue Python client: asyncio first, speaking the Kafka protocol through kio."""

from goqueue.client.admin import Admin, ClusterDescription, CreatedTopic, NewTopic
from goqueue.client.cluster import Cluster
from goqueue.client.connection import Connection
from goqueue.client.errors import (
    BrokerConnectionError,
    ClientError,
    KafkaError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)
from goqueue.client.metadata import TopicMetadata, TopicPartition

__all__ = [
    "Admin",
    "BrokerConnectionError",
    "ClientError",
    "Cluster",
    "ClusterDescription",
    "Connection",
    "CreatedTopic",
    "KafkaError",
    "NewTopic",
    "TopicAlreadyExistsError",
    "TopicMetadata",
    "TopicPartition",
    "UnknownTopicOrPartitionError",
]
