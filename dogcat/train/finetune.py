"""The study's last row: take a transfer run at its best epoch, unfreeze every layer, train on at lr 1e-5.

The run's head (saved at its best epoch) goes back on its backbone, the whole network becomes trainable
(BatchNorm layers stay in inference mode, as Keras advises for fine-tuning), and training goes on from the
epoch after the best one, on the photos of the same split. The result is a new run folder whose model.keras
holds the whole network, which `dogcat train export` turns into ONNX like any other run.
"""

from __future__ import annotations

import time
from pathlib import Path

from dogcat.train import data, runs, scratch
from dogcat.train.onnx_export import full_model


def run(source: Path, runs_dir: Path, epochs: int = 10, learning_rate: float = 1e-5, patience: int = 10,
        batch_size: int = 32, console=None, ledger_path: Path | None = None) -> Path:
    """`epochs`: how many epochs to train on (the study: 10, from epoch 14 to 24)."""
    import keras

    started = time.time()
    source = Path(source)
    model, cfg, labels = full_model(source)
    model.trainable = True
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    best = runs.read_json(source / "metrics.json")["epochs_best"]
    # The head as saved: restored to its best epoch.
    history = {k: v[:best] for k, v in runs.read_json(source / "history.json").items()}
    split = data.Split.from_json((source / "split.json").read_text())
    experiment = f"{cfg.backbone} fine-tuned (all layers, lr {learning_rate:g}), {len(labels)} breeds"
    config = runs.read_json(source / "config.json") | {
        "experiment": experiment, "kind": "finetune", "finetuned_from": source.name,
        "finetune": {"epochs": epochs, "learning_rate": learning_rate, "patience": patience, "from_epoch": best}}
    run = runs.Run.start(runs_dir, experiment, config=config, split=split, console=console, ledger_path=ledger_path,
                         started=started)
    run.say(f"fine-tuning {source.name} from its best epoch {best}: {model.count_params():,} parameters, "
            "all trainable")
    classes = [data.ClassFolder(label, ()) for label in labels]
    prep = cfg.preprocessing()
    train = scratch.load_split(Path(cfg.data_dir), classes, split.train, prep)
    val = scratch.load_split(Path(cfg.data_dir), classes, split.val, prep)
    with run.timed("fit"):
        more = scratch.fit(model, train, val, best + epochs, patience, batch_size, cfg.seed, run.say,
                           initial_epoch=best)
    history = {k: history.get(k, []) + v for k, v in more.items()}
    scratch.finish(run, model, train, val, history, first_epoch=best, key=f"{cfg.backbone} finetune",
                   config={k: v for k, v in config.items() if k != "labels"} | {"weights": "finetuned"},
                   budget=f"{prep.size[0]}px, {epochs} fine-tuning epochs after epoch {best} (patience {patience})")
    return run.dir
