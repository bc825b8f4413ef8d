"""Produce a few keyed messages with headers and print where each landed.

python examples/produce.py [--bootstrap 127.0.0.1:9092] [--topic orders] [--count 10]
"""

import argparse
import asyncio

from goqueue.client import Producer


async def main(bootstrap: str, topic: str, count: int) -> None:
    # Idempotence is on by default: a retried batch is never stored twice.
    async with Producer(bootstrap, linger_ms=5, compression="zstd") as producer:
        # `send` waits for the broker's acknowledgement and says where the record landed.
        first = await producer.send(topic, b"order 0", key=b"customer-0", headers={"v": b"1"})
        print(f"sent {first.topic}[{first.partition}]@{first.offset}")
        # `enqueue` only buffers: await the futures (or `flush()`) to know the outcome.
        futures = [
            await producer.enqueue(topic, f"order {i}".encode(), key=f"customer-{i % 3}")
            for i in range(1, count)
        ]
        await producer.flush()
        for future in futures:
            meta = future.result()
            print(f"sent {meta.topic}[{meta.partition}]@{meta.offset}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="orders")
    parser.add_argument("--count", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.bootstrap, args.topic, args.count))
