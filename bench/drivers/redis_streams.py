"""Redis Streams through redis-py with hiredis: pipelined XADD, XREADGROUP with one XACK per
batch. A partition is one stream key; a consumer group is a Redis consumer group."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import redis

from bench.drivers.base import (
    BenchError,
    ConsumeResult,
    ConsumeSpec,
    Pacer,
    ProduceResult,
    ProduceSpec,
    Receipts,
    chunks,
)

PIPELINE = 1_000
"""XADDs per pipeline round trip at full speed."""
READ_COUNT = 1_000
BLOCK_MS = 100
FIELD = b"v"


def stream_key(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


def group_name(group: int) -> str:
    return f"group-{group}"


@dataclass(frozen=True, slots=True)
class RedisStreamsClient:
    host: str
    port: int
    name: str = "redis-py + hiredis"

    def _connect(self) -> redis.Redis:
        return redis.Redis(self.host, self.port, socket_timeout=60)

    def create(self, topic: str, partitions: int, groups: int) -> None:
        """Streams are created by their first XADD; groups (at id 0) with MKSTREAM."""
        with self._connect() as client:
            for chunk in chunks(
                [(p, g) for p in range(partitions) for g in range(groups)], PIPELINE
            ):
                pipe = client.pipeline(transaction=False)
                for partition, group in chunk:
                    pipe.xgroup_create(
                        stream_key(topic, partition), group_name(group), "0", mkstream=True
                    )
                pipe.execute()

    def delete(self, topic: str, partitions: int, groups: int) -> None:
        with self._connect() as client:
            for chunk in chunks([stream_key(topic, p) for p in range(partitions)], PIPELINE):
                client.delete(*chunk)

    def send(self, spec: ProduceSpec, ready: Callable[[], None]) -> ProduceResult:
        keys = [stream_key(spec.topic, p) for p in range(spec.partitions)]
        padding = spec.padding()
        with self._connect() as client:
            client.ping()
            ready()
            pacer = Pacer(spec, PIPELINE)
            acked = 0
            for batch in pacer.batches():
                pipe = client.pipeline(transaction=False)
                for seq in batch:
                    pipe.xadd(keys[spec.partition(seq)], {FIELD: spec.payload(seq, padding)})
                acked += len(pipe.execute())
            return pacer.result(acked)

    def receive(self, spec: ConsumeSpec, ready: Callable[[], None]) -> ConsumeResult:
        key, group = stream_key(spec.topic, 0), group_name(spec.group)
        with self._connect() as client:
            client.ping()
            ready()
            receipts = Receipts(spec)
            while not receipts.done and receipts.remaining_s() > 0:
                answer = client.xreadgroup(
                    group, "bench", {key: ">"}, count=READ_COUNT, block=BLOCK_MS
                )
                if not answer:
                    continue
                entries = answer[0][1]
                receipts.add([fields[FIELD] for _, fields in entries])
                if client.xack(key, group, *(entry_id for entry_id, _ in entries)) != len(entries):
                    raise BenchError("XACK acknowledged fewer entries than were read")
            return receipts.result()
