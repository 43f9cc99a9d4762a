"""How good are the answers? Accuracy, statuses and thresholds, measured through the inference path.

- ``evaluate``: a labelled folder (Stanford Dogs layout) → top-1/top-3 of the breed model, and how many photos
  each status took, with the precision of the confident (`dog`) answers.
- ``evaluate_not_dogs``: a folder of photos without a dog → the share flagged `not_a_dog`.
- ``choose_thresholds``: the unsure and not-a-dog thresholds, from the *tune* half of the validation split, so
  that the other half (*holdout*) measures them honestly.

Parts: ``train`` and ``val`` are the model's own split (its .split.json); ``val-tune`` and ``val-holdout`` halve
``val`` per breed with a fixed seed. Photos of a folder that the split does not list (uncropped originals of a
crop, say) belong to the part their file name is listed under.

Layer: a job (docs/architecture.md).
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from dogcat.classifier import classify
from dogcat.model import BreedModel
from dogcat.status import Judge, Thresholds, decide
from dogcat.walk import PHOTO_SUFFIXES

PARTS = ("train", "val", "val-tune", "val-holdout")
HALVES_SEED = 20261125


@dataclass
class Evaluation:
    n: int
    top1: float
    top3: float
    skipped_labels: list[str]  # folders the model has no class for
    errors: int
    statuses: dict[str, int] = field(default_factory=dict)  # dog / unsure / not_a_dog → photos
    dog_precision: float | None = None  # top-1 accuracy of the photos answered as `dog`

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("top1", "top3", "dog_precision"):
            if d[key] is not None:
                d[key] = round(d[key], 4)
        return d


def _halves(val: dict[str, list[str]]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """The validation split cut in two per breed (seeded): (tune, holdout)."""
    tune, holdout = {}, {}
    for label, names in val.items():
        names = sorted(names)
        random.Random(f"{HALVES_SEED}-{label}").shuffle(names)
        tune[label], holdout[label] = sorted(names[:len(names) // 2]), sorted(names[len(names) // 2:])
    return tune, holdout


def part_names(model: BreedModel, part: str) -> dict[str, list[str]]:
    split_file = model.path.with_suffix(".split.json")
    if not split_file.is_file():
        raise FileNotFoundError(f"{split_file}: this model has no split file, so --part cannot be used")
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; known: {', '.join(PARTS)}")
    split = json.loads(split_file.read_text())
    if part in ("train", "val"):
        return split[part]
    tune, holdout = _halves(split["val"])
    return tune if part == "val-tune" else holdout


def labelled_files(data_dir: Path, model: BreedModel, part: str | None) -> tuple[list[tuple[Path, str]], list[str]]:
    """(photo, label) pairs under `data_dir`; with `part`, only photos that part lists."""
    names = part_names(model, part) if part else None
    known = set(model.labels)
    pairs, skipped = [], []
    for folder in sorted(p for p in Path(data_dir).iterdir() if p.is_dir()):
        if folder.name not in known:
            skipped.append(folder.name)
            continue
        wanted = set(names.get(folder.name, [])) if names is not None else None
        pairs += [(f, folder.name) for f in sorted(folder.iterdir())
                  if f.suffix.lower() in PHOTO_SUFFIXES and (wanted is None or f.name in wanted)]
    return pairs, skipped


@dataclass
class Observed:
    """Per photo: the breed model's confidence and whether its top-1/top-3 is right, the dog probability."""

    confidence: np.ndarray
    top1: np.ndarray
    top3: np.ndarray
    dog_probability: np.ndarray  # NaN where the dog check is off
    statuses: list[str]
    errors: int


def observe(judge: Judge, pairs: list[tuple[Path, str]], on_photo=None) -> Observed:
    conf, hit1, hit3, dog_p, statuses, errors = [], [], [], [], [], 0
    for result, (_, label) in zip(classify(judge, [p for p, _ in pairs], k=3), pairs, strict=True):
        if on_photo:
            on_photo(1)
        if result.error:
            errors += 1
            continue
        ranked = [g.label for g in result.top_k]
        conf.append(result.top_k[0].confidence)
        hit1.append(ranked[0] == label)
        hit3.append(label in ranked)
        assert result.verdict is not None  # a Result without an error has a verdict
        p = result.verdict.dog_probability
        dog_p.append(np.nan if p is None else p)
        statuses.append(result.status)
    return Observed(np.array(conf), np.array(hit1, bool), np.array(hit3, bool), np.array(dog_p), statuses, errors)


def evaluate(judge: Judge | BreedModel, data_dir: Path, part: str | None = None, on_batch=None) -> Evaluation:
    if isinstance(judge, BreedModel):
        judge = Judge.breeds_only(judge)
    pairs, skipped = labelled_files(Path(data_dir), judge.model, part)
    o = observe(judge, pairs, on_batch)
    n = len(o.top1)
    answered = np.array([s == "dog" for s in o.statuses], bool)
    return Evaluation(n, float(o.top1.mean()) if n else 0.0, float(o.top3.mean()) if n else 0.0, skipped,
                      o.errors, {s: o.statuses.count(s) for s in ("dog", "unsure", "not_a_dog")},
                      float(o.top1[answered].mean()) if answered.any() else None)


