"""The results ledger: one JSON line per run, committed in train/, from which `dogcat train report` is rebuilt.

Run folders (train/runs/) stay out of git; the ledger keeps what a comparison needs from each: the
experiment, its config, the data and split, the result, the wall time, the machine, the budget it really
ran at, and its per-epoch history (for the validation-curve plot). Rows that could not run here are
recorded too, with a `status` saying why, so the table never silently drops an experiment.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from pathlib import Path

DEFAULT = Path("train") / "ledger.jsonl"
FIELDS = ("time", "experiment", "key", "status", "config", "data", "split_seed", "val_accuracy", "epochs_total",
          "epochs_best", "seconds", "budget", "machine", "run", "cpu_seconds", "load_avg", "history")


def path_for(runs_dir: str | Path | None = None, ledger: str | Path | None = None) -> Path:
    """An explicit ledger, else $DOGCAT_LEDGER, else ledger.jsonl beside the runs folder (train/ by default)."""
    if ledger:
        return Path(ledger)
    if os.environ.get("DOGCAT_LEDGER"):
        return Path(os.environ["DOGCAT_LEDGER"])
    return Path(runs_dir).parent / "ledger.jsonl" if runs_dir else DEFAULT


def append(path: str | Path, *, experiment: str, key: str, config: dict, data: str, split_seed: int | None,
           val_accuracy: float | None, epochs_total: int | None, epochs_best: int | None, seconds: float | None,
           budget: str, status: str = "ok", run: str = "", history: dict | None = None, **extra) -> dict:
    """Append one row (one line) and return it. `key` names the study row it reproduces, e.g. 'xception transfer'."""
    row = {"time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "experiment": experiment,
           "key": key, "status": status, "config": config, "data": data, "split_seed": split_seed,
           "val_accuracy": None if val_accuracy is None else round(float(val_accuracy), 4),
           "epochs_total": epochs_total, "epochs_best": epochs_best,
           "seconds": None if seconds is None else round(float(seconds), 1), "budget": budget,
           "machine": machine(), "run": run, "cpu_seconds": cpu_seconds(), "load_avg": load_average(), **extra,
           "history": {k: [round(float(v), 5) for v in vals] for k, vals in (history or {}).items()}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")
    return row


def machine() -> str:
    """'x86_64 2 cores, Linux, <CPU model>': what a row ran on."""
    where = f"{platform.machine()} {os.cpu_count()} cores, {platform.system()}"
    return where + (f", {cpu_model()}" if cpu_model() else "")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return ""


def cpu_seconds() -> float:
    """CPU time this process has used so far, all threads: with `seconds` (wall) it shows how much of the
    machine a run had (2 busy cores: cpu ≈ 2x wall; a run sharing the machine with another job gets less)."""
    t = os.times()
    return round(t.user + t.system, 1)


def load_average() -> float | None:
    """The machine's 1-minute load average when the run ended (above the core count: it shared the CPU)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def read(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def data_label(data_dir: str | Path, n_classes: int, counts: dict) -> str:
    return f"{Path(data_dir).name}, {n_classes} breeds, {counts['train']} train / {counts['val']} val"
