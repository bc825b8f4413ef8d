"""Sampling profiles of the system under test (py-spy), summarised as where the time goes."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

SAMPLE_RATE = 100
TOP = 15
LOOP_ENTRY = "Runner.run (asyncio/runners.py)"
_LINE = re.compile(r" \((?P<file>[^():]+):\d+\)$")


def find_py_spy() -> str | None:
    """py-spy from the running virtualenv first (where `pip install py-spy` puts it), else PATH."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return shutil.which("py-spy", path=search)


@dataclass(frozen=True, slots=True)
class ProfileSummary:
    """Percentages are of wall-clock samples of one core: 50 means half a core, all run long."""

    seconds: float
    samples: int
    threads: list[tuple[str, float]]
    self_time: list[tuple[str, float]]
    total_time: list[tuple[str, float]]
    raw_path: str

    def to_json(self) -> dict[str, object]:
        return {
            "seconds": self.seconds,
            "samples": self.samples,
            "threads_pct_of_core": self.threads,
            "self_pct_of_core": self.self_time,
            "total_pct_of_core": self.total_time,
            "raw_path": self.raw_path,
        }


class PySpyRecorder:
    """`py-spy record` attached to a PID for the duration of a `with` block (bounded anyway).

    Sampling pauses the broker for each sample: without that, stacks read from a running
    uvloop process come out torn. The profiled run is slower and is reported apart.
    """

    def __init__(self, py_spy: str, pid: int, raw_path: Path, max_seconds: float) -> None:
        self._command = [
            py_spy, "record", "--pid", str(pid), "--format", "raw", "--output", str(raw_path),
            "--rate", str(SAMPLE_RATE), "--threads",
            "--duration", str(max(1, int(max_seconds))),
        ]  # fmt: skip
        self._raw_path = raw_path
        self._log_path = raw_path.with_suffix(".log")
        self._process: subprocess.Popen[bytes] | None = None
        self._started = 0.0
        self.summary: ProfileSummary | None = None

    def __enter__(self) -> PySpyRecorder:
        with self._log_path.open("wb") as log:
            self._process = subprocess.Popen(self._command, stdout=log, stderr=subprocess.STDOUT)
        self._started = time.monotonic()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Ctrl-C makes py-spy stop sampling and write what it has."""
        assert self._process is not None
        seconds = time.monotonic() - self._started
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
        self._process.wait(60)
        if exc_type is None:
            if not self._raw_path.exists():
                raise RuntimeError(f"py-spy wrote nothing: {self._log_path.read_text()}")
            self.summary = summarize(self._raw_path, seconds)


def _function(frame: str) -> str:
    """`name (file:line)` to `name (file)`: a function's samples add up across its lines."""
    return _LINE.sub(r" (\g<file>)", frame)


def _read_stacks(raw_path: Path) -> list[tuple[str, list[str], int]]:
    """(thread, functions root first, sample count) per line of py-spy's raw output."""
    stacks = []
    for line in raw_path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            thread, *frames = stack.split(";")
            name = thread.partition(": ")[2] or thread
            stacks.append((name, [_function(frame) for frame in frames], int(count)))
    return stacks


def _below_loop(functions: list[str]) -> list[str]:
    """The frames under the event loop's entry: uvloop runs callbacks and coroutine steps from C,
    so py-spy shows them without the frames above the loop; cut those from full stacks too."""
    entries = [i for i, function in enumerate(functions) if function == LOOP_ENTRY]
    return functions[entries[-1] + 1 :] if entries else functions


def _common_prefixes(stacks: list[tuple[str, list[str], int]]) -> dict[str, int]:
    """Per thread, how many root frames all its (loop-cut, non-empty) stacks share."""
    prefixes: dict[str, list[str]] = {}
    for thread, full, _ in stacks:
        functions = _below_loop(full)
        if not functions:
            continue
        prefix = prefixes.setdefault(thread, functions)
        depth = next(
            (i for i, (a, b) in enumerate(zip(prefix, functions, strict=False)) if a != b),
            min(len(prefix), len(functions)),
        )
        prefixes[thread] = prefix[:depth]
    return {thread: len(prefix) for thread, prefix in prefixes.items()}


def summarize(raw_path: Path, seconds: float) -> ProfileSummary:
    """Self and inclusive time per function and busy time per thread from py-spy raw stacks.

    Inclusive time leaves out the event loop's callers and the frames every stack of a thread
    shares (thread bootstrap, executor worker): they would top the table and say nothing.
    """
    stacks = _read_stacks(raw_path)
    shared = _common_prefixes(stacks)
    self_samples: Counter[str] = Counter()
    total_samples: Counter[str] = Counter()
    thread_samples: Counter[str] = Counter()
    for thread, functions, count in stacks:
        thread_samples[thread] += count
        if functions:
            self_samples[functions[-1]] += count
        for function in set(_below_loop(functions)[shared.get(thread, 0) :]):
            total_samples[function] += count
    per_core = SAMPLE_RATE * seconds / 100

    def top(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(n / per_core, 1)) for name, n in counter.most_common(TOP)]

    return ProfileSummary(
        seconds=round(seconds, 2),
        samples=sum(thread_samples.values()),
        threads=top(thread_samples),
        self_time=top(self_samples),
        total_time=top(total_samples),
        raw_path=str(raw_path),
    )
