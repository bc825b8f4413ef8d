"""Metrics instruments, error-code counting, fetched-record counting, request observation and
structured log formats, without sockets."""

from __future__ import annotations

import datetime
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from kio.schema.errors import ErrorCode
from log_helpers import append

from goqueue.log.config import LogConfig
from goqueue.log.partition_log import PartitionLog
from goqueue.observability import logs
from goqueue.observability.error_codes import count_errors
from goqueue.observability.instruments import LoopHistogram
from goqueue.observability.lag import GroupPartitionLag, largest_lags
from goqueue.observability.requests import RequestObserver
from goqueue.observability.traffic import Traffic, offsets_in
from goqueue.protocol.kafka.codec import build, nested, response_type


def test_histogram_counts_a_value_in_the_first_bucket_it_does_not_exceed() -> None:
    histogram = LoopHistogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 1.0, 7.0):
        histogram.observe(value)
    assert histogram.buckets() == [("0.1", 2.0), ("1.0", 4.0), ("+Inf", 5.0)]
    assert histogram.sum == pytest.approx(8.65)


def produce_response(codes: list[list[ErrorCode]]) -> object:
    """A Produce v9 response with one topic per inner list, one partition per code."""
    response = response_type(0, 9)
    topic = nested(response, "TopicProduceResponse")
    partition = nested(response, "PartitionProduceResponse")
    return build(
        response,
        responses=tuple(
            build(
                topic,
                name=f"t{i}",
                partition_responses=tuple(
                    build(
                        partition,
                        index=p,
                        error_code=code,
                        base_offset=-1,
                        log_append_time=None,
                        log_start_offset=-1,
                        record_errors=(),
                        error_message=None,
                    )
                    for p, code in enumerate(topic_codes)
                ),
            )
            for i, topic_codes in enumerate(codes)
        ),
        throttle_time=datetime.timedelta(0),
    )


def test_every_nested_error_code_but_none_is_counted() -> None:
    counted: list[ErrorCode] = []
    response = produce_response(
        [
            [ErrorCode.none, ErrorCode.unknown_topic_or_partition],
            [ErrorCode.message_too_large, ErrorCode.unknown_topic_or_partition],
        ]
    )
    count_errors(response, counted.append)
    assert sorted(counted) == sorted(
        [
            ErrorCode.unknown_topic_or_partition,
            ErrorCode.message_too_large,
            ErrorCode.unknown_topic_or_partition,
        ]
    )


def test_a_top_level_error_code_is_counted() -> None:
    response = response_type(1, 12)
    fetch = build(
        response,
        throttle_time=datetime.timedelta(0),
        error_code=ErrorCode.fetch_session_id_not_found,
        session_id=0,
        responses=(),
    )
    counted: list[ErrorCode] = []
    count_errors(fetch, counted.append)
    assert counted == [ErrorCode.fetch_session_id_not_found]


@pytest.fixture
def log(tmp_path: Path) -> Iterator[PartitionLog]:
    opened = PartitionLog(tmp_path / "t-0", "t", 0, LogConfig(segment_bytes=2000))
    yield opened
    opened.close()


def test_offsets_of_a_read_are_counted_from_batch_headers(log: PartitionLog) -> None:
    for _ in range(20):
        append(log, [3, 4])
    assert log.segment_count > 1, "the reads must cross segment ends"
    offset = 0
    total = 0
    while offset < log.log_end_offset:
        data = log.read(offset, 300)
        assert data is not None
        counted = offsets_in(data)
        assert counted > 0
        total += counted
        offset += counted
    assert total == log.log_end_offset == 140


def test_a_read_ending_at_the_log_end_counts_its_batches(log: PartitionLog) -> None:
    append(log, [5])
    append(log, [2, 1])
    data = log.read(5, 1 << 20)
    assert data is not None
    assert offsets_in(data) == 3


