"""How much does an animal's answer gain from several photos, and which fusion rule is best?

    python benchmarks/fusion.py [--data ../shared/data/stanford-dogs-crops-224] [--model PATH] [--views-per-breed 10]

Runs the breed model (the bundled one by default) on its own validation photos (the model's split file), then
simulates animals two ways and prints per-animal top-1 for k = 1, 2, 3, 5 photos with each rule in
dogcat.fusion:

- optimistic: an "animal" is k different validation photos of one breed (different dogs give more
  independent views than one dog does), every validation photo the first photo of one animal;
- pessimistic: an "animal" is k augmented views of one validation photo (flipped, cropped, turned,
  brightened: the same dog, the same moment).

Photos go through dogcat's own decode and resize (dogcat.images), so what is measured is what catalog does.
Probabilities are cached beside the split file's name in ~/.cache/dogcat-fusion (delete it to recompute).
Prints a JSON object at the end; the model card quotes it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import random
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from dogcat import fusion, images
from dogcat.evaluate import labelled_files
from dogcat.model import BreedModel

KS = (1, 2, 3, 5)
SEED = 20261129
CACHE = Path.home() / ".cache" / "dogcat-fusion"


def augmentations(im: Image.Image) -> list[Image.Image]:
    """The photo and four other looks at it, as a second snapshot of the same dog might give."""
    w, h = im.size
    crop = im.crop((int(w * 0.08), int(h * 0.06), int(w * 0.96), int(h * 0.98)))
    return [im, ImageOps.mirror(im), crop, im.rotate(10, resample=Image.BILINEAR, expand=False, fillcolor=(128,) * 3),
            ImageEnhance.Brightness(ImageOps.mirror(im).rotate(-8, resample=Image.BILINEAR,
                                                                 fillcolor=(128,) * 3)).enhance(1.25)]


def cpu_flags() -> str:
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return platform.processor()
    return " ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "amx_int8") if f in flags)


def probabilities(model: BreedModel, pictures: list, batch: int = 32) -> np.ndarray:
    out = []
    for i in range(0, len(pictures), batch):
        pixels = np.stack([images.to_model_input(p, model.preprocessing) for p in pictures[i:i + batch]])
        out.append(model.probabilities(pixels))
    return np.concatenate(out)


def scores(groups: list[np.ndarray], truth: list[int], rule: str, unsure_below: float) -> dict:
    """Per-animal top-1, the share of animals the model's threshold calls unsure, and the precision of the
    confident (dog) answers."""
    right = dog = dog_right = 0
    for g, t in zip(groups, truth, strict=True):
        fused = fusion.fuse(g.tolist(), rule)
        best = int(np.argmax(fused))
        right += best == t
        if fused[best] >= unsure_below:
            dog += 1
            dog_right += best == t
    n = len(groups)
    return {"top1": round(right / n, 4), "unsure": round(1 - dog / n, 4),
            "dog_precision": round(dog_right / dog, 4) if dog else None}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
                        / "stanford-dogs-crops-224")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--views-per-breed", type=int, default=10,
                        help="validation photos per breed that get augmented views (pessimistic bound)")
    args = parser.parse_args()

    model = BreedModel(args.model)
    pairs, _ = labelled_files(args.data, model, "val")
    index = {label: i for i, label in enumerate(model.labels)}
    CACHE.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(f"{model.id}|{args.data}|{args.views_per_breed}".encode()).hexdigest()[:16]
    cached = CACHE / f"{key}.npz"
    started = time.perf_counter()
    if cached.is_file():
        saved = np.load(cached)
        val_probs, view_probs, view_truth = saved["val"], saved["views"], saved["view_truth"]
    else:
        pictures = [images.open_rgb(p) for p, _ in pairs]
        val_probs = probabilities(model, pictures)
        rng = random.Random(SEED)
        by_label: dict[str, list[int]] = {}
        for i, (_, label) in enumerate(pairs):
            by_label.setdefault(label, []).append(i)
        chosen = [i for label in sorted(by_label) for i in
                  sorted(rng.sample(by_label[label], min(args.views_per_breed, len(by_label[label]))))]
        looks = [v for i in chosen for v in augmentations(pictures[i])]
        view_probs = probabilities(model, looks).reshape(len(chosen), 5, -1)
        view_truth = np.array([index[pairs[i][1]] for i in chosen])
        np.savez_compressed(cached, val=val_probs, views=view_probs, view_truth=view_truth)
    seconds = time.perf_counter() - started

    truth = [index[label] for _, label in pairs]
    by_breed: dict[int, list[int]] = {}
    for i, t in enumerate(truth):
        by_breed.setdefault(t, []).append(i)
    rng = random.Random(SEED)
    unsure_below = model.card.get("decision", {}).get("unsure_below", 0.5)
    result = {"model": model.id, "photos": len(pairs), "augmented_photos": int(len(view_truth)),
              "unsure_below": unsure_below, "cpu": cpu_flags(), "seconds_inference": round(seconds, 1),
              "optimistic": {}, "pessimistic": {}}
    for k in KS:
        # Optimistic: each validation photo with k-1 other photos of its breed, drawn without replacement.
        groups = []
        for i, t in enumerate(truth):
            others = [j for j in by_breed[t] if j != i]
            groups.append(val_probs[[i, *rng.sample(others, k - 1)]])
        views = [view_probs[n, :k] for n in range(len(view_truth))]
        result["optimistic"][k] = {rule: scores(groups, truth, rule, unsure_below) for rule in fusion.RULES}
        result["pessimistic"][k] = {rule: scores(views, view_truth.tolist(), rule, unsure_below)
                                    for rule in fusion.RULES}
    print(f"{model.id}: {len(pairs)} validation photos, {len(view_truth)} with 5 augmented views; "
          f"unsure below {unsure_below}; CPU {result['cpu']}")
    print("per-animal top-1 / share unsure / precision of dog answers")
    print(f"{'k':>2} {'bound':<12} {'mean':>24} {'log-mean':>24}")
    for bound in ("optimistic", "pessimistic"):
        for k in KS:
            cells = [result[bound][k][rule] for rule in fusion.RULES]
            print(f"{k:>2} {bound:<12} " + " ".join(
                f"{c['top1']:>8.4f} {c['unsure']:>6.1%} {c['dog_precision']:>8.4f}" for c in cells))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
