"""What dogcat says about a photo: a breed (`dog`), a hedged answer (`unsure`), `not_a_dog`, or an `error`.

Two models decide. The dog detector (ImageNet-1k, see dogcat/train/detector.py) gives the probability that the
photo shows a dog at all. When it is below ``not_a_dog_below`` *and* the breed model is not confident of any
breed either (top confidence below ``not_a_dog_confidence_below``), the photo is `not_a_dog` and gets no breed,
only what it looks like ("tabby"). Both must agree because the detector alone misses dogs: EfficientNet-Lite0
gives 2.7 % of validation dog crops a dog probability under 0.5 and 1 % under 0.012 (a pug crop: 0.44,
"skunk"), while the breed model, which has only ever seen dogs, is rarely 99 % sure of anything else.
Otherwise the breed model's best guess is the answer when its confidence reaches ``unsure_below``, and `unsure`
when it does not — the top-k then reads as a possible mix ("Labrador Retriever 55 % / Beagle 30 %").
The thresholds were chosen on validation photos and live in the breed model's sidecar (``decision``), so a model
and the thresholds measured for it travel together.

Layer: pixels and models (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dogcat.decision import (
    DEFAULT_NOT_A_DOG_BELOW,
    DEFAULT_NOT_A_DOG_CONFIDENCE_BELOW,
    DEFAULT_UNSURE_BELOW,
    STATUSES,
    Thresholds,
    decide,
)
from dogcat.model import BreedModel, DogDetector, Guess, ModelError


@dataclass
class Verdict:
    status: str
    top_k: list[Guess] = field(default_factory=list)  # the breed model's guesses, kept even for not_a_dog
    dog_probability: float | None = None  # None when the dog check is off
    looks_like: str | None = None  # for not_a_dog: the likeliest non-dog ImageNet class
    # The breed model's whole distribution, in its label order: the catalog keeps it so that an animal's
    # photos can be fused (dogcat.fusion).
    probabilities: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def best(self) -> Guess | None:
        """The breed dogcat answers with: none for a photo that is not a dog."""
        return self.top_k[0] if self.top_k and self.status in ("dog", "unsure") else None

    def summary(self, shown: int = 2) -> str:
        """One line for people: 'Golden Retriever', 'Labrador Retriever 55 % / Beagle 30 %?', 'not a dog (tabby)'."""
        if self.status == "not_a_dog":
            return f"not a dog ({self.looks_like})" if self.looks_like else "not a dog"
        if self.status == "unsure":
            return " / ".join(f"{g.breed} {g.confidence:.0%}" for g in self.top_k[:shown]) + "?"
        return self.top_k[0].breed if self.top_k else ""




class Judge:
    """The breed model, the dog detector and the thresholds: model inputs → verdicts."""

    def __init__(self, model: BreedModel, detector: DogDetector | None = None,
                 thresholds: Thresholds | None = None):
        self.model = model
        self.thresholds = thresholds or Thresholds.for_model(model)
        self.detector = detector if self.thresholds.not_a_dog_below > 0 else None

    @classmethod
    def load(cls, model_path: str | Path | None = None, detector_path: str | Path | None = None,
             not_a_dog_below: float | None = None, unsure_below: float | None = None,
             device: str = "auto") -> Judge:
        model = BreedModel(model_path, device)
        thresholds = Thresholds.for_model(model, not_a_dog_below, unsure_below)
        detector = None
        if thresholds.not_a_dog_below > 0:
            detector = DogDetector(detector_path or _detector_beside(model), device)
        return cls(model, detector, thresholds)

    def start(self) -> list[str]:
        """Load the ONNX Runtime sessions now; returns the warnings to show once (a device that is missing)."""
        models = [m for m in (self.model, self.detector) if m is not None]
        if len(models) > 1:  # ONNX Runtime loads graphs outside the GIL: both at once cut a cold start
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(len(models)) as pool:
                list(pool.map(lambda m: m.session, models))
        warnings = []
        for m in models:
            _ = m.session
            if m.warning and m.warning not in warnings:
                warnings.append(m.warning)
        return warnings

    @property
    def device(self) -> str:
        return self.model.device

    @property
    def preprocessings(self):
        """What each photo must be decoded into: the breed model's input, then the detector's."""
        return (self.model.preprocessing,) + ((self.detector.preprocessing,) if self.detector else ())

    def judge(self, views: list[tuple[np.ndarray, ...]], k: int) -> list[Verdict]:
        """One tuple of model inputs per photo (as images.decode(..., *preprocessings).views) → verdicts."""
        probs = self.model.probabilities(np.stack([v[0] for v in views]))
        dog_p: list[float | None] = [None] * len(views)
        looks: Sequence[str | None] = [None] * len(views)
        if self.detector is not None:
            imagenet = self.detector.probabilities(np.stack([v[1] for v in views]))
            dog_p = [float(p) for p in self.detector.dog_probability(imagenet)]
            looks = self.detector.looks_like(imagenet)
        out = []
        for row, p, look in zip(probs, dog_p, looks, strict=True):
            guesses = self.model.top_k(row, k)
            status = decide(guesses[0].confidence, p, self.thresholds)
            out.append(Verdict(status, guesses, p, look if status == "not_a_dog" else None, row))
        return out


def _detector_beside(model: BreedModel) -> Path | None:
    """The detector the model's sidecar names (a file beside the model), else the bundled one."""
    name = model.card.get("decision", {}).get("detector")
    if name and (model.path.parent / name).is_file():
        return model.path.parent / name
    return None


__all__ = ["STATUSES", "Thresholds", "Verdict", "Judge", "decide", "ModelError", "DEFAULT_NOT_A_DOG_BELOW",
           "DEFAULT_NOT_A_DOG_CONFIDENCE_BELOW", "DEFAULT_UNSURE_BELOW"]
