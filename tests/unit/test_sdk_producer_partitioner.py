"""The producer's partitioner: Kafka's murmur2, bit for bit, and the keyless rules."""

from collections import Counter

import pytest

from goqueue.client.partitioner import Partitioner, murmur2, partition_for_key

JAVA_VECTORS = {
    # org.apache.kafka.common.utils.UtilsTest.testMurmur2
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
    # librdkafka's rdmurmur2.c unit test (the same function: murmur2_random's keyed half)
    b"kafka": -798503068,
    b"giberish123456789": -1890243828,
    b"1234": -1614185708,
    b"234": -406844982,
    b"34": -2026295078,
    b"4": 1514888353,
    b"PreAmbleWillBeRemoved,ThePrePartThatIs": 2017611548,
    b"reAmbleWillBeRemoved,ThePrePartThatIs": 1247982455,
    b"eAmbleWillBeRemoved,ThePrePartThatIs": -521871202,
    b"AmbleWillBeRemoved,ThePrePartThatIs": 1656271935,
    b"": 275646681,
}


@pytest.mark.parametrize(("key", "expected"), JAVA_VECTORS.items())
def test_murmur2_matches_the_java_client_and_librdkafka(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


def test_keys_use_the_positive_hash_modulo_the_partition_count() -> None:
    # "21" hashes negative: toPositive masks the sign bit rather than taking abs().
    assert partition_for_key(b"21", 1000) == (-973932308 & 0x7FFFFFFF) % 1000
    partitioner = Partitioner()
    for key in JAVA_VECTORS:
        for count in (1, 3, 12):
            assert partitioner.partition("t", key, count) == partition_for_key(key, count)


def test_sticky_keeps_one_partition_until_a_new_batch_then_moves_elsewhere() -> None:
    partitioner = Partitioner()
    first = partitioner.partition("t", None, 6)
    assert {partitioner.partition("t", None, 6) for _ in range(50)} == {first}
    previous = first
    for _ in range(50):
        moved = partitioner.on_new_batch("t", 6, previous)
        assert moved != previous
        assert partitioner.partition("t", None, 6) == moved
        previous = moved


def test_sticky_on_a_single_partition_stays_there() -> None:
    partitioner = Partitioner()
    assert partitioner.partition("t", None, 1) == 0
    assert partitioner.on_new_batch("t", 1, 0) == 0


def test_round_robin_cycles_per_topic_and_ignores_new_batches() -> None:
    partitioner = Partitioner("round_robin")
    assert [partitioner.partition("a", None, 3) for _ in range(4)] == [0, 1, 2, 0]
    assert partitioner.partition("b", None, 3) == 0
    assert partitioner.on_new_batch("a", 3, 1) == 1
    assert partitioner.partition("a", None, 3) == 1


def test_random_spreads_keyless_records_over_every_partition() -> None:
    partitioner = Partitioner("random")
    seen = Counter(partitioner.partition("t", None, 4) for _ in range(400))
    assert set(seen) == {0, 1, 2, 3}


def test_unknown_keyless_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="keyless"):
        Partitioner("hash")  # type: ignore[arg-type]
