"""The study's first rows: VGG16-style and ResNet50 networks trained from scratch on the photos themselves.

Photos are decoded once through dogcat.images (the same code inference uses) and fed to Keras by a tf.data
pipeline; augmentation is Keras layers at the front of the model, active only while training, so the
saved model (and its ONNX export) takes the same 0..255 pixels as every other dogcat model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dogcat import images
from dogcat.train import data, runs

VGG16_BLOCKS = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]  # (filters, convolutions) before each pool


@dataclass(kw_only=True)
class ScratchConfig(runs.HoldoutConfig):
    backbone: str = "vgg16"  # the architecture: vgg16 | resnet50 (named like TransferConfig's for export)
    weights: str = "none"
    classes: list[str] | int | None = 10
    image_size: int = 224
    augment: bool = False
    batchnorm_dropout: bool = False
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    kernel_size: int = 3

    def key(self) -> str:
        """The study row this reproduces, e.g. 'vgg16 scratch +augment +bn-dropout rmsprop'."""
        return " ".join([f"{self.backbone} scratch"] + ["+augment"] * self.augment
                        + ["+bn-dropout"] * self.batchnorm_dropout
                        + [self.optimizer] * (self.optimizer != "adam") + ["k5"] * (self.kernel_size == 5))


def build_model(cfg: ScratchConfig, n_classes: int):
    import keras
    from keras import layers

    if cfg.backbone not in ("vgg16", "resnet50"):
        raise ValueError(f"--arch must be vgg16 or resnet50, not {cfg.backbone!r}")
    if cfg.backbone == "resnet50" and cfg.kernel_size != 3:
        raise ValueError("--kernel-size applies to vgg16 only")
    keras.utils.set_random_seed(cfg.seed)
    inputs = keras.Input((cfg.image_size, cfg.image_size, 3), name="pixels")
    x = inputs
    if cfg.augment:
        x = layers.RandomFlip("horizontal", seed=cfg.seed)(x)
        x = layers.RandomRotation(0.1, seed=cfg.seed)(x)
        x = layers.RandomZoom(0.1, seed=cfg.seed)(x)
    x = layers.Rescaling(1 / 255)(x)
    if cfg.backbone == "vgg16":
        for filters, convs in VGG16_BLOCKS:
            for _ in range(convs):
                if cfg.batchnorm_dropout:
                    x = layers.Conv2D(filters, cfg.kernel_size, padding="same", use_bias=False)(x)
                    x = layers.ReLU()(layers.BatchNormalization()(x))
                else:
                    x = layers.Conv2D(filters, cfg.kernel_size, padding="same", activation="relu")(x)
            x = layers.MaxPooling2D(2)(x)
        x = layers.Flatten()(x)
    else:
        base = keras.applications.ResNet50(include_top=False, weights=None, pooling="avg",
                                           input_shape=(cfg.image_size, cfg.image_size, 3))
        x = base(x)
    for units in (1024, 512):  # the study's common head; dropout only with --batchnorm-dropout
        x = layers.Dense(units, activation="relu")(x)
        if cfg.batchnorm_dropout:
            x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name=f"{cfg.backbone}_scratch")
    optimizer = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop}[cfg.optimizer]
    model.compile(optimizer=optimizer(cfg.learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def load_split(root: Path, classes: list[data.ClassFolder], names: dict[str, list[str]],
               prep: images.Preprocessing):
    """Every photo of the split, decoded once by dogcat.images: (N, H, W, 3) float32 0..255 and labels."""
    files = [root / c.label / n for c in classes for n in names[c.label]]
    labels = np.concatenate([np.full(len(names[c.label]), i, dtype=np.int64) for i, c in enumerate(classes)])
    return images.load_batch(files, prep), labels


def dataset(x, y, batch_size: int, shuffle_seed: int | None = None):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def fit(model, train, val, epochs: int, patience: int, batch_size: int, seed: int, say, initial_epoch: int = 0):
    """model.fit with early stopping on val loss (best weights restored); returns the history dict."""
    import keras

    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    return runs.history_of(model.fit(dataset(train[0], train[1], batch_size, seed),
                                     validation_data=dataset(val[0], val[1], batch_size), epochs=epochs,
                                     initial_epoch=initial_epoch, verbose=0, shuffle=False,
                                     callbacks=[stopper, runs.epoch_lines(say, epochs)]))


def run(cfg: ScratchConfig, runs_dir: Path, console=None, ledger_path: Path | None = None) -> Path:
    started = time.time()
    classes, split = cfg.select()
    experiment = cfg.experiment or f"{cfg.key()}, {len(classes)} breeds"
    model = build_model(cfg, len(classes))
    run = runs.Run.start(runs_dir, experiment, split=split, console=console, ledger_path=ledger_path,
                         started=started, config=cfg.asdict() | {"experiment": experiment, "kind": "scratch",
                                                                 "labels": [c.label for c in classes]})
    prep = cfg.preprocessing()
    train = load_split(Path(cfg.data_dir), classes, split.train, prep)
    val = load_split(Path(cfg.data_dir), classes, split.val, prep)
    run.say(f"{len(classes)} breeds, {len(train[1])} training / {len(val[1])} validation photos at "
            f"{cfg.image_size} px, {model.count_params():,} parameters")
    with run.timed("fit"):
        history = fit(model, train, val, cfg.epochs, cfg.patience, cfg.batch_size, cfg.seed, run.say)
    finish(run, model, train, val, history, key=cfg.key(), config=cfg.asdict() | {"kind": "scratch"},
           budget=f"{cfg.image_size}px, up to {cfg.epochs} epochs (patience {cfg.patience})")
    return run.dir


def finish(run: runs.Run, model, train, val, history: dict, first_epoch: int = 0, **row) -> None:
    """A whole network's run (scratch, finetune): its model.keras, metrics on both parts, the ledger row."""
    model.save(run.dir / "model.keras")
    result = run.finish({"train": runs.metrics(model.predict(train[0], verbose=0), train[1]),
                         "val": runs.metrics(model.predict(val[0], verbose=0), val[1])},
                        history=history, first_epoch=first_epoch, **row)
    run.summary(result)
