"""The model card (dogcat.modelcard): the JSON sidecar every model is read through, and written back through."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dogcat import settings
from dogcat.model import BreedModel, DogDetector, ModelError, bundled_path
from dogcat.modelcard import ModelCard, Preprocessing, sidecar_path

ROOT = Path(__file__).resolve().parents[1]
BUNDLED_CARDS = [bundled_path().with_suffix(".json"), bundled_path("efficientnet-lite0-imagenet.onnx").with_suffix(
    ".json"), ROOT / "models" / "xception-120.json"]


def breed_card() -> dict:
    return json.loads(BUNDLED_CARDS[0].read_text())


@pytest.mark.parametrize("path", BUNDLED_CARDS, ids=lambda p: p.name)
def test_bundled_cards_load_and_write_back_unchanged(path, tmp_path):
    card = ModelCard.read(path)
    assert card.id.startswith(path.stem + "@") and card.preprocessing.size in ((299, 299), (224, 224))
    assert card.labels and card.input == "pixels" and card.output == "probabilities"
    assert card.write(tmp_path / "copy.onnx") == tmp_path / "copy.json"
    assert (tmp_path / "copy.json").read_bytes() == path.read_bytes()


def test_read_takes_the_model_or_the_card():
    onnx, side = bundled_path(), bundled_path().with_suffix(".json")
    assert ModelCard.read(onnx) == ModelCard.read(side) and ModelCard.read(onnx).source == side
    assert sidecar_path(onnx) == side


def test_typed_access_matches_the_json():
    raw = breed_card()
    card = ModelCard.read(BUNDLED_CARDS[0])
    assert card.kind == "breeds" and card.breeds == raw["breeds"] and card.decision == raw["decision"]
    assert card.quantization == raw["quantization"] and card.metrics == raw["metrics"]
    assert dict(card) == raw and card["id"] == raw["id"] and "decision" in card and "kind" not in card
    assert ModelCard.read(BUNDLED_CARDS[1]).dog_classes == (151, 268)


def test_patches_keep_every_key_they_do_not_touch(tmp_path):
    raw = breed_card() | {"shelter": {"notes": ["kept", 1]}, "future_block": [1, 2, 3]}
    raw["metrics"]["someone_elses"] = {"top1": 0.5}
    raw["decision"]["extra_rule"] = "kept too"
    raw["preprocessing"]["layout"] = "NHWC"
    ModelCard(raw).write(tmp_path / "m.onnx")
    card = ModelCard.read(tmp_path / "m.onnx")
    patched = (card.with_decision(card.decision | {"unsure_below": 0.6})
               .with_metrics(val={"n": 3, "top1": 1.0})
               .with_preprocessing(resize="letterbox")
               .updated(name="renamed"))
    patched.write()  # where it was read from
    again = json.loads((tmp_path / "m.json").read_text())
    assert again["shelter"] == {"notes": ["kept", 1]} and again["future_block"] == [1, 2, 3]
    assert again["metrics"]["someone_elses"] == {"top1": 0.5} and again["metrics"]["val"]["n"] == 3
    assert again["metrics"]["oof_looks"] == raw["metrics"]["oof_looks"]
    assert again["decision"]["extra_rule"] == "kept too" and again["decision"]["unsure_below"] == 0.6
    assert again["preprocessing"]["resize"] == "letterbox" and again["name"] == "renamed"
    assert list(again)[:len(raw)] == list(raw)  # keys stay where they were
    assert card["decision"]["unsure_below"] == raw["decision"]["unsure_below"]  # the original card is untouched
    assert sorted(os.listdir(tmp_path)) == ["m.json"]  # no temporary file left beside it


def test_a_failed_write_leaves_the_old_card(tmp_path, monkeypatch):
    ModelCard(breed_card()).write(tmp_path / "m.json")
    before = (tmp_path / "m.json").read_bytes()

    def broken(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        ModelCard.read(tmp_path / "m.json").updated(name="other").write()
    assert (tmp_path / "m.json").read_bytes() == before and sorted(os.listdir(tmp_path)) == ["m.json"]


def _at(where: str, value):
    """Set the card's field ``where`` ("preprocessing.size") to ``value``."""
    *parents, key = where.split(".")

    def spoil(card):
        for p in parents:
            card = card[p]
        card[key] = value
    return spoil


