"""The decision rules for a photo's status, numpy-free so that exports, reports and animals can use them
without loading the models' code (dogcat.status runs the models and applies these rules).

A photo is `not_a_dog` when the dog detector's dog probability is below ``not_a_dog_below`` *and* the breed
model is not confident of any breed either; otherwise `dog` when the breed model's top confidence reaches
``unsure_below``, else `unsure`. A file that could not be read is an `error`. The thresholds travel with the
model (its sidecar's ``decision`` block); see dogcat.status for why both models must agree.

Layer: a leaf (names and rules; no dogcat imports but other leaves) (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dogcat.text import percent

STATUSES = ("dog", "unsure", "not_a_dog", "error")
# For a model whose sidecar has no "decision" block (e.g. freshly exported, before `dogcat train thresholds`).
DEFAULT_NOT_A_DOG_BELOW = 0.5
DEFAULT_NOT_A_DOG_CONFIDENCE_BELOW = 0.2
DEFAULT_UNSURE_BELOW = 0.5
# An unsure answer reads "maybe a mix" only when its second breed is a real contender: at least this confident
# (a photo's, or an animal's fused answer). Below it the answer is the first breed, hedged: "probably Beagle
# (78%)". A judgement, checked on the 175 crops of tests/data (purebreds, so "the right breed is the second
# guess" stands in for "a mix"): 28 were unsure; the 3 whose right breed was the second guess all had it at 30 %
# or more, and of the 16 with a second guess under 25 %, 15 were the first guess's breed. A quarter also means
# the second breed holds at least a third of what the first does at the highest unsure answer (0.78 / 0.25).
MIX_SECOND_FROM = 0.25
# A split model whose card has no second-look rule looks twice at every photo, as its one-graph export did.
DEFAULT_SECOND_LOOK_BELOW = 1.0


@dataclass(frozen=True)
class Thresholds:
    not_a_dog_below: float  # the detector's dog probability; 0 turns the check (and the detector) off
    unsure_below: float  # the breed model's top confidence
    not_a_dog_confidence_below: float = 1.0  # ... and the breed model's top confidence (1: the detector alone)
    # A split model's second look (the mirror image) at a photo whose first look's top confidence is below
    # this (1: every photo); the statuses are then decided on the mean of the two looks (dogcat.status.Judge).
    second_look_below: float = DEFAULT_SECOND_LOOK_BELOW

    @classmethod
    def from_card(cls, card: Mapping[str, Any], not_a_dog_below: float | None = None,
                  unsure_below: float | None = None) -> Thresholds:
        """A model sidecar's ``decision`` block (defaults where it has none), with optional overrides."""
        decision = card.get("decision") or {}
        return cls(
            not_a_dog_confidence_below=decision.get("not_a_dog_confidence_below", DEFAULT_NOT_A_DOG_CONFIDENCE_BELOW),
            not_a_dog_below=(not_a_dog_below if not_a_dog_below is not None
                             else decision.get("not_a_dog_below", DEFAULT_NOT_A_DOG_BELOW)),
            unsure_below=unsure_below if unsure_below is not None else decision.get("unsure_below",
                                                                                    DEFAULT_UNSURE_BELOW),
            second_look_below=decision.get("second_look_below", DEFAULT_SECOND_LOOK_BELOW))


    @classmethod
    def for_model(cls, model, not_a_dog_below: float | None = None,
                  unsure_below: float | None = None) -> Thresholds:
        """The same, for a loaded model (anything with the sidecar as ``.card``: dogcat.model.BreedModel)."""
        return cls.from_card(model.card, not_a_dog_below, unsure_below)


def decide(confidence: float, dog_probability: float | None, thresholds: Thresholds) -> str:
    if (dog_probability is not None and dog_probability < thresholds.not_a_dog_below
            and confidence < thresholds.not_a_dog_confidence_below):
        return "not_a_dog"
    return breed_status(confidence, thresholds.unsure_below)


def breed_status(confidence: float, unsure_below: float = DEFAULT_UNSURE_BELOW) -> str:
    """The one dog / unsure cut-off, for a photo (through :func:`decide`) and for an animal's fused answer:
    ``dog`` when the top breed's confidence reaches ``unsure_below``, else ``unsure``."""
    return "unsure" if confidence < unsure_below else "dog"


def status_of(record: dict) -> str:
    """A catalog record's status (dogcat.readmodel.records). A photo catalogued before statuses (schema 1) has
    none until the next catalog run: it is judged as a model without a ``decision`` block would judge it, by its
    best guess's confidence alone (the dog detector did not run then)."""
    if record.get("error"):
        return "error"
    if record.get("status"):
        return record["status"]
    top_k = record.get("top_k") or []
    if not top_k or top_k[0].get("confidence") is None:
        return "error"
    return breed_status(top_k[0]["confidence"])


def maybe_mix(second_confidence: float | None) -> bool:
    """An unsure answer's second breed is a real contender (:data:`MIX_SECOND_FROM`): say "maybe a mix"."""
    return second_confidence is not None and second_confidence >= MIX_SECOND_FROM


def unsure_words(guesses: Sequence[tuple[str, float | None]], confidences: bool = True) -> str:
    """An unsure answer for people, from its best guesses (breed, confidence), best first: 'maybe a mix: Beagle
    49% / Walker Hound 30%' when the second is a contender (:func:`maybe_mix`), else 'probably Beagle (78%)'.
    ``confidences=False`` where a column beside it shows the confidence: 'maybe a mix: Beagle / Walker Hound',
    'probably Beagle'."""
    if not guesses:
        return "unsure"
    (first, p1), second = guesses[0], (guesses[1] if len(guesses) > 1 else None)
    if second is not None and maybe_mix(second[1]):
        if confidences:
            return f"maybe a mix: {first} {percent(p1)} / {second[0]} {percent(second[1])}"
        return f"maybe a mix: {first} / {second[0]}"
    return f"probably {first}" + (f" ({percent(p1)})" if confidences and p1 is not None else "")
