"""The study's hyperparameter search, with keras-tuner, over the head's dropout and learning rate.

The search space is the study's: dropout 0.3-0.6, learning rate 1e-2 / 1e-3 / 1e-4, the common head on a
frozen backbone. Every trial trains on the same cached backbone features as `dogcat train transfer`, so a
search that took the study 14 minutes on a GPU takes a few minutes on a laptop CPU. The objective is
validation accuracy, as in the study (which makes the tuned model's validation score slightly optimistic).
After the search the best settings are trained once more as an ordinary transfer run ('... transfer tuned').
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from dogcat.train import backbones, ledger, runs, transfer

TUNERS = ("hyperband", "bayesian", "random")


def cached_features(cfg: transfer.TransferConfig, progress_factory=None):
    """(x_train, y_train, x_val, y_val, classes, split) from the feature cache, as transfer.run sees them."""
    classes, split = cfg.select()
    feats, _ = transfer.spec_features(cfg, classes, say=lambda *_: None, progress_factory=progress_factory)
    return (*transfer._stack(feats, classes, split.train), *transfer._stack(feats, classes, split.val), classes,
            split)


def run(cfg: transfer.TransferConfig, runs_dir: Path, tuner: str = "hyperband", max_trials: int = 12,
        final: bool = True, console=None, progress_factory=None, ledger_path: Path | None = None) -> dict:
    """Search, record the search in the ledger, then (if `final`) train the best settings as a transfer run."""
    import keras
    import keras_tuner as kt

    if tuner not in TUNERS:
        raise ValueError(f"unknown tuner {tuner!r}; known: {', '.join(TUNERS)}")
    started = time.time()
    x_train, y_train, x_val, y_val, classes, split = cached_features(cfg, progress_factory)
    experiment = f"{cfg.backbone} {tuner} search (dropout 0.3-0.6, lr 1e-2/1e-3/1e-4), {len(classes)} breeds"
    # The search's folder holds tune.json (and keras-tuner's trials), no config or split of its own.
    run = runs.Run.start(runs_dir, experiment, console=console, ledger_path=ledger_path, started=started,
                         seed=cfg.seed, data_label=ledger.data_label(cfg.data_dir, len(classes), split.counts()))

    def build(hp):
        head = transfer.build_head(x_train.shape[1], len(classes), cfg.dense,
                                   hp.Float("dropout", 0.3, 0.6, step=0.1))
        head.compile(optimizer=keras.optimizers.Adam(hp.Choice("learning_rate", [1e-2, 1e-3, 1e-4])),
                     loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return head

    common = dict(objective="val_accuracy", seed=cfg.seed, directory=str(run.dir), project_name="tuner",
                  overwrite=True)
    if tuner == "hyperband":
        search = kt.Hyperband(build, max_epochs=cfg.epochs, factor=3, **common)
    elif tuner == "bayesian":
        search = kt.BayesianOptimization(build, max_trials=max_trials, **common)
    else:
        search = kt.RandomSearch(build, max_trials=max_trials, **common)
    keras.utils.set_random_seed(cfg.seed)
    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience, restore_best_weights=True)
    t0 = time.time()
    search.search(x_train, y_train, validation_data=(x_val, y_val), epochs=cfg.epochs, batch_size=cfg.batch_size,
                  callbacks=[stopper], verbose=0)
    search_seconds = time.time() - t0
    trials = [{"dropout": t.hyperparameters.get("dropout"), "learning_rate": t.hyperparameters.get("learning_rate"),
               "val_accuracy": t.score} for t in search.oracle.trials.values() if t.score is not None]
    best = search.get_best_hyperparameters(1)[0].values
    best_score = max(t["val_accuracy"] for t in trials)
    result = run.finish(
        {"tuner": tuner, "best": {k: best[k] for k in ("dropout", "learning_rate")}, "best_val_accuracy": best_score,
         "trials": trials, "seconds_search": round(search_seconds, 1)}, file="tune.json",
        key=f"{cfg.backbone} tune", val_accuracy=best_score, seconds=search_seconds,
        config=cfg.asdict() | {"weights": backbones.spec_weights_id(cfg.backbone, cfg.weights), "kind": "tune",
                               "tuner": tuner, "max_trials": max_trials},
        budget=f"{cfg.preprocessing().size[0]}px, {len(trials)} trials of up to {cfg.epochs} epochs, cached features",
        best={k: best[k] for k in ("dropout", "learning_rate")}, trials=len(trials))
    run.say(f"{tuner}: {len(trials)} trials in {search_seconds:.0f} s; best dropout {best['dropout']:.1f}, "
            f"lr {best['learning_rate']:g} (val accuracy {best_score:.4f})")
    if final:
        tuned = replace(cfg, dropout=round(best["dropout"], 2), learning_rate=best["learning_rate"],
                        experiment=f"{cfg.backbone} transfer tuned (dropout {best['dropout']:.1f}, "
                                   f"lr {best['learning_rate']:g}), {len(classes)} breeds")
        result["final_run"] = str(transfer.run(tuned, runs_dir, console=console, progress_factory=progress_factory,
                                               key=f"{cfg.backbone} transfer tuned", ledger_path=ledger_path))
        runs.write_json(run.dir / "tune.json", result)
    return result
