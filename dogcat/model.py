"""An exported model (ONNX + its card, the JSON sidecar: dogcat.modelcard) → ONNX Runtime session → breed
probabilities.

Needs only numpy and onnxruntime: never TensorFlow.

Layer: pixels and models (docs/architecture.md).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import platform
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dogcat.modelcard import FORMAT as SIDECAR_FORMAT
from dogcat.modelcard import ModelCard, ModelError, sidecar_path

if TYPE_CHECKING:
    import onnxruntime as ort

# The breed model: its head (features → probabilities, fp32) and card; the int8 backbone it names is beside it
# (xception-int8-backbone.onnx). dogcat/models/MODEL_CARD.md says how the fp32 model is rebuilt.
BUNDLED = "xception-120-int8.onnx"
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


# ONNX Runtime's NCHWc layout rewrites its fp32 convolutions into blocks of 8 channels on AVX2 CPUs and of 16 on
# AVX-512 ones, so their sums are rounded in another order. The int8 backbone's first two convolutions are fp32,
# and a rounding that differs in the last bit there moves a few of the next layer's int8 values by one step,
# which grows, layer by layer, into features 14 % apart (measured: 1e-3 added to every pixel does the same).
# Without it (and with the backbone's weights in 7 bits, dogcat.train.quantize), a photo's features are the
# same to the last bit on AVX2, AVX-512 VNNI and AMX CPUs (issue 32, docs/model.md).
DISABLED_OPTIMIZERS = ["NchwcTransformer"]


def open_session(path: Path, device_asked: str) -> tuple[ort.InferenceSession, str | None]:
    """An ONNX Runtime session of the graph at ``path`` on the device asked for, and the warning to show once
    when that device could not be used (None when it could)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    cuda = device_asked != "cpu" and CUDA in available
    warning = None
    if device_asked == "cuda" and not cuda:
        warning = ("CUDA was asked for, but this onnxruntime has no CUDA provider (pip install onnxruntime-gpu "
                   "instead of onnxruntime): running on the CPU")
    wanted = [CUDA, CPU] if cuda else [CPU]

    def options():
        made = ort.SessionOptions()
        made.log_severity_level = 3
        return made

    session = None
    if not cuda:
        cached = options()
        graph = optimized_graph(path, cached)
        try:
            session = ort.InferenceSession(graph, cached, providers=wanted,
                                           disabled_optimizers=DISABLED_OPTIMIZERS)
            keep_optimized(cached.optimized_model_filepath)
        except Exception:  # a copy that cannot be read or written: load the graph itself, as without a cache
            session = None
    if session is None:
        try:
            session = ort.InferenceSession(str(path), options(), providers=wanted,
                                           disabled_optimizers=DISABLED_OPTIMIZERS)
        except Exception as e:  # onnxruntime raises its own exception types for a corrupt graph
            raise ModelError(f"{path}: ONNX Runtime cannot load it ({str(e).splitlines()[0]})") from None
    # ONNX Runtime drops a provider that fails to start (no driver, missing CUDA libraries) silently.
    if cuda and CUDA not in session.get_providers() and device_asked == "cuda":
        warning = "CUDA was asked for, but ONNX Runtime could not start it here: running on the CPU"
    return session, warning


def optimized_graph(path: Path, options) -> str:
    """The graph to load on the CPU: ONNX Runtime's own optimized copy of ``path`` when one was saved on this
    machine (then ``options`` skip optimizing again), else ``path``, with ``options`` set to save that copy.

    Why: optimizing the int8 backbone (fusing its quantize/dequantize pairs, choosing kernels) is about a third
    of its session's creation (measured: 0.10 s → 0.065 s for the backbone, 0.065 s → 0.017 s for the dog
    detector on 2 cores), and a cold start (one photo) creates every session. The copy is kept in the cache
    folder, keyed by the file (path, size, modification time), the ONNX Runtime version and the CPU: an
    optimized graph may hold kernels chosen for the CPU it was made on. A copy that cannot be written or read is
    no error: the graph is then optimized as it always was."""
    import onnxruntime as ort

    folder = cache_root() / "onnxruntime"
    try:
        stat = Path(path).stat()
        key = hashlib.sha256(f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{ort.__version__}|"
                             f"{platform.machine()}|{_cpu()}|{','.join(DISABLED_OPTIMIZERS)}".encode()).hexdigest()[:16]
        copy = folder / f"{Path(path).stem}-{key}.onnx"
        if copy.is_file():
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            return str(copy)
        folder.mkdir(parents=True, exist_ok=True)
        # Written under a temporary name and renamed after the session exists: see keep_optimized.
        options.optimized_model_filepath = str(folder / f".{copy.name}.{os.getpid()}.tmp")
    except OSError:
        pass
    return str(path)


