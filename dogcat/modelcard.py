"""The model card: the JSON sidecar beside every exported ``.onnx`` (``model.onnx`` → ``model.json``).

It says what the graph takes and gives (tensor names, labels, breed names), how photos become its input
(``preprocessing``), and what was measured and chosen for it (``metrics``, ``decision``, ``quantization`` ...).
Export writes it; quantization, ``dogcat train thresholds``, ``dogcat train oof`` and ``dogcat evaluate --record``
patch it; inference reads it. All of them go through :class:`ModelCard`, which validates a card when it is read
or made (a :class:`ModelError` naming the file and the problem, in one line) and keeps every key it does not
know, so that rewriting a card never loses anything.

Standard library only (no numpy, no Pillow, no TensorFlow): the command line and the exporters read cards
without loading the models' code.

Layer: pixels and models (docs/architecture.md).
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dogcat.errors import DogcatError

FORMAT = "dogcat-model/1"
BREEDS, IMAGENET = "breeds", "imagenet-1k"  # the kinds of model dogcat runs; a card without "kind" is a breed model

# How a photo becomes the model's square input. "stretch" ignores the aspect ratio (what the Stanford Dogs
# crops were trained with); "letterbox" keeps it and pads with mid-grey (0 after every backbone's scaling);
# "center-crop" keeps it and cuts the longer side. On a square photo all three give the same pixels.
RESIZE_MODES = ("stretch", "letterbox", "center-crop")
RESAMPLES = ("bilinear", "bicubic")  # Pillow's filters of those names (dogcat.images)
# What dogcat.images always gives a model. A card may say so (export writes them) but may not ask for anything
# else: nothing would honour it, and the model would be served other pixels than it was trained on.
FIXED_PIXELS = {"color": "RGB", "dtype": "float32", "range": [0, 255], "layout": "NHWC"}
# The decision block's thresholds, each in 0..1. second_look_below: a split model's rule for a second look (the
# mirror image) at a photo whose first look's top confidence is below it (dogcat.status.Judge).
THRESHOLDS = ("not_a_dog_below", "unsure_below", "not_a_dog_confidence_below", "second_look_below")


class ModelError(DogcatError):
    """A model file that cannot be used; the message names the file and the problem."""


def split_model_id(name: str, backbone_sha256: str, head_sha256: str) -> str:
    """A split model's id: its name and a hash of both its files (a taught head on the same backbone is
    another model; so is the same head on another backbone)."""
    return f"{name}@{hashlib.sha256((backbone_sha256 + head_sha256).encode()).hexdigest()[:12]}"


def sidecar_path(path: str | Path) -> Path:
    """The card of a model: ``x.onnx`` → ``x.json`` (a ``.json`` path is its own)."""
    return Path(path).with_suffix(".json")


@dataclass(frozen=True)
class Preprocessing:
    """How a model wants its pixels: what the card's ``preprocessing`` block records."""

    size: tuple[int, int] = (299, 299)  # (height, width)
    resize: str = "stretch"  # stretch the whole photo to `size`, like the crops the model learnt from
    resample: str = "bilinear"

    def __post_init__(self):
        if not (isinstance(self.size, tuple | list) and len(self.size) == 2
                and all(_positive_int(x) for x in self.size)):
            raise ValueError(f"size must be two positive whole numbers (height, width), not {_show(self.size)}")
        object.__setattr__(self, "size", (int(self.size[0]), int(self.size[1])))
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"unknown resize mode {_show(self.resize)}; known: {', '.join(RESIZE_MODES)}")
        if self.resample not in RESAMPLES:
            raise ValueError(f"unknown resample filter {_show(self.resample)}; known: {', '.join(RESAMPLES)}")

    def to_dict(self) -> dict:
        return {"size": list(self.size), "resize": self.resize, "resample": self.resample, **FIXED_PIXELS}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Preprocessing:
        """A card's ``preprocessing`` block; ValueError naming the field for anything dogcat would not honour."""
        if not isinstance(d, Mapping):
            raise ValueError(f"must be an object, not {_show(d)}")
        unknown = sorted(set(d) - {"size", "resize", "resample", *FIXED_PIXELS})
        if unknown:
            raise ValueError(f"{unknown[0]}: not a preprocessing step dogcat knows (it would be ignored)")
        for key, only in FIXED_PIXELS.items():
            if key in d and d[key] != only:
                raise ValueError(f"{key}: dogcat gives models {_show(only)} only, not {_show(d[key])}")
        if "size" not in d:
            raise ValueError("size: missing")
        size = d["size"]
        if not (isinstance(size, list | tuple) and len(size) == 2 and all(_positive_int(x) for x in size)):
            raise ValueError(f"size: must be two positive whole numbers (height, width), not {_show(size)}")
        for key, known in (("resize", RESIZE_MODES), ("resample", RESAMPLES)):
            if key in d and d[key] not in known:
                raise ValueError(f"{key}: unknown {_show(d[key])}; known: {', '.join(known)}")
        return cls(size=(size[0], size[1]), resize=d.get("resize", "stretch"), resample=d.get("resample", "bilinear"))


