"""Run folders: everything needed to reproduce, compare and export one training run.

Every recipe (scratch.py, transfer.py, tune.py, finetune.py, exitflow.py, crossval.py) is configured by a
`RunConfig` (or `HoldoutConfig`, for those trained on a train/val split) and records itself through one `Run`:

    run = Run.start(runs_dir, experiment, config=..., split=split, console=console, ledger_path=ledger_path)
    with run.timed("fit"):
        ...
    run.finish({"train": ..., "val": ...}, history=history, key=..., config=..., budget=...)

A run folder holds config.json (the config, its resolved experiment name and the labels in class order),
split.json, history.json (per-epoch Keras metrics), metrics.json (the result, timings and the machine) and the
trained model (head.keras or model.keras); its ledger row goes to ledger.jsonl (ledger.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dogcat import images
from dogcat.train import backbones, data, ledger
from dogcat.train.ledger import cpu_model, machine

__all__ = ["HoldoutConfig", "Run", "RunConfig", "cpu_model", "hardware", "machine", "metrics", "new_run_dir",
           "read_json", "write_json"]

Say = Callable[..., Any]


# --- configuration ---------------------------------------------------------------------------------------------

@dataclass(kw_only=True)
class RunConfig:
    """What every run is configured by: which photos, which network and weights, the input size, the seed."""

    data_dir: str
    backbone: str = "xception"  # a backbone or '+'-joined feature parts (backbones.parse); scratch: the architecture
    weights: str = "imagenet"  # 'imagenet', a weights file, 'none' (random); or NAME=W,… for several backbones
    classes: list[str] | int | None = None  # None: all; N: the first N folders; or a list of names
    image_size: int | None = None  # None: the backbone's own size
    resize: str = "stretch"
    seed: int = 42
    batch_size: int = 32
    experiment: str = ""  # the ledger's name for the run; '' for one made from the config

    def preprocessing(self) -> images.Preprocessing:
        size = self.image_size or backbones.input_size(self.backbone)
        return images.Preprocessing(size=(size, size), resize=self.resize)

    def breeds(self) -> list[data.ClassFolder]:
        """The class folders this run trains on (`classes` of `data_dir`), in folder order."""
        return data.discover(self.data_dir, self.classes)

    def asdict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(kw_only=True)
class HoldoutConfig(RunConfig):
    """A run trained on a seeded per-breed train/val split, stopped early on the validation loss."""

    val_fraction: float = 0.2
    max_per_class: int | None = None  # at most N photos per breed (quick runs)
    epochs: int = 50
    patience: int = 10

    def select(self) -> tuple[list[data.ClassFolder], data.Split]:
        """The breeds and their split, each breed cut to the photos in the split (`max_per_class` may leave some
        out): the one place a run's photos are chosen."""
        classes = self.breeds()
        split = data.split(classes, self.seed, self.val_fraction, self.max_per_class)
        return data.within(classes, split.train, split.val), split


# --- the run record --------------------------------------------------------------------------------------------

