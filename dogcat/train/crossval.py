"""Choose a head by k-fold cross-validation over every photo, then train it once on all of them.

The study's recipe trains on 80 % of the crops and picks its epoch (and the thresholds) on the other 20 %, so
the figure it reports also chose the model. Here every photo is held out exactly once: each fold's head trains
on the other k−1 folds (90 % at k = 10) and predicts the held-out fold, which gives out-of-fold (OOF)
probabilities for all photos. The candidates — L2-regularised multinomial logistic regression at several
strengths, the study's head after several epoch counts, and their average — are compared on those; the best
is then trained on every crop (and the uncropped originals, if adding them helped out of fold) and saved as a
run folder that `dogcat train export` turns into a model, like any transfer run.

Features come from the lab's cache (features.py), so a second run on a machine skips the backbone entirely.
With `mirror_mean` a photo's features are the mean of its own and its mirror image's, in every fold, in the
final fit and in the exported graph (onnx_export.mirror_mean): a second look at each photo that costs the
backbone twice at inference and was worth 0.3 points of top-1 and a point of `unsure` out of fold.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dogcat.evaluate import lowest_unsure_below
from dogcat.train import backbones, data, runs, transfer


@dataclass(kw_only=True)
class CrossvalConfig(runs.RunConfig):
    originals_dir: str | None = None  # uncropped photos named like their crops (folds follow the crop's)
    folds: int = 10  # at most 10: split.json stores each photo's fold as one digit
    C: list[float] = field(default_factory=lambda: [0.01, 0.03, 0.1, 0.3])  # logistic regression: inverse L2 strength
    max_iter: int = 500
    mlp_epochs: list[int] = field(default_factory=list)  # the study's head, OOF after each count ([]: not tried)
    learning_rate: float = 1e-4  # the study's head
    dropout: float = 0.5
    dense: list[int] = field(default_factory=lambda: list(transfer.STUDY_HEAD))
    # A photo's features are the mean of its own and its mirror image's (both views through the backbone), in
    # training and in the exported graph: +0.3 points of out-of-fold top-1 for twice the backbone's work. The
    # same default as `dogcat train crossval`; a run folder from before the option has none (onnx_export: False).
    mirror_mean: bool = True


# --- the candidate heads: fit on (x, y), give probabilities; each can also become a Keras head for export -------

def fit_logreg(x, y, n_classes, C, warm=None, max_iter=500):
    """Multinomial logistic regression with an L2 penalty (scikit-learn, L-BFGS, its default tolerance): a
    convex fit, so no epochs or early stopping to choose, only C. `warm`: a fit at a smaller C on the same
    photos to start from (fewer iterations)."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=C, max_iter=max_iter, tol=1e-4, warm_start=warm is not None)
    if warm is not None:
        model.coef_, model.intercept_, model.classes_ = warm.coef_.copy(), warm.intercept_.copy(), warm.classes_
    model.fit(x, y)
    if len(model.classes_) != n_classes:
        raise ValueError(f"a training fold lacks some breeds ({len(model.classes_)} of {n_classes})")
    return model


def logreg_path(x, y, n_classes, Cs, max_iter=500):
    """Fits at increasing C, the first from zero, each next one starting from the last: (C, model) pairs.

    Never from a fit on other photos (another fold's): L-BFGS stops at a tolerance, not at the exact optimum,
    so a start that has seen the held-out photos would leak them into the out-of-fold figures."""
    warm = None
    for C in sorted(Cs):
        warm = fit_logreg(x, y, n_classes, C, warm, max_iter)
        yield C, warm


def logreg_head(coef: np.ndarray, intercept: np.ndarray, name: str):
    """A fitted regression as a Keras head: Dense(softmax) with its weights (softmax(xWᵀ+b) is exactly what
    scikit-learn's predict_proba computes for the multinomial model)."""
    head = transfer.build_head(coef.shape[1], coef.shape[0], [], 0.0, name=name)
    head.get_layer("probabilities").set_weights([coef.T.astype(np.float32), intercept.astype(np.float32)])
    return head


