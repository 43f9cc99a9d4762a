"""A small but real run of the lab: Stanford Dogs photos → Xception features → head → ONNX → ONNX Runtime.

Small input (96 px), three breeds, a dozen photos each: it learns something real in well under a minute.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import needs_module  # noqa: E402

# TensorFlow and the whole dataset: the full tier only (skipped without them, failing under CI).
pytestmark = [pytest.mark.slow, pytest.mark.own_process]  # own_process: TensorFlow keeps its memory (conftest)
needs_module("keras")

from dogcat import images  # noqa: E402
from dogcat.model import BreedModel  # noqa: E402
from dogcat.train import onnx_export, runs, transfer  # noqa: E402

BREEDS = ["Chihuahua", "golden_retriever", "Saint_Bernard"]


@pytest.fixture(scope="session")
def crops(dataset) -> Path:
    """Every crop of the breeds trained on (../shared/data), not the fast tests' few."""
    return dataset / "stanford-dogs-crops-224"


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, xception_weights, crops):
    cache = tmp_path_factory.mktemp("cache")
    cfg = transfer.TransferConfig(data_dir=str(crops), weights=xception_weights, classes=BREEDS, image_size=96,
                                  max_per_class=15, epochs=30, patience=30, seed=7)
    import os

    os.environ["DOGCAT_CACHE"] = str(cache)
    run_dir = transfer.run(cfg, tmp_path_factory.mktemp("runs"))
    return run_dir, cache


def test_run_folder_records_everything(trained_run):
    run_dir, cache = trained_run
    for name in ("config.json", "split.json", "history.json", "metrics.json", "head.keras"):
        assert (run_dir / name).is_file(), name
    config = runs.read_json(run_dir / "config.json")
    assert [label.split("-", 1)[1] for label in config["labels"]] == BREEDS
    split = json.loads((run_dir / "split.json").read_text())
    for label in config["labels"]:
        assert len(split["train"][label]) == 12 and len(split["val"][label]) == 3
        assert not set(split["train"][label]) & set(split["val"][label])
    history = runs.read_json(run_dir / "history.json")
    assert len(history["loss"]) == 30 and history["loss"][-1] < history["loss"][0]
    metrics = runs.read_json(run_dir / "metrics.json")
    # Real ImageNet features separate three very different breeds even at 96 px.
    assert metrics["train"]["top1"] >= 0.9
    assert metrics["val"]["top1"] >= 2 / 3
    assert len(list(cache.rglob("*.npy"))) == 3  # one cached feature file per breed


def test_split_is_reproducible_and_per_breed(crops):
    from dogcat.train import data

    classes = data.discover(crops, BREEDS)
    a, b = data.split(classes, seed=3), data.split(classes, seed=3)
    assert a.train == b.train and a.val == b.val
    assert data.split(classes, seed=4).val != a.val
    # Adding a breed leaves the others' split as it was.
    more = data.split(data.discover(crops, BREEDS + ["beagle"]), seed=3)
    assert all(more.val[c.label] == a.val[c.label] for c in classes)


def test_cached_features_are_reused(trained_run, xception_weights, crops):
    run_dir, cache = trained_run
    before = {p: p.stat().st_mtime_ns for p in cache.rglob("*.npy")}
    cfg = transfer.TransferConfig(data_dir=str(crops), weights=xception_weights, classes=BREEDS, image_size=96,
                                  max_per_class=15, epochs=1, seed=7)
    again = transfer.run(cfg, run_dir.parent)
    assert runs.read_json(again / "metrics.json")["seconds_features"] < 5
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*.npy")} == before


def test_extracted_features_keep_float16_when_the_backbone_halves_them(crops, tmp_path):
    """The exit-flow cache stores block-13 activations as float16 (3.5 GB instead of 7 GB for 17,456 photos):
    extraction must not widen them back to float32, while anything else comes out as float32."""
    from dogcat.train import data, features

    files = data.discover(crops, BREEDS)[0].files[:3]
    prep = images.Preprocessing(size=(32, 32))
    half = features.extract(lambda batch: batch.mean(axis=(1, 2)).astype(np.float16), files, prep, batch_size=2)
    double = features.extract(lambda batch: batch.mean(axis=(1, 2)).astype(np.float64), files, prep)
    assert half.dtype == np.float16 and double.dtype == np.float32 and half.shape == double.shape == (3, 3)
    np.testing.assert_allclose(half, double, rtol=1e-3)


