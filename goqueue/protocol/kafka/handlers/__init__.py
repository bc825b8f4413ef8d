"""One module per Kafka API; this registry is what the server dispatches on and advertises."""

from goqueue.protocol.kafka.api import Api
from goqueue.protocol.kafka.handlers import (
    api_versions,
    create_topics,
    delete_topics,
    describe_cluster,
    fetch,
    list_offsets,
    metadata,
    produce,
    sasl_handshake,
)

APIS: dict[int, Api] = {
    module.API.key: module.API
    for module in (
        produce,
        fetch,
        list_offsets,
        metadata,
        sasl_handshake,
        api_versions,
        create_topics,
        delete_topics,
        describe_cluster,
    )
}
