"""One answer per animal from its photos' breed probabilities.

Several photos of one dog are several looks at the same breed, so their probabilities are combined into one
distribution and the animal's answer is read off that, with the same thresholds a single photo gets. Two
rules were measured (benchmarks/fusion.py; the model card has the figures):

- ``mean``: the average of the photos' probability vectors (a vote weighted by confidence);
- ``log-mean``: the average of their log-probabilities, renormalised (a product of experts: one photo that
  rules a breed out vetoes it).

The mean is the rule dogcat uses (``RULE``): on validation photos it was as accurate as the log-mean for every
number of photos measured, and it degrades gracefully when one photo is bad (a blurred or wrong photo can
only add its share of the vote, never veto the right breed).

Plain Python on purpose: exports and reports fuse a few hundred floats per animal and should not need numpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

RULES = ("mean", "log-mean")
RULE = "mean"
_FLOOR = 1e-6  # log(0) guard for log-mean: a probability ONNX Runtime rounded to zero


def fuse(distributions: Sequence[Sequence[float]], rule: str = RULE) -> list[float]:
    """Several probability vectors over the same labels → one, summing to 1. An empty list → []."""
    if not distributions:
        return []
    n = len(distributions[0])
    if any(len(d) != n for d in distributions):
        raise ValueError("every photo's probabilities must cover the same labels")
    k = len(distributions)
    if rule == "mean":
        fused = [sum(d[i] for d in distributions) / k for i in range(n)]
    elif rule == "log-mean":
        logs = [sum(math.log(max(float(d[i]), _FLOOR)) for d in distributions) / k for i in range(n)]
        top = max(logs)
        fused = [math.exp(v - top) for v in logs]
    else:
        raise ValueError(f"unknown fusion rule {rule!r}; known: {', '.join(RULES)}")
    total = sum(fused)
    return [v / total for v in fused] if total > 0 else fused


def from_top_k(top_k: Sequence[dict], labels: Sequence[str]) -> list[float]:
    """A full distribution from a prediction that kept only its top-k (catalogs from before schema 3): the
    listed confidences, and what is left spread evenly over the other labels."""
    index = {label: i for i, label in enumerate(labels)}
    out = [0.0] * len(labels)
    listed = 0.0
    for g in top_k:
        i = index.get(g.get("label"))
        if i is not None and g.get("confidence") is not None:
            out[i] = float(g["confidence"])
            listed += out[i]
    rest = [i for i, v in enumerate(out) if v == 0.0]
    if rest:
        share = max(0.0, 1.0 - listed) / len(rest)
        for i in rest:
            out[i] = share
    return out


def ranked(distribution: Sequence[float], labels: Sequence[str], k: int) -> list[tuple[str, float]]:
    """The k likeliest (label, probability) pairs, best first."""
    order = sorted(range(len(distribution)), key=lambda i: -distribution[i])[:k]
    return [(labels[i], float(distribution[i])) for i in order]
