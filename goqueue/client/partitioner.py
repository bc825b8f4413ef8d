"""Key to partition, compatible with the Java client so a key lands where Kafka's clients put it.

Keyed records go to `toPositive(murmur2(key)) % partitions`, as with the Java client's default
partitioner and librdkafka's `murmur2_random`. Keyless records follow one of three rules:
sticky (KIP-480: stay on one partition until its batch is sent, then move), round robin, or
random (librdkafka's choice for null keys).
"""

import itertools
import random
import struct
from typing import Literal

M = 0x5BD1E995
SEED = 0x9747B28C
MASK = 0xFFFFFFFF

Keyless = Literal["sticky", "round_robin", "random"]


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), as a signed 32-bit int.

    Runs for every keyed record, so the 4-byte words are unpacked in one call and each step
    masks once (masking commutes with the xor of two products)."""
    length = len(data)
    h = SEED ^ length
    words = length >> 2
    for k in struct.unpack_from(f"<{words}I", data):
        k = (k * M) & MASK
        k ^= k >> 24
        h = ((h * M) ^ (k * M)) & MASK
    if length & 3:
        h = ((h ^ int.from_bytes(data[words << 2 :], "little")) * M) & MASK
    h ^= h >> 13
    h = (h * M) & MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for_key(key: bytes, num_partitions: int) -> int:
    """The Java default partitioner's choice for a non-null key: toPositive(murmur2) % n."""
    return (murmur2(key) & 0x7FFFFFFF) % num_partitions


class Partitioner:
    """Chooses a partition for each record; subclass it to route records your own way.

    The producer calls `partition` for every record sent without an explicit partition, and
    `on_new_batch` when a keyless record would open a new batch on the partition just chosen:
    the hook sticky partitioning needs.
    """

    def __init__(self, keyless: Keyless = "sticky") -> None:
        if keyless not in ("sticky", "round_robin", "random"):
            raise ValueError(f"keyless must be sticky, round_robin or random, not {keyless!r}")
        self.keyless = keyless
        self._sticky: dict[str, int] = {}
        self._counters: dict[str, itertools.count[int]] = {}

    def partition(self, topic: str, key: bytes | None, num_partitions: int) -> int:
        """The partition of a record of `topic` with `key` (None for keyless records)."""
        if key is not None:
            return partition_for_key(key, num_partitions)
        if self.keyless == "round_robin":
            return next(self._counters.setdefault(topic, itertools.count())) % num_partitions
        if self.keyless == "random":
            return random.randrange(num_partitions)
        sticky = self._sticky.get(topic)
        if sticky is None or sticky >= num_partitions:
            sticky = self._sticky[topic] = random.randrange(num_partitions)
        return sticky

    def on_new_batch(self, topic: str, num_partitions: int, previous: int) -> int:
        """A keyless record would open a new batch on `previous`: the partition to put it in.
        Sticky partitioning moves on to another partition; the other rules keep `previous`."""
        if self.keyless != "sticky" or num_partitions < 2:
            return previous
        choice = random.randrange(num_partitions - 1)
        self._sticky[topic] = choice + 1 if choice >= previous else choice
        return self._sticky[topic]
