"""Transfer learning: a frozen ImageNet backbone, the study's head, trained on cached backbone features.

The head learns on features the frozen backbone computed once (see features.py), which is mathematically the
same as training backbone+head with the backbone frozen and no augmentation, at a fraction of the cost.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dogcat.train import backbones, data, features, runs

STUDY_HEAD = (1024, 512)  # the study's hidden layers: Dense 1024 → Dropout → Dense 512 → Dropout → softmax


@dataclass(kw_only=True)
class TransferConfig(runs.HoldoutConfig):
    learning_rate: float = 1e-4
    dense: list[int] = field(default_factory=lambda: list(STUDY_HEAD))
    dropout: float = 0.5
    mirror: bool = False  # also train on each training photo's mirror image
    heads: int = 1  # train this many heads (seeds seed, seed+1, ...) and average their probabilities


def spec_features(cfg: runs.RunConfig, wanted: list[data.ClassFolder], say=print, progress_factory=None,
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
    if cfg.dense != list(STUDY_HEAD):
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


def run(cfg: TransferConfig, runs_dir: Path, console=None, progress_factory=None, key: str | None = None,
        ledger_path: Path | None = None) -> Path:
    """Train a head on cached features; write config, split, history, metrics and the head to a run folder.

    Appends the run's row to the ledger (`ledger_path`, default ledger.jsonl beside `runs_dir`) as
    `key` (default '<backbone> transfer'), the study row it reproduces."""
    import keras

    parts = backbones.parse(cfg.backbone)
    classes, split = cfg.select()  # each breed cut to the photos in the split: only those need features
    experiment = cfg.experiment or f"{'+'.join(p.name for p in parts)} transfer, {len(classes)} breeds"
    run = runs.Run.start(runs_dir, experiment, split=split, console=console, ledger_path=ledger_path,
                         config=cfg.asdict() | {"experiment": experiment, "labels": [c.label for c in classes]})
    run.say(f"{len(classes)} breeds, {split.counts()['train']} training / {split.counts()['val']} validation "
            f"photos, seed {cfg.seed}")

    with run.timed("features"):
        feats, features_note = spec_features(cfg, classes, run.say, progress_factory)
    x_train, y_train = _stack(feats, classes, split.train)
    x_val, y_val = _stack(feats, classes, split.val)
    x_fit, y_fit = x_train, y_train
    if cfg.mirror:  # the training photos' mirror images: twice the training examples, same labels
        train_only = data.within(classes, split.train)
        with run.timed("features"):
            feats_m, note_m = spec_features(cfg, train_only, run.say, progress_factory, mirror=True)
        features_note += f", {note_m}"
        x_mirror, y_mirror = _stack(feats_m, train_only, split.train)
        x_fit, y_fit = np.concatenate([x_train, x_mirror]), np.concatenate([y_train, y_mirror])

    heads, histories = [], []
    with run.timed("fit"):
        for i in range(cfg.heads):
            keras.utils.set_random_seed(cfg.seed + i)
            # One part: the study's head as it was. Several: standardized first (see build_head).
            head = build_head(x_fit.shape[1], len(classes), cfg.dense, cfg.dropout,
                              standardize_on=x_fit if len(parts) > 1 else None,
                              name="head" if cfg.heads == 1 else f"head_{i + 1}")
            head.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate),
                         loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience,
                                                    restore_best_weights=True)
            lines = runs.epoch_lines(run.say, cfg.epochs, f"head {i + 1}/{cfg.heads}  " if cfg.heads > 1 else "")
            histories.append(runs.history_of(head.fit(x_fit, y_fit, validation_data=(x_val, y_val),
                                                      epochs=cfg.epochs, batch_size=cfg.batch_size, verbose=0,
                                                      shuffle=True, callbacks=[stopper, lines])))
            heads.append(head)
            if cfg.heads > 1:
                run.say(f"head {i + 1}/{cfg.heads}: val top-1 "
                        f"{runs.topk_accuracy(head.predict(x_val, verbose=0), y_val, 1):.4f}")
    head = heads[0] if cfg.heads == 1 else average_heads(heads, x_fit.shape[1])
    head.save(run.dir / "head.keras")
    result = run.finish(
        {"train": runs.metrics(head.predict(x_train, verbose=0), y_train),
         "val": runs.metrics(head.predict(x_val, verbose=0), y_val),
         **({"heads": [{"epochs_total": len(h["loss"]), "epochs_best": runs.best_epoch(h)} for h in histories]}
            if cfg.heads > 1 else {})},
        history=histories[0],  # the ledger's curves: the first head's (the only one, by default)
        key=key or _ledger_key(cfg, parts),
        config=cfg.asdict() | {"weights": backbones.spec_weights_id(cfg.backbone, cfg.weights), "kind": "transfer",
                               "standardized": len(parts) > 1},
        budget=f"{cfg.preprocessing().size[0]}px, up to {cfg.epochs} epochs (patience {cfg.patience}), "
               f"{features_note}")
    run.summary(result, f", top-3 {result['val']['top3']:.4f}")
    return run.dir