def _without(key: str):
    return lambda card: card.pop(key)


# how the card is spoilt → what the message must name
INVALID = {
    "size one number": (_at("preprocessing.size", [299]), "preprocessing: size: must be two positive"),
    "size zero": (_at("preprocessing.size", [0, 299]), "preprocessing: size"),
    "size negative": (_at("preprocessing.size", [-299, 299]), "preprocessing: size"),
    "size fraction": (_at("preprocessing.size", [299.5, 299]), "preprocessing: size"),
    "size text": (_at("preprocessing.size", "299x299"), "preprocessing: size"),
    "size true": (_at("preprocessing.size", [True, 299]), "preprocessing: size"),
    "size missing": (lambda c: c["preprocessing"].pop("size"), "preprocessing: size: missing"),
    "resize unknown": (_at("preprocessing.resize", "squash"), 'preprocessing: resize: unknown "squash"'),
    "resample unknown": (_at("preprocessing.resample", "lanczos"), 'preprocessing: resample: unknown "lanczos"'),
    "color": (_at("preprocessing.color", "BGR"), "preprocessing: color"),
    "dtype": (_at("preprocessing.dtype", "uint8"), "preprocessing: dtype"),
    "range": (_at("preprocessing.range", [0, 1]), "preprocessing: range"),
    "layout": (_at("preprocessing.layout", "NCHW"), "preprocessing: layout"),
    "unknown step": (_at("preprocessing.mean", [0.5, 0.5, 0.5]), "preprocessing: mean: not a preprocessing step"),
    "preprocessing a list": (_at("preprocessing", [299, 299]), "preprocessing: must be an object"),
    "format": (_at("format", "dogcat-model/2"), "not a dogcat-model/1 sidecar"),
    "no format": (_without("format"), "not a dogcat-model/1 sidecar"),
    "no id": (_without("id"), "missing id"),
    "no labels": (_without("labels"), "missing labels"),
    "no input": (_without("input"), "missing input"),
    "no output": (_without("output"), "missing output"),
    "no preprocessing": (_without("preprocessing"), "missing preprocessing"),
    "no breeds": (_without("breeds"), "missing breeds"),
    "empty id": (_at("id", ""), "id: must be a non-empty string"),
    "output a number": (_at("output", 3), "output: must be a non-empty string"),
    "labels empty": (_at("labels", []), "labels: must be a non-empty list"),
    "label twice": (lambda c: c["labels"].__setitem__(1, c["labels"][0]), "is there twice"),
    "breeds short": (lambda c: c["breeds"].pop(), "breeds: 119 names for 120 labels"),
    "metrics a list": (_at("metrics", []), "metrics: must be an object"),
    "threshold above 1": (_at("decision.unsure_below", 1.5), "decision.unsure_below: must be a number from 0 to 1"),
    "threshold text": (_at("decision.not_a_dog_below", "0.5"), "decision.not_a_dog_below"),
    "detector a number": (_at("decision.detector", 1), "decision.detector"),
}


@pytest.mark.parametrize("spoil, names", INVALID.values(), ids=INVALID.keys())
def test_an_invalid_field_is_one_line_naming_the_file(tmp_path, spoil, names):
    card = breed_card()
    spoil(card)
    side = tmp_path / "model.json"
    side.write_text(json.dumps(card, indent=2))
    with pytest.raises(ModelError) as e:
        ModelCard.read(tmp_path / "model.onnx")
    message = str(e.value)
    assert message.startswith(f"{side}: ") and names in message and "\n" not in message, message


