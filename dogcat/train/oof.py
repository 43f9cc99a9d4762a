"""An exported model measured out of fold, and its `unsure` / `not_a_dog` thresholds chosen there.

A model trained on every photo (dogcat train crossval) has no photo left to be measured on. What can be
measured is its *recipe*: the cross-validation run kept each fold's head, which never saw that fold's photos.
For the int8 model the question is what int8 does to the backbone's features (the head stays fp32), so:
the exported graph is run by ONNX Runtime with the head's input — the pooled backbone features — as a second
output, and each photo's features go through the head of the fold that held it out. That gives the int8
model's out-of-fold probabilities, to set beside the fp32 ones (crossval's). An fp32 export of the run computes
the same features as the run did (its export was parity-checked), so its out-of-fold probabilities are the
run's own.

The dog detector's probability of every photo comes from the same pass; the thresholds are chosen on the
out-of-fold predictions with the rules of `dogcat train thresholds` (evaluate.choose_thresholds) and, as a
check, chosen on half the folds and measured on the other half.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from dogcat import evaluate as ev
from dogcat import images
from dogcat.model import BreedModel, DogDetector
from dogcat.modelcard import ModelCard
from dogcat.status import Thresholds
from dogcat.train import data, ledger, runs
from dogcat.train.transfer import standardize_class


def photos(run_dir: Path) -> dict:
    """The run's photos in its row order (crops, then originals), with their labels and folds."""
    cfg = runs.read_json(run_dir / "config.json")
    split = runs.read_json(run_dir / "split.json")
    labels = cfg["labels"]
    fold_of = {c: dict(zip(names, map(int, split["folds"]["fold"][c]), strict=True))
               for c, names in split["train"].items()}
    crops = [(Path(cfg["data_dir"]) / c / n, i, fold_of[c][n]) for i, c in enumerate(labels)
             for n in split["train"][c]]
    originals = []
    if cfg.get("originals_dir"):
        for c in data.discover(cfg["originals_dir"]):
            if c.label in fold_of:
                originals += [(f, labels.index(c.label), fold_of[c.label][f.name]) for f in c.files
                              if f.name in fold_of[c.label]]
    return {"crops": crops, "originals": originals, "k": split["folds"]["k"]}


def feature_tensor(graph) -> str:
    """The head's input: what the first MatMul/Gemm (the head's first Dense layer) multiplies."""
    return next(n.input[0] for n in graph.node if n.op_type in ("MatMul", "Gemm"))


def with_features_output(model_path: Path, out: Path) -> str:
    """A copy of the graph that also outputs the pooled backbone features; returns their tensor name."""
    import onnx

    proto = onnx.load(str(model_path))
    name = feature_tensor(proto.graph)
    proto.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    onnx.save(proto, str(out))
    return name


def run_model(model: BreedModel, detector: DogDetector, paths: list[Path], cache: Path, say=print,
              batch: int = 16) -> dict[str, np.ndarray]:
    """features, probabilities (the exported model's own) and dog probability of every photo, saved to `cache`
    every few hundred photos so that a killed run resumes where it stopped."""
    import onnxruntime as ort

    done = dict(np.load(cache)) if cache.exists() else {}
    start = len(done.get("probabilities", []))
    if start >= len(paths):
        return done
    with tempfile.TemporaryDirectory() as tmp:
        graph = Path(tmp) / "model.onnx"
        feature_name = with_features_output(model.path, graph)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        out = {k: [v] for k, v in done.items()}
        t0 = time.time()
        for i in range(start, len(paths), batch):
            chunk = paths[i:i + batch]
            pixels = images.load_batch(chunk, model.preprocessing)
            feats, probs = [], []
            for j in range(0, len(chunk), 4):  # ONNX Runtime's memory grows with the batch (see model.py)
                f, p = session.run([feature_name, model.card.output], {model.card.input: pixels[j:j + 4]})
                feats.append(f.reshape(len(f), -1))
                probs.append(p)
            dog = detector.dog_probability(detector.probabilities(images.load_batch(chunk, detector.preprocessing)))
            for key, value in (("features", np.concatenate(feats)), ("probabilities", np.concatenate(probs)),
                               ("dog_probability", dog)):
                out.setdefault(key, []).append(value.astype(np.float32))
            n = i + len(chunk)
            if n % 2048 < batch or n == len(paths):
                arrays: dict[str, Any] = {k: np.concatenate(v) for k, v in out.items()}
                np.savez(cache.with_suffix(".tmp.npz"), **arrays)
                cache.with_suffix(".tmp.npz").replace(cache)
                say(f"  {n}/{len(paths)} photos, {(n - start) / (time.time() - t0):.1f} photos/s")
    return {k: np.concatenate(v) for k, v in out.items()}