def not_dog_photos(folder: Path) -> list[Path]:
    return sorted(f for f in Path(folder).rglob("*") if f.suffix.lower() in PHOTO_SUFFIXES and f.is_file())


def evaluate_not_dogs(judge: Judge, photos: list[Path]) -> dict:
    """Photos without a dog → how many were flagged not_a_dog, and what the others were called."""
    results = list(classify(judge, photos, k=1))
    flagged = [r for r in results if r.status == "not_a_dog"]
    missed = [{"path": r.path, "status": r.status, "dog_probability": r.verdict.dog_probability,
               "breed": r.top_k[0].breed} for r in results if r.verdict and r.status != "not_a_dog"]
    n = sum(1 for r in results if r.verdict)
    return {"n": n, "not_a_dog": len(flagged), "share_not_a_dog": round(len(flagged) / n, 4) if n else None,
            "errors": len(results) - n, "missed": missed,
            "looks_like": {r.path: r.verdict.looks_like for r in flagged if r.verdict}}  # not_a_dog: a verdict


# --- choosing the thresholds ----------------------------------------------------------------------------------

# At most this share of tune dog photos may be flagged not_a_dog. 0.5 %, not 1 %: a dog wrongly flagged drops
# out of its animal's answer and out of the ASM3 file, while a non-dog let through is at worst an `unsure` that
# staff see. At 1 % the cross-validated model flagged the bundled pug example (breed 0.97, dog check 0.44); at
# 0.5 % every one of the 22 real non-dog photos is still flagged (their breed confidence is at most 0.10).
NOT_A_DOG_BUDGET = 0.005
DOG_PRECISION_GOAL = 0.97  # confident answers must be right this often on the tune half


UNSURE_GRID = np.round(np.arange(0.05, 1.0, 0.01), 2)  # the unsure thresholds tried, lowest first


def lowest_unsure_below(confidence: np.ndarray, right: np.ndarray, goal: float = DOG_PRECISION_GOAL) -> float | None:
    """The `unsure` rule: the smallest threshold of UNSURE_GRID whose answers (confidence >= it) are right at
    least `goal` of the time; None if none is. Shared by `dogcat train thresholds`/`oof`, `dogcat train crossval`
    and benchmarks/oof_compare.py, so that all of them choose the same way."""
    for t in UNSURE_GRID:
        answered = confidence >= t
        if answered.any() and right[answered].mean() >= goal:
            return float(t)
    return None


def said(o: Observed, thresholds: Thresholds) -> np.ndarray:
    """Each photo's status (dog, unsure, not_a_dog) under `thresholds`; a photo the detector did not check (NaN)
    is judged on its breed confidence alone."""
    return np.array([decide(float(c), None if np.isnan(p) else float(p), thresholds)
                     for c, p in zip(o.confidence, o.dog_probability, strict=True)])


def tradeoff(o: Observed, thresholds=(0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)) -> list[dict]:
    """For each unsure threshold: the share of photos answered as `dog` and the precision of those answers."""
    rows = []
    for t in thresholds:
        answered = o.confidence >= t
        rows.append({"unsure_below": t, "answered": round(float(answered.mean()), 4),
                     "precision": round(float(o.top1[answered].mean()), 4) if answered.any() else None})
    return rows


def choose_thresholds(o: Observed, not_a_dog_below: float = 0.5) -> dict:
    """On these (tune) photos, all dogs:

    - not a dog: the detector's dog probability below ``not_a_dog_below`` (0.5: it finds "no dog" likelier than
      "dog") and the breed model's confidence below the largest value (step 0.01) that still flags at most
      NOT_A_DOG_BUDGET of the photos;
    - unsure: the smallest threshold whose confident answers reach DOG_PRECISION_GOAL."""
    checked = ~np.isnan(o.dog_probability)
    doubted = checked & (o.dog_probability < not_a_dog_below)
    confidence_below = 0.0
    for t in np.round(np.arange(0.01, 1.0, 0.01), 2):
        if (doubted & (o.confidence < t)).mean() > NOT_A_DOG_BUDGET:
            break
        confidence_below = float(t)
    unsure_below = lowest_unsure_below(o.confidence, o.top1)
    if unsure_below is None:
        unsure_below = 1.0
    thresholds = Thresholds(not_a_dog_below, unsure_below, confidence_below)
    statuses = list(said(o, thresholds))
    kept = np.array([s == "dog" for s in statuses])
    return {"not_a_dog_below": not_a_dog_below, "not_a_dog_confidence_below": confidence_below,
            "unsure_below": unsure_below,
            "tune": {"photos": int(len(o.top1)), "flagged_not_a_dog": statuses.count("not_a_dog"),
                     "detector_alone_below_0.5": int(doubted.sum()),
                     "answered": round(float(kept.mean()), 4),
                     "precision": round(float(o.top1[kept].mean()), 4) if kept.any() else None},
            "rules": {"not_a_dog": f"dog probability < {not_a_dog_below} and breed confidence below the largest "
                                   f"value flagging at most {NOT_A_DOG_BUDGET:.1%} of tune dog photos",
                      "unsure": f"smallest threshold (step 0.01) whose dog answers are >= {DOG_PRECISION_GOAL:.0%} "
                                "right on the tune half"},
            "tradeoff": tradeoff(o)}
