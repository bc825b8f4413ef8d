"""What a fault test saw, and the checker that proves no acknowledged message was harmed.

A fault test produces numbered messages (the value is the decimal sequence number) with an
idempotent producer, records every acknowledgement, records what consumers read and which
offsets the group committed, and finally reads every partition from the start. The checker
then proves Kafka's promises for `acks=all` with `min.insync.replicas` met:

- every acknowledged message is in the final log exactly once, at the offset it was
  acknowledged with, and each partition holds its messages in the order they were sent;
- nothing a consumer read was later lost or replaced (consumers read only up to the high
  watermark, so what they saw is committed data);
- committed group offsets never moved backwards.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Placed:
    """A numbered message at a position in a partition."""

    partition: int
    offset: int
    seq: int


@dataclass
class History:
    """Everything one fault test observed, in the order it observed it."""

    acked: list[Placed] = field(default_factory=list)
    consumed: list[Placed] = field(default_factory=list)
    commits: list[tuple[int, int]] = field(default_factory=list)
    """(partition, committed offset) in the order they were seen."""
    final_log: list[Placed] = field(default_factory=list)


def violations(history: History) -> list[str]:
    """Every broken promise, each described; an empty list means the history is sound."""
    return [
        *_acked_in_final_log(history),
        *_final_log_in_send_order(history),
        *_consumed_never_lost(history),
        *_commits_monotonic(history),
    ]


def _acked_in_final_log(history: History) -> list[str]:
    positions: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for record in history.final_log:
        positions[record.seq].append((record.partition, record.offset))
    problems = [
        f"message {seq} is in the log {len(places)} times: {sorted(places)}"
        for seq, places in positions.items()
        if len(places) > 1
    ]
    for ack in history.acked:
        places = positions.get(ack.seq, [])
        if (ack.partition, ack.offset) not in places:
            problems.append(
                f"acknowledged message {ack.seq} at {ack.partition}@{ack.offset} is "
                f"{'at ' + str(sorted(places)) if places else 'missing'}"
            )
    return problems


def _final_log_in_send_order(history: History) -> list[str]:
    last_seq: dict[int, Placed] = {}
    problems = []
    for record in sorted(history.final_log, key=lambda r: (r.partition, r.offset)):
        before = last_seq.get(record.partition)
        if before is not None and record.seq < before.seq:
            problems.append(
                f"partition {record.partition} holds {record.seq}@{record.offset} after "
                f"{before.seq}@{before.offset}: out of send order"
            )
        last_seq[record.partition] = record
    return problems


def _consumed_never_lost(history: History) -> list[str]:
    final = {(r.partition, r.offset): r.seq for r in history.final_log}
    return [
        f"consumer read {r.seq} at {r.partition}@{r.offset}, the log now has "
        f"{final.get((r.partition, r.offset), 'nothing')} there"
        for r in dict.fromkeys(history.consumed)
        if final.get((r.partition, r.offset)) != r.seq
    ]


def _commits_monotonic(history: History) -> list[str]:
    highest: dict[int, int] = {}
    problems = []
    for partition, offset in history.commits:
        if offset < highest.get(partition, -1):
            problems.append(
                f"committed offset of partition {partition} moved back from "
                f"{highest[partition]} to {offset}"
            )
        highest[partition] = max(offset, highest.get(partition, -1))
    return problems