def keep_optimized(options_path: str) -> None:
    """Rename the optimized copy ONNX Runtime wrote (optimized_graph) to its final name, atomically."""
    if options_path:
        tmp = Path(options_path)
        with contextlib.suppress(OSError):
            tmp.replace(tmp.parent / tmp.name[1:].rsplit(".", 2)[0])


def cache_root() -> Path:
    return Path(os.environ.get("DOGCAT_CACHE", Path.home() / ".cache" / "dogcat"))


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> dict[str, str]:
    """The first "model name" and "flags" (or, on Arm, "Features") lines of /proc/cpuinfo; {} where there is none."""
    found: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "flags", "Features") and key not in found:
                found[key] = value.strip()
    return found


def _cpu() -> str:
    """The CPU's model name and instruction-set flags (what an optimized graph's kernels may depend on)."""
    info = _cpuinfo()
    found = [info[k] for k in ("model name", "flags") if k in info]
    return hashlib.sha256("|".join(found).encode()).hexdigest()[:16] if info else platform.processor()


SIMD = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16", "neon", "asimd")


def cpu_flags() -> list[str]:
    """The CPU's vector instruction sets that ONNX Runtime's kernels use (int8 speed depends on VNNI/AMX): the
    figures benchmarks print beside their measurements."""
    info = _cpuinfo()
    have = set((info.get("flags") or info.get("Features") or "").split())
    return [f for f in SIMD if f in have]


def int8_kernels() -> str:
    """Which of ONNX Runtime's int8 kernels this process runs: "amx" (AMX-INT8), "vnni" (AVX-512 VNNI or
    AVX-VNNI; also on an AMX CPU in a process refused AMX, dogcat.train.kernels) or "avx2": what benchmarks print
    beside their speeds. Since issue 32 all three compute the bundled backbone's features to the same bit
    (tests/test_same_answer.py); they differ in speed."""
    if "flags" not in _cpuinfo():  # not x86, or no /proc/cpuinfo
        return platform.machine()
    flags = set(cpu_flags())
    if "amx_int8" in flags and not os.environ.get("DOGCAT_NO_AMX"):  # dogcat.train.kernels.NO_AMX
        return "amx"
    return "vnni" if {"avx512_vnni", "avx_vnni"} & flags else "avx2"


class Graph:
    """One ONNX graph and its ONNX Runtime session, created on first use (importing onnxruntime and loading
    the graph is most of a cold start)."""

    def __init__(self, path: Path, device: str = "auto"):
        if device not in DEVICES:
            raise ModelError(f"unknown device {device!r}; known: {', '.join(DEVICES)}")
        self.device_asked = device
        self.warning: str | None = None  # set when the device asked for could not be used
        self.path = path
        if not self.path.is_file():
            raise ModelError(f"{self.path}: no such model file")
        self._session: ort.InferenceSession | None = None

    @property
    def session(self):
        if self._session is None:
            self._session, self.warning = open_session(self.path, self.device_asked)
        return self._session

    @property
    def device(self) -> str:
        """Where it runs: 'CUDA' or 'CPU' (creates the session)."""
        return "CUDA" if CUDA in self.session.get_providers() else "CPU"

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def run(self, input_name: str, output_name: str, batch: np.ndarray) -> np.ndarray:
        """``batch`` through the graph, INFERENCE_CHUNK rows per ONNX Runtime call."""
        # ONNX Runtime's memory grows with the batch it is given (Xception at 299 px: ~2.9 GB resident for
        # 32 photos) while CPU throughput does not (measured: 10.5 photos/s at 4, 9.1 at 16): feed it in chunks.
        run = lambda chunk: self.session.run([output_name], {input_name: chunk})[0]  # noqa: E731
        if len(batch) <= INFERENCE_CHUNK:
            return run(batch)
        return np.concatenate([run(batch[i:i + INFERENCE_CHUNK]) for i in range(0, len(batch), INFERENCE_CHUNK)])


