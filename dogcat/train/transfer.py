"""Transfer learning: a frozen ImageNet backbone, the study's head, trained on cached backbone features.

The head learns on features the frozen backbone computed once (see features.py), which is mathematically the
same as training backbone+head with the backbone frozen and no augmentation, at a fraction of the cost.
"""

from __future__ import annotations

import functools
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from dogcat import images
from dogcat.train import backbones, data, features, ledger, runs


@dataclass
class TransferConfig:
    data_dir: str
    backbone: str = "xception"
    weights: str = "imagenet"
    classes: list[str] | int | None = None  # None: all; N: the first N folders; or a list of names
    image_size: int | None = None  # None: the backbone's own size
    resize: str = "stretch"
    seed: int = 42
    val_fraction: float = 0.2
    max_per_class: int | None = None
    epochs: int = 50
    patience: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-4
    dense: list[int] = field(default_factory=lambda: [1024, 512])
    dropout: float = 0.5
    mirror: bool = False  # also train on each training photo's mirror image
    heads: int = 1  # train this many heads (seeds seed, seed+1, ...) and average their probabilities
    experiment: str = ""

    def preprocessing(self) -> images.Preprocessing:
        size = self.image_size or backbones.input_size(self.backbone)
        return images.Preprocessing(size=(size, size), resize=self.resize)


def spec_features(cfg: TransferConfig, wanted: list[data.ClassFolder], say=print, progress_factory=None,
                  mirror: bool = False):
    """Features of `wanted` for cfg.backbone (one backbone or a '+' combination, see backbones.parse), each part
    from its own cache, each backbone's missing parts computed in one pass: ({label: (N, D)}, note).

    `mirror`: the features of the photos' mirror images instead (cached apart)."""
    prep = cfg.preprocessing()
    parts = backbones.parse(cfg.backbone)
    by_part: dict = {}
    notes = []
    for bb in dict.fromkeys(p.backbone for p in parts):
        mine = [p for p in parts if p.backbone == bb]
        weights = backbones.weights_for(cfg.weights, bb)
        weights_id = backbones.weights_id(weights)
        caches = [None if weights_id == "random" else features.cache_dir(p.name, weights_id, prep, mirror)
                  for p in mine]
        cached = all(d is not None and (d / f"{c.label}-{c.fingerprint()[:16]}.npy").exists()
                     for d in caches for c in wanted)
        t0 = time.time()
        predict = backbones.compiled_predict(backbones.build_parts_extractor(
            bb, [p.tap for p in mine], weights, prep.size[0], cfg.seed))
        multi = predict if len(mine) > 1 else (lambda batch, f=predict: [f(batch)])
        if mirror:
            multi = features.mirrored(multi)
        what = f"{' + '.join(p.name for p in mine)}{' mirrored' if mirror else ''} features"
        if progress_factory:
            with progress_factory(what) as advance:
                found = features.class_features_multi(multi, wanted, prep, caches, progress=advance)
        else:
            found = features.class_features_multi(multi, wanted, prep, caches)
        by_part.update(zip(mine, found, strict=True))
        seconds = time.time() - t0
        say(f"{what}: {sum(len(c.files) for c in wanted)} photos in "
            f"{seconds:.0f} s" + (f" (cache {caches[0]})" if caches[0] else " (not cached: random weights)"))
        notes.append(f"{what} from cache" if cached else f"{what} extracted in {seconds:.0f} s"
                     + (" (random weights)" if caches[0] is None else ""))
    feats = {c.label: np.concatenate([by_part[p][c.label] for p in parts], axis=1) for c in wanted}
    return feats, ", ".join(dict.fromkeys(notes))


@functools.cache  # one class, registered once with Keras (loading a head.keras needs it registered)
def standardize_class():
    """(x - mean) * scale with fixed, per-feature mean and scale.

    Not keras.layers.Normalization: its adapted statistics reach the traced graph as captured tensors, which
    tf2onnx turns into missing model inputs; these are plain weights, which it freezes like a Dense kernel."""
    import keras

    @keras.saving.register_keras_serializable(package="dogcat")
    class Standardize(keras.layers.Layer):
        def build(self, input_shape):
            self.mean = self.add_weight(shape=(input_shape[-1],), initializer="zeros", trainable=False, name="mean")
            self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", trainable=False, name="scale")

        def call(self, x):
            return (x - self.mean) * self.scale

    return Standardize


