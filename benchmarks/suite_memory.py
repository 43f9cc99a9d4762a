#!/usr/bin/env python3
"""The peak memory and the wall time of a command, by default the full test tier as CI runs it.

    CI=true python benchmarks/suite_memory.py                      # python -m pytest -q
    python benchmarks/suite_memory.py --samples mem.tsv -- python -m pytest -q tests/test_lab.py

Once a second it reads the system's used memory (free's "used": total - free - buffers - cache - reclaimable
slab) and the resident memory (RSS) of the command's whole process tree, children included, and prints the
peaks at the end: the tree's, its largest single process's, and the system's used memory over what was used
when the command started. The system figure also counts whatever else runs on the machine meanwhile; the
tree's is the command's own. ``--samples`` writes every sample (seconds, used MB, used over the start MB,
tree RSS MB, largest process RSS MB) as tab-separated lines. Linux only (/proc). Exits with the command's status.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path


def used_mb() -> int:
    info = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, value = line.split(":", 1)
        info[key] = int(value.split()[0])
    kb = info["MemTotal"] - info["MemFree"] - info["Buffers"] - info["Cached"] - info["SReclaimable"]
    return kb // 1024


def tree_rss_mb(root: int) -> tuple[int, int]:
    """(the RSS of ``root`` and all its descendants, the largest one's RSS), in MB."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            status = Path(f"/proc/{entry}/status").read_text()
        except (OSError, IndexError, ValueError):  # it ended meanwhile
            continue
        children.setdefault(parent, []).append(int(entry))
        rss[int(entry)] = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    total = largest = 0
    stack = [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        largest = max(largest, rss.get(pid, 0))
        stack.extend(children.get(pid, []))
    return total // 1024, largest // 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=Path, help="write every sample here (TSV)")
    parser.add_argument("command", nargs="*", default=[sys.executable, "-m", "pytest", "-q"])
    args = parser.parse_args()
    start_used = used_mb()
    started = time.monotonic()
    proc = subprocess.Popen(args.command)
    peak_used = peak_tree = peak_one = 0
    samples = args.samples.open("w") if args.samples else None
    while proc.poll() is None:
        used, (tree, one) = used_mb(), tree_rss_mb(proc.pid)
        peak_used, peak_tree, peak_one = max(peak_used, used), max(peak_tree, tree), max(peak_one, one)
        if samples:
            samples.write(f"{time.monotonic() - started:.0f}\t{used}\t{used - start_used}\t{tree}\t{one}\n")
            samples.flush()
        time.sleep(1)
    print(f"{' '.join(args.command)}: exit status {proc.returncode}, {time.monotonic() - started:.0f} s; peak RSS of "
          f"its process tree {peak_tree / 1024:.1f} GB (largest process {peak_one / 1024:.1f} GB); system used "
          f"memory peaked {(peak_used - start_used) / 1024:.1f} GB over the {start_used / 1024:.1f} GB used at the "
          "start", file=sys.stderr)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
