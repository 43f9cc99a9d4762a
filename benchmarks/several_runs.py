#!/usr/bin/env python3
"""Several `dogcat catalog` runs at once on one folder, into one database: does each photo get classified once,
is nothing missing, and does a run killed with -9 mid-run lose nothing? And what does it cost?

    python benchmarks/several_runs.py                          # 300 photos, 3 processes, SQLite (+ PostgreSQL
                                                             # when $DOGCAT_TEST_POSTGRES names a server)
    python benchmarks/several_runs.py --photos 300 --markdown >> benchmarks/RESULTS.md

For each database it runs, in fresh databases: one process alone (the baseline), 3 processes at once, and 3
processes at once of which one is killed with SIGKILL once it has committed some photos and holds claims. Each
run prints its summary with `--json`; the killed one cannot, so every run goes through a wrapper that writes its
count of classified photos to stderr after each committed batch (a benchmark's wrapper, not a hook in dogcat).
Checks, printed with the figures: the sum of `new` (plus what the killed run committed) equals the photos, the
database holds every photo once, and no claim is left.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "stanford-dogs-crops-224"

WRAPPER = """
import sys
import dogcat.catalog as c
original_finish = c._Run.finish
def finish(self, prepared):
    original_finish(self, prepared)
    print(f"bench: committed new={self.s.new}", file=sys.stderr, flush=True)
