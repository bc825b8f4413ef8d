"""The header and the files every `python -m bench <name>` sub-benchmark writes."""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.machine import describe_machine
from bench.run import default_stamp


def results_header(
    name: str, argv: Sequence[str], config: Mapping[str, Any], data_root: Path | None
) -> dict[str, Any]:
    """When and how a run was started and on what machine (its data root's, the temp
    directory's when None): the first fields of its results."""
    return {
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": shlex.join(["python", "-m", "bench", name, *argv]),
        "machine": describe_machine(data_root or Path(tempfile.gettempdir())),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in config.items()},
    }


def write_results(results_dir: Path, name: str, markdown: str, data: Any) -> None:
    """Write the results as Markdown and JSON under a fresh stamp, print the Markdown, and
    say where both went."""
    path = results_dir / f"{default_stamp()}-{name}.md"
    path.write_text(markdown)
    path.with_suffix(".json").write_text(json.dumps(data, indent=2, default=str))
    print(markdown)
    print(f"results: {path} and {path.with_suffix('.json')}", file=sys.stderr)
