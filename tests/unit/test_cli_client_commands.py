"""The pure parts of `goqueue produce` and `goqueue consume`: parsing input, routing,
formatting output, reading time stamps."""

from __future__ import annotations

import asyncio
import datetime
import io

import pytest

from goqueue.cli.client_options import CommandError
from goqueue.cli.consume import Formatter, parse_timestamp
from goqueue.cli.produce import LineParser, Router, read_rounds
from goqueue.client.metadata import TopicPartition
from goqueue.client.partitioner import partition_for_key
from goqueue.records.batch import TimestampType
from goqueue.records.builder import NewRecord
from goqueue.records.reader import ConsumedRecord

RECORD = ConsumedRecord(
    offset=7,
    timestamp_ms=1_700_000_000_123,
    timestamp_type=TimestampType.create_time,
    key=b"k1",
    value=b"caf\xc3\xa9 \xff",
    headers=(("trace", b"abc"), ("empty", None)),
)


def test_formatter_fills_every_placeholder() -> None:
    formatter = Formatter(
        "{topic}/{partition}@{offset} {key}={value} [{headers}] {timestamp} {time}"
    )
    assert formatter.render(TopicPartition("t", 2), RECORD) == (
        "t/2@7 k1=café \\xff [trace=abc,empty=] 1700000000123 2023-11-14T22:13:20.123+00:00"
    )


def test_formatter_supports_format_specs_and_renders_a_null_key_empty() -> None:
    record = ConsumedRecord(1, 0, TimestampType.create_time, None, b"v", ())
    assert Formatter("{offset:>4}|{key}|{value}").render(TopicPartition("t", 0), record) == (
        "   1||v"
    )


def test_formatter_rejects_unknown_placeholders_naming_the_available_ones() -> None:
    with pytest.raises(CommandError, match=r"unknown placeholder \{vaule\}.*\{value\}"):
        Formatter("{vaule}")
    with pytest.raises(CommandError, match="bad --format"):
        Formatter("{value")


def test_timestamps_are_epoch_ms_or_iso_8601() -> None:
    assert parse_timestamp("1700000000123") == 1_700_000_000_123
    assert parse_timestamp("2023-11-14T22:13:20.123Z") == 1_700_000_000_123
    assert parse_timestamp("2023-11-14T23:13:20+01:00") == 1_700_000_000_000
    local = datetime.datetime(2023, 11, 14, 22, 13, 20).astimezone()
    assert parse_timestamp("2023-11-14T22:13:20") == int(local.timestamp() * 1000)
    with pytest.raises(CommandError, match="ISO 8601"):
        parse_timestamp("yesterday")


def test_lines_split_into_key_and_value_at_the_first_separator() -> None:
    parser = LineParser(b":", [("source", b"cli")])
    records = parser.parse([b"a:1", b"b:2:3", b":empty-key"])
    assert [(r.key, r.value) for r in records] == [
        (b"a", b"1"),
        (b"b", b"2:3"),
        (b"", b"empty-key"),
    ]
    assert all(r.headers == (("source", b"cli"),) for r in records)
    parser.commit(records)
    with pytest.raises(CommandError, match="line 5 has no key separator ':' \\(3 earlier"):
        parser.parse([b"c:4", b"no separator"])


def test_without_separator_the_whole_line_is_the_value() -> None:
    (record,) = LineParser(None, []).parse([b"a:1"])
    assert (record.key, record.value) == (None, b"a:1")


def test_router_uses_the_java_partitioner_for_keys_and_one_partition_per_round_otherwise() -> None:
    router = Router("t", 3, None)
    keyed = [NewRecord(b"user-%d" % n, b"v") for n in range(20)]
    routed = router.route(keyed)
    for tp, records in routed.items():
        assert all(partition_for_key(r.key or b"", 3) == tp.partition for r in records)
    first = router.route([NewRecord(None, b"a"), NewRecord(None, b"b")])
    second = router.route([NewRecord(None, b"c")])
    assert len(first) == 1 and len(second) == 1
    assert next(iter(first)).partition != next(iter(second)).partition


def test_router_honours_a_fixed_partition_and_rejects_a_missing_one() -> None:
    routed = Router("t", 3, 2).route([NewRecord(b"k", b"v"), NewRecord(None, b"w")])
    assert list(routed) == [TopicPartition("t", 2)]
    with pytest.raises(CommandError, match="has no partition 3 \\(it has 3\\)"):
        Router("t", 3, 3)


def test_read_rounds_yields_complete_lines_and_a_final_unterminated_one() -> None:
    async def collect(data: bytes, chunk: int) -> tuple[list[bytes], int]:
        lines, consumed = [], 0
        async for round_lines, size in read_rounds(
            io.BufferedReader(io.BytesIO(data)), chunk_bytes=chunk, round_bytes=8
        ):
            lines += round_lines
            consumed += size
        return lines, consumed

    data = b"one\ntwo\n\nthree words\nlast"
    for chunk in (1, 3, 64):
        assert asyncio.run(collect(data, chunk)) == (
            [b"one", b"two", b"", b"three words", b"last"],
            len(data),
        )
    assert asyncio.run(collect(b"a\n", 64)) == ([b"a"], 2)
    assert asyncio.run(collect(b"", 64)) == ([], 0)
