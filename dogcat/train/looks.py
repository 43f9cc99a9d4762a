"""The second-look rule of a split model, and the statuses' thresholds on the answers it gives, out of fold.

A split model (dogcat.train.graph_split) looks at a photo once, and again at its mirror image only when the
first look's top confidence is below ``second_look_below`` (dogcat.status.Judge). Which value? Measured out of
fold, on the model's own backbone (the int8 one, both views of every crop and original) and its recipe's head:

1. the backbone's features of every photo and of its mirror image, and the dog detector's probability, are
   computed once and cached (``features``; resumable, ~26 views/s on 2 cores);
2. the shipped recipe (dogcat train crossval: multinomial logistic regression on the mean of the two views'
   features, the C path up to the chosen C, the originals added to each training fold, softmax sharpened by the
   factor with the lowest out-of-fold log loss) is fitted on each fold's other photos, on these int8 features,
   and gives every held-out photo its probabilities from one look (its own features) and from two (the mean);
3. for each candidate rule the cascade's answer is the one-look answer, or the two-look one where the one-look
   confidence is below the rule, and the `unsure` / `not_a_dog` thresholds are chosen on those answers with
   the rules of `dogcat train thresholds` (evaluate.choose_thresholds). The rule chosen is the smallest whose
   top-1 on the crops is within ``TOLERANCE`` of two looks' *and* whose `unsure` share is at most
   ``UNSURE_TARGET`` (the smallest meeting the first alone where none meets both); its thresholds are checked
   by choosing them on the even folds and measuring on the odd ones (and the other way round).

The fold heads are fitted on the int8 backbone's features (the shipped head on the fp32 ones: the run folder
that kept the fp32 fold heads is not on this machine); the figures are the recipe's on int8 features.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from dogcat import evaluate as ev
from dogcat import images
from dogcat.model import BreedModel, DogDetector, mirrored
from dogcat.modelcard import ModelCard
from dogcat.train import crossval, data, ledger, runs
from dogcat.train.oof import observed, statuses  # the same measures as train oof's

TOLERANCE = 0.0005  # the cascade's out-of-fold top-1 may be at most 0.05 points below two looks'
# ... and its `unsure` share at most this, with `dog` answers >= 97 % right (issue #15's target), where a rule
# reaches it: the photos just below the unsure threshold are the ones a second look moves out of `unsure`.
UNSURE_TARGET = 0.15
RULES = np.round(np.arange(0.05, 1.0, 0.05), 2)  # the second-look rules tried
RECIPE_C = (0.01, 0.03, 0.1)  # the shipped head's path (crossval: "logreg C=0.1 + originals")


def photos(model: BreedModel, crops_dir: Path, originals_dir: Path | None) -> dict[str, list]:
    """The model's photos (its .split.json: every crop, with its fold), and the uncropped originals named like
    a crop (in the crop's fold): {"crops": [(path, label index, fold)], "originals": [...]}."""
    split = json.loads(model.path.with_suffix(".split.json").read_text())
    fold_of = {c: dict(zip(names, map(int, split["folds"]["fold"][c]), strict=True))
               for c, names in split["train"].items()}
    crops = [(crops_dir / c / n, i, fold_of[c][n]) for i, c in enumerate(model.labels) for n in split["train"][c]]
    originals = []
    for c in data.discover(originals_dir) if originals_dir else []:
        if c.label in fold_of:
            originals += [(f, model.labels.index(c.label), fold_of[c.label][f.name]) for f in c.files
                          if f.name in fold_of[c.label]]
    return {"crops": crops, "originals": originals}


def features(model: BreedModel, detector: DogDetector, rows: list, cache: Path, say=print,
             batch: int = 4) -> dict[str, np.ndarray]:
    """f1 (the photo's backbone features), f2 (its mirror image's), dog (the detector's dog probability),
    label and fold of every row, saved to ``cache`` every 1024 photos so that a killed run resumes."""
    done = dict(np.load(cache)) if cache.exists() else {}
    start = len(done.get("dog", []))
    out = {k: [v] for k, v in done.items() if k in ("f1", "f2", "dog")}
    label, fold = np.array([y for _, y, _ in rows]), np.array([f for _, _, f in rows])
    if start and not (np.array_equal(done["label"], label[:start]) and np.array_equal(done["fold"], fold[:start])):
        raise ValueError(f"{cache}: cached for other photos (labels or folds differ): delete it to start again")
    chunks = [rows[i:i + batch] for i in range(start, len(rows), batch)]

    def decode(chunk):
        views = [images.decode(p, model.preprocessing, detector.preprocessing).views for p, _, _ in chunk]
        return np.stack([v[0] for v in views]), np.stack([v[1] for v in views])

    t0 = time.time()
    with ThreadPoolExecutor(1) as pool:  # decode the next chunk while the backbone works on this one
        pending = pool.submit(decode, chunks[0]) if chunks else None
        for j in range(len(chunks)):
            assert pending is not None
            pixels, detector_pixels = pending.result()
            if j + 1 < len(chunks):
                pending = pool.submit(decode, chunks[j + 1])
            for key, value in (("f1", model.features(pixels)), ("f2", model.features(mirrored(pixels))),
                               ("dog", detector.dog_probability(detector.probabilities(detector_pixels)))):
                out.setdefault(key, []).append(value.astype(np.float32))
            n = min(start + (j + 1) * batch, len(rows))
            if (j + 1) % 256 == 0 or j + 1 == len(chunks):
                arrays: dict[str, Any] = {k: np.concatenate(v) for k, v in out.items()}
                tmp = cache.with_suffix(".tmp.npz")
                np.savez(tmp, label=label[:n], fold=fold[:n], **arrays)
                tmp.replace(cache)
                say(f"  {n}/{len(rows)} photos, {(n - start) / (time.time() - t0):.1f} photos/s")
    return {k: np.concatenate(v) for k, v in out.items()} | {"label": label, "fold": fold}


def fold_probabilities(crops: dict, originals: dict, n_classes: int, say=print) -> dict[str, np.ndarray]:
    """Out-of-fold probabilities from one look and from two, of the crops and the originals, by the shipped
    recipe fitted on each fold's other photos (crops and originals, two-look features)."""
    two_c, two_o = (crops["f1"] + crops["f2"]) / 2, (originals["f1"] + originals["f2"]) / 2
    out = {k: np.zeros((len(p["label"]), n_classes), np.float32) for k, p in
           (("one", crops), ("two", crops), ("one_originals", originals), ("two_originals", originals))}
    t = time.time()
    for k in np.unique(crops["fold"]):
        held, held_o = crops["fold"] == k, originals["fold"] == k
        x = np.concatenate([two_c[~held], two_o[~held_o]])
        y = np.concatenate([crops["label"][~held], originals["label"][~held_o]])
        head = list(crossval.logreg_path(x, y, n_classes, list(RECIPE_C)))[-1][1]
        out["one"][held] = head.predict_proba(crops["f1"][held])
        out["two"][held] = head.predict_proba(two_c[held])
        if held_o.any():
            out["one_originals"][held_o] = head.predict_proba(originals["f1"][held_o])
            out["two_originals"][held_o] = head.predict_proba(two_o[held_o])
        say(f"  fold {k + 1}: top-1 one look {np.mean(out['one'][held].argmax(1) == crops['label'][held]):.4f}, "
            f"two {np.mean(out['two'][held].argmax(1) == crops['label'][held]):.4f} ({time.time() - t:.0f} s)")
    # Sharpened as the recipe is, by the factor with the lowest out-of-fold log loss of two looks.
    loss = {a: crossval.scores(crossval.sharpened(out["two"], a), crops["label"])["log_loss"] for a in crossval.SHARPEN}
    a = min(loss, key=lambda s: loss[s])
    say(f"  sharpened x{a:g}: out-of-fold log loss {loss[1.0]:.4f} -> {loss[a]:.4f}")
    return {k: crossval.sharpened(v, a) for k, v in out.items()} | {"sharpen": np.array(a)}


def cascade(one: np.ndarray, two: np.ndarray, rule: float) -> tuple[np.ndarray, np.ndarray]:
    """The answers and looks of Judge.breed_probabilities under ``rule``: two looks where one is unsure."""
    again = one.max(axis=1) < rule
    return np.where(again[:, None], two, one), 1 + again


def scores(probs: np.ndarray, label: np.ndarray, looks: np.ndarray) -> dict:
    top = np.argsort(-probs, axis=1)[:, :3]
    return {"n": len(label), "top1": round(float(np.mean(top[:, 0] == label)), 4),
            "top3": round(float(np.mean((top == label[:, None]).any(axis=1))), 4),
            "looks_per_photo": round(float(looks.mean()), 3)}


def choose(probs: dict, crops: dict, originals: dict, say=print) -> dict:
    """The rule, the thresholds on the cascade's answers, and the figures of one look, two and the cascade."""
    y, yo = crops["label"], originals["label"]
    two = float(np.mean(probs["two"].argmax(1) == y))
    table = []
    for rule in RULES:
        answers, looks = cascade(probs["one"], probs["two"], float(rule))
        d = ev.choose_thresholds(observed(answers, y, crops["dog"]))
        table.append({"second_look_below": float(rule), **scores(answers, y, looks),
                      "unsure_below": d["unsure_below"], "statuses": statuses(observed(answers, y, crops["dog"]), d)})
    close = [r for r in table if r["top1"] >= two - TOLERANCE]
    rule = next((r for r in close if r["statuses"]["unsure_share"] <= UNSURE_TARGET), close[0])["second_look_below"]
    answers, looks = cascade(probs["one"], probs["two"], rule)
    o = observed(answers, y, crops["dog"])
    decision = ev.choose_thresholds(o)
    answers_o, looks_o = cascade(probs["one_originals"], probs["two_originals"], rule)
    o_originals = observed(answers_o, yo, originals["dog"])
    crossed = []
    for chose in (0, 1):
        pick = crops["fold"] % 2 == chose

        def sub(m):
            return ev.Observed(o.confidence[m], o.top1[m], o.top3[m], o.dog_probability[m], [], 0)

        d = ev.choose_thresholds(sub(pick))
        crossed.append({"chosen_on": "even folds" if chose == 0 else "odd folds", "unsure_below": d["unsure_below"],
                        "not_a_dog_confidence_below": d["not_a_dog_confidence_below"],
                        "measured": statuses(sub(~pick), d)})
    n = len(y)
    figures: dict[str, Any] = {
        "one_look": scores(probs["one"], y, np.ones(n)), "two_looks": scores(probs["two"], y, np.full(n, 2)),
        "auto": scores(answers, y, looks),
        "originals": {"one_look": scores(probs["one_originals"], yo, np.ones(len(yo))),
                      "two_looks": scores(probs["two_originals"], yo, np.full(len(yo), 2)),
                      "auto": scores(answers_o, yo, looks_o)},
        "statuses": {"crops": statuses(o, decision), "originals": statuses(o_originals, decision)},
        "thresholds_crosscheck": crossed,
        "rules": [{k: v for k, v in r.items() if k != "statuses"} | {
            "unsure_share": r["statuses"]["unsure_share"], "dog_precision": r["statuses"]["dog_precision"]}
            for r in table],
    }
    for name in ("one_look", "two_looks", "auto"):
        f = figures[name]
        say(f"{name}: top-1 {f['top1']:.4f}, top-3 {f['top3']:.4f}, {f['looks_per_photo']:.2f} looks per photo")
    return {"second_look_below": rule, "decision": decision, "figures": figures}


def measure(model_path: Path | None, crops_dir: Path, originals_dir: Path | None, cache_dir: Path,
            write: bool = True, ledger_path: Path | None = None, say=print) -> dict:
    """Everything above, for a split model; with ``write``, its card gets the rule, the thresholds and the
    figures (``decision``, ``metrics.oof_looks``), and the ledger a row."""
    started = time.time()
    model, detector = BreedModel(model_path, "cpu"), DogDetector(None, "cpu")
    if model.backbone is None:
        raise ValueError(f"{model.path}: one graph: split it first (dogcat train split)")
    found = photos(model, crops_dir, originals_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    backbone_sha = (model.card.backbone or {}).get("sha256", "")[:12]
    got = {}
    for part, rows in found.items():
        say(f"{part}: {len(rows)} photos, both views through {model.backbone.path.name}")
        got[part] = features(model, detector, rows, cache_dir / f"{part}-{backbone_sha}.npz", say)
    say(f"logistic regression out of fold, C path {list(RECIPE_C)}, originals in each training fold")
    saved = cache_dir / f"oof-{backbone_sha}.npz"  # the fold heads' answers: choosing again takes seconds
    if saved.exists():
        probs = dict(np.load(saved))
    else:
        probs = fold_probabilities(got["crops"], got["originals"], len(model.labels), say)
        arrays: dict[str, Any] = dict(probs)
        np.savez(saved, **arrays)
    chosen = choose(probs, got["crops"], got["originals"], say)
    decision = {**model.card.decision, **{k: v for k, v in chosen["decision"].items()},
                "second_look_below": chosen["second_look_below"],
                "chosen_on": f"out-of-fold answers of the cascade (second look below "
                             f"{chosen['second_look_below']}) on {len(got['crops']['label'])} crops (10 folds)",
                "second_look_rule": f"smallest rule (step {RULES[1] - RULES[0]:.2f}) whose out-of-fold top-1 on "
                                    f"the crops is within {TOLERANCE * 100:.2f} points of two looks' and whose "
                                    f"unsure share is at most {UNSURE_TARGET:.0%}"}
    result = {"model": model.id, "sharpen": float(probs["sharpen"]), **chosen["figures"], "decision": decision}
    if write:
        card = ModelCard.read(model.path)
        card.with_decision(decision).with_metrics(oof_looks={
            k: v for k, v in result.items() if k not in ("model", "decision")} | {
            "measured_by": "dogcat train looks (dogcat/train/looks.py): fold heads of the shipped recipe fitted on "
                           "the int8 backbone's features"}).write()
        say(f"wrote the rule, the thresholds and the figures into {card.source}")
        ledger.append(ledger.path_for(None, ledger_path), experiment=f"{model.id} second look out of fold",
                      key="xception cross-validated head, exported, int8, second look where unsure",
                      config={"kind": "looks", "model": model.id, "rules": [float(r) for r in RULES],
                              "tolerance": TOLERANCE, "unsure_target": UNSURE_TARGET, "C": list(RECIPE_C),
                              "sharpen": float(probs["sharpen"])},
                      data=f"{crops_dir.name}, {len(got['crops']['label'])} crops out of fold (+ "
                           f"{len(got['originals']['label'])} originals)",
                      split_seed=42, val_accuracy=result["auto"]["top1"], epochs_total=None, epochs_best=None,
                      seconds=round(time.time() - started, 1), budget=f"ONNX Runtime int8 features on {runs.machine()}",
                      oof=result["auto"], one_look=result["one_look"], two_looks=result["two_looks"],
                      statuses=result["statuses"], second_look_below=decision["second_look_below"],
                      unsure_below=decision["unsure_below"])
    return result
