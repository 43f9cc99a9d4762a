"""Stanford Dogs folders (``<wnid>-<name>/*.jpg``) → class list and a seeded, per-breed train/val split."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}


@dataclass(frozen=True)
class ClassFolder:
    label: str  # the folder name, e.g. n02099601-golden_retriever
    files: tuple[Path, ...]  # sorted

    def fingerprint(self) -> str:
        """Names and sizes of the folder's files: changes when the photos do, so caches keyed on it stay true."""
        h = hashlib.sha256(self.label.encode())
        for f in self.files:
            h.update(f"\0{f.name}\0{f.stat().st_size}".encode())
        return h.hexdigest()


def discover(root: str | Path, classes: list[str] | int | None = None) -> list[ClassFolder]:
    """Class folders under `root`, in folder order. `classes`: all, the first N, or explicit names.

    An explicit name matches the folder name or its breed part (``golden_retriever``)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such data folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if isinstance(classes, int):
        folders = folders[:classes]
    elif classes:
        by_name = {p.name: p for p in folders} | {p.name.split("-", 1)[-1]: p for p in folders}
        missing = [c for c in classes if c not in by_name]
        if missing:
            raise ValueError(f"{root}: no class folder named {', '.join(missing)}")
        folders = [by_name[c] for c in classes]
    out = []
    for folder in folders:
        files = tuple(sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()))
        if files:
            out.append(ClassFolder(folder.name, files))
    if len(out) < 2:
        raise ValueError(f"{root}: need at least 2 class folders with images, found {len(out)}")
    return out


@dataclass
class Split:
    """Which file of which class goes to training and which to validation, by path relative to the data root."""

    seed: int
    val_fraction: float
    train: dict[str, list[str]]  # label -> file names
    val: dict[str, list[str]]
    # Cross-validation: {"k": k, "fold": {label: one digit per photo of `train`, in its order}} (k <= 10).
    folds: dict | None = None

    def to_json(self) -> str:
        return json.dumps({"seed": self.seed, "val_fraction": self.val_fraction, "train": self.train,
                           "val": self.val, **({"folds": self.folds} if self.folds is not None else {})}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Split:
        d = json.loads(text)
        return cls(d["seed"], d["val_fraction"], d["train"], d["val"], d.get("folds"))

    def counts(self) -> dict[str, int]:
        return {"train": sum(map(len, self.train.values())), "val": sum(map(len, self.val.values()))}


def split(classes: list[ClassFolder], seed: int = 42, val_fraction: float = 0.2,
          max_per_class: int | None = None) -> Split:
    """Shuffle each breed with its own seeded generator and hold out `val_fraction` of it (at least one)."""
    train: dict[str, list[str]] = {}
    val: dict[str, list[str]] = {}
    for c in classes:
        names = [f.name for f in c.files]
        # A per-class generator, so adding or removing a breed does not reshuffle the others.
        random.Random(f"{seed}:{c.label}").shuffle(names)
        if max_per_class:
            names = names[:max_per_class]
        n_val = max(1, round(len(names) * val_fraction))
        val[c.label], train[c.label] = sorted(names[:n_val]), sorted(names[n_val:])
    return Split(seed, val_fraction, train, val)


def within(classes: list[ClassFolder], *parts: dict[str, list[str]]) -> list[ClassFolder]:
    """Each class cut to the files that `parts` (a split's train, val, …) name: the photos a run really uses."""
    out = []
    for c in classes:
        named = set().union(*(part.get(c.label, ()) for part in parts))
        out.append(ClassFolder(c.label, tuple(f for f in c.files if f.name in named)))
    return out


def folds(classes: list[ClassFolder], k: int = 10, seed: int = 42) -> dict[str, dict[str, int]]:
    """Stratified k-fold: each breed shuffled with its own seeded generator (as in `split`) and dealt round-robin
    into `k` folds, so every fold holds about 1/k of every breed. label -> file name -> fold."""
    out: dict[str, dict[str, int]] = {}
    for c in classes:
        names = [f.name for f in c.files]
        random.Random(f"{seed}:{c.label}").shuffle(names)
        out[c.label] = {name: i % k for i, name in enumerate(names)}
    return out
