"""The blocking API: the same Admin, Producer and Consumer without asyncio.

python examples/sync_usage.py [--bootstrap 127.0.0.1:9092] [--topic sync-demo]
"""

import argparse
import contextlib

from goqueue.client import TopicAlreadyExistsError
from goqueue.client.sync import Admin, Consumer, Producer


def main(bootstrap: str, topic: str) -> None:
    with Admin(bootstrap) as admin, contextlib.suppress(TopicAlreadyExistsError):
        admin.create_topic(topic, num_partitions=2)

    with Producer(bootstrap) as producer:
        meta = producer.send(topic, b"hello", key=b"greeting")  # blocks until acknowledged
        print(f"sent {meta.topic}[{meta.partition}]@{meta.offset}")
        futures = [producer.enqueue(topic, f"message {i}".encode()) for i in range(9)]
        producer.flush()
        print(f"sent {len(futures)} more, last at offset {futures[-1].result().offset}")

    with Consumer(
        bootstrap, group_id=f"{topic}-group", topics=[topic], auto_offset_reset="earliest"
    ) as consumer:
        received = []
        for message in consumer:  # blocks for each message
            received.append(message.value)
            if len(received) == 10:
                break
        consumer.commit()
        print(f"received {len(received)} message(s), {received.count(b'hello')} hello")

    with Admin(bootstrap) as admin:
        for lag in admin.group_lag(f"{topic}-group"):
            print(f"lag {lag.topic}[{lag.partition}]: {lag.lag}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="sync-demo")
    args = parser.parse_args()
    main(args.bootstrap, args.topic)
