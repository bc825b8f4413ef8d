"""Results of `python -m bench compare`: one table per workload case, systems as rows."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from bench.profiling import ProfileSummary
from bench.report import machine_description, number, profile_markdown
from bench.stats import Summary


@dataclass(frozen=True, slots=True)
class Cell:
    """One figure of one target in one workload case, or why it could not be measured."""

    workload: str
    case: str
    target: str
    metric: str
    summary: Summary | None
    error: str | None = None

    def text(self) -> str:
        if self.summary is None:
            return f"failed: {self.error}"
        s = self.summary
        if len(s.runs) == 1:
            return number(s.median)
        return f"{number(s.median)} ({number(s.min)} to {number(s.max)})"

    def to_json(self) -> dict[str, object]:
        return {
            "workload": self.workload,
            "case": self.case,
            "target": self.target,
            "metric": self.metric,
            **(self.summary.to_json() if self.summary else {"error": self.error}),
        }


@dataclass(slots=True)
class CompareResults:
    """Everything one comparison run measured, with the context needed to read it."""

    started_at: str
    command: str
    machine: dict[str, str | int | float]
    config: dict[str, object]
    systems: dict[str, dict[str, str]] = field(default_factory=dict)
    targets: dict[str, dict[str, str]] = field(default_factory=dict)
    limits: list[tuple[str, str, Summary]] = field(default_factory=list)
    workloads: dict[str, str] = field(default_factory=dict)
    cells: list[Cell] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    profiles: dict[str, ProfileSummary] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "started_at": self.started_at,
            "command": self.command,
            "machine": self.machine,
            "config": self.config,
            "systems": self.systems,
            "targets": self.targets,
            "limits": [
                {"figure": name, "unit": unit, **s.to_json()} for name, unit, s in self.limits
            ],
            "workloads": self.workloads,
            "cells": [cell.to_json() for cell in self.cells],
            "notes": self.notes,
            "profiles": {name: profile.to_json() for name, profile in self.profiles.items()},
        }

    def to_markdown(self) -> str:
        m = self.machine
        lines = [
            f"# Comparison benchmark ({self.started_at})",
            "",
            f"Command: `{self.command}`",
            "",
            f"{machine_description(m)} Clients and broker share the machine. "
            "Load average (1, 5, 15 min) at start "
            f"{m['load_average_at_start']}; before each system and at the end in the notes.",
            "",
            "Each figure: median of runs (min to max). Throughput counts message values only "
            "(1 msg/s of 1 KiB = 1,024 B/s); broker CPU is the server's process tree in % of "
            "one core over the timed window; client CPU adds up every client process.",
            "",
            "## Systems and durability",
            "",
            "| system | version | what an acknowledgement means |",
            "|---|---|---|",
        ]
        lines += [
            f"| {name} | {info['version']} | {info['durability']} |"
            for name, info in self.systems.items()
        ]
        lines += [
            "",
            "## Clients, and what a partition and a consumer group are on each",
            "",
            "| system / client | partition | consumer group |",
            "|---|---|---|",
        ]
        lines += [
            f"| {label} | {info['partition']} | {info['group']} |"
            for label, info in self.targets.items()
        ]
        lines += ["", "## Physical limits (same run)", ""]
        lines += ["| figure | median (min to max) | unit |", "|---|---:|---|"]
        lines += [
            f"| {name} | {Cell('', '', '', unit, s).text()} | {unit} |"
            for name, unit, s in self.limits
        ]
        for workload, description in self.workloads.items():
            lines += ["", f"## {workload}", "", description]
            cases = list(dict.fromkeys(c.case for c in self.cells if c.workload == workload))
            for case in cases:
                lines += _case_table(case, [c for c in self.cells if c.workload == workload])
        lines += ["", "## Notes", ""] + [f"- {note}" for note in self.notes]
        for name, profile in self.profiles.items():
            lines += profile_markdown(name, profile)
        return "\n".join(lines) + "\n"

    def write(self, results_dir: Path, stamp: str) -> Path:
        """`<stamp>-compare.md/.json` and `latest-compare.md/.json`; returns the Markdown path."""
        results_dir.mkdir(parents=True, exist_ok=True)
        markdown = self.to_markdown()
        text = json.dumps(self.to_json(), indent=2, default=str) + "\n"
        for base in (f"{stamp}-compare", "latest-compare"):
            (results_dir / f"{base}.md").write_text(markdown)
            (results_dir / f"{base}.json").write_text(text)
        return results_dir / f"{stamp}-compare.md"


def _case_table(case: str, cells: list[Cell]) -> list[str]:
    """Rows: targets; columns: metrics. A failed target gets one cell saying why."""
    cells = [c for c in cells if c.case == case]
    metrics = list(dict.fromkeys(c.metric for c in cells if c.summary is not None))
    targets = list(dict.fromkeys(c.target for c in cells))
    lines = ["", f"**{case}**", "", "| system / client | " + " | ".join(metrics) + " |"]
    lines.append("|---|" + "---:|" * len(metrics))
    for target in targets:
        row = {c.metric: c for c in cells if c.target == target}
        failed = next((c for c in row.values() if c.summary is None), None)
        if failed is not None:
            lines.append(f"| {target} | {failed.text()} |" + " |" * (len(metrics) - 1))
            continue
        texts = [row[m].text() if m in row else "" for m in metrics]
        lines.append(f"| {target} | " + " | ".join(texts) + " |")
    return lines
