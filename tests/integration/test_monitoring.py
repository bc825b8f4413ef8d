"""Monitoring of a real broker under real clients: `/metrics` against what the clients did,
health during recovery and under load, structured and slow-request logs, the admin API and
`goqueue status`."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from client_compat import collect, unique_topic, wait_for
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import MessageSizeTooLargeError, TopicAlreadyExistsError
from prometheus_client.parser import text_string_to_metric_families

from goqueue.log.layout import partition_dir_name, segment_path
from goqueue.records.batch import set_base_offset
from goqueue.records.builder import NewRecord, build_batch
from goqueue.testing.process import BrokerProcess, free_port

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def http(process: BrokerProcess, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{process.http_port}{path}", timeout=10, **kwargs)


def scrape(process: BrokerProcess) -> Series:
    """Every sample of `/metrics`, parsed by the Prometheus client's own text parser."""
    response = http(process, "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(series: Series, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0 if none)."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in series.items() if n == name and wanted <= have)


def create_topic(
    process: BrokerProcess, partitions: int = 1, configs: dict[str, str] | None = None
) -> str:
    name = unique_topic("monitoring")
    admin = KafkaAdminClient(bootstrap_servers=process.bootstrap, client_id="monitoring-admin")
    try:
        admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs or {})])
    finally:
        admin.close()
    return name


def producer(process: BrokerProcess, client_id: str) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=process.bootstrap,
        acks=1,
        linger_ms=0,
        retries=0,
        enable_idempotence=False,
        client_id=client_id,
    )


def produce_one_by_one(
    process: BrokerProcess, topic: str, count: int, partitions: int, client_id: str
) -> None:
    """One Produce request per record: each send waits for its acknowledgement."""
    sender = producer(process, client_id)
    try:
        for i in range(count):
            sender.send(topic, b"record %d" % i, partition=i % partitions).get(timeout=10)
    finally:
        sender.close()


def consume(consumer: KafkaConsumer, count: int, what: str) -> list[Any]:
    """Poll until `count` records arrived, asking for no more than are missing."""
    return collect(
        lambda missing: [
            record
            for records in consumer.poll(timeout_ms=500, max_records=missing).values()
            for record in records
        ],
        count,
        what,
    )


def test_metrics_match_what_the_clients_did(broker: BrokerProcess) -> None:
    topic = create_topic(broker, partitions=2)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, client_id="monitoring-admin")
    with pytest.raises(TopicAlreadyExistsError):
        admin.create_topics([NewTopic(topic, 2, 1)])
    before = scrape(broker)
    sent = 30
    produce_one_by_one(broker, topic, sent, 2, "monitoring-producer")
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
    try:
        consumer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        consumer.seek_to_beginning()
        received = consume(consumer, sent, "records")
    finally:
        consumer.close()
    assert len(received) == sent
    after = scrape(broker)
    admin.close()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("goqueue_requests_total", api="Produce") == sent
    assert delta("goqueue_request_duration_seconds_count", api="Produce") == sent
    assert delta("goqueue_request_duration_seconds_sum", api="Produce") > 0
    buckets = sorted(
        (float(dict(labels)["le"]), v)
        for (name, labels), v in after.items()
        if name == "goqueue_request_duration_seconds_bucket" and ("api", "Produce") in labels
    )
    counts = [v for _le, v in buckets]
    assert counts == sorted(counts), "buckets are cumulative"
    assert counts[-1] == value(after, "goqueue_request_duration_seconds_count", api="Produce")
    assert value(after, "goqueue_requests_total", api="Fetch") > 0
    refused = {"api": "CreateTopics", "error": "topic_already_exists"}
    assert value(after, "goqueue_request_errors_total", **refused) == 1
    stored = value(after, "goqueue_partition_log_size_bytes", topic=topic)
    assert stored > 0
    assert value(after, "goqueue_topic_records_in_total", topic=topic) == sent
    assert value(after, "goqueue_topic_bytes_in_total", topic=topic) == stored
    assert value(after, "goqueue_topic_records_out_total", topic=topic) == sent
    assert value(after, "goqueue_topic_bytes_out_total", topic=topic) == stored
    for partition in ("0", "1"):
        labels = {"topic": topic, "partition": partition}
        assert value(after, "goqueue_partition_log_end_offset", **labels) == sent / 2
        assert value(after, "goqueue_partition_high_watermark", **labels) == sent / 2
        assert value(after, "goqueue_partition_log_start_offset", **labels) == 0
        assert value(after, "goqueue_partition_log_segments", **labels) == 1
    assert value(after, "goqueue_partitions_offline") == 0
    assert value(after, "goqueue_partitions_under_replicated") == 0
    assert value(after, "goqueue_controller_active") == 1
    assert value(after, "goqueue_ready") == 1
    assert delta("goqueue_connections_accepted_total") >= 2
    assert value(after, "goqueue_connections") >= 1, "the admin client is still connected"
    wait_for(
        lambda: value(scrape(broker), "goqueue_log_fsync_duration_seconds_count") or None,
        "the flush.ms fsync of the produced data",
    )
    assert value(after, "process_resident_memory_bytes") > 0
    assert value(after, "process_open_fds") > 0
    assert value(after, "goqueue_event_loop_lag_seconds_count") > 0


