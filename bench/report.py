"""Results of one benchmark run, rendered as a Markdown table and as JSON."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.profiling import ProfileSummary
from bench.stats import Summary

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "<": operator.lt,
}


@dataclass(frozen=True, slots=True)
class Target:
    """A goal from the issue, checked against a figure's median."""

    op: str
    value: float

    def met(self, measured: float) -> bool:
        return _COMPARE[self.op](measured, self.value)

    def __str__(self) -> str:
        return f"{self.op} {number(self.value)}"


@dataclass(frozen=True, slots=True)
class Figure:
    """One reported number: a median of runs with its spread, and maybe a target."""

    section: str
    name: str
    unit: str
    summary: Summary
    target: Target | None = None

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met(self.summary.median)

    def to_json(self) -> dict[str, object]:
        return {
            "section": self.section,
            "name": self.name,
            "unit": self.unit,
            **self.summary.to_json(),
            "target": None if self.target is None else asdict(self.target),
            "met": self.met,
        }


@dataclass(slots=True)
class BenchResults:
    """Everything one `python -m bench` run measured, with the context needed to read it."""

    started_at: str
    command: str
    system: str
    driver: str
    machine: dict[str, str | int | float]
    config: dict[str, object]
    durability: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    profiles: dict[str, ProfileSummary] = field(default_factory=dict)

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        return figure

    @property
    def missed(self) -> list[Figure]:
        return [figure for figure in self.figures if figure.met is False]

    def to_json(self) -> dict[str, object]:
        return {
            "started_at": self.started_at,
            "command": self.command,
            "system": self.system,
            "driver": self.driver,
            "machine": self.machine,
            "config": self.config,
            "durability": self.durability,
            "figures": [figure.to_json() for figure in self.figures],
            "notes": self.notes,
            "profiles": {name: profile.to_json() for name, profile in self.profiles.items()},
        }

    def to_markdown(self) -> str:
        m = self.machine
        lines = [
            f"# {self.system} benchmark ({self.started_at})",
            "",
            f"Command: `{self.command}`",
            "",
            f"{machine_description(m)} Client and broker share the machine; load average at "
            f"start {m['load_average_at_start']} (1, 5, 15 min).",
            "",
            f"Durability: {self.durability}.",
            "",
            f"Client: {self.driver}. Each figure: median of runs, with min and max.",
            "",
            "| section | figure | median | min | max | unit | runs | target | met |",
            "|---|---|---:|---:|---:|---|---:|---|---|",
        ]
        for f in self.figures:
            s = f.summary
            met = "" if f.met is None else ("yes" if f.met else "**NO**")
            lines.append(
                f"| {f.section} | {f.name} | {number(s.median)} | {number(s.min)} | "
                f"{number(s.max)} | {f.unit} | {len(s.runs)} | {f.target or ''} | {met} |"
            )
        lines += [""] + [f"- {note}" for note in self.notes]
        for name, profile in self.profiles.items():
            lines += profile_markdown(name, profile)
        return "\n".join(lines) + "\n"

    def write(self, results_dir: Path, stamp: str) -> Path:
        """Write `<stamp>.md/.json` and `latest.md/.json`; returns the Markdown path."""
        results_dir.mkdir(parents=True, exist_ok=True)
        markdown = self.to_markdown()
        text = json.dumps(self.to_json(), indent=2, default=str) + "\n"
        for base in (stamp, "latest"):
            (results_dir / f"{base}.md").write_text(markdown)
            (results_dir / f"{base}.json").write_text(text)
        return results_dir / f"{stamp}.md"


def profile_markdown(name: str, profile: ProfileSummary) -> list[str]:
    """Three small tables: busy threads, then functions by self and by inclusive time."""
    lines = [
        "",
        f"## Broker profile: {name}",
        "",
        f"py-spy, {profile.samples} samples over {profile.seconds} s "
        f"(raw stacks: `{profile.raw_path}`). Percent of one core. Self time of "
        "`Runner.run` is uvloop's C code (socket I/O, event dispatch) with no Python frame "
        "above it; time in a C call (os.write, fdatasync, crc32c) counts for its caller.",
    ]
    for title, rows in (
        ("thread", profile.threads),
        ("function (self time)", profile.self_time),
        ("function (inclusive time)", profile.total_time),
    ):
        lines += ["", f"| {title} | % of a core |", "|---|---:|"]
        lines += [f"| `{label}` | {pct} |" for label, pct in rows]
    return lines


def machine_description(machine: dict[str, Any]) -> str:
    """The machine a run measured, as every results page states it."""
    m = machine
    return (
        f"Machine: {m['cores']} cores, {m['cpu_model']}, {m['memory_gib']} GiB RAM, "
        f"Python {m['python']}, Linux {m['kernel']}; data on {m['data_filesystem']}."
    )


def number(value: float) -> str:
    """Thousands separators for big numbers, three significant figures for small ones."""
    if abs(value) >= 999.5:
        return f"{value:,.0f}"
    return f"{value:.3g}"
