"""Delayed messages with confluent-kafka and headers: due order, never early, late by less
than a second; cancels; ids; the limits; the CLI and the HTTP API; metrics."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

from client_compat import DEADLINE_S
from confluent_kafka import KafkaError, Producer
from delayed_helpers import Reader, create_delayed_topic, delayed_broker, now_ms
from typer.testing import CliRunner, Result

from goqueue.cli.main import app
from goqueue.testing.process import BrokerProcess

__all__ = ["delayed_broker"]
HOUR_MS = 3_600_000


class Sender:
    """A confluent-kafka producer that keeps every delivery report."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        self.reports: list[tuple[KafkaError | None, int]] = []

    def send(self, topic: str, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        self.producer.produce(
            topic,
            value=value,
            partition=0,
            headers=headers,
            on_delivery=lambda error, message: self.reports.append((error, message.offset())),
        )

    def flush(self) -> list[tuple[KafkaError | None, int]]:
        assert self.producer.flush(DEADLINE_S) == 0
        reports, self.reports = self.reports, []
        return reports


def http(broker: BrokerProcess, path: str, method: str = "GET") -> Any:
    request = urllib.request.Request(f"http://127.0.0.1:{broker.http_port}{path}", method=method)
    with urllib.request.urlopen(request, timeout=DEADLINE_S) as response:
        return json.load(response)


def test_mixed_delays_arrive_in_due_order_never_early_and_within_a_second(
    delayed_broker: BrokerProcess,
) -> None:
    topic = create_delayed_topic(delayed_broker.bootstrap, "delayed-order")
    sender = Sender(delayed_broker.bootstrap)
    start = now_ms()
    due = {}
    for i in range(60):
        delay_ms = 300 + (i * 7919) % 6000 + i
        if i % 2:
            headers = [("goqueue.delay-ms", str(delay_ms).encode())]
        else:
            headers = [("goqueue.deliver-at", str(start + delay_ms).encode())]
        due[b"m%d" % i] = start + delay_ms
        sender.send(topic, b"m%d" % i, [*headers, ("app", b"kept")])
    sender.send(topic, b"past", [("goqueue.deliver-at", str(start - HOUR_MS).encode())])
    assert all(error is None for error, _ in sender.flush())
    reader = Reader(delayed_broker.bootstrap, topic)
    arrivals = reader.read(61)
    reader.close()
    assert arrivals[0].value == b"past"
    delayed = arrivals[1:]
    assert sorted(a.value for a in delayed) == sorted(due)
    scheduled = [a.scheduled_ms for a in delayed]
    assert scheduled == sorted(scheduled), "not in due order"
    for arrival in delayed:
        assert arrival.headers["app"] == b"kept"
        # goqueue.delay-ms counts from when the broker got the record, a little after `start`
        assert 0 <= arrival.scheduled_ms - due[arrival.value] < 1000
        assert arrival.timestamp_ms >= arrival.scheduled_ms, "delivered early"
        assert arrival.received_ms >= due[arrival.value], "consumed before its time"
        assert arrival.timestamp_ms - arrival.scheduled_ms < 1000
        assert arrival.received_ms - due[arrival.value] < 1000


def test_a_cancelled_message_never_arrives(delayed_broker: BrokerProcess) -> None:
    topic = create_delayed_topic(delayed_broker.bootstrap, "delayed-cancel")
    sender = Sender(delayed_broker.bootstrap)
    near = [("goqueue.delay-ms", b"1000"), ("goqueue.schedule-id", b"near-1")]
    far = [("goqueue.delay-ms", b"3000"), ("goqueue.schedule-id", b"far-1")]
    sender.send(topic, b"cancelled near", near)
    sender.send(topic, b"cancelled far", far)
    sender.send(topic, b"kept", [("goqueue.delay-ms", b"3500")])
    assert all(error is None for error, _ in sender.flush())
    sender.send(topic, b"", [("goqueue.cancel-schedule-id", b"near-1")])
    assert sender.flush() == [(None, None)]  # offset -1: nothing was appended
    assert http(delayed_broker, "/api/v1/delayed/far-1", "DELETE")["cancelled"] is True
    sender.send(topic, b"", [("goqueue.cancel-schedule-id", b"far-1")])
    [(error, _)] = sender.flush()
    assert error is not None and error.code() == KafkaError.INVALID_RECORD
    reader = Reader(delayed_broker.bootstrap, topic)
    arrivals = reader.read(1)
    arrivals += reader.poll(1.0)
    reader.close()
    assert [a.value for a in arrivals] == [b"kept"]


def test_the_produce_response_offset_names_a_message_without_an_id(
    delayed_broker: BrokerProcess,
) -> None:
    topic = create_delayed_topic(delayed_broker.bootstrap, "delayed-ids")
    sender = Sender(delayed_broker.bootstrap)
    sender.send(topic, b"later", [("goqueue.delay-ms", str(HOUR_MS).encode())])
    [(error, offset)] = sender.flush()
    assert error is None
    schedule_id = f"{topic}-0@{offset}"
    shown = http(delayed_broker, f"/api/v1/delayed/{schedule_id}")
    assert (shown["topic"], shown["value"], shown["state"]) == (topic, "later", "pending")
    assert shown["due_ms"] > now_ms() + HOUR_MS - 60_000
    assert http(delayed_broker, f"/api/v1/delayed/{schedule_id}", "DELETE")["cancelled"]


def test_records_without_delay_headers_go_straight_to_the_log(
    delayed_broker: BrokerProcess,
) -> None:
    topic = create_delayed_topic(delayed_broker.bootstrap, "delayed-plain")
    sender = Sender(delayed_broker.bootstrap)
    sender.send(topic, b"plain", [("app", b"1")])
    assert sender.flush() == [(None, 0)]
    reader = Reader(delayed_broker.bootstrap, topic)
    [arrival] = reader.read(1)
    reader.close()
    assert arrival.offset == 0
    assert arrival.headers == {"app": b"1"}


def test_other_topics_ignore_the_headers(delayed_broker: BrokerProcess) -> None:
    topic = create_delayed_topic(
        delayed_broker.bootstrap, "not-delayed", **{"goqueue.delayed.enabled": "false"}
    )
    sender = Sender(delayed_broker.bootstrap)
    sender.send(topic, b"now", [("goqueue.delay-ms", str(HOUR_MS).encode())])
    assert sender.flush() == [(None, 0)]


def test_malformed_and_too_distant_times_are_refused_with_invalid_record(
    delayed_broker: BrokerProcess,
) -> None:
    topic = create_delayed_topic(
        delayed_broker.bootstrap, "delayed-limits", **{"goqueue.delayed.max.delay.ms": "60000"}
    )
    sender = Sender(delayed_broker.bootstrap)
    for headers in (
        [("goqueue.delay-ms", b"soon")],
        [("goqueue.deliver-at", b"")],
        [("goqueue.delay-ms", b"120000")],
        [("goqueue.deliver-at", str(now_ms() + 120_000).encode())],
    ):
        sender.send(topic, b"x", headers)
        [(error, _)] = sender.flush()
        assert error is not None and error.code() == KafkaError.INVALID_RECORD, headers
    sender.send(topic, b"ok", [("goqueue.delay-ms", b"59000")])
    assert sender.flush()[0][0] is None
    assert "beyond the topic's goqueue.delayed.max.delay.ms=60000" in delayed_broker.log_text()


def test_the_cli_lists_shows_and_cancels(delayed_broker: BrokerProcess) -> None:
    topic = create_delayed_topic(delayed_broker.bootstrap, "delayed-cli")
    sender = Sender(delayed_broker.bootstrap)
    for i in range(3):
        headers = [
            ("goqueue.delay-ms", str(HOUR_MS + i * 60_000).encode()),
            ("goqueue.schedule-id", f"{topic}-cli-{i}".encode()),
        ]
        sender.send(topic, b"payload %d" % i, headers)
    assert all(error is None for error, _ in sender.flush())
    address = f"127.0.0.1:{delayed_broker.http_port}"

    def cli(*args: str) -> Result:
        return CliRunner().invoke(app, ["delayed", *args, "--http", address])

    listed = cli("list", "--topic", topic, "--json")
    assert listed.exit_code == 0, listed.stderr
    ids = [m["schedule_id"] for m in json.loads(listed.stdout)]
    assert ids == [f"{topic}-cli-{i}" for i in range(3)]
    shown = cli("show", f"{topic}-cli-1")
    assert json.loads(shown.stdout)["value"] == "payload 1"
    assert cli("cancel", f"{topic}-cli-1").exit_code == 0
    again = cli("cancel", f"{topic}-cli-1")
    assert again.exit_code == 1
    assert "No pending delayed message" in again.stderr
    listed = cli("list", "--topic", topic, "--json")
    assert [m["schedule_id"] for m in json.loads(listed.stdout)] == [
        f"{topic}-cli-0",
        f"{topic}-cli-2",
    ]


def test_metrics_count_pending_messages_and_lateness(delayed_broker: BrokerProcess) -> None:
    topic = create_delayed_topic(delayed_broker.bootstrap, "delayed-metrics")
    sender = Sender(delayed_broker.bootstrap)
    sender.send(topic, b"soon", [("goqueue.delay-ms", b"100")])
    sender.send(topic, b"later", [("goqueue.delay-ms", str(HOUR_MS).encode())])
    assert all(error is None for error, _ in sender.flush())
    reader = Reader(delayed_broker.bootstrap, topic)
    reader.read(1)
    reader.close()
    with urllib.request.urlopen(
        f"http://127.0.0.1:{delayed_broker.http_port}/metrics", timeout=DEADLINE_S
    ) as response:
        samples = dict(
            line.rsplit(" ", 1)
            for line in response.read().decode().splitlines()
            if line.startswith("goqueue_delayed")
        )
    assert float(samples["goqueue_delayed_pending_records"]) >= 1
    assert "goqueue_delayed_due_records" in samples
    assert float(samples["goqueue_delayed_lateness_seconds_count"]) >= 1


def test_the_delayed_messages_page_example_runs(delayed_broker: BrokerProcess) -> None:
    """docs/delayed-messages.md opens with a runnable example: the delayed record arrives
    second, two seconds after it was sent."""
    page = (Path(__file__).parents[2] / "docs" / "delayed-messages.md").read_text()
    code = re.search(r"```python\n(.*?)```", page, re.S)
    assert code is not None
    scope: dict[str, Any] = {}
    exec(code.group(1).replace('"127.0.0.1:9092"', repr(delayed_broker.bootstrap)), scope)
    (first, _), (second, after_s) = scope["arrived"]
    assert (first, second) == (b"right away", b"in two seconds")
    assert 2.0 <= after_s < 3.0