def test_consumer_group_lag_follows_the_committed_offsets(broker: BrokerProcess) -> None:
    topic = create_topic(broker)
    group = unique_topic("monitoring-group")
    produce_one_by_one(broker, topic, 20, 1, "lag-producer")
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    labels = {"group": group, "topic": topic, "partition": "0"}
    try:
        consume(consumer, 5, "the first records")
        consumer.commit()
        lagging = scrape(broker)
        assert value(lagging, "goqueue_consumer_group_lag_records", **labels) == 15
        assert value(lagging, "goqueue_consumer_group_max_lag_records", group=group) == 15
        assert value(lagging, "goqueue_consumer_group_lag_seconds", **labels) >= 0
        (described,) = [g for g in http(broker, "/api/v1/groups").json() if g["group"] == group]
        assert described["max_lag"] == 15
        assert described["partitions"][0]["committed_offset"] == 5
        consume(consumer, 15, "the remaining records")
        consumer.commit()
    finally:
        consumer.close()
    caught_up = scrape(broker)
    assert value(caught_up, "goqueue_consumer_group_lag_records", **labels) == 0
    assert value(caught_up, "goqueue_consumer_group_max_lag_seconds", group=group) == 0


def write_unclean_tail(data_dir: Path, topic: str, first_offset: int, count: int) -> None:
    """Append `count` one-record batches to the partition's only segment, as a crash before
    any fsync would leave them: the next start must scan (recover) every one of them."""
    template = build_batch([NewRecord(None, b"recover me")], now_ms=int(time.time() * 1000))
    tail = bytearray(template * count)
    for i in range(count):
        set_base_offset(tail, i * len(template), first_offset + i)
    segment = segment_path(data_dir / partition_dir_name(topic, 0), 0, ".log")
    with segment.open("ab") as file:
        file.write(tail)


def test_ready_only_once_log_recovery_is_done(tmp_path: Path) -> None:
    process = BrokerProcess(tmp_path / "data")
    process.start()
    try:
        topic = create_topic(process)
        produce_one_by_one(process, topic, 1, 1, "before-crash")
    finally:
        process.kill()
    recovered = 100_000
    write_unclean_tail(process.data_dir, topic, 1, recovered)
    seen: list[dict[str, Any]] = []

    def probe() -> dict[str, Any] | None:
        try:
            response = http(process, "/health/ready")
        except httpx.TransportError:
            return None
        seen.append(response.json())
        return seen[-1] if response.status_code == 200 else None

    with ThreadPoolExecutor(1) as pool:
        starting = pool.submit(process.start)
        try:
            wait_for(probe, "readiness after recovery", timeout=60)
        finally:
            starting.result(timeout=60)
    try:
        recovering = [
            body
            for body in seen
            if body["checks"]["metadata_current"] and not body["checks"]["logs_loaded"]
        ]
        assert recovering, f"never saw the logs loading: {seen}"
        (partition,) = http(process, f"/api/v1/topics/{topic}").json()["partitions"]
        assert partition["log_end_offset"] == 1 + recovered
    finally:
        process.stop()


LOAD_SCRIPT = """
import sys, time
from confluent_kafka import Producer
producer = Producer({"bootstrap.servers": sys.argv[1], "linger.ms": 1})
deadline = time.monotonic() + float(sys.argv[3])
while time.monotonic() < deadline:
    try:
        producer.produce(sys.argv[2], b"x" * 200)
    except BufferError:
        producer.poll(0.01)
    producer.poll(0)
producer.flush(10)
"""


def test_live_answers_within_100_ms_under_load(broker: BrokerProcess) -> None:
    """The load runs in its own process, so the probes measure the broker, not the GIL."""
    topic = create_topic(broker)
    load = subprocess.Popen([sys.executable, "-c", LOAD_SCRIPT, broker.bootstrap, topic, "30"])
    try:

        def produced() -> float:
            return value(scrape(broker), "goqueue_topic_records_in_total", topic=topic)

        wait_for(lambda: produced() > 10_000 or None, "the load to reach the broker")
        durations = []
        with httpx.Client(base_url=f"http://127.0.0.1:{broker.http_port}") as client:
            for _ in range(30):
                started = time.perf_counter()
                response = client.get("/health/live")
                durations.append(time.perf_counter() - started)
                assert response.status_code == 200
                assert response.json()["status"] == "live"
        loaded_before, loaded_after = produced(), produced()
    finally:
        load.kill()
        load.wait()
    assert loaded_after > loaded_before, "the probes ran under load"
    assert statistics.median(durations) < 0.1, durations


