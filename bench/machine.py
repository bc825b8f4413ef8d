"""What the numbers were measured on: they mean little without the machine next to them."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def _first_value(path: Path, key: str) -> str | None:
    """The value of the first `key: value` line in a /proc file, or None."""
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == key:
            return value.strip()
    return None


def describe_machine(data_root: Path) -> dict[str, str | int | float]:
    """Cores, memory, CPU model, Python, kernel and the filesystem holding the data dir."""
    mem_kib = _first_value(Path("/proc/meminfo"), "MemTotal") or "0 kB"
    return {
        "cores": os.cpu_count() or 0,
        "memory_gib": round(int(mem_kib.split()[0]) / 1024 / 1024, 1),
        "cpu_model": _first_value(Path("/proc/cpuinfo"), "model name") or platform.processor(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "data_filesystem": _filesystem_of(data_root),
        "load_average_at_start": load_average(),
    }


def load_average() -> str:
    """1, 5 and 15 minute load averages: other work on a 2-core machine skews every figure."""
    return " ".join(f"{load:.2f}" for load in os.getloadavg())


def _filesystem_of(path: Path) -> str:
    """Device and filesystem type of the mount that holds `path` (longest matching mount point)."""
    best = ("", "unknown", "unknown")
    resolved = str(path.resolve())
    for line in Path("/proc/mounts").read_text().splitlines():
        device, mount_point, fs_type, *_ = line.split()
        inside = resolved == mount_point or resolved.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best[0]):
            best = (mount_point, device, fs_type)
    return f"{best[1]} ({best[2]}) mounted on {best[0]}"


def memory_mb(pid: int) -> dict[str, float]:
    """Resident set size now and at its peak (VmRSS, VmHWM), in MB (10^6 bytes)."""
    status = Path(f"/proc/{pid}/status")
    return {
        key: int((_first_value(status, field) or "0 kB").split()[0]) * 1024 / 1e6
        for key, field in (("rss_mb", "VmRSS"), ("peak_rss_mb", "VmHWM"))
    }


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process (all its threads) from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants: a server's CPU and memory include its helper processes."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree
