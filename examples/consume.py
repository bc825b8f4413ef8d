"""Consume a topic as a member of a consumer group and commit what was processed.

Start several copies with the same --group: the group's partitions are shared among them,
and rebalanced when one starts or stops.

    python examples/consume.py [--bootstrap 127.0.0.1:9092] [--topic orders] [--group billing]
                               [--count 10]
"""

import argparse
import asyncio

from goqueue.client import Consumer, TopicPartition


def on_assign(partitions: list[TopicPartition]) -> None:
    print(f"assigned {sorted(tp.partition for tp in partitions)}")


async def main(bootstrap: str, topic: str, group: str, count: int) -> None:
    async with Consumer(
        bootstrap,
        group_id=group,
        topics=[topic],
        auto_offset_reset="earliest",  # a new group starts at the oldest message
        enable_auto_commit=False,  # commit after processing: at-least-once
        partition_assignment_strategy=["cooperative-sticky"],
        on_assign=on_assign,
    ) as consumer:
        processed = 0
        async for message in consumer:
            print(
                f"got {message.topic}[{message.partition}]@{message.offset} "
                f"key={message.key!r} value={message.value!r}"
            )
            processed += 1
            if processed % 5 == 0 or processed == count:
                await consumer.commit()  # the positions of everything handed out so far
            if processed == count:
                break
        print(f"committed {processed} message(s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="orders")
    parser.add_argument("--group", default="billing")
    parser.add_argument("--count", type=int, default=10, help="stop after this many messages")
    args = parser.parse_args()
    asyncio.run(main(args.bootstrap, args.topic, args.group, args.count))