def keras_head(fitted, n_features: int, name: str):
    """A candidate's fitted head as one Keras model: a regression's (coef, intercept), a Keras head as is, or a
    list of them, averaged."""
    if isinstance(fitted, list):
        return transfer.average_heads([keras_head(f, n_features, f"{name}_{i}") for i, f in enumerate(fitted)],
                                      n_features)
    if isinstance(fitted, tuple):
        coef, intercept = fitted
        return logreg_head(coef, intercept, name)
    return fitted


def fit_mlp(cfg: CrossvalConfig, x, y, n_classes, seed, snapshots, x_eval=None, name="study_head"):
    """The study's head (Dense 1024 → Dropout → Dense 512 → Dropout → softmax, Adam), a fixed number of epochs:
    with no validation split to stop on, the epoch count is a hyper-parameter chosen out of fold like C.
    Returns (head, {epochs: probabilities of x_eval after that many epochs})."""
    import keras

    keras.utils.set_random_seed(seed)
    head = transfer.build_head(x.shape[1], n_classes, cfg.dense, cfg.dropout, name=name)
    head.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate), loss="sparse_categorical_crossentropy")
    seen = {}

    class Snapshot(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 in snapshots and x_eval is not None:
                seen[epoch + 1] = head.predict(x_eval, verbose=0, batch_size=1024)

    head.fit(x, y, epochs=max(snapshots), batch_size=cfg.batch_size, shuffle=True, verbose=0,
             callbacks=[Snapshot()])
    return head, seen


SHARPEN = (1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0)  # softmax(a·z): the a tried on the chosen regression


def sharpened(probs: np.ndarray, a: float) -> np.ndarray:
    """softmax(a·z) from softmax(z): p^a, renormalised."""
    q = probs.astype(np.float64) ** a
    return (q / q.sum(axis=1, keepdims=True)).astype(np.float32)


# --- scoring ---------------------------------------------------------------------------------------------------

def scores(probs: np.ndarray, y: np.ndarray) -> dict:
    top = np.argsort(-probs, axis=1)[:, :3]
    picked = probs[np.arange(len(y)), y]
    return {"n": len(y), "top1": round(float(np.mean(top[:, 0] == y)), 4),
            "top3": round(float(np.mean((top == y[:, None]).any(axis=1))), 4),
            "log_loss": round(float(-np.mean(np.log(np.clip(picked, 1e-12, 1)))), 4)}


def unsure_tradeoff(probs: np.ndarray, y: np.ndarray, goal: float = 0.97) -> dict:
    """How many photos a confidence threshold leaves answered (`dog`), how often those answers are right, and the
    smallest threshold (step 0.01) whose answers reach `goal`: the `unsure` threshold, chosen out of fold."""
    conf, right = probs.max(axis=1), probs.argmax(axis=1) == y

    def row(t: float) -> dict:
        answered = conf >= t
        return {"unsure_below": float(t), "answered": round(float(answered.mean()), 4),
                "precision": round(float(right[answered].mean()), 4) if answered.any() else None}

    t = lowest_unsure_below(conf, right, goal)
    return {"chosen": None if t is None else row(t), "goal": goal,
            "table": [row(t) for t in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)]}


# --- the run ---------------------------------------------------------------------------------------------------

def _rows(feats, classes, names_by_label):
    """Stack features of the named photos: (x, y, [(label, name)])."""
    xs, ys, ids = [], [], []
    for index, c in enumerate(classes):
        row = {f.name: i for i, f in enumerate(c.files)}
        names = [n for n in names_by_label.get(c.label, []) if n in row]
        xs.append(feats[c.label][[row[n] for n in names]])
        ys.append(np.full(len(names), index, dtype=np.int64))
        ids += [(c.label, n) for n in names]
    return np.concatenate(xs), np.concatenate(ys), ids


def features_of(cfg: CrossvalConfig, wanted, say, progress_factory):
    """The lab's cached features of `wanted` ({label: (N, D)}, note); with `mirror_mean`, the mean of each photo's
    and its mirror image's, which is what onnx_export.full_model computes in one graph."""
    feats, note = transfer.spec_features(cfg, wanted, say, progress_factory)
    if not cfg.mirror_mean:
        return feats, note
    mirrored, note_m = transfer.spec_features(cfg, wanted, say, progress_factory, mirror=True)
    return {label: (f + mirrored[label]) / 2 for label, f in feats.items()}, f"{note}, {note_m}, averaged"


def run(cfg: CrossvalConfig, runs_dir: Path, console=None, progress_factory=None,  # noqa: C901 — one linear pipeline (folds, candidates, the final fit), read top to bottom as keras-io examples are
        ledger_path: Path | None = None) -> Path:
    import keras

    if not 2 <= cfg.folds <= 10:
        raise ValueError(f"--folds {cfg.folds}: must be 2 to 10")
    started = time.time()
    classes = cfg.breeds()
    labels = [c.label for c in classes]
    fold_of = data.folds(classes, cfg.folds, cfg.seed)
    experiment = cfg.experiment or (f"{cfg.backbone}{' mirror mean' if cfg.mirror_mean else ''} cross-validated "
                                    f"head, {len(classes)} breeds, {cfg.folds} folds")
    # Every photo trains the final head: the split lists them all as training photos, and keeps the folds, one
    # digit per photo in the listed order (k <= 10), so `dogcat train oof` and anyone else can tell which fold's
    # head never saw a photo.
    everything = {c.label: sorted(f.name for f in c.files) for c in classes}
    split = data.Split(cfg.seed, 0.0, everything, {}, folds={"k": cfg.folds, "fold": {
        label: "".join(str(fold_of[label][n]) for n in names) for label, names in everything.items()}})
    run = runs.Run.start(runs_dir, experiment, config=cfg.asdict() | {"experiment": experiment, "labels": labels},
                         split=split, console=console, ledger_path=ledger_path, started=started)
    say = run.say

    t0 = time.time()
    feats, note = features_of(cfg, classes, say, progress_factory)
    x, y, ids = _rows(feats, classes, everything)
    fold = np.array([fold_of[label][name] for label, name in ids])
    # Uncropped originals: each belongs to the fold of its crop (same file name), so it is never predicted by a
    # head that trained on its own crop.
    xo: Any = None  # the originals' features, labels and folds (arrays), if any
    yo: Any = None
    fold_o: Any = None
    if cfg.originals_dir:
        found = [c for c in data.discover(cfg.originals_dir) if c.label in fold_of]
        feats_o, note_o = features_of(cfg, found, say, progress_factory)
        note += f", {note_o}"
        order = {c.label: i for i, c in enumerate(classes)}
        keep = [(c, [f.name for f in c.files if f.name in fold_of[c.label]]) for c in found]
        xo = np.concatenate([feats_o[c.label][[i for i, f in enumerate(c.files) if f.name in fold_of[c.label]]]
                             for c, _ in keep])
        yo = np.concatenate([np.full(len(names), order[c.label]) for c, names in keep])
        fold_o = np.array([fold_of[c.label][n] for c, names in keep for n in names])
        say(f"{len(yo)} uncropped originals, each in its crop's fold")
    seconds_features = time.time() - t0
    say(f"{len(y)} photos, {len(classes)} breeds, {cfg.folds} folds; features: {note}")

    n_classes, n_features = len(classes), x.shape[1]
    oof: dict[str, np.ndarray] = {}  # candidate -> OOF probabilities of the crops
    oof_o: dict[str, np.ndarray] = {}  # candidate -> OOF probabilities of the originals
    # candidate -> per-fold fitted heads (see keras_head) (for measuring an exported model out of fold)
    fold_heads: dict[str, list[Any]] = {}
    seconds: dict[str, float] = {}

    def record(name, k, held, probs, probs_o, head):
        oof.setdefault(name, np.zeros((len(y), n_classes), np.float32))[held] = probs
        if xo is not None:
            oof_o.setdefault(name, np.zeros((len(yo), n_classes), np.float32))[fold_o == k] = probs_o
        fold_heads.setdefault(name, []).append(head)

    def cv_logreg(Cs, with_originals=False):
        suffix = " + originals" if with_originals else ""
        t = time.time()
        for k in range(cfg.folds):
            train, held = fold != k, fold == k
            xt, yt = x[train], y[train]
            if with_originals:
                xt, yt = np.concatenate([xt, xo[fold_o != k]]), np.concatenate([yt, yo[fold_o != k]])
            line = []
            for C, warm in logreg_path(xt, yt, n_classes, Cs, cfg.max_iter):
                name = f"logreg C={C:g}{suffix}"
                record(name, k, held, warm.predict_proba(x[held]),
                       None if xo is None else warm.predict_proba(xo[fold_o == k]),
                       (warm.coef_.copy(), warm.intercept_.copy()))
                line.append(f"C={C:g} {scores(oof[name][held], y[held])['top1']:.4f} ({int(warm.n_iter_.max())} steps)")
            say(f"  fold {k + 1}/{cfg.folds}{suffix}: top-1 " + ", ".join(line) + f" ({time.time() - t:.0f} s)")
        seconds[f"logreg{suffix}"] = round(time.time() - t, 1)

    say(f"logistic regression, C in {sorted(cfg.C)}")
    cv_logreg(cfg.C)
    def by_top1(names):  # the best top-1 out of fold; a tie goes to the lower log loss
        return max(names, key=lambda n: (scores(oof[n], y)["top1"], -scores(oof[n], y)["log_loss"]))

    best_logreg = by_top1([n for n in oof if n.startswith("logreg")])
    chosen_C = float(best_logreg.split("=")[1])

    # An L2 penalty strong enough to generalise best also flattens the softmax (out of fold the C=0.03 model's
    # log loss was 0.36 for 0.92 top-1): sharpen it, softmax(a·z), with the `a` that minimises the out-of-fold
    # log loss (temperature scaling). Top-1/top-3 do not change; confidences, and so the unsure threshold, do.
    # It is done before any averaging, so that an average is of calibrated members (next to the study head's
    # sharper softmax a flat regression would count for less than half), and `a` folds into the exported Dense
    # layer's weights.
    sharpen_log_loss = {a: scores(sharpened(oof[best_logreg], a), y)["log_loss"] for a in SHARPEN}
    sharpen = min(sharpen_log_loss, key=lambda a: sharpen_log_loss[a])
    say(f"{best_logreg} sharpened ×{sharpen:g}: out-of-fold log loss {sharpen_log_loss[1.0]:.4f} → "
        f"{sharpen_log_loss[sharpen]:.4f}")

    def sharpen_candidate(name):  # its out-of-fold probabilities and its fold heads' weights, by `sharpen`
        oof[name] = sharpened(oof[name], sharpen)
        if xo is not None:
            oof_o[name] = sharpened(oof_o[name], sharpen)
        fold_heads[name] = [(coef * sharpen, intercept * sharpen) for coef, intercept in fold_heads[name]]

    sharpen_candidate(best_logreg)

    if cfg.mlp_epochs:
        say(f"the study's head, {max(cfg.mlp_epochs)} epochs, OOF after {sorted(cfg.mlp_epochs)}")
        t = time.time()
        for k in range(cfg.folds):
            train, held = fold != k, fold == k
            x_eval = x[held] if xo is None else np.concatenate([x[held], xo[fold_o == k]])
            head, seen = fit_mlp(cfg, x[train], y[train], n_classes, cfg.seed + k, set(cfg.mlp_epochs), x_eval,
                                 name=f"study_head_{k}")
            for epochs, probs in sorted(seen.items()):
                # The head at these epochs is not kept (only its predictions): the last one exports.
                record(f"study head {epochs} epochs", k, held, probs[:held.sum()], probs[held.sum():],
                       head if epochs == max(cfg.mlp_epochs) else None)
            say(f"  fold {k + 1}/{cfg.folds}: " + ", ".join(
                f"{e} epochs {scores(p[:held.sum()], y[held])['top1']:.4f}" for e, p in sorted(seen.items())))
        seconds["study head"] = round(time.time() - t, 1)
        best_mlp = f"study head {max(cfg.mlp_epochs)} epochs"  # the only one whose fold heads exist
        average = f"average of {best_logreg} and {best_mlp}"
        oof[average] = (oof[best_logreg] + oof[best_mlp]) / 2
        if xo is not None:
            oof_o[average] = (oof_o[best_logreg] + oof_o[best_mlp]) / 2
        fold_heads[average] = [[a, b] for a, b in zip(fold_heads[best_logreg], fold_heads[best_mlp], strict=True)]

    # The chosen head: the best OOF top-1 among the candidates whose fold heads were kept.
    chosen = by_top1([n for n in oof if all(h is not None for h in fold_heads[n])])

    # Do the uncropped originals help as extra training photos? Only tried for logistic regression (cheap).
    use_originals = False
    if xo is not None and chosen.startswith("logreg"):
        say(f"{chosen} with the originals' labels added to each training fold")
        cv_logreg([C for C in cfg.C if C <= chosen_C], with_originals=True)
        plus = f"{chosen} + originals"
        sharpen_candidate(plus)  # as its base was
        better_o = scores(oof_o[plus], yo)["top1"] > scores(oof_o[chosen], yo)["top1"]
        use_originals = better_o and scores(oof[plus], y)["top1"] >= scores(oof[chosen], y)["top1"]
        if use_originals:
            chosen = plus
    say(f"chosen: {chosen}")

    candidates = {n: {"crops": scores(oof[n], y), **({"originals": scores(oof_o[n], yo)} if xo is not None else {})}
                  for n in oof}
    for n, s in candidates.items():
        say(f"  {n:<60} crops top-1 {s['crops']['top1']:.4f} top-3 {s['crops']['top3']:.4f}"
            + (f"  originals top-1 {s['originals']['top1']:.4f}" if "originals" in s else ""))

    # The chosen recipe, trained once on every photo.
    t = time.time()
    xa, ya = (np.concatenate([x, xo]), np.concatenate([y, yo])) if use_originals else (x, y)
    final = []
    if "logreg" in chosen:  # the same path as in each fold, so the final fit is the recipe measured
        lr = list(logreg_path(xa, ya, n_classes, [C for C in cfg.C if C <= chosen_C], cfg.max_iter))[-1][1]
        final.append((lr.coef_ * sharpen, lr.intercept_ * sharpen))
    if "study head" in chosen:
        final.append(fit_mlp(cfg, xa, ya, n_classes, cfg.seed, {max(cfg.mlp_epochs)}, name="study_head")[0])
    head = keras_head(final if len(final) > 1 else final[0], n_features, "head")
    seconds["final fit"] = round(time.time() - t, 1)
    head.save(run.dir / "head.keras")
    # Each fold's head, to measure an exported model (int8, say) out of fold: `dogcat train oof`.
    (run.dir / "folds").mkdir()
    for k, fitted in enumerate(fold_heads[chosen]):
        keras_head(fitted, n_features, f"fold_{k}").save(run.dir / "folds" / f"fold-{k}.keras")
    np.savez_compressed(run.dir / "oof.npz", probabilities=oof[chosen], label=y, fold=fold,
                        **({"originals_probabilities": oof_o[chosen], "originals_label": yo,
                            "originals_fold": fold_o} if xo is not None else {}))
    train_probs = head.predict(x, verbose=0, batch_size=1024)
    oof_originals = {"oof_originals": candidates[chosen]["originals"]} if xo is not None else {}
    unsure = unsure_tradeoff(oof[chosen], y)
    result = run.finish(
        {"chosen": chosen, "use_originals": use_originals, "sharpen": sharpen,
         "sharpen_log_loss": {str(a): v for a, v in sharpen_log_loss.items()},
         "train": {k: v for k, v in scores(train_probs, y).items() if k != "log_loss"},
         "oof": candidates[chosen]["crops"], **oof_originals, "candidates": candidates,
         "unsure": unsure, "seconds_features": round(seconds_features, 1),
         "seconds": seconds},
        key=f"{cfg.backbone} cross-validated head", val_accuracy=candidates[chosen]["crops"]["top1"],
        config=cfg.asdict() | {"weights": backbones.spec_weights_id(cfg.backbone, cfg.weights), "kind": "crossval"},
        data_label=f"{Path(cfg.data_dir).name}, {len(classes)} breeds, {len(y)} photos in {cfg.folds} folds"
                   + (f" (+ {len(yo)} originals)" if yo is not None else ""),
        budget=f"{cfg.preprocessing().size[0]}px, {cfg.folds}-fold out-of-fold, {note}",
        oof=candidates[chosen]["crops"], oof_originals=oof_originals.get("oof_originals"), chosen=chosen,
        sharpen=sharpen, candidates=candidates, unsure=unsure["chosen"],
        seconds_features=round(seconds_features, 1))
    say(f"chosen {chosen}: out-of-fold top-1 {result['oof']['top1']:.4f}, top-3 {result['oof']['top3']:.4f}; "
        f"{result['seconds_total']:.0f} s in all")
    keras.backend.clear_session()
    return run.dir
