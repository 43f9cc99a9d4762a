"""The study's last row: take a transfer run at its best epoch, unfreeze every layer, train on at lr 1e-5.

The run's head (saved at its best epoch) goes back on its backbone, the whole network becomes trainable
(BatchNorm layers stay in inference mode, as Keras advises for fine-tuning), and training goes on from the
epoch after the best one, on the photos of the same split. The result is a new run folder whose model.keras
holds the whole network, which `dogcat train export` turns into ONNX like any other run.
"""

from __future__ import annotations

import time
from pathlib import Path

from dogcat.train import data, ledger, runs, scratch
from dogcat.train.onnx_export import full_model


def run(source: Path, runs_dir: Path, epochs: int = 10, learning_rate: float = 1e-5, patience: int = 10,
        batch_size: int = 32, console=None, ledger_path: Path | None = None) -> Path:
    """`epochs`: how many epochs to train on (the study: 10, from epoch 14 to 24)."""
    import keras

    started = time.time()
    say = console.print if console else print
    source = Path(source)
    model, cfg, labels = full_model(source)
    model.trainable = True
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    before = runs.read_json(source / "history.json")
    best = runs.read_json(source / "metrics.json")["epochs_best"]
    history = {k: v[:best] for k, v in before.items()}  # the head as saved: restored to its best epoch
    split = data.Split.from_json((source / "split.json").read_text())
    classes = [data.ClassFolder(label, ()) for label in labels]
    experiment = f"{cfg.backbone} fine-tuned (all layers, lr {learning_rate:g}), {len(labels)} breeds"
    run_dir = runs.new_run_dir(runs_dir, experiment)
    config = runs.read_json(source / "config.json") | {
        "experiment": experiment, "kind": "finetune", "finetuned_from": source.name,
        "finetune": {"epochs": epochs, "learning_rate": learning_rate, "patience": patience, "from_epoch": best}}
    runs.write_json(run_dir / "config.json", config)
    (run_dir / "split.json").write_text(split.to_json())
    say(f"run folder: {run_dir}\nfine-tuning {source.name} from its best epoch {best}: "
        f"{model.count_params():,} parameters, all trainable")
    prep = cfg.preprocessing()
    train = scratch.load_split(Path(cfg.data_dir), classes, split.train, prep)
    val = scratch.load_split(Path(cfg.data_dir), classes, split.val, prep)
    t0 = time.time()
    more = scratch.fit(model, train, val, best + epochs, patience, batch_size, cfg.seed, say, initial_epoch=best)
    fit_seconds = time.time() - t0
    history = {k: history.get(k, []) + v for k, v in more.items()}
    return scratch.finish(
        run_dir, model, history, train, val, experiment, f"{cfg.backbone} finetune",
        {k: v for k, v in config.items() if k != "labels"} | {"weights": "finetuned"},
        ledger.data_label(cfg.data_dir, len(labels), split.counts()), cfg.seed, started, fit_seconds,
        f"{prep.size[0]}px, {epochs} fine-tuning epochs after epoch {best} (patience {patience}), "
        f"{runs.hardware()}", say, ledger.path_for(runs_dir, ledger_path), first_epoch=best)
