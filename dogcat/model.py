"""An exported model (ONNX + its card, the JSON sidecar: dogcat.modelcard) → ONNX Runtime session → breed
probabilities.

Needs only numpy and onnxruntime: never TensorFlow.

Layer: pixels and models (docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dogcat.modelcard import FORMAT as SIDECAR_FORMAT
from dogcat.modelcard import ModelCard, ModelError, sidecar_path

if TYPE_CHECKING:
    import onnxruntime as ort

BUNDLED = "xception-120-int8.onnx"  # the fp32 master is models/xception-120.onnx in the repository
BUNDLED_DETECTOR = "efficientnet-lite0-imagenet.onnx"
INFERENCE_CHUNK = 4  # photos per ONNX Runtime call
DEVICES = ("auto", "cpu", "cuda")  # auto: CUDA when onnxruntime-gpu can use it, else the CPU
CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


def bundled_path(name: str = BUNDLED) -> Path:
    return Path(str(resources.files("dogcat") / "models" / name))


@dataclass(frozen=True)
class Guess:
    label: str  # the class folder name, e.g. n02099601-golden_retriever
    breed: str  # a human name, e.g. Golden Retriever
    confidence: float

    def to_dict(self) -> dict:
        return {"label": self.label, "breed": self.breed, "confidence": round(self.confidence, 6)}


class OnnxModel:
    """An exported model: the .onnx graph and its JSON sidecar (what goes in, what comes out, how photos are
    prepared), with an ONNX Runtime session created on first use."""

    kind = "breeds"  # the sidecar's "kind"; a sidecar without one is a breed model

    def __init__(self, path: str | Path, device: str = "auto"):
        if device not in DEVICES:
            raise ModelError(f"unknown device {device!r}; known: {', '.join(DEVICES)}")
        self.device_asked = device
        self.warning: str | None = None  # set when the device asked for could not be used
        self.path = Path(path)
        if self.path.is_dir():
            self.path = self.path / "model.onnx"
        if not self.path.is_file():
            raise ModelError(f"{self.path}: no such model file")
        self.card = ModelCard.read(self.path)  # validated: ModelError naming the file and the problem
        if self.card.kind != self.kind:
            raise ModelError(f"{self.path}: a {self.card.kind!r} model, not a {self.kind!r} one")
        self.labels: list[str] = self.card.labels
        self.id: str = self.card.id
        self.preprocessing = self.card.preprocessing  # dogcat evaluate --resize serves another one
        self._session: ort.InferenceSession | None = None

    @property
    def session(self):
        """Created on first use: importing onnxruntime and loading the graph is most of a cold start."""
        if self._session is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.log_severity_level = 3
            available = ort.get_available_providers()
            cuda = self.device_asked != "cpu" and CUDA in available
            if self.device_asked == "cuda" and not cuda:
                self.warning = ("CUDA was asked for, but this onnxruntime has no CUDA provider (pip install "
                                "onnxruntime-gpu instead of onnxruntime): running on the CPU")
            wanted = [CUDA, CPU] if cuda else [CPU]
            try:
                self._session = ort.InferenceSession(str(self.path), options, providers=wanted)
            except Exception as e:  # onnxruntime raises its own exception types for a corrupt graph
                raise ModelError(f"{self.path}: ONNX Runtime cannot load it ({str(e).splitlines()[0]})") from None
            # ONNX Runtime drops a provider that fails to start (no driver, missing CUDA libraries) silently.
            if cuda and CUDA not in self._session.get_providers() and self.device_asked == "cuda":
                self.warning = "CUDA was asked for, but ONNX Runtime could not start it here: running on the CPU"
        return self._session

    @property
    def device(self) -> str:
        """Where it runs: 'CUDA' or 'CPU' (creates the session)."""
        return "CUDA" if CUDA in self.session.get_providers() else "CPU"

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """NHWC float32 pixels (0..255, as images.load_batch gives) → (N, n_classes) probabilities."""
        # ONNX Runtime's memory grows with the batch it is given (Xception at 299 px: ~2.9 GB resident for
        # 32 photos) while CPU throughput does not (measured: 10.5 photos/s at 4, 9.1 at 16): feed it in chunks.
        run = lambda chunk: self.session.run([self.card.output], {self.card.input: chunk})[0]  # noqa: E731
        if len(pixels) <= INFERENCE_CHUNK:
            return run(pixels)
        return np.concatenate([run(pixels[i:i + INFERENCE_CHUNK]) for i in range(0, len(pixels), INFERENCE_CHUNK)])


class BreedModel(OnnxModel):
    """Photos → probabilities over the breeds it was trained on."""

    def __init__(self, path: str | Path | None = None, device: str = "auto"):
        super().__init__(path or bundled_path(), device)
        self.breeds: list[str] = self.card.breeds

    def top_k(self, probs: np.ndarray, k: int) -> list[Guess]:
        order = np.argsort(-probs)[:k]
        return [Guess(self.labels[i], self.breeds[i], float(probs[i])) for i in order]


class DogDetector(OnnxModel):
    """An ImageNet-1k classifier: how likely a photo shows a dog at all, and what it looks like otherwise."""

    kind = "imagenet-1k"

    def __init__(self, path: str | Path | None = None, device: str = "auto"):
        super().__init__(path or bundled_path(BUNDLED_DETECTOR), device)
        first, last = self.card.dog_classes
        self.dog_classes = slice(first, last + 1)

    def dog_probability(self, probs: np.ndarray) -> np.ndarray:
        """(N, 1000) probabilities → (N,) the probability mass on the dog classes."""
        return probs[:, self.dog_classes].sum(axis=1)

    def looks_like(self, probs: np.ndarray) -> list[str]:
        """The most likely class that is not a dog, per photo: what a non-dog photo shows ("tabby")."""
        others = probs.copy()
        others[:, self.dog_classes] = -1.0
        return [self.labels[i] for i in others.argmax(axis=1)]


# ModelError, sidecar_path and SIDECAR_FORMAT live in dogcat.modelcard (numpy-free); importable from here as before.
__all__ = ["SIDECAR_FORMAT", "BUNDLED", "BUNDLED_DETECTOR", "INFERENCE_CHUNK", "DEVICES", "ModelCard", "ModelError",
           "sidecar_path", "bundled_path", "Guess", "OnnxModel", "BreedModel", "DogDetector"]