def fold_probabilities(run_dir: Path, features: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """Each photo's features through the head of the fold that held it out."""
    import keras


    standardize_class()
    out = np.zeros((len(features), len(runs.read_json(run_dir / "config.json")["labels"])), np.float32)
    for k in np.unique(fold):
        head = keras.models.load_model(run_dir / "folds" / f"fold-{k}.keras", compile=False)
        out[fold == k] = head.predict(features[fold == k], verbose=0, batch_size=1024)
    return out


def observed(probs: np.ndarray, label: np.ndarray, dog: np.ndarray) -> ev.Observed:
    top = np.argsort(-probs, axis=1)[:, :3]
    return ev.Observed(probs.max(axis=1), top[:, 0] == label, (top == label[:, None]).any(axis=1), dog, [], 0)


def statuses(o: ev.Observed, decision: dict) -> dict:
    """Shares of dog / unsure / not_a_dog under `decision`'s thresholds, and how often `dog` answers are right."""
    t = Thresholds(decision["not_a_dog_below"], decision["unsure_below"], decision["not_a_dog_confidence_below"])
    said = ev.said(o, t)
    dog = said == "dog"
    return {"photos": len(said), **{s: int((said == s).sum()) for s in ("dog", "unsure", "not_a_dog")},
            "unsure_share": round(float((said == "unsure").mean()), 4),
            "dog_precision": round(float(o.top1[dog].mean()), 4) if dog.any() else None}


def scores(o: ev.Observed) -> dict:
    return {"n": len(o.top1), "top1": round(float(o.top1.mean()), 4), "top3": round(float(o.top3.mean()), 4)}


def measure(run_dir: str | Path, model_path: str | Path | None, detector_path: Path | None = None,
            write: bool = True, folds: list[int] | None = None, say=print) -> dict:
    """`model_path`: an export of the run (None: the bundled model). `folds`: measure only the photos of these
    folds (all by default), e.g. to bound the time an int8 pass over every photo takes."""
    started = time.time()
    run_dir = Path(run_dir)
    model, detector = BreedModel(model_path, "cpu"), DogDetector(detector_path, "cpu")
    if model.backbone is not None:  # its .onnx is the head alone: there are no pixels to run it on
        raise ValueError(f"{model.path}: a split model (backbone and head): measure it with dogcat train looks")
    found = photos(run_dir)
    saved = dict(np.load(run_dir / "oof.npz"))
    if not np.array_equal(saved["label"], [y for _, y, _ in found["crops"]]) or not np.array_equal(
            saved["fold"], [f for _, _, f in found["crops"]]):
        raise ValueError(f"{run_dir}: oof.npz does not match the run's split")
    if folds is not None:
        for part, key in (("crops", "probabilities"), ("originals", "originals_probabilities")):
            keep = np.array([f in folds for _, _, f in found[part]], bool)
            found[part] = [r for r, k in zip(found[part], keep, strict=True) if k]
            if key in saved:
                saved[key] = saved[key][keep]
    crops_fold = np.array([f for _, _, f in found["crops"]])
    # The run's own (fp32, Keras) features are the fp32 export's: reuse its out-of-fold probabilities.
    own_export = (model.card.get("training", {}).get("run") == run_dir.name and model.card.quantization is None)
    result: dict[str, Any] = {"model": model.id, "run": run_dir.name, "detector": detector.id,
                              "folds": folds or "all"}
    measured = {}
    for part, rows in (("crops", found["crops"]), ("originals", found["originals"])):
        if not rows:
            continue
        label = np.array([y for _, y, _ in rows])
        fold = np.array([f for _, _, f in rows])
        subset = "" if folds is None else "-folds" + "".join(map(str, sorted(folds)))
        cache = run_dir / f"onnx-{part}{subset}-{model.id.split('@')[-1]}-{detector.id.split('@')[-1]}.npz"
        if own_export:  # only the detector needs running (cached under a name that holds no breed model)
            cache = run_dir / f"dogs-{part}{subset}-{detector.id.split('@')[-1]}.npz"
            say(f"{part}: {model.id} is this run's fp32 export: its out-of-fold probabilities are the run's")
            got = _detector_only(detector, [p for p, _, _ in rows], cache, say)
            probs = saved["probabilities" if part == "crops" else "originals_probabilities"]
        else:
            say(f"{part}: {len(rows)} photos through {model.id} and the dog detector")
            got = run_model(model, detector, [p for p, _, _ in rows], cache, say)
            probs = fold_probabilities(run_dir, got["features"], fold)
            # The shipped graph's own output is the all-photo head on the same features: check the plumbing.
            final = head_probabilities(run_dir, got["features"])
            result[f"{part}_graph_vs_head_max_diff"] = float(np.abs(final - got["probabilities"]).max())
        measured[part] = observed(probs, label, got["dog_probability"])
        result[f"oof_{part}"] = scores(measured[part])
        # The run's own (fp32) out-of-fold figures on the same photos: what int8 is to be compared with.
        result[f"fp32_oof_{part}"] = scores(observed(
            saved["probabilities" if part == "crops" else "originals_probabilities"], label, got["dog_probability"]))
        say(f"{part}: out-of-fold top-1 {result[f'oof_{part}']['top1']:.4f}, top-3 {result[f'oof_{part}']['top3']:.4f}")

    crops = measured["crops"]
    decision = ev.choose_thresholds(crops)
    decision = {"detector": detector.path.name, "detector_id": detector.id, **decision,
                "chosen_on": f"out-of-fold predictions of {len(crops.top1)} crops ("
                             + (f"{found['k']} folds)" if folds is None else f"folds {folds} of {found['k']})")}
    result["decision"] = decision
    result["statuses"] = {part: statuses(o, decision) for part, o in measured.items()}
    # The same rules chosen on the even folds and measured on the odd ones, and the other way round: how much
    # choosing and measuring on the same photos flatters the figures.
    crossed = []
    for chose in (0, 1) if len(set(crops_fold % 2)) == 2 else ():
        pick = crops_fold % 2 == chose
        def sub(o, m):  # the photos of the folds ``m`` selects
            return ev.Observed(o.confidence[m], o.top1[m], o.top3[m], o.dog_probability[m], [], 0)

        d = ev.choose_thresholds(sub(crops, pick))
        crossed.append({"chosen_on": "even folds" if chose == 0 else "odd folds", "unsure_below": d["unsure_below"],
                        "not_a_dog_confidence_below": d["not_a_dog_confidence_below"],
                        "measured": statuses(sub(crops, ~pick), d)})
    result["thresholds_crosscheck"] = crossed
    for part, s in result["statuses"].items():
        say(f"{part}: dog {s['dog']}, unsure {s['unsure']} ({s['unsure_share']:.1%}), not_a_dog {s['not_a_dog']}; "
            f"dog answers right {s['dog_precision']}")
    if write:
        # Read again (keeps what was written meanwhile). Beside the export's figures (the run's, over every
        # fold): this graph's own, on the folds measured.
        side = ModelCard.read(model.path).with_decision(decision).with_metrics(oof_onnx={
            "folds": folds or "all", "crops": result["oof_crops"], "originals": result.get("oof_originals"),
            "fp32_same_photos": {"crops": result["fp32_oof_crops"], "originals": result.get("fp32_oof_originals")},
            "statuses": result["statuses"],
            "measured_by": f"dogcat train oof {run_dir} --model {model_path or model.path}"
                           + (f" --folds {','.join(map(str, folds))}" if folds is not None else "")}).write()
        say(f"wrote the out-of-fold figures and thresholds into {side}")
    runs.write_json(run_dir / f"oof-{model.id.replace('@', '-')}.json", result)
    if write:  # a ledger row beside the run's own, so int8 and fp32 figures sit side by side in the report
        run_cfg = runs.read_json(run_dir / "config.json")
        ledger.append(
            ledger.path_for(run_dir.parent), experiment=f"{model.id} measured out of fold",
            key=f"{run_cfg['backbone']} cross-validated head, exported"
                + (", int8" if model.card.quantization is not None else ", fp32"),
            config={"kind": "oof", "model": model.id, "run": run_dir.name, "folds": folds or "all",
                    "quantization": model.card.quantization},
            data=f"{Path(run_cfg['data_dir']).name}, {len(crops.top1)} crops out of fold"
                 + (f" (folds {folds} of {found['k']})" if folds is not None else ""),
            split_seed=run_cfg["seed"], val_accuracy=result["oof_crops"]["top1"], epochs_total=None,
            epochs_best=None, seconds=round(time.time() - started, 1), run=run_dir.name, history={},
            budget=f"ONNX Runtime on {runs.machine()}", oof=result["oof_crops"],
            oof_originals=result.get("oof_originals"), statuses=result["statuses"],
            unsure_below=decision["unsure_below"])
    return result


def head_probabilities(run_dir: Path, features: np.ndarray) -> np.ndarray:
    """The features through the head trained on every photo (the one inside the exported graph)."""
    import keras

    head = keras.models.load_model(run_dir / "head.keras", compile=False)
    return head.predict(features, verbose=0, batch_size=1024)


def _detector_only(detector: DogDetector, paths: list[Path], cache: Path, say, batch: int = 32) -> dict:
    """The dog detector's probability of every photo: from an earlier pass over the same photos when there is
    one (an int8 model's, which ran the detector too), else computed and cached."""
    part = cache.name.split("-")[1]
    for found in [cache, *sorted(cache.parent.glob(f"onnx-{part}-*-{cache.stem.split('-')[-1]}.npz"))]:
        if found.exists() and len(got := np.load(found)["dog_probability"]) == len(paths):
            return {"dog_probability": got}
    dog = []
    t0 = time.time()
    for i in range(0, len(paths), batch):
        chunk = paths[i:i + batch]
        dog.append(detector.dog_probability(detector.probabilities(images.load_batch(chunk, detector.preprocessing))))
        if (i // batch) % 50 == 0:
            say(f"  dog detector: {i + len(chunk)}/{len(paths)} photos, {(i + len(chunk)) / (time.time() - t0):.1f}/s")
    out: dict[str, Any] = {"dog_probability": np.concatenate(dog).astype(np.float32)}
    np.savez(cache, **out)
    return out
