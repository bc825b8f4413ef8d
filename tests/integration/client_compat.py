"""What every client-compatibility test module shares: the codecs, a recognisable set of
records to send and compare, unique topic names and polling with a deadline.

Each client has its own record type, so the tests turn what they consumed into `Sample`s
and compare those with what they sent: one comparison, the same for every client.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
"""Every compression codec a Kafka producer may use, by the name all clients accept."""

ROUND_TRIP_COUNT = 100_000
DEADLINE_S = 30.0


@dataclass(frozen=True, slots=True)
class Sample:
    """One record as a client sends it and as a consumer must get it back."""

    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int


def unique_topic(prefix: str) -> str:
    """Topic names never repeat, so tests sharing one broker cannot see each other's data."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def samples(count: int, tag: str, *, base_ts: int | None = None, step_ms: int = 1) -> list[Sample]:
    """Records with distinct keys (every fifth one null), values long enough to be compressed
    for real, two headers and increasing timestamps `step_ms` apart, starting `base_ts`
    (by default a minute ago, so the broker's own clock cannot be mistaken for them)."""
    start = now_ms() - 60_000 if base_ts is None else base_ts
    return [
        Sample(
            key=None if i % 5 == 0 else f"key-{i}".encode(),
            value=f"{tag} value {i} ".encode() * 8,
            headers=(("index", str(i).encode()), ("tag", tag.encode())),
            timestamp_ms=start + i * step_ms,
        )
        for i in range(count)
    ]


def round_trip_value(index: int) -> bytes:
    """The value of message `index` of the 100,000-message round trip: it names its index,
    so a lost, duplicated or reordered message is found by comparing values with positions."""
    return b"message %08d" % index


def assert_round_trip(values: Sequence[bytes | None]) -> None:
    """Every message of the round trip arrived once and in order. On failure name the first
    wrong position rather than diffing 100,000 values."""
    assert len(values) == ROUND_TRIP_COUNT, f"{len(values)} of {ROUND_TRIP_COUNT} messages"
    for index, value in enumerate(values):
        expected = round_trip_value(index)
        assert value == expected, f"message {index} is {value!r}, expected {expected!r}"


def wait_for(poll: Callable[[], T | None], what: str, timeout: float = DEADLINE_S) -> T:
    """Call `poll` until it returns something other than None; fail naming `what` after the
    deadline. Clients that block inside `poll` (a consumer's poll timeout) pace this loop."""
    deadline = time.monotonic() + timeout
    while True:
        result = poll()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def collect(
    fetch: Callable[[int], Sequence[T]], count: int, what: str, timeout: float = DEADLINE_S
) -> list[T]:
    """Accumulate what `fetch(missing)` returns (a consumer poll for at most `missing` items,
    with a short timeout) until `count` items arrived; fail after the deadline saying how many
    did. Asking for no more than are missing keeps batch polls from idling to their timeout."""
    got: list[T] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s: {len(got)}/{count} {what}")
        got.extend(fetch(count - len(got)))
    return got


def read_back(
    bootstrap: str, topic: str, partitions: int = 1, timeout: float = DEADLINE_S
) -> dict[int, list[tuple[int, bytes]]]:
    """(offset, value) of every record of each partition, read from the log start to the end
    offset with kafka-python by manual assignment: what is stored, as a consumer sees it."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
    )
    try:
        tps = [TopicPartition(topic, index) for index in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        stored: dict[int, list[tuple[int, bytes]]] = {index: [] for index in range(partitions)}
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, f"read back {stored} of {ends}"
            for tp, records in consumer.poll(timeout_ms=500).items():
                stored[tp.partition] += [(record.offset, record.value) for record in records]
        return stored
    finally:
        consumer.close()
