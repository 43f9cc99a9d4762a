"""An exported fp32 model → an int8 model (ONNX Runtime static quantization, QDQ), calibrated on real photos.

Convolutions carry nearly all of Xception's 8.4 billion multiply-adds per photo; in int8 they run on the CPU's
VNNI dot-product instructions. What keeps the accuracy (validation top-1; the fp32 model: 0.9132 on
all 3,490 validation photos, 0.9117 on a 600-photo subset):

- weights per output channel (symmetric int8), activations uint8;
- activation ranges from histograms (99.999th percentile of 40 training photos) rather than min/max:
  0.880 → 0.910 on the subset;
- the 16 additions (residual and bias) and the small head (Dense layers, softmax) left in fp32: quantizing the
  additions too cost 7 points with min/max ranges (0.837 on the subset); keeping the depthwise convolutions in
  fp32 did not help (0.838);
- the first two convolutions (on raw pixels, ~5 % of the work) left in fp32 too: 0.9080 → 0.9106 on all
  validation photos, at 2.5x the fp32 speed instead of 2.8x;
- weights in 7 bits (`reduce_range`, issue 32): ONNX Runtime's AVX2 kernel sums pairs of 8-bit products in
  16 bits, which saturates; with 7-bit weights an AVX2 CPU computes what VNNI and AMX ones do (measured: the
  same features to the last bit on AVX2 and AMX, docs/model.md). A split model's backbone is calibrated on each
  photo and its mirror image, the two looks inference takes.

    dogcat train quantize models/xception-120.onnx -o dogcat/models/xception-120-int8.onnx --histogram-photos 120
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np

from dogcat import images, settings
from dogcat.model import mirrored
from dogcat.modelcard import ModelCard, split_model_id

HISTOGRAM_PHOTOS = settings.QUANTIZE_HISTOGRAM_PHOTOS


class _Photos:
    """onnxruntime.quantization's CalibrationDataReader: one preprocessed photo per call."""

    def __init__(self, input_name: str, paths: list[Path], prep: images.Preprocessing, batch: int = 1,
                 mirrors: bool = False):
        self.input_name, self.paths, self.prep, self.batch, self.i = input_name, paths, prep, batch, 0
        self.mirrors = mirrors  # each photo and its mirror image: the two looks a split model's backbone takes

    def get_next(self):
        if self.i >= min(len(self.paths), getattr(self, "end", len(self.paths))):
            return None
        chunk = self.paths[self.i:min(self.i + self.batch, getattr(self, "end", len(self.paths)))]
        self.i += len(chunk)
        pixels = images.load_batch(chunk, self.prep)
        return {self.input_name: np.concatenate([pixels, mirrored(pixels)]) if self.mirrors else pixels}

    def rewind(self):
        self.i = 0

    # onnxruntime's strided calibration (CalibStridedMinMax) collects a few photos at a time through these.
    def __len__(self):
        return len(self.paths)

    def set_range(self, start_index: int, end_index: int):
        self.i, self.end = start_index, end_index


def calibration_photos(model_path: Path, data_dir: Path, per_breed: int, seed: int = 0) -> list[Path]:
    """`per_breed` photos of every breed from the model's *training* split (never validation photos; for a model
    trained on every photo, any of them)."""
    split = json.loads(model_path.with_suffix(".split.json").read_text())["train"]
    rng = random.Random(seed)
    out = []
    for label in sorted(split):
        names = sorted(split[label])
        out += [Path(data_dir) / label / n for n in rng.sample(names, min(per_breed, len(names)))]
    return out


def _stride(n: int, most: int = 8) -> int:
    """The largest batch of at most `most` photos that divides `n` (onnxruntime requires it)."""
    return next(k for k in range(min(most, n), 0, -1) if n % k == 0)


