"""Fine-tune Xception's exit flow (block 14) and the head, on cached block-13 activations.

A frozen backbone with a trained head stops near 0.91 top-1 on the 120 breeds. Letting the last block adapt
to dogs helps, but training the whole network costs a full Xception forward and backward pass per photo per
epoch — hours on this CPU. Everything before block 14 stays frozen, so its output (10×10×1024 per photo at
299 px) is computed once and cached like the pooled features (float16, ~200 KB a photo), and each epoch only
runs block 14 (two separable convolutions) and the head.

BatchNorm layers stay in inference mode with their ImageNet statistics, as Keras advises for fine-tuning.
The result is a run folder whose model.keras holds the whole network, pixels → probabilities, which
`dogcat train export` turns into ONNX like any other run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dogcat.train import backbones, data, features, runs
from dogcat.train.transfer import TransferConfig, _stack

# Xception's exit flow from the last separable block on; everything before it is the cached trunk.
BLOCK14 = ["block14_sepconv1", "block14_sepconv1_bn", "block14_sepconv1_act",
           "block14_sepconv2", "block14_sepconv2_bn", "block14_sepconv2_act"]


def split_xception(weights: str, size: int):
    """(trunk: pixels → block-13 activations, top: block-13 activations → pooled features), sharing weights."""
    import keras

    base = keras.applications.Xception(include_top=False, weights=weights, input_shape=(size, size, 3))
    pixels = keras.Input((size, size, 3), name="pixels")
    scaled = backbones.scaling_layer("tf")(pixels)
    inner = keras.Model(base.input, base.get_layer(BLOCK14[0]).input, name="xception_trunk_inner")
    inner.trainable = False
    trunk = keras.Model(pixels, inner(scaled, training=False), name="xception_trunk")
    acts = keras.Input(inner.output.shape[1:], name="block13")
    x = acts
    for name in BLOCK14:
        layer = base.get_layer(name)
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False  # frozen BN runs in inference mode in Keras 3
        x = layer(x)
    top = keras.Model(acts, keras.layers.GlobalAveragePooling2D(name="avg_pool")(x), name="xception_block14")
    return trunk, top


def run(source: Path, runs_dir: Path, epochs: int = 8, learning_rate: float = 5e-5, patience: int = 3,
        batch_size: int = 32, console=None, progress_factory=None, ledger_path: Path | None = None) -> Path:
    """Start from a transfer run (`source`: its split, data and trained head) and fine-tune block 14 + head."""
    import keras

    source = Path(source)
    cfg_dict = runs.read_json(source / "config.json")
    cfg = TransferConfig(**{k: v for k, v in cfg_dict.items() if k in TransferConfig.__dataclass_fields__})
    if cfg.backbone != "xception":
        raise ValueError(f"{source.name}: exit-flow fine-tuning needs an xception run, not {cfg.backbone}")
    labels = cfg_dict["labels"]
    prep = cfg.preprocessing()
    split = data.Split.from_json((source / "split.json").read_text())
    classes = data.within(data.discover(cfg.data_dir, labels), split.train, split.val)
    experiment = f"xception exit flow fine-tuned (block 14 + head, lr {learning_rate:g}), {len(labels)} breeds"
    config = cfg_dict | {"experiment": experiment, "kind": "exitflow", "finetuned_from": source.name,
                         "exitflow": {"epochs": epochs, "learning_rate": learning_rate, "patience": patience,
                                      "batch_size": batch_size}}
    run = runs.Run.start(runs_dir, experiment, config=config, split=split, console=console, ledger_path=ledger_path)

    trunk, top = split_xception(cfg.weights, prep.size[0])
    cache = Path(str(features.cache_dir("xception", backbones.weights_id(cfg.weights), prep)) + "-block13")
    predict = backbones.compiled_predict(trunk)
    half = lambda batch: predict(batch).astype(np.float16)  # noqa: E731 — halves a 3.5 GB cache
    with run.timed("features"):
        if progress_factory:
            with progress_factory("block-13 activations") as advance:
                acts = features.class_features(half, classes, prep, cache, progress=advance)
        else:
            acts = features.class_features(half, classes, prep, cache)
    run.say(f"block-13 activations: {sum(len(c.files) for c in classes)} photos in {run.seconds['features']:.0f} s "
            f"({cache})")
    x_train, y_train = _stack(acts, classes, split.train)
    x_val, y_val = _stack(acts, classes, split.val)
    del acts

    head = keras.models.load_model(source / "head.keras", compile=False)
    inputs = keras.Input(x_train.shape[1:], name="block13")
    trainable = keras.Model(inputs, head(top(inputs)), name="block14_head")
    keras.utils.set_random_seed(cfg.seed)
    trainable.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    before = trainable.evaluate(x_val, y_val, batch_size=64, verbose=0, return_dict=True)
    run.say(f"before: val_loss {before['loss']:.4f}  val_acc {before['accuracy']:.4f}")

    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    with run.timed("fit"):
        history = runs.history_of(trainable.fit(
            x_train, y_train, validation_data=(x_val, y_val), epochs=epochs, batch_size=batch_size, verbose=0,
            shuffle=True, callbacks=[stopper, runs.epoch_lines(run.say, epochs, timed=True)]))

    # The whole network, pixels → probabilities, for `dogcat train export`.
    pixels = keras.Input((*prep.size, 3), name="pixels")
    full = keras.Model(pixels, head(top(trunk(pixels))), name="dogcat_xception")
    full.save(run.dir / "model.keras")
    result = run.finish(
        {"train": runs.metrics(trainable.predict(x_train, batch_size=64, verbose=0), y_train),
         "val": runs.metrics(trainable.predict(x_val, batch_size=64, verbose=0), y_val),
         "val_before": {"loss": before["loss"], "top1": before["accuracy"]}},
        history=history, key="xception exit-flow finetune",
        config={k: v for k, v in config.items() if k != "labels"} | {"weights": backbones.weights_id(cfg.weights)},
        budget=f"{prep.size[0]}px, block 14 + head, up to {epochs} epochs (patience {patience}), "
               "block-13 activations cached")
    run.summary(result, f", top-3 {result['val']['top3']:.4f} (before: {before['accuracy']:.4f})", end="s")
    return run.dir