class ModelCard(Mapping[str, Any]):
    """A validated model card: typed access to what dogcat uses, every other key kept as it was.

    Read-only, and a Mapping of the card's JSON (``card["metrics"]``, ``card.get("quantization")``,
    ``"decision" in card``); the ``with_*`` and :meth:`updated` methods return a new, validated card, and
    :meth:`write` puts one beside its model (atomically)."""

    def __init__(self, data: Mapping[str, Any], source: str | Path | None = None):
        """``data``: the card's JSON object; ``source``: the file it came from (or goes to), named in errors."""
        self.source = sidecar_path(source) if source is not None else None
        where = str(self.source) if self.source is not None else "model card"
        if not isinstance(data, Mapping):
            raise ModelError(f"{where}: not a JSON object")
        self._data: dict[str, Any] = json.loads(json.dumps(dict(data)))  # a copy, and JSON through and through
        try:
            self._preprocessing = _validate(self._data)
        except _Invalid as e:
            raise ModelError(f"{where}: {e}") from None

    # Reading and writing

    @classmethod
    def read(cls, path: str | Path) -> ModelCard:
        """The card of ``path`` (the model's .onnx or the card's .json); ModelError when it cannot be used."""
        side = sidecar_path(path)
        try:
            text = side.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ModelError(f"{side}: the model's sidecar is missing (export writes it beside the .onnx)") from None
        except UnicodeDecodeError:
            raise ModelError(f"{side}: not valid JSON (not UTF-8 text)") from None
        except OSError as e:
            raise ModelError(f"{side}: cannot be read ({e.strerror or e})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ModelError(f"{side}: not valid JSON ({e})") from None
        return cls(data, side)

    def write(self, path: str | Path | None = None) -> Path:
        """Write the card beside ``path`` (a .onnx, or the .json itself; default: where it was read from)
        through a temporary file in the same folder, so that a reader never sees half a card. Returns its path."""
        if path is None and self.source is None:
            raise ValueError("a card made in memory needs a path to be written to")
        side = sidecar_path(path) if path is not None else self.source
        assert side is not None
        tmp = side.with_name(f".{side.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(self.to_json())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, side)
        finally:
            tmp.unlink(missing_ok=True)
        return side

    def to_json(self) -> str:
        return json.dumps(self._data, indent=2) + "\n"

    def to_dict(self) -> dict[str, Any]:
        """A copy of the card's JSON, to change freely."""
        return json.loads(json.dumps(self._data))

    # Patches: each returns a new card, validated, with every other key as it was

    def updated(self, changes: Mapping[str, Any] | None = None, /, **fields: Any) -> ModelCard:
        """These top-level keys replaced (or added)."""
        return ModelCard(self._data | dict(changes or {}) | fields, self.source)

    def with_decision(self, decision: Mapping[str, Any]) -> ModelCard:
        """The thresholds chosen for the model (``dogcat train thresholds``, ``dogcat train oof``)."""
        return self.updated(decision=dict(decision))

    def with_metrics(self, **entries: Any) -> ModelCard:
        """These entries of the ``metrics`` block replaced (or added), the others kept."""
        return self.updated(metrics=self.metrics | entries)

    def with_preprocessing(self, **changes: Any) -> ModelCard:
        """These fields of the ``preprocessing`` block replaced (e.g. ``resize="letterbox"``)."""
        return self.updated(preprocessing=self._data["preprocessing"] | changes)

    # Typed access

    @property
    def kind(self) -> str:
        return self._data.get("kind", BREEDS)

    @property
    def id(self) -> str:
        return self._data["id"]

    @property
    def name(self) -> str | None:
        return self._data.get("name")

    @property
    def input(self) -> str:
        """The graph's input tensor: NHWC float32 pixels."""
        return self._data["input"]

    @property
    def output(self) -> str:
        """The graph's output tensor: probabilities over ``labels``."""
        return self._data["output"]

    @property
    def labels(self) -> list[str]:
        return list(self._data["labels"])

    @property
    def breeds(self) -> list[str]:
        """Human names, one per label (a breed model's)."""
        return list(self._data.get("breeds", []))

    @property
    def dog_classes(self) -> tuple[int, int]:
        """The first and last (inclusive) dog class of an ImageNet model."""
        first, last = self._data["dog_classes"]
        return first, last

    @property
    def preprocessing(self) -> Preprocessing:
        return self._preprocessing

    @property
    def decision(self) -> dict[str, Any]:
        """The thresholds chosen for the model, {} before any were (dogcat.decision has the defaults)."""
        return dict(self._data.get("decision") or {})

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self._data.get("metrics") or {})

    @property
    def quantization(self) -> dict[str, Any] | None:
        return self._data.get("quantization")

    @property
    def backbone(self) -> dict[str, Any] | None:
        """A split model's backbone (dogcat.train.graph_split): ``file`` (beside the model's .onnx), its
        ``input`` (the pixels) and ``output`` (the pooled features of one view, the head's input), ``sha256``.
        None for a model in one graph."""
        block = self._data.get("backbone")
        return dict(block) if block is not None else None

    # Mapping

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"ModelCard({self._data.get('id')!r}, source={str(self.source) if self.source else None!r})"


class _Invalid(ValueError):
    pass


def _validate(card: dict[str, Any]) -> Preprocessing:
    """Raise _Invalid (the field and the problem) unless ``card`` is a usable card; returns its preprocessing."""
    if card.get("format") != FORMAT:
        raise _Invalid(f"not a {FORMAT} sidecar (format: {_show(card.get('format'))})")
    missing = [k for k in ("id", "input", "output", "labels", "preprocessing") if k not in card]
    kind = card.get("kind", BREEDS)
    if kind == BREEDS and "breeds" not in card:
        missing.append("breeds")
    if kind == IMAGENET and "dog_classes" not in card:
        missing.append("dog_classes")
    if missing:
        raise _Invalid(f"missing {', '.join(missing)}")
    if not isinstance(kind, str) or not kind:
        raise _Invalid(f"kind: must be a name, not {_show(kind)}")
    for key in ("id", "input", "output"):
        if not isinstance(card[key], str) or not card[key]:
            raise _Invalid(f"{key}: must be a non-empty string, not {_show(card[key])}")
    for key in ("name", "sha256"):
        if key in card and not isinstance(card[key], str):
            raise _Invalid(f"{key}: must be a string, not {_show(card[key])}")
    _validate_labels(card)
    try:
        prep = Preprocessing.from_dict(card["preprocessing"])
    except ValueError as e:
        raise _Invalid(f"preprocessing: {e}") from None
    for key in ("metrics", "decision", "quantization", "training", "parity"):
        if card.get(key) is not None and not isinstance(card[key], dict):
            raise _Invalid(f"{key}: must be an object, not {_show(card[key])}")
    _validate_decision(card.get("decision") or {})
    _validate_backbone(card.get("backbone"))
    return prep


def _validate_backbone(block: Any) -> None:
    if block is None:
        return
    if not isinstance(block, dict):
        raise _Invalid(f"backbone: must be an object, not {_show(block)}")
    for key in ("file", "input", "output"):
        if not isinstance(block.get(key), str) or not block[key]:
            raise _Invalid(f"backbone.{key}: must be a non-empty string, not {_show(block.get(key))}")
    if Path(block["file"]).name != block["file"] or block["file"] in (".", ".."):
        raise _Invalid(f"backbone.file: must be a file name beside the model, not {_show(block['file'])}")


def _validate_labels(card: dict[str, Any]) -> None:
    labels = card["labels"]
    if not (isinstance(labels, list) and labels and all(isinstance(x, str) and x for x in labels)):
        raise _Invalid("labels: must be a non-empty list of names")
    if len(set(labels)) != len(labels):
        raise _Invalid(f"labels: {_show(next(x for x in labels if labels.count(x) > 1))} is there twice")
    if "breeds" in card:
        breeds = card["breeds"]
        if not (isinstance(breeds, list) and all(isinstance(x, str) for x in breeds)):
            raise _Invalid("breeds: must be a list of names")
        if len(breeds) != len(labels):
            raise _Invalid(f"breeds: {len(breeds)} names for {len(labels)} labels")
    if "dog_classes" in card:
        dogs = card["dog_classes"]
        if not (isinstance(dogs, list) and len(dogs) == 2 and all(_int(x) for x in dogs)
                and 0 <= dogs[0] <= dogs[1] < len(labels)):
            raise _Invalid(f"dog_classes: must be [first, last], two label indices, not {_show(dogs)}")


def _validate_decision(decision: dict[str, Any]) -> None:
    detector = decision.get("detector")
    if detector is not None and not isinstance(detector, str):
        raise _Invalid(f"decision.detector: must be a file name, not {_show(detector)}")
    for key in THRESHOLDS:
        value = decision.get(key)
        if value is not None and not (isinstance(value, int | float) and not isinstance(value, bool)
                                      and math.isfinite(value) and 0 <= value <= 1):
            raise _Invalid(f"decision.{key}: must be a number from 0 to 1, not {_show(value)}")


def _int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _positive_int(x: Any) -> bool:
    return _int(x) and x > 0


def _show(value: Any, most: int = 60) -> str:
    """A JSON value in a one-line message, cut short."""
    text = json.dumps(value, default=repr)
    return text if len(text) <= most else text[:most - 1] + "…"
