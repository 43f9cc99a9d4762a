"""What dogcat says about a photo: a breed (`dog`), a hedged answer (`unsure`), `not_a_dog`, or an `error`.

Two models decide. The dog detector (ImageNet-1k, see dogcat/train/detector.py) gives the probability that the
photo shows a dog at all. When it is below ``not_a_dog_below`` *and* the breed model is not confident of any
breed either (top confidence below ``not_a_dog_confidence_below``), the photo is `not_a_dog` and gets no breed,
only what it looks like ("tabby"). Both must agree because the detector alone misses dogs: EfficientNet-Lite0
gives 2.7 % of validation dog crops a dog probability under 0.5 and 1 % under 0.012 (a pug crop: 0.44,
"skunk"), while the breed model, which has only ever seen dogs, is rarely 99 % sure of anything else.
Otherwise the breed model's best guess is the answer when its confidence reaches ``unsure_below``, and `unsure`
when it does not — "maybe a mix: Labrador Retriever 55% / Beagle 30%" when the second breed is a real
contender, else "probably Labrador Retriever (76%)" (dogcat.decision.unsure_words).
The thresholds were chosen on validation photos and live in the breed model's sidecar (``decision``), so a model
and the thresholds measured for it travel together.

How many looks the breed model takes (``looks``): a split model (a backbone and a head, dogcat.model) takes a
first look at the photo and a second at its mirror image only when the first look's top confidence is below
``second_look_below`` (``auto``, the default), and answers from the mean of the two looks' features as its
one-graph export did for every photo; ``1`` never looks twice, ``2`` always does. Out of fold, with the shipped
model's own two views and head, the second look changed the answer only for photos the first was unsure of:
two looks cost twice the backbone for +0.2 points of top-1, the cascade about 1.1 looks per photo for the same
(dogcat/models/MODEL_CARD.md). The statuses' thresholds were chosen on the answers the cascade gives.

Layer: pixels and models (docs/architecture.md).
"""

from __future__ import annotations

import dataclasses
import functools
import math
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
    unsure_words,
)
from dogcat.model import BreedModel, DogDetector, Guess, ModelError, mirrored

LOOKS = ("1", "2", "auto")  # how many times the breed model's backbone looks at a photo (see the docstring)


@dataclass
class Verdict:
    status: str
    top_k: list[Guess] = field(default_factory=list)  # the breed model's guesses, kept even for not_a_dog
    dog_probability: float | None = None  # None when the dog check is off
    looks_like: str | None = None  # for not_a_dog: the likeliest non-dog ImageNet class
    # The breed model's whole distribution, in its label order: the catalog keeps it so that an animal's
    # photos can be fused (dogcat.fusion).
    probabilities: np.ndarray | None = field(default=None, repr=False, compare=False)
    looks: int = 1  # how many views of the photo the breed model's answer comes from (1 or 2)
    # A split model's pooled backbone features that its head answered from (the mean of both looks' after a
    # second look): the catalog keeps them (dogcat teach, dogcat similar). None for a one-graph model.
    features: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def best(self) -> Guess | None:
        """The breed dogcat answers with: none for a photo that is not a dog."""
        return self.top_k[0] if self.top_k and self.status in ("dog", "unsure") else None

    def summary(self, confidences: bool = True) -> str:
        """One line for people: 'Golden Retriever', 'maybe a mix: Labrador Retriever 55% / Beagle 30%',
        'probably Beagle (78%)' (dogcat.decision.unsure_words; ``confidences=False``: without the figures),
        'not a dog (tabby)'."""
        if self.status == "not_a_dog":
            return f"not a dog ({self.looks_like})" if self.looks_like else "not a dog"
        if self.status == "unsure":
            return unsure_words([(g.breed, g.confidence) for g in self.top_k], confidences)
        return self.top_k[0].breed if self.top_k else ""