@dataclass
class Run:
    """One run: its folder, its clock (total and per phase), and at the end its history, metrics and ledger row."""

    dir: Path
    experiment: str
    ledger_path: Path
    say: Say = print
    seed: int | None = None  # the split seed, for the ledger
    data_label: str = ""  # the ledger's description of the photos
    started: float = field(default_factory=time.time)
    seconds: dict[str, float] = field(default_factory=dict)  # phase -> seconds: metrics' seconds_<phase>

    @classmethod
    def start(cls, runs_dir: Path, experiment: str, *, config: dict | None = None, split: data.Split | None = None,
              console=None, ledger_path: Path | None = None, started: float | None = None,
              seed: int | None = None, data_label: str = "") -> Run:
        """A new run folder with config.json and split.json (when given); the ledger row will go to `ledger_path`
        (default: ledger.jsonl beside `runs_dir`, see ledger.path_for). The row's split seed and data label come
        from `split` and `config` (its data_dir and labels) unless `seed` and `data_label` say otherwise."""
        if split is not None and config is not None and not data_label:
            data_label = ledger.data_label(config["data_dir"], len(config["labels"]), split.counts())
        run = cls(new_run_dir(runs_dir, experiment), experiment, ledger.path_for(runs_dir, ledger_path),
                  console.print if console else print, split.seed if seed is None and split else seed, data_label,
                  time.time() if started is None else started)
        if config is not None:
            write_json(run.dir / "config.json", config)
        if split is not None:
            (run.dir / "split.json").write_text(split.to_json())
        run.say(f"run folder: {run.dir}")
        return run

    @contextlib.contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Add the block's wall time to `phase` (metrics' and the ledger's seconds_<phase>)."""
        t0 = time.time()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.time() - t0

    def elapsed(self) -> float:
        return round(time.time() - self.started, 1)

    def finish(self, results: dict, *, key: str, config: dict, budget: str, history: dict | None = None,
               first_epoch: int = 0, val_accuracy: float | None = None, data_label: str | None = None,
               seconds: float | None = None, file: str = "metrics.json", **ledger_extra) -> dict:
        """Write history.json (if `history`) and `file` (metrics.json: the experiment, `results`, the epochs,
        the timings, the machine), append the ledger row, and return the metrics.

        `history`: per-epoch Keras metrics, whose best epoch (lowest val_loss from `first_epoch` on) is the one
        the model was restored to. `val_accuracy`: default the results' val top-1. `budget`: what the run really
        ran at; the hardware is added. `seconds`: the ledger's wall time, default the whole run's.
        `ledger_extra`: more fields for the row (the timings are added)."""
        total = best = None
        if history is not None:
            total, best = len(history["loss"]), best_epoch(history, first_epoch)
        timings: dict[str, Any] = {f"seconds_{phase}": round(s, 1) for phase, s in self.seconds.items()}
        result = {"experiment": self.experiment, **results,
                  **({"epochs_total": total, "epochs_best": best} if history is not None else {}), **timings,
                  "seconds_total": self.elapsed(), "machine": machine()}
        if history is not None:
            write_json(self.dir / "history.json", history)
        write_json(self.dir / file, result)
        ledger.append(self.ledger_path, experiment=self.experiment, key=key, config=config,
                      data=self.data_label if data_label is None else data_label, split_seed=self.seed,
                      val_accuracy=results["val"]["top1"] if val_accuracy is None else val_accuracy,
                      epochs_total=total, epochs_best=best,
                      seconds=result["seconds_total"] if seconds is None else seconds,
                      budget=f"{budget}, {hardware()}", run=self.dir.name, history=history,
                      **ledger_extra, **timings)
        return result

    def summary(self, result: dict, more: str = "", end: str = "s in all") -> None:
        """'best epoch 3/13: val top-1 0.9112, top-3 …; 42 s in all'"""
        self.say(f"best epoch {result['epochs_best']}/{result['epochs_total']}: val top-1 {result['val']['top1']:.4f}"
                 f"{more}; {result['seconds_total']:.0f} {end}")


# --- training helpers the recipes share ----------------------------------------------------------------------

def best_epoch(history: dict, first_epoch: int = 0) -> int:
    """The epoch (1-based) early stopping restored: the lowest val_loss from `first_epoch` on."""
    return first_epoch + int(np.argmin(history["val_loss"][first_epoch:])) + 1


def history_of(fitted) -> dict[str, list[float]]:
    """A Keras History as plain floats, for history.json and the ledger."""
    return {k: [float(v) for v in vals] for k, vals in fitted.history.items()}


def epoch_lines(say: Say, epochs: int, prefix: str = "", timed: bool = False):
    """A Keras callback that says one line per epoch: 'epoch   3/50  loss … acc … val_loss … val_acc …'."""
    import keras

    class EpochLine(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.time()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            say(f"{prefix}epoch {epoch + 1:>3}/{epochs}  loss {logs['loss']:.4f}  acc {logs['accuracy']:.4f}  "
                f"val_loss {logs['val_loss']:.4f}  val_acc {logs['val_accuracy']:.4f}"
                + (f"  ({time.time() - self.t:.0f} s)" if timed else ""))

    return EpochLine()


def topk_accuracy(probs: np.ndarray, y: np.ndarray, k: int) -> float:
    top = np.argsort(-probs, axis=1)[:, :k]
    return float(np.mean([y[i] in top[i] for i in range(len(y))]))


def metrics(probs: np.ndarray, y: np.ndarray) -> dict:
    return {"n": int(len(y)), "top1": topk_accuracy(probs, y, 1), "top3": topk_accuracy(probs, y, 3),
            "top5": topk_accuracy(probs, y, 5)}


# --- folders and files -----------------------------------------------------------------------------------------

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


def hardware() -> str:
    """Short, for budget labels: '2-core CPU' (or the GPU TensorFlow trains on)."""
    try:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            return f"{len(gpus)} GPU"
    except ImportError:
        pass
    return f"{os.cpu_count()}-core CPU"
