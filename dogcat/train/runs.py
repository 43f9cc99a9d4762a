"""Run folders: everything needed to reproduce, compare and export one training run."""

from __future__ import annotations

import datetime as dt
import json
import platform
import re
from pathlib import Path


def new_run_dir(runs_dir: Path, experiment: str) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^a-z0-9]+", "-", experiment.lower()).strip("-")
    run = Path(runs_dir) / f"{stamp}-{slug}"
    n = 1
    while run.exists():
        n += 1
        run = Path(runs_dir) / f"{stamp}-{slug}-{n}"
    run.mkdir(parents=True)
    return run


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")


def read_json(path: Path):
    return json.loads(Path(path).read_text())


def machine() -> str:
    import os

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


def hardware() -> str:
    """Short, for budget labels: '2-core CPU' (or the GPU TensorFlow trains on)."""
    import os

    try:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            return f"{len(gpus)} GPU"
    except ImportError:
        pass
    return f"{os.cpu_count()}-core CPU"
