"""Is one cross-validated head measurably better than another? A paired bootstrap over their out-of-fold photos.

    python benchmarks/oof_compare.py RUN_A RUN_B [--resamples 1000] [--goal 0.97]

RUN_A and RUN_B are `dogcat train crossval` run folders over the same photos and folds (each keeps `oof.npz`: every
photo's out-of-fold probabilities under the chosen head). For each, and for B − A, it prints top-1, top-3 and the
share of photos left `unsure` at the lowest confidence threshold (step 0.01) whose answers are right `goal` of
the time — the rule `dogcat train oof` chooses `unsure_below` by, without the dog detector. The bootstrap draws
the photos with replacement, the same draw for both heads (they were measured on the same photos), re-chooses the
threshold on each draw, and gives the 95 % interval of each difference. An interval that holds 0 means the two
heads cannot be told apart on these photos: the reason a model in git is replaced only when the interval
excludes 0 in its favour (every committed version of an 80 MB model stays in history).

numpy and dogcat.evaluate (its `unsure` rule), under a minute on 17,456 photos.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dogcat.evaluate import lowest_unsure_below


def unsure_share(confidence: np.ndarray, right: np.ndarray, goal: float) -> float:
    """Share of photos under the `unsure` threshold that rule chooses (1.0 if no threshold reaches `goal`)."""
    t = lowest_unsure_below(confidence, right, goal)
    return 1.0 if t is None else float((confidence < t).mean())


def figures(probs: np.ndarray, label: np.ndarray, goal: float) -> dict[str, float]:
    top3 = np.argsort(-probs, axis=1)[:, :3]
    right = top3[:, 0] == label
    return {"top1": float(right.mean()), "top3": float((top3 == label[:, None]).any(axis=1).mean()),
            "unsure": unsure_share(probs.max(axis=1), right, goal)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--goal", type=float, default=0.97)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    a, b = np.load(args.run_a / "oof.npz"), np.load(args.run_b / "oof.npz")
    if not (np.array_equal(a["label"], b["label"]) and np.array_equal(a["fold"], b["fold"])):
        raise SystemExit(f"{args.run_a}, {args.run_b}: not the same photos and folds; nothing to pair")
    pa, pb, label = a["probabilities"], b["probabilities"], a["label"]
    fa, fb = figures(pa, label, args.goal), figures(pb, label, args.goal)
    rng = np.random.default_rng(args.seed)
    diffs: dict[str, list[float]] = {k: [] for k in fa}
    for _ in range(args.resamples):
        i = rng.integers(0, len(label), len(label))
        da, db = figures(pa[i], label[i], args.goal), figures(pb[i], label[i], args.goal)
        for k in diffs:
            diffs[k].append(db[k] - da[k])
    print(f"{len(label)} photos out of fold, {args.resamples} paired bootstrap draws (seed {args.seed}); "
          f"unsure: share below the lowest threshold whose answers are {args.goal:.0%} right")
    print(f"{'':8} {'A':>8} {'B':>8} {'B - A':>8}   95 % interval of B - A   P(B - A > 0)")
    for k in fa:
        d = np.array(diffs[k])
        low, high = np.percentile(d, [2.5, 97.5])
        print(f"{k:8} {fa[k]:8.4f} {fb[k]:8.4f} {fb[k] - fa[k]:+8.4f}   [{low:+.4f}, {high:+.4f}]"
              f"{'':10}{(d > 0).mean():.2f}")
    print(f"A: {args.run_a}\nB: {args.run_b}")


if __name__ == "__main__":
    main()