def build_head(n_features: int, n_classes: int, dense: list[int], dropout: float, standardize_on=None,
               name: str = "head"):
    """The study's head: Dense 1024 → Dropout → Dense 512 → Dropout → softmax.

    `standardize_on` (training features): first scale each feature to zero mean and unit variance, as measured
    on them. Features from several layers or backbones need it: a middle-flow average runs about -2.6 ± 2.0
    where the last layer's runs 0.09 ± 0.16, and the first Dense layer would otherwise see mostly the former."""
    import keras

    inputs = keras.Input((n_features,), name="features")
    x = inputs
    if standardize_on is not None:
        standardize = standardize_class()(name="standardize")
        x = standardize(x)
        std = standardize_on.std(axis=0)
        standardize.set_weights([standardize_on.mean(axis=0), 1 / np.where(std > 1e-6, std, 1.0)])
    for i, units in enumerate(dense):
        x = keras.layers.Dense(units, activation="relu", name=f"dense_{i}")(x)
        x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


def average_heads(heads: list, n_features: int):
    """One head whose probabilities are the mean of `heads`' (an ensemble that exports as one graph)."""
    import keras

    inputs = keras.Input((n_features,), name="features")
    outputs = keras.layers.Average(name="probabilities")([head(inputs) for head in heads])
    return keras.Model(inputs, outputs, name="heads")


def _ledger_key(cfg: TransferConfig, parts) -> str:
    """The study row a run reproduces ('xception transfer'), plus what it changes there, so that the report
    plots variants beside the study's row instead of in its place."""
    changes = []
    if cfg.dense != TransferConfig.__dataclass_fields__["dense"].default_factory():
        changes.append(f"head {','.join(map(str, cfg.dense))}" if cfg.dense else "linear head")
    if cfg.mirror:
        changes.append("mirror")
    if cfg.heads > 1:
        changes.append(f"{cfg.heads} heads")
    return f"{'+'.join(p.name for p in parts)} transfer" + (f" ({', '.join(changes)})" if changes else "")