_CHECKED: dict[tuple, str] = {}  # (path, inode, size, mtime) → its SHA-256: a file is hashed once a process


def _identity(path: Path) -> tuple:
    st = path.stat()
    return str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns


def file_sha256(path: Path) -> str:
    """The SHA-256 of the file at ``path``, read in pieces (remembered while the file is unchanged)."""
    key = _identity(path)
    if key not in _CHECKED:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while piece := f.read(1 << 20):
                digest.update(piece)
        _CHECKED[key] = digest.hexdigest()
    return _CHECKED[key]


class OnnxModel(Graph):
    """An exported model: the .onnx graph and its JSON sidecar (what goes in, what comes out, how photos are
    prepared), with an ONNX Runtime session created on first use."""

    kind = "breeds"  # the sidecar's "kind"; a sidecar without one is a breed model

    def __init__(self, path: str | Path, device: str = "auto", check: bool = True):
        path = Path(path)
        super().__init__(path / "model.onnx" if path.is_dir() else path, device)
        self.card = ModelCard.read(self.path)  # validated: ModelError naming the file and the problem
        if self.card.kind != self.kind:
            raise ModelError(f"{self.path}: a {self.card.kind!r} model, not a {self.kind!r} one")
        self._loaded_file: tuple | None = self._check_pair() if check else None
        self.labels: list[str] = self.card.labels
        self.id: str = self.card.id
        self.preprocessing = self.card.preprocessing  # dogcat evaluate --resize serves another one

    def _check_pair(self, tries: int = 5) -> tuple | None:
        """That the card's SHA-256 is the graph file's (a card without one is not checked): a card read beside
        another model's file (a dogcat teach killed between its two writes, or two files copied apart) would
        name its outputs wrongly. A writer renaming a new pair into place is waited for, briefly. Returns the
        file's identity (checked again when the session is created); ModelError when they disagree."""
        for attempt in range(tries):
            want = self.card.get("sha256")
            try:
                identity = _identity(self.path)
                got = file_sha256(self.path)
            except OSError as e:
                raise ModelError(f"{self.path}: cannot be read ({e.strerror or e})") from None
            if not want or got == want:
                return identity
            if attempt < tries - 1:
                time.sleep(0.05)
                self.card = ModelCard.read(self.path)
        card = self.card.source.name if self.card.source else "its card"
        raise ModelError(f"{self.path}: not the model {card} describes (the card's SHA-256 {str(want)[:12]}…, the "
                         f"file's {got[:12]}…): a dogcat teach stopped between writing the two, or they were "
                         "copied apart; teach again, or copy the pair together")

    @property
    def session(self):
        fresh = self._session is None
        session = super().session
        if fresh and self._loaded_file is not None:
            try:
                changed = _identity(self.path) != self._loaded_file
            except OSError:
                changed = True
            if changed:  # replaced after its card was read: the session may hold another model's graph
                self._session = None
                raise ModelError(f"{self.path}: replaced while it was being loaded (by another dogcat teach?): "
                                 "run again")
        return session

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """NHWC float32 pixels (0..255, as images.load_batch gives) → (N, n_classes) probabilities."""
        return self.run(self.card.input, self.card.output, pixels)


def mirrored(pixels: np.ndarray) -> np.ndarray:
    """NHWC pixels with left and right swapped: the second look at a photo (the one training averaged in)."""
    return np.ascontiguousarray(pixels[:, :, ::-1])


