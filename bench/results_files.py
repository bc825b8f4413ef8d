"""The header and the files every `python -m bench <name>` sub-benchmark writes."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.machine import describe_machine
from bench.run import default_stamp


def results_header(
    name: str, argv: Sequence[str], args: argparse.Namespace, data_root: Path
) -> dict[str, Any]:
    """When and how a run was started and on what machine: the first fields of its results."""
    return {
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": shlex.join(["python", "-m", "bench", name, *argv]),
        "machine": describe_machine(data_root),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }


def write_results(results_dir: Path, name: str, markdown: str, data: Any) -> None:
    """Write the results as Markdown and JSON under a fresh stamp, print the Markdown, and
    say where both went."""
    path = results_dir / f"{default_stamp()}-{name}.md"
    path.write_text(markdown)
    path.with_suffix(".json").write_text(json.dumps(data, indent=2, default=str))
    print(markdown)
    print(f"results: {path} and {path.with_suffix('.json')}", file=sys.stderr)
