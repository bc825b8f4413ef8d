"""Delayed messages across restarts: 100,000 messages due over a minute with the broker
SIGKILLed again and again while they come due (afterwards every message is in its topic
exactly once, and none before its time), and a clean restart with messages on disk, one of
them cancelled."""

from __future__ import annotations

import re
import time
from pathlib import Path

from client_compat import DEADLINE_S
from confluent_kafka import Producer
from delayed_helpers import Reader, create_delayed_topic, now_ms

from goqueue.testing.process import BrokerProcess

CANCEL = "goqueue.cancel-schedule-id"
COUNT = 100_000
PARTITIONS = 4
FIRST_DUE_MS = 8_000
SPREAD_MS = 60_000
KILLS = 6
WINDOW_MS = 10_000
"""Windows of 10 s: at any time most of the pending messages are on disk, not in memory."""


def park(bootstrap: str, topic: str) -> int:
    """Send the messages (due FIRST_DUE_MS to FIRST_DUE_MS + SPREAD_MS from now, in a
    shuffled order); returns when the broker has acknowledged every one."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 2000}
    )
    errors: list[object] = []
    start = now_ms()
    for i in range(COUNT):
        position = (i * 7919) % COUNT
        deliver_at = start + FIRST_DUE_MS + position * SPREAD_MS // COUNT
        producer.produce(
            topic,
            value=b"%06d" % i,
            partition=i % PARTITIONS,
            headers=[("goqueue.deliver-at", str(deliver_at).encode())],
            on_delivery=lambda error, _: errors.append(error) if error else None,
        )
        if i % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(2 * DEADLINE_S) == 0
    assert errors == []
    return start


def test_sigkills_while_100000_messages_are_pending_lose_and_duplicate_none(
    tmp_path: Path,
) -> None:
    broker = BrokerProcess(tmp_path / "data", env={"GOQUEUE_SCHEDULER_WINDOW_MS": str(WINDOW_MS)})
    broker.start()
    try:
        topic = create_delayed_topic(broker.bootstrap, "delayed-crash", PARTITIONS)
        start = park(broker.bootstrap, topic)
        parked_s = (now_ms() - start) / 1000
        for kill in range(KILLS):
            pause_until = start + FIRST_DUE_MS + (kill + 1) * SPREAD_MS // (KILLS + 1)
            time.sleep(max(pause_until - now_ms(), 0) / 1000)
            broker.kill()
            broker.start()
        reader = Reader(broker.bootstrap, topic, PARTITIONS)
        arrivals = reader.read(COUNT, timeout_s=SPREAD_MS / 1000 + DEADLINE_S)
        arrivals += reader.poll(1.0)
        reader.close()
    finally:
        broker.stop()
    values = sorted(a.value for a in arrivals)
    assert len(values) == COUNT, f"{len(values)} deliveries of {COUNT} messages"
    assert values == [b"%06d" % i for i in range(COUNT)], "lost or duplicated messages"
    early = [a for a in arrivals if a.timestamp_ms < a.scheduled_ms]
    assert early == [], f"{len(early)} delivered early"
    settled = re.findall(r"had (\d+) messages in flight, (\d+) of them appended", broker.log_text())
    print(
        f"parked {COUNT} in {parked_s:.1f} s; {KILLS} SIGKILLs; intents settled on restart "
        f"(in flight, already appended): {settled}"
    )


def test_pending_and_cancelled_messages_survive_a_clean_restart(tmp_path: Path) -> None:
    """Messages far enough out to be in window files on disk, one of them cancelled: after a
    restart the others arrive on time and the cancelled one never does."""
    broker = BrokerProcess(tmp_path / "data", env={"GOQUEUE_SCHEDULER_WINDOW_MS": "1000"})
    broker.start()
    try:
        topic = create_delayed_topic(broker.bootstrap, "delayed-restart")
        producer = Producer({"bootstrap.servers": broker.bootstrap})
        due_ms = now_ms() + 6000
        for name in (b"a", b"b", b"c"):
            headers = [
                ("goqueue.deliver-at", str(due_ms).encode()),
                ("goqueue.schedule-id", b"restart-" + name),
            ]
            producer.produce(topic, value=name, partition=0, headers=headers)
        assert producer.flush(DEADLINE_S) == 0
        errors: list[object] = []
        producer.produce(
            topic,
            value=b"",
            partition=0,
            headers=[(CANCEL, b"restart-b")],
            on_delivery=lambda error, _: errors.append(error),
        )
        assert producer.flush(DEADLINE_S) == 0
        assert errors == [None]
        broker.stop()
        broker.start()
        reader = Reader(broker.bootstrap, topic)
        arrivals = reader.read(2)
        arrivals += reader.poll(1.0)
        reader.close()
    finally:
        broker.stop()
    assert sorted(a.value for a in arrivals) == [b"a", b"c"]
    assert all(a.timestamp_ms >= due_ms for a in arrivals)