def test_traffic_is_counted_per_topic_and_forgotten_with_it(log: PartitionLog) -> None:
    append(log, [4])
    traffic = Traffic()
    traffic.produced("t", 100, 4)
    data = log.read(0, 1 << 20)
    assert data is not None
    topic = SimpleNamespace(topic="t", partitions=[SimpleNamespace(records=b"token")])
    traffic.fetched(SimpleNamespace(responses=[topic]), {b"token": data}, {})
    (name, totals), *_ = traffic.items()
    assert (name, totals.bytes_in, totals.records_in) == ("t", 100, 4)
    assert (totals.bytes_out, totals.records_out) == (data.size, 4)
    traffic.forget(["other"])
    assert traffic.items() == []


def test_requests_are_counted_per_api_and_version_with_errors_and_latency() -> None:
    observer = RequestObserver(enabled=True, slow_ms=-1)
    failing = produce_response([[ErrorCode.not_leader_or_follower]])
    for version in (9, 9, 8):
        observer.finished("Produce", 0, version, None, failing, 0.0)
    observer.finished("Produce", 0, 9, None, None, 0.0)
    assert sorted((s.version, s.count) for s in observer.versions()) == [(8, 1), (9, 3)]
    (api,) = observer.apis()
    assert api.errors == {ErrorCode.not_leader_or_follower: 3}
    assert api.latency.buckets()[-1] == ("+Inf", 4.0)


def test_disabled_metrics_count_nothing() -> None:
    observer = RequestObserver(enabled=False, slow_ms=-1)
    observer.finished("Produce", 0, 9, None, None, 0.0)
    assert list(observer.versions()) == []


def test_slow_requests_are_logged_but_a_fetch_may_wait_its_max_wait(
    caplog: pytest.LogCaptureFixture,
) -> None:
    observer = RequestObserver(enabled=True, slow_ms=0)
    waiting_fetch = SimpleNamespace(max_wait=datetime.timedelta(seconds=60))
    with caplog.at_level(logging.WARNING, "goqueue.requests"):
        observer.finished("Fetch", 1, 12, waiting_fetch, None, time.perf_counter())
        assert not caplog.records
        observer.finished("Produce", 0, 9, SimpleNamespace(), None, time.perf_counter())
    (record,) = caplog.records
    assert record.getMessage().startswith("slow request: Produce v9 took")
    assert record.duration_ms >= 0
    assert {api.name: api.slow for api in observer.apis()} == {"Fetch": 0, "Produce": 1}


def test_largest_lag_per_group() -> None:
    lags = [
        GroupPartitionLag("g", "t", 0, 5, 10, 5, 2.0),
        GroupPartitionLag("g", "t", 1, 1, 9, 8, 1.0),
        GroupPartitionLag("h", "t", 0, None, 10, None, None),
    ]
    assert [(g.group, g.max_lag, g.max_lag_seconds) for g in largest_lags(lags)] == [
        ("g", 8, 2.0),
        ("h", 0, 0.0),
    ]


def record(message: str, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("goqueue.test", logging.WARNING, __file__, 1, message, None, None)
    made.__dict__.update(extra)
    return made


def test_json_lines_carry_the_request_context_and_extra_fields() -> None:
    token = logs.current_request.set(("Produce", 9, 42, "my-client", "1.2.3.4:5"))
    try:
        line = logs.JsonFormatter().format(
            record("refused", **logs.fields(topic="t", partition=0, error_code=ErrorCode.none))
        )
    finally:
        logs.current_request.reset(token)
    parsed = json.loads(line)
    assert parsed["message"] == "refused"
    assert parsed["level"] == "warning"
    assert parsed["logger"] == "goqueue.test"
    assert parsed["client_id"] == "my-client"
    assert parsed["api"] == "Produce"
    assert parsed["correlation_id"] == 42
    assert (parsed["topic"], parsed["partition"], parsed["error_code"]) == ("t", 0, "none")


def test_text_lines_append_context_as_key_value_pairs() -> None:
    line = logs.TextFormatter().format(record("slow", peer="a b", duration_ms=3.5))
    assert line.endswith('WARNING goqueue.test: slow peer="a b" duration_ms=3.5')


def test_the_level_changes_at_run_time_and_bad_levels_are_refused() -> None:
    name = "goqueue.test.level"
    logs.set_level("debug", name)
    assert logs.levels()[name] == "debug"
    logging.getLogger(name).setLevel(logging.NOTSET)
    with pytest.raises(ValueError, match="log level must be one of"):
        logs.set_level("chatty", name)
