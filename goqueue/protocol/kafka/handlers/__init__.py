"""One module per Kafka API; this registry is what the server dispatches on and advertises."""

from goqueue.protocol.kafka.api import Api
from goqueue.protocol.kafka.handlers import (
    alter_configs,
    api_versions,
    create_partitions,
    create_topics,
    delete_records,
    delete_topics,
    describe_cluster,
    describe_configs,
    fetch,
    incremental_alter_configs,
    init_producer_id,
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
        describe_configs,
        alter_configs,
        incremental_alter_configs,
        create_partitions,
        delete_records,
        init_producer_id,
    )
}
