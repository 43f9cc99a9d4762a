"""A run folder → ONNX model + JSON sidecar, checked against Keras on real photos before it is written.

tf2onnx's ``from_keras`` breaks on Keras 3 models; ``from_function`` on a traced forward pass works for both
Sequential and Functional models, so that is what we use.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import re
import shutil
from pathlib import Path

import numpy as np

from dogcat import breeds, images
from dogcat.errors import DogcatError
from dogcat.modelcard import FORMAT, ModelCard
from dogcat.train import backbones, data, runs
from dogcat.train.graph_split import FEATURES
from dogcat.train.transfer import TransferConfig, standardize_class

INPUT_NAME = "pixels"
OUTPUT_NAME = "probabilities"


class ParityError(DogcatError, RuntimeError):
    pass


def full_model(run_dir: Path):
    """Rebuild pixels → scaling → backbone → head from a run folder (the backbone from its weights; a run made
    with `mirror_mean` averages the features of each photo and its mirror image before the head).

    Runs that trained the whole network (scratch, finetune) saved it as model.keras: that is loaded as is."""
    import keras

    run_dir = Path(run_dir)
    cfg_dict = runs.read_json(run_dir / "config.json")
    cfg = TransferConfig(**{k: v for k, v in cfg_dict.items() if k in TransferConfig.__dataclass_fields__})
    prep = cfg.preprocessing()
    if (run_dir / "model.keras").is_file():
        _ = backbones.CaffeScaling  # registers the custom layer before loading
        model = keras.models.load_model(run_dir / "model.keras", compile=False)
        return model, cfg, cfg_dict["labels"]
    extractor = backbones.build_spec_extractor(cfg.backbone, cfg.weights, prep.size[0], cfg.seed)

    standardize_class()  # registers the head's custom layer before loading
    head = keras.models.load_model(run_dir / "head.keras", compile=False)
    inputs = keras.Input((*prep.size, 3), name=INPUT_NAME)
    features = mirror_mean(extractor, inputs) if cfg_dict.get("mirror_mean") else extractor(inputs)
    outputs = head(features)
    return keras.Model(inputs, outputs, name=f"dogcat_{_slug(cfg.backbone)}"), cfg, cfg_dict["labels"]


def mirror_mean(extractor, inputs):
    """The mean of the features of each photo and of its mirror image (crossval's `mirror_mean`): both views go
    through the backbone as one batch [photos; mirrors], so the graph holds the backbone's weights once."""
    import keras

    both = keras.ops.concatenate([inputs, keras.ops.flip(inputs, axis=2)], axis=0)  # axis 2: NHWC width
    pooled = extractor(both)
    return keras.ops.mean(keras.ops.reshape(pooled, (2, -1, pooled.shape[-1])), axis=0)


def _slug(spec: str) -> str:
    """'xception+xception/block13' → 'xception-xception-block13': a file and Keras model name."""
    return re.sub(r"[^A-Za-z0-9_]+", "-", spec).strip("-")


def check_parity(keras_probs: np.ndarray, ort_probs: np.ndarray, tolerance: float = 1e-4) -> float:
    """Max |diff| ≤ tolerance, and the same top breed wherever Keras' top two are further apart than that."""
    diff = float(np.abs(keras_probs - ort_probs).max())
    if diff > tolerance:
        raise ParityError(f"ONNX Runtime differs from Keras by {diff:.2e} (> {tolerance:.0e})")
    ordered = np.sort(keras_probs, axis=1)
    clear = (ordered[:, -1] - ordered[:, -2]) > tolerance
    if np.any(keras_probs.argmax(1)[clear] != ort_probs.argmax(1)[clear]):
        raise ParityError("ONNX Runtime and Keras pick a different top breed")
    return diff


@contextlib.contextmanager
def collecting_garbage(every: float = 0.5):
    """Run Python's cyclic garbage collector every ``every`` seconds while the block runs. tf2onnx copies the
    whole graph for each of its optimizer passes, and each dropped copy is a reference cycle that Python's
    collector, with TensorFlow's millions of objects alive, takes its time to free: converting Xception at 96 px
    peaked at 7.9 GB of RSS, 2.5 GB with this."""
    import gc
    import threading

    stop = threading.Event()

    def collect():
        while not stop.wait(every):
            gc.collect()

    thread = threading.Thread(target=collect, name="collecting garbage", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        gc.collect()


def convert_checked(model, prep: images.Preprocessing, out: Path, photos: list[Path], opset: int = 17,
                    output_name: str = OUTPUT_NAME):
    """Keras model → ONNX at `out`, written only if ONNX Runtime agrees with Keras on `photos` (else
    ParityError). Returns (max |diff|, number of photos)."""
    import onnxruntime as ort
    import tensorflow as tf
    import tf2onnx

    forward = tf.function(lambda x: model(x, training=False))
    spec = (tf.TensorSpec((None, *prep.size, 3), tf.float32, name=INPUT_NAME),)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.onnx")
    with collecting_garbage():
        tf2onnx.convert.from_function(forward, input_signature=spec, opset=opset, output_path=str(tmp))
    _rename_output(tmp, output_name)
    batch = images.load_batch(photos, prep)
    keras_probs = np.asarray(forward(tf.convert_to_tensor(batch)))
    session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    ort_probs = session.run([output_name], {INPUT_NAME: batch})[0]
    try:
        diff = check_parity(keras_probs, ort_probs)
    except ParityError:
        tmp.unlink()
        raise
    tmp.replace(out)
    return diff, len(batch)


def export(run_dir: str | Path, out: str | Path, name: str | None = None, parity_images: int = 16,
           opset: int = 17, say=print) -> Path:
    """Write `out` (.onnx) and its sidecar (.json); returns the ONNX path."""
    run_dir, out = Path(run_dir), Path(out)
    if out.suffix != ".onnx":
        out = out / "model.onnx"
    model, cfg, labels = full_model(run_dir)
    prep = cfg.preprocessing()

    # Parity on real validation photos, through the same image code inference uses.
    split = data.Split.from_json((run_dir / "split.json").read_text())
    root = Path(cfg.data_dir)
    # A head trained on every photo (dogcat train crossval) has no validation photos: check on training ones.
    check_on = split.val if any(split.val.values()) else split.train
    val_files = [root / label / n for label in labels for n in check_on[label][:1]]
    val_files = (val_files * (1 + parity_images // max(1, len(val_files))))[:parity_images]
    say(f"converting {run_dir.name} to ONNX (opset {opset}) …")
    diff, n = convert_checked(model, prep, out, val_files, opset)
    photos = "validation" if check_on is split.val else "training"
    say(f"ONNX Runtime matches Keras on {n} {photos} photos (max |diff| {diff:.1e})")

    metrics = runs.read_json(run_dir / "metrics.json")
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    name = name or f"{_slug(cfg.backbone)}-{len(labels)}"
    card = ModelCard({
        "format": FORMAT,
        "name": name,
        "id": f"{name}@{digest[:12]}",
        "sha256": digest,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "input": INPUT_NAME,
        "output": OUTPUT_NAME,
        "preprocessing": prep.to_dict(),
        "labels": labels,
        "breeds": [breeds.breed_name(label) for label in labels],
        # A transfer run's train/val figures; a cross-validated one's are out of fold (oof), on crops and originals.
        "metrics": {k: metrics[k] for k in ("train", "val", "oof", "oof_originals") if k in metrics},
        "parity": {"images": n, "max_abs_diff": diff},
        "training": {
            "run": run_dir.name, "experiment": metrics["experiment"], "backbone": cfg.backbone,
            "weights": backbones.spec_weights_id(cfg.backbone, cfg.weights), "data": Path(cfg.data_dir).name,
            "seed": cfg.seed, "val_fraction": split.val_fraction, "split": split.counts(),
            **({"mirror_mean": True} if runs.read_json(run_dir / "config.json").get("mirror_mean") else {}),
            **({"epochs_total": metrics["epochs_total"], "epochs_best": metrics["epochs_best"]}
               if "epochs_total" in metrics else {"head": metrics["chosen"]}),
        },
    })
    side = card.write(out)
    shutil.copy(run_dir / "split.json", out.with_suffix(".split.json"))
    say(f"wrote {out} and {side.name} ({out.stat().st_size / 1e6:.1f} MB)")
    return out


def export_backbone(spec: str, weights: str | None, out: str | Path, photos: list[Path], say=print) -> Path:
    """A frozen backbone alone, pixels → pooled features of one view (graph_split.FEATURES), as ONNX at `out`,
    checked against Keras on `photos`: the fp32 backbone of a split model, rebuilt from its public weights
    (the head, small, is committed; the 84 MB fp32 backbone need not be)."""
    import keras

    size = backbones.input_size(spec)
    prep = images.Preprocessing(size=(size, size))
    extractor = backbones.build_spec_extractor(spec, weights, size, 0)
    inputs = keras.Input((size, size, 3), name=INPUT_NAME)
    model = keras.Model(inputs, extractor(inputs), name=f"{_slug(spec)}_backbone")
    out = Path(out)
    diff, n = convert_checked(model, prep, out, photos, output_name=FEATURES)
    say(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): ONNX Runtime matches Keras on {n} photos "
        f"(max |diff| {diff:.1e}); weights {backbones.spec_weights_id(spec, weights)}")
    return out


def _rename_output(path: Path, name: str = OUTPUT_NAME) -> None:
    """Give the graph's single output a stable name, whatever tf2onnx derived from the Keras layers."""
    import onnx

    proto = onnx.load(str(path))
    old = proto.graph.output[0].name
    if old != name:
        for node in proto.graph.node:
            node.output[:] = [name if o == old else o for o in node.output]
        proto.graph.output[0].name = name
        onnx.save(proto, str(path))