def _stack(feats: dict[str, np.ndarray], classes: list[data.ClassFolder], names: dict[str, list[str]]):
    xs, ys = [], []
    for index, c in enumerate(classes):
        row = {f.name: i for i, f in enumerate(c.files)}
        take = [row[n] for n in names[c.label]]
        xs.append(feats[c.label][take])
        ys.append(np.full(len(take), index, dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def topk_accuracy(probs: np.ndarray, y: np.ndarray, k: int) -> float:
    top = np.argsort(-probs, axis=1)[:, :k]
    return float(np.mean([y[i] in top[i] for i in range(len(y))]))


def metrics(probs: np.ndarray, y: np.ndarray) -> dict:
    return {"n": int(len(y)), "top1": topk_accuracy(probs, y, 1), "top3": topk_accuracy(probs, y, 3),
            "top5": topk_accuracy(probs, y, 5)}


def run(cfg: TransferConfig, runs_dir: Path, console=None, progress_factory=None, key: str | None = None,
        ledger_path: Path | None = None) -> Path:
    """Train a head on cached features; write config, split, history, metrics and the head to a run folder.

    Appends the run's row to the ledger (`ledger_path`, default ledger.jsonl beside `runs_dir`) as
    `key` (default '<backbone> transfer'), the study row it reproduces."""
    import keras

    started = time.time()
    parts = backbones.parse(cfg.backbone)
    prep = cfg.preprocessing()
    classes = data.discover(cfg.data_dir, cfg.classes)
    split = data.split(classes, cfg.seed, cfg.val_fraction, cfg.max_per_class)
    experiment = cfg.experiment or f"{'+'.join(p.name for p in parts)} transfer, {len(classes)} breeds"
    run_dir = runs.new_run_dir(runs_dir, experiment)
    runs.write_json(run_dir / "config.json", asdict(cfg) | {"experiment": experiment,
                                                           "labels": [c.label for c in classes]})
    (run_dir / "split.json").write_text(split.to_json())
    say = console.print if console else print
    say(f"run folder: {run_dir}")
    say(f"{len(classes)} breeds, {split.counts()['train']} training / {split.counts()['val']} validation photos, "
        f"seed {cfg.seed}")

    # Only the photos in the split need features (max_per_class may leave some out).
    wanted = [data.ClassFolder(c.label, tuple(f for f in c.files if f.name in set(split.train[c.label])
                                              | set(split.val[c.label]))) for c in classes]
    t0 = time.time()
    feats, features_note = spec_features(cfg, wanted, say, progress_factory)
    feature_seconds = time.time() - t0

    x_train, y_train = _stack(feats, wanted, split.train)
    x_val, y_val = _stack(feats, wanted, split.val)
    if cfg.mirror:  # the training photos' mirror images: twice the training examples, same labels
        train_only = [data.ClassFolder(c.label, tuple(f for f in c.files if f.name in set(split.train[c.label])))
                      for c in wanted]
        t0 = time.time()
        feats_m, note_m = spec_features(cfg, train_only, say, progress_factory, mirror=True)
        feature_seconds += time.time() - t0
        features_note += f", {note_m}"
        x_mirror, y_mirror = _stack(feats_m, train_only, split.train)
        x_fit, y_fit = np.concatenate([x_train, x_mirror]), np.concatenate([y_train, y_mirror])
    else:
        x_fit, y_fit = x_train, y_train

    class EpochLine(keras.callbacks.Callback):
        def __init__(self, prefix):
            super().__init__()
            self.prefix = prefix

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            say(f"{self.prefix}epoch {epoch + 1:>3}/{cfg.epochs}  loss {logs['loss']:.4f}  acc {logs['accuracy']:.4f}  "
                f"val_loss {logs['val_loss']:.4f}  val_acc {logs['val_accuracy']:.4f}")

    t1 = time.time()
    heads, histories = [], []
    for i in range(cfg.heads):
        keras.utils.set_random_seed(cfg.seed + i)
        # One part: the study's head as it was. Several: standardized first (see build_head).
        head = build_head(x_fit.shape[1], len(classes), cfg.dense, cfg.dropout,
                          standardize_on=x_fit if len(parts) > 1 else None,
                          name="head" if cfg.heads == 1 else f"head_{i + 1}")
        head.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate), loss="sparse_categorical_crossentropy",
                     metrics=["accuracy"])
        stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience,
                                                restore_best_weights=True)
        hist = head.fit(x_fit, y_fit, validation_data=(x_val, y_val), epochs=cfg.epochs, batch_size=cfg.batch_size,
                        callbacks=[stopper, EpochLine(f"head {i + 1}/{cfg.heads}  " if cfg.heads > 1 else "")],
                        verbose=0, shuffle=True)
        heads.append(head)
        histories.append({k: [float(v) for v in vals] for k, vals in hist.history.items()})
        if cfg.heads > 1:
            say(f"head {i + 1}/{cfg.heads}: val top-1 {topk_accuracy(head.predict(x_val, verbose=0), y_val, 1):.4f}")
    fit_seconds = time.time() - t1
    head = heads[0] if cfg.heads == 1 else average_heads(heads, x_fit.shape[1])
    history = histories[0]  # the ledger's curves: the first head's (the only one, by default)
    best_epoch = int(np.argmin(history["val_loss"])) + 1
    head.save(run_dir / "head.keras")
    result = {
        "experiment": experiment,
        "train": metrics(head.predict(x_train, verbose=0), y_train),
        "val": metrics(head.predict(x_val, verbose=0), y_val),
        "epochs_total": len(history["loss"]), "epochs_best": best_epoch,
        **({"heads": [{"epochs_total": len(h["loss"]), "epochs_best": int(np.argmin(h["val_loss"])) + 1}
                      for h in histories]} if cfg.heads > 1 else {}),
        "seconds_features": round(feature_seconds, 1), "seconds_fit": round(fit_seconds, 1),
        "seconds_total": round(time.time() - started, 1), "machine": runs.machine(),
    }
    runs.write_json(run_dir / "history.json", history)
    runs.write_json(run_dir / "metrics.json", result)
    say(f"best epoch {best_epoch}/{result['epochs_total']}: val top-1 {result['val']['top1']:.4f}, "
        f"top-3 {result['val']['top3']:.4f}; {result['seconds_total']:.0f} s in all")
    ledger.append(
        ledger.path_for(runs_dir, ledger_path), experiment=experiment,
        key=key or _ledger_key(cfg, parts),
        config=asdict(cfg) | {"weights": backbones.spec_weights_id(cfg.backbone, cfg.weights), "kind": "transfer",
                                "standardized": len(parts) > 1},
        data=ledger.data_label(cfg.data_dir, len(classes), split.counts()), split_seed=cfg.seed,
        val_accuracy=result["val"]["top1"], epochs_total=result["epochs_total"], epochs_best=best_epoch,
        seconds=result["seconds_total"], run=run_dir.name, history=history,
        budget=f"{prep.size[0]}px, up to {cfg.epochs} epochs (patience {cfg.patience}), {features_note}, "
               f"{runs.hardware()}",
        seconds_features=result["seconds_features"], seconds_fit=result["seconds_fit"])
    return run_dir