def quantize(model_path: str | Path, out: str | Path, data_dir: str | Path,
             per_breed: int = settings.QUANTIZE_PER_BREED, method: str = settings.QUANTIZE_METHOD,
             keep_fp32: str = settings.QUANTIZE_KEEP_FP32, histogram_photos: int = HISTOGRAM_PHOTOS,
             reduce_range: bool = settings.QUANTIZE_REDUCE_RANGE, backbone_name: str = "xception-int8-backbone.onnx",
             say=print) -> Path:
    """`keep_fp32`: comma-separated parts left in fp32 besides the head: "depthwise" (Xception's 3x3 depthwise
    convolutions, whose per-channel ranges vary most), "stem" (the first two convolutions, on raw pixels),
    "add" (the residual additions), or "" (quantize every convolution). `reduce_range`: weights in 7 bits (see
    dogcat.settings). The defaults are `dogcat train quantize`'s (dogcat.settings).

    A split model (its card names a backbone: dogcat train split) has its backbone quantized, calibrated on each
    photo and its mirror image (the two looks inference takes), written as `backbone_name` beside `out`; `out`
    is then its head (fp32, as it was) with a card naming the int8 backbone. ValueError for an unknown method or
    part; ModelError for an unusable card."""
    if method not in settings.QUANTIZE_METHODS:
        raise ValueError(f"unknown calibration method {method!r}; known: {', '.join(settings.QUANTIZE_METHODS)}")
    keep = {k.strip() for k in keep_fp32.split(",") if k.strip()}
    if keep - set(settings.QUANTIZE_PARTS):
        raise ValueError(f"cannot keep {', '.join(sorted(keep - set(settings.QUANTIZE_PARTS)))} in fp32; parts: "
                         + ", ".join(settings.QUANTIZE_PARTS))
    model_path, out = Path(model_path), Path(out)
    card = ModelCard.read(model_path)
    photos = calibration_photos(model_path, Path(data_dir), per_breed)
    if method != "minmax":  # histogram calibration holds every activation of every photo (~150 MB each)
        photos = photos[::max(1, len(photos) // histogram_photos)][:histogram_photos]
    backbone = card.backbone
    split = backbone is not None
    source = model_path.parent / backbone["file"] if backbone else model_path
    graph_out = out.parent / backbone_name if split else out
    out.parent.mkdir(parents=True, exist_ok=True)
    say(f"calibrating on {len(photos)} training photos ({per_breed} per breed, {method}"
        f"{', and their mirror images' if split else ''}) …")
    _quantize_graph(source, graph_out, _Photos(card.input, photos, card.preprocessing, mirrors=split),
                    method, keep, reduce_range, len(photos))
    digest = hashlib.sha256(graph_out.read_bytes()).hexdigest()
    quantization = {"from": card.id, "format": "QDQ int8 (uint8 activations, int8 per-channel weights"
                    + (" in 7 bits" if reduce_range else "") + "), head in fp32", "calibration": method,
                    "calibration_photos": len(photos), "kept_fp32": sorted(keep) + ["head"],
                    "reduce_range": reduce_range}
    name = out.stem
    # Everything else of the fp32 model's card (labels, preprocessing, training, decision ...) holds for this one.
    # Its figures do not: `dogcat evaluate --part val --record` (a transfer run's model), `dogcat train oof`
    # (a cross-validated one's) or `dogcat train looks` (a split one's) measures and records this one's.
    metrics = {f"fp32_{k}": v for k, v in card.metrics.items() if k in ("val", "oof", "oof_originals")}
    if backbone is not None:
        if model_path.resolve() != out.resolve():
            shutil.copy(model_path, out)
        head_sha = hashlib.sha256(out.read_bytes()).hexdigest()
        card.updated(name=name, id=split_model_id(name, digest, head_sha), sha256=head_sha,
                     backbone=dict(backbone, file=backbone_name, sha256=digest),
                     quantization=quantization, metrics=metrics).write(out)
    else:
        card.updated(name=name, id=f"{name}@{digest[:12]}", sha256=digest, quantization=quantization,
                     metrics=metrics).write(out)
    split_file = model_path.with_suffix(".split.json")
    if split_file.is_file() and split_file.resolve() != out.with_suffix(".split.json").resolve():
        shutil.copy(split_file, out.with_suffix(".split.json"))
    say(f"wrote {graph_out} ({graph_out.stat().st_size / 1e6:.1f} MB)" + (f", its head {out}" if split else "")
        + " and the card")
    return out


def _quantize_graph(source: Path, out: Path, reader: _Photos, method: str, keep: set[str], reduce_range: bool,
                    n_photos: int) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        graph = onnx.load(str(prepared)).graph
        # The head (MatMul/Gemm, Softmax) is 0.05 % of the work and the most sensitive to rounding: keep it fp32.
        head = [n.name for n in graph.node if n.op_type in ("MatMul", "Gemm", "Softmax")]
        convs = [n for n in graph.node if n.op_type == "Conv"]
        excluded = list(head)
        if "depthwise" in keep:
            excluded += [n.name for n in convs if any(a.name == "group" and a.i > 1 for a in n.attribute)]
        if "stem" in keep:
            excluded += [n.name for n in convs[:2]]
        ops = ["Conv", "MaxPool"] + ([] if "add" in keep else ["Add"])
        tmp_out = out.with_suffix(".tmp.onnx")
        quantize_static(str(prepared), str(tmp_out), reader,
                        quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=reduce_range,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=ops,
                        nodes_to_exclude=excluded, calibrate_method=methods[method],
                        # Histogram methods keep every activation tensor of every photo they are given
                        # (~150 MB a photo: 120 photos at once were killed for memory at 16 GB), so they are
                        # fed 8 photos at a time (or fewer, to divide the count), each batch merged into the
                        # histograms. MinMax keeps two numbers a tensor.
                        extra_options={} if method == "minmax" else {"CalibStridedMinMax": _stride(n_photos)})
    tmp_out.replace(out)