def json_lines(process: BrokerProcess) -> list[dict[str, Any]]:
    """The broker's log lines (all but the ready line printed on stdout), each parsed."""
    lines = process.log_text().splitlines()
    return [json.loads(line) for line in lines if not line.startswith("Go-Queue broker listening")]


def test_json_logs_with_context_slow_requests_and_a_runtime_log_level(tmp_path: Path) -> None:
    process = BrokerProcess(
        tmp_path / "data", "--log-format", "json", env={"GOQUEUE_REQUEST_SLOW_LOG_MS": "0"}
    )
    with process:
        topic = create_topic(process)

        def slow_produce_lines(client_id: str) -> list[dict[str, Any]]:
            return [
                line
                for line in json_lines(process)
                if line["message"].startswith("slow request: Produce")
                and line.get("client_id") == client_id
            ]

        produce_one_by_one(process, topic, 1, 1, "logged-client")
        (line,) = wait_for(lambda: slow_produce_lines("logged-client") or None, "a slow log")
        assert line["level"] == "warning"
        assert line["logger"] == "goqueue.requests"
        assert line["api"] == "Produce"
        assert line["duration_ms"] >= 0
        assert line["peer"].startswith("127.0.0.1:")

        url = f"http://127.0.0.1:{process.http_port}/api/v1/log-level"
        quiet = httpx.put(url, json={"level": "error", "logger": "goqueue.requests"})
        assert quiet.json()["levels"]["goqueue.requests"] == "error"
        produce_one_by_one(process, topic, 1, 1, "quiet-client")
        assert httpx.put(url, json={"level": "warning", "logger": "goqueue.requests"}).is_success
        produce_one_by_one(process, topic, 1, 1, "loud-client")
        wait_for(lambda: slow_produce_lines("loud-client") or None, "a slow log after quiet")
        assert slow_produce_lines("quiet-client") == []
        refused = httpx.put(url, json={"level": "chatty"})
        assert refused.status_code == 422
        assert "log level must be one of" in refused.text

        small = create_topic(process, configs={"max.message.bytes": "100"})
        oversized = producer(process, "oversized-client")
        with pytest.raises(MessageSizeTooLargeError):
            oversized.send(small, b"x" * 500).get(timeout=10)
        oversized.close()
        (refusal,) = wait_for(
            lambda: (
                [
                    line
                    for line in json_lines(process)
                    if line["message"].startswith(f"produce to {small}-0")
                    and line.get("client_id") == "oversized-client"
                ]
                or None
            ),
            "the refused produce's log line",
        )
        assert (refusal["topic"], refusal["partition"]) == (small, 0)
        assert refusal["error_code"] == "message_too_large"
    assert process.stop() == 0
    assert json_lines(process)[-1]["message"] == "shutdown complete"


def test_the_admin_api_and_its_openapi_spec(shared_broker: BrokerProcess) -> None:
    topic = create_topic(shared_broker, partitions=3)
    paths = http(shared_broker, "/openapi.json").json()["paths"]
    assert {
        "/metrics",
        "/health/live",
        "/health/ready",
        "/api/v1/cluster",
        "/api/v1/brokers",
        "/api/v1/topics",
        "/api/v1/topics/{name}",
        "/api/v1/log-level",
    } <= set(paths)
    cluster = http(shared_broker, "/api/v1/cluster").json()
    assert cluster["ready"] is True
    assert cluster["controller_id"] == cluster["node_id"] == 0
    (me,) = http(shared_broker, "/api/v1/brokers").json()
    assert (me["port"], me["controller"], me["this_node"]) == (shared_broker.port, True, True)
    described = http(shared_broker, f"/api/v1/topics/{topic}").json()
    assert [p["partition"] for p in described["partitions"]] == [0, 1, 2]
    assert described["partitions"][0]["leader"] == 0
    assert topic in [t["name"] for t in http(shared_broker, "/api/v1/topics").json()]
    assert http(shared_broker, "/api/v1/topics/no-such-topic").status_code == 404


def test_status_prints_a_summary_of_a_running_broker(shared_broker: BrokerProcess) -> None:
    topic = create_topic(shared_broker)
    produce_one_by_one(shared_broker, topic, 3, 1, "status-producer")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "goqueue.cli.main",
            "status",
            "--http",
            f"127.0.0.1:{shared_broker.http_port}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"at 127.0.0.1:{shared_broker.http_port}: ready" in result.stdout
    (row,) = [line for line in result.stdout.splitlines() if topic in line]
    cells = [cell.strip() for cell in row.split("│")]
    assert cells[1:4] == [topic, "1", "3"]


def test_status_names_an_unreachable_broker() -> None:
    address = f"127.0.0.1:{free_port()}"
    result = subprocess.run(
        [sys.executable, "-m", "goqueue.cli.main", "status", "--http", address],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert f"cannot reach the broker's HTTP API at http://{address}" in result.stderr
