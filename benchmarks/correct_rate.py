"""How fast ``dogcat correct --from`` applies a big spreadsheet: rows per second, and how long it holds SQLite's
write lock. Builds a catalog of N animals (rows written directly: no photos, no model), writes a CSV correcting
every animal, and runs the command line on it, twice (the second run finds everything unchanged).

    python benchmarks/correct_rate.py            # 100,000 rows
    python benchmarks/correct_rate.py --rows 20000

Prints the rows/s of each run, the longest another writer had to wait for the lock, and the CPU (model and
flags from /proc/cpuinfo), so that figures from different machines can be told
apart. Not a test: a timing depends on the machine and what else runs on it.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BREEDS = ["Beagle", "Pug", "Labrador Retriever / Poodle", "not a dog", "German Shepherd Dog", "Border Collie"]


def cpu() -> str:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    model = fields.get("model name\t", fields.get("model name", "?")).strip()
    flags = fields.get("flags\t\t", fields.get("flags", "")).split()
    shown = [f for f in flags if f.startswith(("avx", "sse4", "fma", "aes"))]
    return f"{model}; {os.cpu_count()} CPUs; flags {' '.join(shown)}"


def make_catalog(path: Path, n: int):
    from sqlalchemy import insert

    from dogcat import db

    engine = db.connect(str(path))
    now = db.now()
    shas = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)]
    with db.writing(engine) as conn:
        conn.execute(insert(db.photos), [{"sha256": s, "size": 1, "format": "JPEG", "width": 1, "height": 1,
                                          "error": None, "first_seen_at": now} for s in shas])
        conn.execute(insert(db.files), [{"path": f"/intake/A{i}/1.jpg", "sha256": s, "size": 1, "mtime_ns": 0,
                                         "mtime": now, "error": None, "catalogued_at": now, "updated_at": now}
                                        for i, s in enumerate(shas)])
        conn.execute(insert(db.animals), [{"code": f"A{i}", "name": f"Dog {i}", "key": f"code:A{i}",
                                           "merged_into": None, "created_at": now} for i in range(n)])
        conn.execute(insert(db.animal_files), [{"path": f"/intake/A{i}/1.jpg", "animal": f"A{i}",
                                                "grouped_by": "folder", "grouped_at": now} for i in range(n)])
    engine.dispose()


def longest_lock(catalog: Path, stop: threading.Event, out: list[float]):
    """Every 5 ms, try to take the write lock without waiting: the longest run of refusals is how long another
    writer had to wait."""
    conn = sqlite3.connect(catalog, isolation_level=None, timeout=0)
    refused_since = None
    while not stop.is_set():
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            if refused_since is not None:
                out.append(time.perf_counter() - refused_since)
                refused_since = None
        except sqlite3.OperationalError:
            refused_since = refused_since or time.perf_counter()
        time.sleep(0.005)
    conn.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    print(f"cpu: {cpu()}")
    with tempfile.TemporaryDirectory() as tmp:
        catalog, table = Path(tmp) / "shelter.db", Path(tmp) / "corrected.csv"
        make_catalog(catalog, args.rows)
        with open(table, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["animal", "corrected_breed"])
            for i in range(args.rows):
                w.writerow([f"a{i}", BREEDS[i % len(BREEDS)]])  # codes in another case: matched in any case
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        for run in ("first", "again"):
            stop, held = threading.Event(), [0.0]
            watcher = threading.Thread(target=longest_lock, args=(catalog, stop, held))
            watcher.start()
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "dogcat", "correct", "--from", str(table), "--db",
                                   str(catalog), "--by", "bench"], capture_output=True, text=True, env=env)
            seconds = time.perf_counter() - start
            stop.set()
            watcher.join()
            if done.returncode != 0:
                sys.exit(f"dogcat correct --from failed: {done.stderr.strip()}")
            print(f"{run}: {args.rows} rows in {seconds:.2f} s = {args.rows / seconds:,.0f} rows/s "
                  f"(the whole command, start-up included), write lock held {max(held):.2f} s: "
                  f"{' '.join(done.stdout.split())}")


if __name__ == "__main__":
    main()