class Judge:
    """The breed model, the dog detector, the thresholds and how many looks: model inputs → verdicts."""

    def __init__(self, model: BreedModel, detector: DogDetector | None = None,
                 thresholds: Thresholds | None = None, looks: str = "auto"):
        if looks not in LOOKS:
            raise ModelError(f"unknown number of looks {looks!r}; known: {', '.join(LOOKS)}")
        if model.fixed_looks is not None and looks != "auto" and int(looks) != model.fixed_looks:
            raise ModelError(f"{model.path}: one graph, pixels to probabilities, that looks {model.fixed_looks} "
                             f"time(s) at every photo: --looks {looks} needs a split model (backbone and head)")
        self.model = model
        self.thresholds = thresholds or Thresholds.for_model(model)
        self.detector = detector if self.thresholds.not_a_dog_below > 0 else None
        self.looks = looks

    @classmethod
    def load(cls, model_path: str | Path | None = None, detector_path: str | Path | None = None,
             not_a_dog_below: float | None = None, unsure_below: float | None = None,
             device: str = "auto", looks: str = "auto") -> Judge:
        model = BreedModel(model_path, device)
        thresholds = Thresholds.for_model(model, not_a_dog_below, unsure_below)
        detector = None
        if thresholds.not_a_dog_below > 0:
            detector = DogDetector(detector_path or _detector_beside(model), device)
        return cls(model, detector, thresholds, looks)

    @classmethod
    def breeds_only(cls, model: BreedModel, looks: str = "auto") -> Judge:
        """The breed model alone: no dog check, no `unsure`; its looks as its card says."""
        return cls(model, None, dataclasses.replace(Thresholds.for_model(model), not_a_dog_below=0.0,
                                                    unsure_below=0.0), looks)

    def start(self) -> list[str]:
        """Load the ONNX Runtime sessions now; returns the warnings to show once (a device that is missing)."""
        graphs = self.model.graphs + ([self.detector] if self.detector is not None else [])
        if len(graphs) > 1:  # ONNX Runtime loads graphs outside the GIL: all at once cut a cold start
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(len(graphs)) as pool:
                list(pool.map(lambda g: g.session, graphs))
        warnings = []
        for g in graphs:
            _ = g.session
            if g.warning and g.warning not in warnings:
                warnings.append(g.warning)
        return warnings

    @property
    def device(self) -> str:
        return self.model.device

    @property
    def preprocessings(self):
        """What each photo must be decoded into: the breed model's input, then the detector's."""
        return (self.model.preprocessing,) + ((self.detector.preprocessing,) if self.detector else ())

    @property
    def second_look_below(self) -> float:
        """A photo gets a second look when its first look's top confidence is below this (0: never, inf: always)."""
        if self.looks == "1":
            return 0.0
        rule = self.thresholds.second_look_below
        return math.inf if self.looks == "2" or rule >= 1.0 else rule

    def breed_probabilities(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """NHWC pixels → (probabilities, looks taken per photo, the features the head answered from: None for a
        one-graph model). The first look at every photo; the second (its mirror image) only where the first is
        unsure, those photos answered from the mean of both looks."""
        if self.model.backbone is None:
            assert self.model.fixed_looks is not None
            return self.model.probabilities(pixels), np.full(len(pixels), self.model.fixed_looks), None
        features = self.model.features(pixels)
        probs = self.model.head(features)
        again = probs.max(axis=1) < self.second_look_below
        if again.any():
            second = self.model.features(mirrored(pixels[again]))
            features[again] = (features[again] + second) / 2
            probs[again] = self.model.head(features[again])
        return probs, 1 + again.astype(int), features

    def judge(self, views: list[tuple[np.ndarray, ...]], k: int) -> list[Verdict]:
        """One tuple of model inputs per photo (as images.decode(..., *preprocessings).views) → verdicts."""
        probs, looks, features = self.breed_probabilities(np.stack([v[0] for v in views]))
        dog_p: list[float | None] = [None] * len(views)
        looks_like: Sequence[str | None] = [None] * len(views)
        if self.detector is not None:
            imagenet = self.detector.probabilities(np.stack([v[1] for v in views]))
            dog_p = [float(p) for p in self.detector.dog_probability(imagenet)]
            looks_like = self.detector.looks_like(imagenet)
        out = []
        for i, (row, p, look, n) in enumerate(zip(probs, dog_p, looks_like, looks, strict=True)):
            guesses = self.model.top_k(row, k)
            status = decide(guesses[0].confidence, p, self.thresholds)
            out.append(Verdict(status, guesses, p, look if status == "not_a_dog" else None, row, int(n),
                               features[i] if features is not None else None))
        return out


@functools.lru_cache(maxsize=4)
def load_judge(model: str | None = None, detector: str | None = None, device: str = "auto",
               unsure_below: float | None = None, not_dog_below: float | None = None, looks: str = "auto") -> Judge:
    """The breed model, the dog detector and their thresholds, loaded once per process and set of options (the
    one place that builds them, for the API and the command line). Raises ModelError for an unusable model.

    Here rather than in dogcat.api so that `dogcat classify` need not import the catalog's modules (SQLAlchemy:
    a fifth of a cold start)."""
    return Judge.load(model, detector, not_dog_below, unsure_below, device, looks)


def _detector_beside(model: BreedModel) -> Path | None:
    """The detector the model's sidecar names (a file beside the model), else the bundled one."""
    name = model.card.get("decision", {}).get("detector")
    if name and (model.path.parent / name).is_file():
        return model.path.parent / name
    return None


__all__ = ["STATUSES", "LOOKS", "Thresholds", "Verdict", "Judge", "load_judge", "decide", "ModelError",
           "DEFAULT_NOT_A_DOG_BELOW", "DEFAULT_NOT_A_DOG_CONFIDENCE_BELOW", "DEFAULT_UNSURE_BELOW"]