def test_export_matches_keras_and_serves(trained_run, tmp_path, crops):
    run_dir, _ = trained_run
    onnx_path = onnx_export.export(run_dir, tmp_path / "tiny.onnx", parity_images=6)
    card = json.loads(onnx_path.with_suffix(".json").read_text())
    assert card["input"] == "pixels" and card["output"] == "probabilities"
    assert card["preprocessing"]["size"] == [96, 96] and card["preprocessing"]["resize"] == "stretch"
    assert card["breeds"] == ["Chihuahua", "Golden Retriever", "Saint Bernard"]
    assert card["parity"]["max_abs_diff"] <= 1e-4
    assert card["metrics"]["val"] == runs.read_json(run_dir / "metrics.json")["val"]

    # Served by ONNX Runtime through the inference code, it agrees with the Keras model on validation photos.
    model = BreedModel(onnx_path)
    split = json.loads((run_dir / "split.json").read_text())
    files = [crops / label / name for label in card["labels"] for name in split["val"][label]]
    batch = images.load_batch(files, model.preprocessing)
    keras_model, _, _ = onnx_export.full_model(run_dir)
    np.testing.assert_allclose(model.probabilities(batch), keras_model.predict(batch, verbose=0), atol=1e-4)


def test_parity_check_rejects_a_wrong_model():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(5), size=8).astype(np.float32)
    assert onnx_export.check_parity(probs, probs + 1e-6) <= 1e-4
    with pytest.raises(onnx_export.ParityError, match="differs"):
        onnx_export.check_parity(probs, probs + 1e-3)
    swapped = probs.copy()
    swapped[:, [0, 1]] = swapped[:, [1, 0]]
    with pytest.raises(onnx_export.ParityError):
        onnx_export.check_parity(probs, swapped)


def test_train_cli_reports_bad_data_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "dogcat", "train", "transfer", "--data", str(tmp_path / "nope"),
                           "--runs-dir", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 1
    assert "nope: no such data folder" in done.stderr and "Traceback" not in done.stderr