def test_an_invalid_detector_card_is_one_line_naming_the_file(tmp_path):
    card = json.loads(BUNDLED_CARDS[1].read_text())
    for dogs in ([151], [268, 151], [151, 1000], None):
        if dogs is None:
            del card["dog_classes"]
        else:
            card["dog_classes"] = dogs
        (tmp_path / "d.json").write_text(json.dumps(card))
        with pytest.raises(ModelError, match=r"^\S+d\.json: .*dog_classes"):
            ModelCard.read(tmp_path / "d.json")


@pytest.mark.parametrize("content, names", [
    (None, "the model's sidecar is missing"), ("{", "not valid JSON (Expecting property name"),
    ("[1, 2]", "not a JSON object"), ("", "not valid JSON"), (b"\xff\xfe{}", "not valid JSON (not UTF-8"),
])
def test_an_unreadable_card_is_one_line_naming_the_file(tmp_path, content, names):
    side = tmp_path / "m.json"
    if isinstance(content, bytes):
        side.write_bytes(content)
    elif content is not None:
        side.write_text(content)
    with pytest.raises(ModelError) as e:
        ModelCard.read(tmp_path / "m.onnx")
    assert str(e.value).startswith(f"{side}: ") and names in str(e.value) and "\n" not in str(e.value)


def test_a_model_with_an_invalid_card_is_refused_before_onnx_runtime_loads_it(tmp_path):
    (tmp_path / "model.onnx").symlink_to(bundled_path())
    card = breed_card()
    card["preprocessing"]["resize"] = "zoom"
    (tmp_path / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"model\.json: preprocessing: resize: unknown \"zoom\""):
        BreedModel(tmp_path / "model.onnx")
    with pytest.raises(ModelError, match="a 'breeds' model, not a 'imagenet-1k' one"):
        DogDetector(bundled_path())


def test_preprocessing_refuses_what_no_photo_could_be_given():
    assert Preprocessing.from_dict({"size": [224, 224]}) == Preprocessing((224, 224), "stretch", "bilinear")
    for bad in ({"size": (0, 1)}, {"size": (1, 1), "resize": "zoom"}, {"size": (1, 1), "resample": "box"}):
        with pytest.raises(ValueError):
            Preprocessing(**bad)


def test_quantize_takes_the_commands_defaults():
    """One set of defaults: `dogcat train quantize` and dogcat.train.quantize.quantize (no main() of its own)."""
    import inspect

    from dogcat.train import cli as train_cli
    from dogcat.train import quantize

    function = inspect.signature(quantize.quantize).parameters
    command = inspect.signature(train_cli.quantize).parameters
    for name in ("per_breed", "method", "keep_fp32", "histogram_photos", "reduce_range", "backbone_name"):
        assert function[name].default == command[name].default, name
    assert function["method"].default == settings.QUANTIZE_METHOD and not hasattr(quantize, "main")
    assert function["reduce_range"].default is settings.QUANTIZE_REDUCE_RANGE is True  # issue 32
    with pytest.raises(ValueError, match="unknown calibration method"):
        quantize.quantize("x.onnx", "y.onnx", ".", method="median")
    with pytest.raises(ValueError, match="cannot keep conv in fp32"):
        quantize.quantize("x.onnx", "y.onnx", ".", keep_fp32="add,conv")


def test_train_thresholds_finds_the_bundled_model_from_any_folder(tmp_path, crops):
    """Without --model: the bundled model wherever the command runs (it named a path relative to the checkout);
    that model was trained on every photo, so the command says where its thresholds come from instead."""
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-m", "dogcat", "train", "thresholds", "--dry-run", "--data", str(crops)],
                          capture_output=True, text=True, cwd=tmp_path, env=os.environ | {"PYTHONPATH": path})
    assert done.returncode == 1 and "no such model file" not in done.stderr, done.stderr
    assert f"{bundled_path()}: its split has no validation photos" in done.stderr
    assert "dogcat train oof" in done.stderr and len(done.stderr.strip().splitlines()) == 1
