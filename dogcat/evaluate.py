"""Accuracy of an exported model on a labelled folder (Stanford Dogs layout), through the inference path."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dogcat.classify import PHOTO_SUFFIXES, classify
from dogcat.model import BreedModel


@dataclass
class Evaluation:
    n: int
    top1: float
    top3: float
    skipped_labels: list[str]  # folders the model has no class for
    errors: int

    def to_dict(self) -> dict:
        return {"n": self.n, "top1": round(self.top1, 4), "top3": round(self.top3, 4),
                "skipped_labels": self.skipped_labels, "errors": self.errors}


def labelled_files(data_dir: Path, model: BreedModel, part: str | None) -> tuple[list[tuple[Path, str]], list[str]]:
    """(photo, label) pairs under `data_dir`; with `part` ("train"/"val"), only photos that the model's split
    file (beside the .onnx) puts in that part."""
    split = None
    if part:
        split_file = model.path.with_suffix(".split.json")
        if not split_file.is_file():
            raise FileNotFoundError(f"{split_file}: this model has no split file, so --part cannot be used")
        split = json.loads(split_file.read_text())[part]
    known = set(model.labels)
    pairs, skipped = [], []
    for folder in sorted(p for p in Path(data_dir).iterdir() if p.is_dir()):
        if folder.name not in known:
            skipped.append(folder.name)
            continue
        wanted = set(split.get(folder.name, [])) if split is not None else None
        pairs += [(f, folder.name) for f in sorted(folder.iterdir())
                  if f.suffix.lower() in PHOTO_SUFFIXES and (wanted is None or f.name in wanted)]
    return pairs, skipped


def evaluate(model: BreedModel, data_dir: Path, part: str | None = None, on_batch=None) -> Evaluation:
    pairs, skipped = labelled_files(Path(data_dir), model, part)
    hits1, hits3, errors = [], [], 0
    for result, (_, label) in zip(classify(model, [p for p, _ in pairs], k=3), pairs):
        if on_batch:
            on_batch(1)
        if result.error:
            errors += 1
            continue
        ranked = [g.label for g in result.top_k]
        hits1.append(ranked[0] == label)
        hits3.append(label in ranked)
    n = len(hits1)
    return Evaluation(n, float(np.mean(hits1)) if n else 0.0, float(np.mean(hits3)) if n else 0.0, skipped, errors)