def test_quantized_model_is_smaller_agrees_and_gets_thresholds(trained_run, tmp_path, crops):
    """The tiny run → fp32 ONNX → int8 (calibrated on its training photos) → thresholds on its val-tune half."""
    from typer.testing import CliRunner

    from dogcat.train import quantize
    from dogcat.train.cli import app

    run_dir, _ = trained_run
    fp32 = onnx_export.export(run_dir, tmp_path / "tiny.onnx", parity_images=4)
    int8 = quantize.quantize(fp32, tmp_path / "tiny-int8.onnx", crops, per_breed=2)
    card = json.loads(int8.with_suffix(".json").read_text())
    assert card["quantization"]["from"] == json.loads(fp32.with_suffix(".json").read_text())["id"]
    assert card["quantization"]["calibration_photos"] == 6
    assert "val" not in card["metrics"]  # the fp32 figures are kept apart, not claimed for the int8 model
    assert card["metrics"]["fp32_val"] == json.loads(fp32.with_suffix(".json").read_text())["metrics"]["val"]
    assert int8.stat().st_size < fp32.stat().st_size / 2
    split = json.loads(int8.with_suffix(".split.json").read_text())
    files = [crops / label / name for label in card["labels"] for name in split["val"][label]]
    a, b = BreedModel(fp32), BreedModel(int8)
    batch = images.load_batch(files, a.preprocessing)
    agree = np.mean(a.probabilities(batch).argmax(1) == b.probabilities(batch).argmax(1))
    assert agree >= 0.8, agree

    # A split model (the shipped kind): its backbone quantized, calibrated on each photo and its mirror image, in
    # 7-bit weights; its head kept byte for byte, with a card naming the new backbone.
    from dogcat.train import graph_split

    fp32_head = graph_split.split_model(fp32, tmp_path / "split", "tiny-backbone.onnx", "tiny.onnx",
                                        say=lambda *_: None)
    split_int8 = quantize.quantize(fp32_head, tmp_path / "split8" / "tiny-int8.onnx", crops, per_breed=2,
                                   backbone_name="tiny-int8-backbone.onnx", say=lambda *_: None)
    split_card = json.loads(split_int8.with_suffix(".json").read_text())
    backbone_file = split_int8.parent / "tiny-int8-backbone.onnx"
    assert split_card["backbone"]["file"] == backbone_file.name
    assert split_card["backbone"]["sha256"] == hashlib.sha256(backbone_file.read_bytes()).hexdigest()
    assert split_int8.read_bytes() == fp32_head.read_bytes()
    assert split_card["quantization"]["reduce_range"] is True and split_card["id"] != card["id"]
    assert backbone_file.stat().st_size < (fp32_head.parent / "tiny-backbone.onnx").stat().st_size / 2
    split_model = BreedModel(split_int8)
    agree = np.mean(a.probabilities(batch).argmax(1) == split_model.probabilities(batch).argmax(1))
    assert agree >= 0.8, agree

    # The oracle (issue 32): that backbone computed in numpy with the kernels' arithmetic gives what ONNX Runtime
    # gives here without its NCHWc layout, to the last pooling's rounding (a float32 step or two); an int8 value
    # apart anywhere before it would put the features far apart (the 8-bit backbone on AVX2 was 15 % off).
    import onnxruntime as ort

    from dogcat.model import DISABLED_OPTIMIZERS
    from dogcat.train import oracle

    session = ort.InferenceSession(str(backbone_file), providers=["CPUExecutionProvider"],
                                   disabled_optimizers=DISABLED_OPTIMIZERS)
    here = session.run(None, {session.get_inputs()[0].name: batch[:3]})[0]
    computed = oracle.features(backbone_file, batch[:3])
    assert computed.shape == here.shape and np.abs(here).max() > 0.01
    np.testing.assert_allclose(computed, here, rtol=3e-7, atol=1e-7)

    result = CliRunner().invoke(app, ["thresholds", "--model", str(int8), "--data", str(crops)])
    assert result.exit_code == 0, result.output
    decision = json.loads(int8.with_suffix(".json").read_text())["decision"]
    assert decision["detector"] == "efficientnet-lite0-imagenet.onnx"
    assert 0 < decision["unsure_below"] <= 1 and decision["not_a_dog_below"] == 0.5
    assert decision["tune"]["photos"] == sum(len(v) // 2 for v in split["val"].values())
    assert decision["tune"]["flagged_not_a_dog"] <= max(1, 0.01 * decision["tune"]["photos"])


def test_feature_parts_are_extracted_in_one_pass_and_export_as_one_model(tmp_path, xception_weights, crops,
                                                                          monkeypatch):
    """--backbone xception+xception/block13: the last layer and block 13's output, pooled, from one Xception
    pass, each cached on its own; the head learns on both (standardized); the export is one ONNX graph."""
    from dogcat.train import backbones

    cache = tmp_path / "cache"
    monkeypatch.setenv("DOGCAT_CACHE", str(cache))
    cfg = transfer.TransferConfig(data_dir=str(crops), backbone="xception+xception/block13",
                                  weights=xception_weights, classes=BREEDS, image_size=96, max_per_class=8,
                                  epochs=12, patience=12, seed=7)
    run_dir = transfer.run(cfg, tmp_path / "runs")
    parts = {d.name.split("-file-")[0]: sorted(d.glob("*.npy")) for d in (cache / "features").iterdir()}
    assert sorted(parts) == ["xception", "xception-block13"] and all(len(f) == 3 for f in parts.values())
    last, block13 = np.load(parts["xception"][0]), np.load(parts["xception-block13"][0])
    assert last.shape == (8, 2048) and block13.shape == (8, 1024)

    # The last-layer part is exactly what the single backbone gives (so the two share one cache).
    from dogcat.train import data

    split = data.Split.from_json((run_dir / "split.json").read_text())
    breed = data.discover(crops, BREEDS)[0]
    first = [f for f in breed.files if f.name in set(split.train[breed.label]) | set(split.val[breed.label])]
    prep = images.Preprocessing(size=(96, 96))
    single = backbones.compiled_predict(backbones.build_feature_extractor(backbones.get("xception"),
                                                                          xception_weights, 96))
    np.testing.assert_allclose(single(images.load_batch(first, prep)), last, atol=1e-4)

    head = __import__("keras").models.load_model(run_dir / "head.keras", compile=False)
    assert head.input_shape == (None, 2048 + 1024) and head.layers[1].name == "standardize"
    metrics = runs.read_json(run_dir / "metrics.json")
    assert metrics["train"]["top1"] >= 0.9 and metrics["val"]["top1"] >= 2 / 3

    onnx_path = onnx_export.export(run_dir, tmp_path / "parts.onnx", parity_images=4)
    card = json.loads(onnx_path.with_suffix(".json").read_text())
    assert card["training"]["backbone"] == "xception+xception/block13"
    assert card["name"] == "xception-xception-block13-3" and card["parity"]["max_abs_diff"] <= 1e-4


def test_mirror_images_and_several_heads_train_and_export_as_one_model(tmp_path, xception_weights, crops,
                                                                        monkeypatch):
    """--mirror trains on each training photo and its mirror image (cached apart, training photos only);
    --heads 2 trains two seeded heads whose averaged probabilities are the model, exported as one graph."""
    import keras

    from dogcat.train import backbones, data

    cache = tmp_path / "cache"
    monkeypatch.setenv("DOGCAT_CACHE", str(cache))
    cfg = transfer.TransferConfig(data_dir=str(crops), weights=xception_weights, classes=BREEDS, image_size=96,
                                  max_per_class=8, epochs=6, patience=6, seed=7, mirror=True, heads=2)
    run_dir = transfer.run(cfg, tmp_path / "runs")
    dirs = {d.name.endswith("-mirrored"): d for d in (cache / "features").iterdir()}
    assert sorted(dirs) == [False, True]
    split = data.Split.from_json((run_dir / "split.json").read_text())
    breed = data.discover(crops, BREEDS)[0]
    plain = np.load(next(dirs[False].glob(f"{breed.label}-*.npy")))
    mirror = np.load(next(dirs[True].glob(f"{breed.label}-*.npy")))
    assert plain.shape == (8, 2048) and mirror.shape == (6, 2048)  # mirrors of the 6 training photos only

    # The mirrored rows are the backbone's features of the flipped training photos, not of the photos.
    train_files = [f for f in breed.files if f.name in set(split.train[breed.label])]
    prep = images.Preprocessing(size=(96, 96))
    single = backbones.compiled_predict(backbones.build_feature_extractor(backbones.get("xception"),
                                                                          xception_weights, 96))
    pixels = images.load_batch(train_files, prep)
    np.testing.assert_allclose(single(pixels[:, :, ::-1, :]), mirror, atol=1e-4)
    assert np.abs(single(pixels) - mirror).max() > 1e-2

    head = keras.models.load_model(run_dir / "head.keras", compile=False)
    first, second = (layer for layer in head.layers if isinstance(layer, keras.Model))
    one, two = first.predict(plain, verbose=0), second.predict(plain, verbose=0)
    np.testing.assert_allclose(head.predict(plain, verbose=0), (one + two) / 2, atol=1e-6)
    assert np.abs(one - two).max() > 1e-3  # two seeds, two different heads
    metrics = runs.read_json(run_dir / "metrics.json")
    assert len(metrics["heads"]) == 2 and metrics["train"]["top1"] >= 0.9
    row = json.loads((tmp_path / "ledger.jsonl").read_text().splitlines()[-1])
    assert row["key"] == "xception transfer (mirror, 2 heads)"  # plotted beside the study's row, not over it

    onnx_path = onnx_export.export(run_dir, tmp_path / "heads.onnx", parity_images=4)
    assert json.loads(onnx_path.with_suffix(".json").read_text())["parity"]["max_abs_diff"] <= 1e-4


def test_feature_specs_and_weights_are_parsed_strictly(tmp_path):
    from dogcat.train import backbones

    assert [p.name for p in backbones.parse("xception+xception/middle+efficientnet-lite0")] == [
        "xception", "xception-middle", "efficientnet_lite0"]
    assert backbones.input_size("xception+efficientnet-lite0") == 299
    with pytest.raises(ValueError, match="unknown feature tap 'xception/block99'.*xception/block13"):
        backbones.parse("xception+xception/block99")
    with pytest.raises(ValueError, match="twice"):
        backbones.parse("xception+xception")
    xception, lite = backbones.get("xception"), backbones.get("efficientnet-lite0")
    assert backbones.weights_for("/w/x.h5", lite) == "/w/x.h5"
    assert backbones.weights_for("/w/x.h5,efficientnet-lite0=imagenet", xception) == "/w/x.h5"
    assert backbones.weights_for("/w/x.h5,efficientnet-lite0=imagenet", lite) == "imagenet"
    assert backbones.weights_for("xception=/w/x.h5", lite) == "imagenet"
    done = subprocess.run([sys.executable, "-m", "dogcat", "train", "transfer", "--backbone", "xception/nope",
                           "--runs-dir", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 1 and "unknown feature tap 'xception/nope'" in done.stderr
    assert "Traceback" not in done.stderr