c._Run.finish = finish
from dogcat.cli import main
sys.argv = ["dogcat", *sys.argv[1:]]
main()
"""


def cpu() -> str:
    model, flags = platform.processor() or "?", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    shown = [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8")
             if f in flags]
    return f"{os.cpu_count()} cores, {model}; flags: {' '.join(shown) or 'none of note'}"


def photos(n: int) -> list[Path]:
    folders = sorted(d for d in DATA.iterdir() if d.is_dir())
    per = [sorted(d.glob("*.jpg")) for d in folders]
    out, i = [], 0
    while len(out) < n:
        names = per[i % len(per)]
        if i // len(per) < len(names):
            out.append(names[i // len(per)])
        i += 1
    return out


class Database:
    """A fresh catalog: a SQLite file, or a new database on the PostgreSQL server."""

    def __init__(self, kind: str, workdir: Path, server: str | None):
        self.kind, self.server, self.engine = kind, server, None
        if kind == "sqlite":
            self.url = str(workdir / f"{uuid.uuid4().hex[:8]}.db")
        else:
            from sqlalchemy import create_engine, text
            from sqlalchemy.engine import make_url

            self.name = f"dogcat_bench_{uuid.uuid4().hex[:10]}"
            self.admin = create_engine(make_url(server), isolation_level="AUTOCOMMIT")
            with self.admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{self.name}"'))
            self.url = make_url(server).set(database=self.name).render_as_string(hide_password=False)

    def count(self, tail: str) -> int:
        try:
            if self.kind == "sqlite":
                with sqlite3.connect(self.url, timeout=5) as conn:
                    return conn.execute(f"SELECT count(*) FROM {tail}").fetchone()[0]
            from sqlalchemy import create_engine, text

            if self.engine is None:  # one engine: polling must not load the machine it measures
                self.engine = create_engine(self.url)
            with self.engine.connect() as conn:
                return conn.scalar(text(f"SELECT count(*) FROM {tail}"))
        except Exception:  # noqa: BLE001 — not created yet
            return 0

    def drop(self):
        if self.kind == "postgresql":
            from sqlalchemy import text

            if self.engine is not None:
                self.engine.dispose()
            with self.admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
            self.admin.dispose()


def start(folder: Path, database: str, lease: float, batch: int) -> subprocess.Popen:
    args = ["catalog", str(folder), "--db", database, "--quiet", "--json", "--lease", str(lease),
            "--batch-size", str(batch)]
    return subprocess.Popen([sys.executable, "-c", WRAPPER, *args], cwd=ROOT, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def committed(stderr: str) -> int:
    counts = [int(line.rsplit("=", 1)[1]) for line in stderr.splitlines() if line.startswith("bench: committed")]
    return counts[-1] if counts else 0


def scenario(kind: str, server: str | None, workdir: Path, folder: Path, n: int, procs: int, kill: bool,
             lease: float, batch: int) -> dict:
    db = Database(kind, workdir, server)
    try:
        t0 = time.perf_counter()
        running = [start(folder, db.url, lease, batch) for _ in range(procs)]
        killed = None
        if kill:
            victim = running[-1]
            mine = f"claims WHERE owner LIKE '%:{victim.pid}:%'"
            # Mid-run: once about a third of the photos are in, and while the victim holds claims.
            while not (db.count("predictions") >= n // 3 and db.count(mine) > 0):
                if victim.poll() is not None or time.perf_counter() - t0 > 600:
                    raise SystemExit(f"the run to kill ended first: {victim.communicate()[1][-2000:]}")
                time.sleep(0.05)
            os.kill(victim.pid, signal.SIGKILL)
            killed_at = time.perf_counter() - t0
            _, stderr = victim.communicate()
            killed = {"pid": victim.pid, "at_s": round(killed_at, 1), "committed_new": committed(stderr),
                      "claims_left": db.count(mine)}
            running = running[:-1]
        summaries = []
        for p in running:
            stdout, stderr = p.communicate()
            if p.returncode != 0:
                raise SystemExit(f"a run failed ({p.returncode}): {stderr[-2000:]}")
            summaries.append(json.loads(stdout))
        wall = time.perf_counter() - t0
        total_new = sum(s["new"] for s in summaries) + (killed["committed_new"] if killed else 0)
        return {"database": kind, "processes": procs, "killed": killed, "photos": n, "wall_s": round(wall, 1),
                "photos_per_s": round(n / wall, 2), "new": [s["new"] for s in summaries],
                "skipped": [s["skipped"] for s in summaries], "duplicates": [s["duplicates"] for s in summaries],
                "waited_s": [s["waited"] for s in summaries], "sum_new": total_new,
                "files": db.count("files"), "predictions": db.count("predictions"),
                "claims_left": db.count("claims"),
                "ok": total_new == n and db.count("files") == n and db.count("predictions") == n
                and db.count("claims") == 0}
    finally:
        db.drop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=int, default=300)
    ap.add_argument("--processes", type=int, default=3)
    ap.add_argument("--lease", type=float, default=10.0, help="--lease of every run (seconds)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--databases", default="sqlite,postgresql")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()

    server = os.environ.get("DOGCAT_TEST_POSTGRES")
    kinds = [k for k in args.databases.split(",") if k == "sqlite" or server]
    workdir = Path(tempfile.mkdtemp(prefix="dogcat-concurrent-"))
    folder = workdir / "intake"
    folder.mkdir()
    for p in photos(args.photos):
        shutil.copy(p, folder / p.name)
    rows = []
    try:
        for kind in kinds:
            for procs, kill in ((1, False), (args.processes, False), (args.processes, True)):
                row = scenario(kind, server, workdir, folder, args.photos, procs, kill, args.lease, args.batch_size)
                print(json.dumps(row), file=sys.stderr, flush=True)
                rows.append(row)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    import onnxruntime

    head = (f"Machine: {cpu()}; Linux {platform.release()}, Python {platform.python_version()}, onnxruntime "
            f"{onnxruntime.__version__}. {args.photos} photos (Stanford Dogs crops), one folder, "
            f"--batch-size {args.batch_size}, --lease {args.lease:g}.")
    print(f"### {time.strftime('%Y-%m-%d')}: `python benchmarks/several_runs.py --photos {args.photos}`\n" if
          args.markdown else "")
    print(head + "\n")
    print("| database | runs | killed | wall s | photos/s | new per run (sum) | skipped | duplicates | waited s "
          "| files / predictions / claims left | each photo once, none missing |")
    print("|---|---:|---|---:|---:|---|---|---|---|---|---|")
    for r in rows:
        k = r["killed"]
        killed = (f"1 at {k['at_s']} s ({k['committed_new']} committed, {k['claims_left']} claims left)"
                  if k else "none")
        new = " + ".join(map(str, r["new"] + ([k["committed_new"]] if k else []))) + f" = {r['sum_new']}"
        print(f"| {r['database']} | {r['processes']} | {killed} | {r['wall_s']} | {r['photos_per_s']} | {new} | "
              f"{', '.join(map(str, r['skipped']))} | {', '.join(map(str, r['duplicates']))} | "
              f"{', '.join(f'{w:g}' for w in r['waited_s'])} | {r['files']} / {r['predictions']} / "
              f"{r['claims_left']} | {'yes' if r['ok'] else 'NO'} |")
    if not all(r["ok"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