class BreedModel(OnnxModel):
    """Photos → probabilities over the breeds it was trained on.

    A split model (its card has a ``backbone`` block; dogcat.train.graph_split) is two graphs: the backbone,
    pixels → the pooled features of one view, in a file beside the head's, and the head, features →
    probabilities (the .onnx the card belongs to). Its features are those of one look (``features``) or the mean
    of a photo's and its mirror image's (two looks): dogcat.status.Judge decides which a photo gets. A model in
    one graph takes the looks its graph takes (``fixed_looks``)."""

    def __init__(self, path: str | Path | None = None, device: str = "auto"):
        super().__init__(path or bundled_path(), device, check=False)  # checked once its backbone is found
        self.breeds: list[str] = self.card.breeds
        block = self.card.backbone
        self.backbone: Graph | None = None
        # Which backbone made a split model's features (the catalog keeps them under this name): its file's
        # name and hash, so that models sharing one backbone (the shipped one and a shelter's taught ones) share
        # the features too.
        self.backbone_id: str | None = None
        self.fixed_looks: int | None = None  # a one-graph model: how many views its graph averages
        if block is not None:
            self.backbone = Graph(backbone_file(self.path, block, self.card), device)
            self.backbone_id = f"{Path(block['file']).stem}@{block['sha256'][:12]}"
        else:
            self.fixed_looks = 2 if self.card.get("training", {}).get("mirror_mean") else 1
        self._loaded_file = self._check_pair()

    def split_backbone(self, needed_for: str) -> str:
        """The backbone's id (``backbone_id``) of a split model; ModelError for a model in one graph, whose
        features are not separate (``needed_for``: what needs them)."""
        if self.backbone_id is None:
            raise ModelError(f"{self.path}: a model in one graph, pixels to probabilities; {needed_for} needs a "
                             "split model (a backbone and a head), as the bundled one is")
        return self.backbone_id

    @property
    def graphs(self) -> list[Graph]:
        """Every graph whose session a photo needs: the backbone (if split), then the model's own."""
        return ([self.backbone] if self.backbone else []) + [self]

    def features(self, pixels: np.ndarray) -> np.ndarray:
        """NHWC pixels → (N, n_features) pooled backbone features of this one view (a split model only)."""
        if self.backbone is None:
            raise ModelError(f"{self.path}: one graph, pixels to probabilities: it has no separate backbone")
        block = self.card.backbone or {}
        return self.backbone.run(block["input"], block["output"], pixels)

    def head(self, features: np.ndarray) -> np.ndarray:
        """(N, n_features) features → (N, n_classes) probabilities (a split model only)."""
        block = self.card.backbone or {}
        return self.run(block["output"], self.card.output, features.astype(np.float32, copy=False))

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """Pixels → probabilities: a split model's from both looks (the photo's and its mirror image's
        features, averaged), which is what its one-graph export computed; a one-graph model's from its graph."""
        if self.backbone is None:
            return super().probabilities(pixels)
        return self.head((self.features(pixels) + self.features(mirrored(pixels))) / 2)

    def top_k(self, probs: np.ndarray, k: int) -> list[Guess]:
        order = np.argsort(-probs)[:k]
        return [Guess(self.labels[i], self.breeds[i], float(probs[i])) for i in order]


def backbone_file(model_path: Path, block: dict, card: ModelCard) -> Path:
    """The backbone a split model's card names: the file beside the model, else the bundled backbone when it is
    the same file (its SHA-256, as the bundled model's card records it), which is how a model taught by
    ``dogcat teach`` runs without a copy of the 22 MB backbone beside it."""
    beside = model_path.parent / block["file"]
    if beside.is_file():
        return beside
    bundled = bundled_path(block["file"])
    if bundled.is_file() and bundled != beside:
        with contextlib.suppress(ModelError, OSError):
            shipped = ModelCard.read(bundled_path()).backbone or {}
            if shipped.get("file") == block["file"] and shipped.get("sha256") == block.get("sha256"):
                return bundled
    # A shelter's taught model names the backbone it was taught on: after an upgrade that shipped another one,
    # it says how to make it again (dogcat teach computes the new backbone's features itself).
    raise ModelError(f"{beside}: no such file (the backbone that {card.source.name if card.source else 'the card'} "
                     f"names{', and the bundled one is another' if bundled.is_file() else ''})"
                     + (": a model taught with another version of dogcat's model; run dogcat teach again to "
                        "make it for this one" if bundled.is_file() and bundled.name == block["file"] else ""))


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
