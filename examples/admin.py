"""Administer a cluster: create a topic, change its configs, grow it, look at the cluster and
at a consumer group's lag, then delete the topic.

    python examples/admin.py [--bootstrap 127.0.0.1:9092] [--topic admin-demo]
"""

import argparse
import asyncio

from goqueue.client import (
    Admin,
    AlterConfigOp,
    ConfigResource,
    OffsetReset,
    OpType,
    TopicAlreadyExistsError,
    TopicPartition,
)


async def main(bootstrap: str, topic: str) -> None:
    async with Admin(bootstrap) as admin:
        cluster = await admin.describe_cluster()
        print(
            f"cluster {cluster.cluster_id}: controller {cluster.controller_id}, "
            f"{len(cluster.brokers)} broker(s)"
        )

        try:
            await admin.create_topic(topic, num_partitions=3, configs={"retention.ms": "3600000"})
        except TopicAlreadyExistsError as exc:
            print(f"note: {exc}")
        (described,) = await admin.describe_topics([topic])
        print(f"topic {described.name}: {len(described.partitions)} partitions")

        resource = ConfigResource.topic(topic)
        await admin.incremental_alter_configs(
            resource, [AlterConfigOp("retention.ms", OpType.SET, "7200000")]
        )
        configs = await admin.describe_topic_configs(topic)
        print(f"retention.ms = {configs['retention.ms']}")

        await admin.create_partitions(topic, 4)
        (grown,) = await admin.describe_topics([topic])
        print(f"topic {topic}: now {len(grown.partitions)} partitions")

        # A group's offsets can be set, reset and inspected while it has no active members.
        group = f"{topic}-readers"
        await admin.alter_group_offsets(group, {TopicPartition(topic, 0): 0})
        moved = await admin.reset_group_offsets(group, OffsetReset.latest())
        print(f"reset {group}: {', '.join(f'{tp.partition}->{m.new}' for tp, m in moved.items())}")
        for lag in await admin.group_lag(group):
            print(f"lag {lag.topic}[{lag.partition}]: {lag.lag} message(s)")
        await admin.delete_groups([group])

        await admin.delete_topics([topic])
        print(f"deleted {topic}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="admin-demo")
    args = parser.parse_args()
    asyncio.run(main(args.bootstrap, args.topic))
