"""`dogcat train crossval` end to end on a tiny real problem: 3 breeds, 8 crops each (+ 2 originals of two of
them), 96 px Xception features, 2 folds → OOF figures, the chosen head trained on everything, its ledger row,
and an exported model that serves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import needs_module

# TensorFlow and the whole dataset: the full tier only (skipped without them, failing under CI).
pytestmark = [pytest.mark.slow, pytest.mark.own_process]  # own_process: TensorFlow keeps its memory (conftest)
needs_module("keras")

from dogcat import images  # noqa: E402
from dogcat.model import BreedModel  # noqa: E402
from dogcat.train import crossval, data, onnx_export  # noqa: E402

BREEDS = ["n02085620-Chihuahua", "n02099601-golden_retriever", "n02109525-Saint_Bernard"]


@pytest.fixture(scope="session")
def crops(dataset) -> Path:
    """The whole dataset's crops (../shared/data), not the fast tests' few."""
    return dataset / "stanford-dogs-crops-224"


@pytest.fixture(scope="session")
def originals(dataset) -> Path:
    return dataset / "stanford-dogs-originals"


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory, crops, originals):
    """8 crops of each breed, and 2 uncropped originals (named like their crops) of the two breeds that have
    originals, linked into throwaway folders."""
    root = tmp_path_factory.mktemp("data")
    for label in BREEDS:
        (root / "crops" / label).mkdir(parents=True)
        for photo in sorted((crops / label).glob("*.jpg"))[:8]:
            (root / "crops" / label / photo.name).symlink_to(photo)
        if (originals / label).is_dir():
            (root / "originals" / label).mkdir(parents=True)
            for photo in sorted((crops / label).glob("*.jpg"))[:2]:
                (root / "originals" / label / photo.name).symlink_to(originals / label / photo.name)
    return root / "crops", root / "originals"


@pytest.fixture(scope="module")
def cv_run(tmp_path_factory, xception_weights, tiny_data, monkeypatch_module):
    monkeypatch_module.setenv("DOGCAT_CACHE", str(tmp_path_factory.mktemp("cache")))
    crops_dir, originals_dir = tiny_data
    cfg = crossval.CrossvalConfig(data_dir=str(crops_dir), originals_dir=str(originals_dir),
                                  weights=xception_weights, image_size=96, folds=2, C=[0.3, 3.0], mlp_epochs=[2, 4],
                                  mirror_mean=False)
    ledger = tmp_path_factory.mktemp("ledger") / "ledger.jsonl"
    return crossval.run(cfg, tmp_path_factory.mktemp("runs"), ledger_path=ledger), ledger


@pytest.fixture(scope="module")
def mirror_run(tmp_path_factory, xception_weights, tiny_data, cv_run):
    """The same photos with `mirror_mean` (cv_run first: it set DOGCAT_CACHE, so the unmirrored features come
    from its cache and only the mirror images' are computed)."""
    crops_dir, _ = tiny_data
    cfg = crossval.CrossvalConfig(data_dir=str(crops_dir), weights=xception_weights, image_size=96, folds=2,
                                  C=[0.3], mirror_mean=True)
    return crossval.run(cfg, tmp_path_factory.mktemp("runs"), ledger_path=tmp_path_factory.mktemp("l") / "l.jsonl"), cfg


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_folds_are_stratified_and_seeded(crops):
    classes = data.discover(crops, BREEDS)
    folds = data.folds(classes, 10, 42)
    assert folds == data.folds(classes, 10, 42)
    for c in classes:
        counts = np.bincount(list(folds[c.label].values()), minlength=10)
        assert counts.max() - counts.min() <= 1  # each breed spread evenly over the folds


def test_crossval_chooses_out_of_fold_and_records_it(cv_run):
    run_dir, ledger = cv_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    names = set(metrics["candidates"])
    assert {"logreg C=0.3", "logreg C=3", "study head 2 epochs", "study head 4 epochs"} <= names
    assert any(n.startswith("average of") for n in names)
    assert metrics["chosen"] in names
    assert metrics["oof"]["n"] == 24 and metrics["oof_originals"]["n"] == 4
    assert metrics["oof"]["top1"] >= 0.75  # three very different breeds, 12 training photos per fold
    assert metrics["unsure"]["table"]
    split = json.loads((run_dir / "split.json").read_text())
    assert split["val"] == {} and sum(map(len, split["train"].values())) == 24
    assert all(len(split["folds"]["fold"][c]) == len(split["train"][c]) for c in BREEDS)
    assert len(list((run_dir / "folds").glob("fold-*.keras"))) == 2
    oof = np.load(run_dir / "oof.npz")
    assert oof["probabilities"].shape == (24, 3)
    row = json.loads(ledger.read_text().splitlines()[-1])
    assert row["key"] == "xception cross-validated head" and row["val_accuracy"] == metrics["oof"]["top1"]
    assert row["oof"] == metrics["oof"] and row["chosen"] == metrics["chosen"]


def test_crossval_run_exports_as_one_model(cv_run, tmp_path, tiny_data):
    run_dir, _ = cv_run
    onnx_path = onnx_export.export(run_dir, tmp_path / "cv.onnx", parity_images=4)
    card = json.loads(onnx_path.with_suffix(".json").read_text())
    assert card["metrics"]["oof"]["n"] == 24 and "val" not in card["metrics"]
    assert card["training"]["head"] == json.loads((run_dir / "metrics.json").read_text())["chosen"]
    model = BreedModel(onnx_path)
    files = sorted(tiny_data[0].glob("*/*.jpg"))[:6]
    keras_model, _, _ = onnx_export.full_model(run_dir)
    batch = images.load_batch(files, model.preprocessing)
    np.testing.assert_allclose(model.probabilities(batch), keras_model.predict(batch, verbose=0), atol=1e-4)
    # A model of one view answers a photo's mirror image differently (what mirror_mean's test relies on).
    mirrored = np.ascontiguousarray(batch[:, :, ::-1])
    assert np.abs(model.probabilities(batch) - model.probabilities(mirrored)).max() > 1e-3


def test_mirror_mean_exports_a_graph_that_averages_a_photo_and_its_mirror_image(mirror_run, tmp_path, tiny_data):
    import onnxruntime as ort

    from dogcat.train import oof

    run_dir, cfg = mirror_run
    onnx_path = onnx_export.export(run_dir, tmp_path / "mirror.onnx", parity_images=4)  # parity with Keras checked
    assert json.loads(onnx_path.with_suffix(".json").read_text())["training"]["mirror_mean"] is True
    model = BreedModel(onnx_path)
    files = sorted(tiny_data[0].glob("*/*.jpg"))[::4]
    batch = images.load_batch(files, model.preprocessing)
    mirrored = np.ascontiguousarray(batch[:, :, ::-1])
    np.testing.assert_allclose(model.probabilities(mirrored), model.probabilities(batch), atol=1e-5)
    # The head's input in the graph is what the run trained on: the mean of both views' cached features.
    name = oof.with_features_output(onnx_path, tmp_path / "features.onnx")
    graph_features = ort.InferenceSession(str(tmp_path / "features.onnx")).run([name], {"pixels": batch})[0]
    classes = data.discover(cfg.data_dir)
    cached, note = crossval.features_of(cfg, classes, say=lambda *_: None, progress_factory=None)
    assert "mirrored features from cache" in note
    rows = {(c.label, f.name): cached[c.label][i] for c in classes for i, f in enumerate(c.files)}
    expected = np.stack([rows[(f.parent.name, f.name)] for f in files])
    np.testing.assert_allclose(graph_features.reshape(len(files), -1), expected, atol=1e-4)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["oof"]["n"] == 24 and metrics["chosen"] == "logreg C=0.3"


def test_crossval_cli_refuses_bad_folds(tmp_path):
    done = subprocess.run([sys.executable, "-m", "dogcat", "train", "crossval", "--data", str(tmp_path / "nope"),
                           "--runs-dir", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 1
    assert "nope: no such data folder" in done.stderr and "Traceback" not in done.stderr


def test_int8_export_is_measured_out_of_fold_and_gets_thresholds(cv_run, tmp_path, crops):
    """fp32 export → int8 (2 calibration photos a breed) → each photo's int8 features through the head of the
    fold that held it out; thresholds chosen there and written into the sidecar."""
    from dogcat.train import oof, quantize

    run_dir, _ = cv_run
    fp32 = onnx_export.export(run_dir, tmp_path / "cv.onnx", parity_images=4)
    int8 = quantize.quantize(fp32, tmp_path / "cv-int8.onnx", crops, per_breed=2)
    assert json.loads(int8.with_suffix(".json").read_text())["metrics"]["fp32_oof"]["n"] == 24
    result = oof.measure(run_dir, int8, say=lambda *_: None)
    assert result["oof_crops"]["n"] == 24 and result["oof_originals"]["n"] == 4
    assert result["crops_graph_vs_head_max_diff"] <= 1e-4  # the graph's own head = the head.keras on its features
    card = json.loads(int8.with_suffix(".json").read_text())
    assert card["metrics"]["oof_onnx"]["crops"] == result["oof_crops"] and 0 < card["decision"]["unsure_below"] <= 1
    assert card["metrics"]["oof_onnx"]["statuses"]["crops"]["photos"] == 24
    assert card["metrics"]["oof_onnx"]["fp32_same_photos"]["crops"]["n"] == 24
    # The fp32 export computes the run's own features: its out-of-fold figures are the run's.
    again = oof.measure(run_dir, fp32, folds=[1], say=lambda *_: None)
    assert again["oof_crops"]["n"] == 12
    saved = np.load(run_dir / "oof.npz")
    assert again["oof_crops"]["top1"] == round(float(np.mean(saved["probabilities"][saved["fold"] == 1].argmax(1)
                                                             == saved["label"][saved["fold"] == 1])), 4)
