"""Statuses on real photos: dog, unsure, not_a_dog (real non-dog photos), error; in classify, catalog, export."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dogcat.cli import app
from dogcat.db import SCHEMA_VERSION
from dogcat.model import BreedModel
from dogcat.status import Thresholds, decide

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
import not_dogs  # noqa: E402  (tests/not_dogs.py: the real non-dog photos)

CATS = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat", "lynx"}


def dogcat(*args, env=None):
    return subprocess.run([sys.executable, "-m", "dogcat", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})})


def dogcat_here(*args: str) -> subprocess.CompletedProcess:
    """The command line in this process (typer's runner), for the tests of what it answers rather than of the
    process (its whole stderr): the same code without a process's start. An exception is raised, not turned into
    an exit code, so a traceback still fails the test."""
    done = CliRunner().invoke(app, list(args), prog_name="dogcat", catch_exceptions=False)
    return subprocess.CompletedProcess(["dogcat", *args], done.exit_code, done.stdout, done.stderr)


def lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def model(model_path):
    return BreedModel(model_path)


@pytest.fixture(scope="module")
def model_args(model_path):
    return ["--model", model_path] if model_path else []


@pytest.fixture(scope="module")
def dog_photos(model, crops, originals):
    """Validation crops of 16 breeds across the list, and 4 uncropped validation originals (a model trained on
    every crop has no validation photos: then training ones)."""
    split = json.loads(model.path.with_suffix(".split.json").read_text())
    split = split["val"] if any(split["val"].values()) else split["train"]
    labels = model.labels[::len(model.labels) // 16][:16]
    photos = [crops / label / sorted(split[label])[0] for label in labels]
    for folder in sorted(p for p in originals.iterdir() if p.is_dir()):
        name = next(n for n in sorted(split.get(folder.name, [])) if (folder / n).is_file())
        photos.append(folder / name)
    return photos


def test_real_non_dog_photos_are_flagged_not_a_dog(tmp_path, model_args):
    folder = tmp_path / "not-dogs"
    not_dogs.link_into(folder)
    r = dogcat_here("evaluate", str(folder), "--not-dogs", "--json", *model_args)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["n"] == len(not_dogs.photos()) == 22
    assert result["share_not_a_dog"] >= 0.95, result["missed"]
    looks = {Path(p).name: v for p, v in result["looks_like"].items()}
    assert looks.get("chelsea.png") in CATS  # the cat is called a cat, not a Chihuahua
    assert looks.get("coffee.png") in {"espresso", "cup", "coffee mug"}


def test_dog_photos_are_not_flagged_and_keep_their_breed(dog_photos, model_args):
    r = dogcat_here("classify", "--json", *model_args, *map(str, dog_photos))
    assert r.returncode == 0, r.stderr
    results = lines(r.stdout)
    assert len(results) == len(dog_photos) == 20
    flagged = [x["path"] for x in results if x["status"] == "not_a_dog"]
    assert len(flagged) <= 1, flagged  # the goal is at most 2 % of dog photos; 20 photos allow one
    for x in results:
        assert x["status"] in ("dog", "unsure", "not_a_dog")
        assert 0.0 <= x["dog_probability"] <= 1.0
        if x["status"] != "not_a_dog":
            assert x["breed"] == x["top_k"][0]["breed"] and x["looks_like"] is None
    right = sum(x["label"] == Path(x["path"]).parent.name for x in results)
    assert right >= 17


def test_statuses_follow_the_models_thresholds(dog_photos, model, model_args):
    photos = [str(p) for p in dog_photos[:6]] + [str(p) for p in not_dogs.photos()[:6]]
    results = lines(dogcat_here("classify", "--json", *model_args, *photos).stdout)
    thresholds = Thresholds.for_model(model)
    assert 0 < thresholds.not_a_dog_below < 1 and 0 < thresholds.unsure_below < 1
    assert "decision" in model.card, "the shipped model carries the thresholds chosen for it"
    for x in results:
        assert x["status"] == readme_status(x["top_k"][0]["confidence"], x["dog_probability"], thresholds), x
        if x["status"] == "not_a_dog":
            assert x["breed"] is None and x["label"] is None and x["looks_like"]


# --- the rules, from the status table of docs/classify.md (not from dogcat.decision) ----------------------------------

def readme_status(confidence: float, dog_probability: float | None, t: Thresholds) -> str:
    """The status table of docs/classify.md, row by row: ``not_a_dog`` when the dog probability is below the
    not-a-dog threshold and the top confidence below the not-a-dog confidence threshold; otherwise ``dog`` when
    the top confidence reaches the unsure threshold, else ``unsure``. No dog probability (the check off): never
    ``not_a_dog``."""
    dog_check = dog_probability is not None
    if dog_check and dog_probability < t.not_a_dog_below and confidence < t.not_a_dog_confidence_below:
        return "not_a_dog"
    return "dog" if confidence >= t.unsure_below else "unsure"


SHIPPED = Thresholds(not_a_dog_below=0.5, unsure_below=0.78, not_a_dog_confidence_below=0.88)
DETECTOR_ALONE = Thresholds(not_a_dog_below=0.5, unsure_below=0.78)  # no guard: not_a_dog_confidence_below 1
CHECK_OFF = Thresholds(not_a_dog_below=0.0, unsure_below=0.78, not_a_dog_confidence_below=0.88)

# (top confidence, dog probability, thresholds) → status: every row of the table and each side of each boundary,
# written out by hand.
TABLE = [
    (0.95, 0.99, SHIPPED, "dog"),
    (0.78, 0.99, SHIPPED, "dog"),  # reaching the unsure threshold is confident enough
    (0.7799, 0.99, SHIPPED, "unsure"),
    (0.01, 0.99, SHIPPED, "unsure"),
    (0.30, 0.50, SHIPPED, "unsure"),  # a dog probability at the not-a-dog threshold is a dog
    (0.30, 0.4999, SHIPPED, "not_a_dog"),
    (0.8799, 0.01, SHIPPED, "not_a_dog"),  # the breed model not sure enough either
    (0.88, 0.01, SHIPPED, "dog"),  # the guard: a breed the model is this sure of is no non-dog ...
    (0.99, 0.0, SHIPPED, "dog"),
    (0.88, 0.4999, Thresholds(0.5, 0.95, 0.88), "unsure"),  # ... and is judged as any dog photo
    (0.99, 0.01, DETECTOR_ALONE, "not_a_dog"),  # without a guard the detector alone decides
    (1.0, 0.01, DETECTOR_ALONE, "dog"),
    (0.30, None, SHIPPED, "unsure"),  # no dog check ran: never not_a_dog
    (0.90, None, SHIPPED, "dog"),
    (0.30, 0.0, CHECK_OFF, "unsure"),  # --not-dog-below 0: the check is off
    (0.90, 0.0, CHECK_OFF, "dog"),
]


@pytest.mark.parametrize("confidence,dog_probability,thresholds,status", TABLE)
def test_decide_follows_readmes_status_table(confidence, dog_probability, thresholds, status):
    assert decide(confidence, dog_probability, thresholds) == status
    assert readme_status(confidence, dog_probability, thresholds) == status  # the oracle the tests above use


def test_a_record_without_a_status():
    """``error``: the file could not be read. A photo catalogued before statuses has none: judged by its best
    guess's confidence against the default unsure threshold, 0.5."""
    from dogcat.decision import status_of

    assert status_of({"error": "permission denied", "status": None}) == "error"
    assert status_of({"status": "not_a_dog", "top_k": [{"confidence": 0.99}]}) == "not_a_dog"
    assert status_of({"top_k": [{"confidence": 0.5}]}) == "dog"
    assert status_of({"top_k": [{"confidence": 0.4999}]}) == "unsure"
    assert status_of({"top_k": []}) == status_of({"top_k": [{"confidence": None}]}) == "error"


def test_readmes_status_table_names_every_rule():
    """The status table (moved from README to docs/classify.md, which README links to)."""
    page = (ROOT / "docs" / "classify.md").read_text()
    table = page[page.index("| status | when |"):page.index("| `error` |")]
    assert "not-a-dog threshold" in table and "not-a-dog confidence threshold" in table
    assert "not_a_dog_confidence_below" in page
    assert "docs/classify.md" in (ROOT / "README.md").read_text()


def test_unsure_shows_the_top_guesses_hedged(dog_photos, model_args):
    photo = str(dog_photos[0])
    x = lines(dogcat_here("classify", "--json", "--unsure-below", "1", "--not-dog-below", "0", *model_args,
                          photo).stdout)[0]
    assert x["status"] == "unsure" and x["breed"] == x["top_k"][0]["breed"] and len(x["top_k"]) == 3
    assert x["dog_probability"] is None  # --not-dog-below 0: no dog check at all
    table = dogcat_here("classify", "--unsure-below", "1", *model_args, photo)
    first, second = x["top_k"][0]["breed"], x["top_k"][1]["breed"]
    flat = " ".join(table.stdout.split())
    # A confident photo called unsure: its second breed is no contender, so "probably", not "maybe a mix".
    assert x["top_k"][1]["confidence"] < 0.25
    assert f"probably {first} (" in flat and f"then {second}" in flat and "maybe a mix" not in flat


def test_catalog_records_every_status_and_export_filters_them(tmp_path, dog_photos, model_args):
    intake = tmp_path / "intake"
    intake.mkdir()
    for p in dog_photos[:3]:
        shutil.copy(p, intake / p.name)
    for p in not_dogs.photos():
        if p.name in ("chelsea.png", "coffee.png"):
            shutil.copy(p, intake / p.name)
    (intake / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    db = tmp_path / "shelter.db"
    r = dogcat_here("catalog", str(intake), "--db", str(db), *model_args)
    assert r.returncode == 0, r.stderr
    assert "photos by status" in r.stdout and "not_a_dog 2" in r.stdout
    rows = {Path(x["path"]).name: x for x in lines(dogcat_here("export", "--db", str(db), "--format", "jsonl").stdout)}
    assert len(rows) == 6
    assert rows["broken.jpg"]["status"] == "error" and rows["broken.jpg"]["error"]
    for name in ("chelsea.png", "coffee.png"):
        assert rows[name]["status"] == "not_a_dog" and rows[name]["breed"] is None and rows[name]["looks_like"]
        assert rows[name]["top_k"], "the breed model's guesses are kept, nothing is lost"
    assert rows["chelsea.png"]["looks_like"] in CATS
    dogs = [x for x in rows.values() if x["status"] in ("dog", "unsure")]
    assert len(dogs) >= 2 and all(x["breed"] for x in dogs)
    only = lines(dogcat_here("export", "--db", str(db), "--format", "jsonl", "--status", "not_a_dog").stdout)
    assert sorted(Path(x["path"]).name for x in only) == ["chelsea.png", "coffee.png"]
    bad = dogcat_here("export", "--db", str(db), "--status", "cat")
    assert bad.returncode == 2 and "--status" in bad.stderr
    with sqlite3.connect(db) as conn:
        stored = dict(conn.execute("SELECT p.status, COUNT(*) FROM predictions p GROUP BY p.status").fetchall())
    assert stored.get("not_a_dog") == 2 and sum(stored.values()) == 5


def test_a_catalog_from_before_statuses_is_upgraded_and_filled_in(tmp_path, model_args):
    """tests/data/catalog-v1.db was written by dogcat's schema 1 (no statuses) for beagle-crop.jpg, chelsea.png
    and a broken file under /tmp/v1photos. Upgrading keeps every row; cataloguing the same photos again (by
    content, under new names) gives them statuses."""
    db = tmp_path / "old.db"
    shutil.copy(ROOT / "tests" / "data" / "catalog-v1.db", db)
    intake = tmp_path / "again"
    intake.mkdir()
    shutil.copy(ROOT / "examples" / "beagle-crop.jpg", intake / "beagle.jpg")
    shutil.copy(next(p for p in not_dogs.photos() if p.name == "chelsea.png"), intake / "cat.png")
    r = dogcat_here("catalog", str(intake), "--db", str(db), *model_args)
    assert r.returncode == 0, r.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT COUNT(*) FROM files").fetchone()[0] == 5
    rows = {x["path"]: x for x in lines(dogcat_here("export", "--db", str(db), "--format", "jsonl").stdout)}
    assert rows["/tmp/v1photos/broken.jpg"]["status"] == "error"
    assert rows["/tmp/v1photos/chelsea.png"]["status"] == rows[str(intake / "cat.png")]["status"] == "not_a_dog"
    assert rows["/tmp/v1photos/beagle-crop.jpg"]["breed"] == "Beagle"


def test_asking_for_cuda_without_it_says_so_once_and_runs_on_the_cpu(dog_photos, model_args):
    r = dogcat("classify", "--device", "cuda", "--json", *model_args, *map(str, dog_photos[:2]))
    assert r.returncode == 0
    warnings = [line for line in r.stderr.splitlines() if "CUDA" in line]
    try:
        import onnxruntime

        has_cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    except ImportError:
        has_cuda = False
    assert len(warnings) == (0 if has_cuda else 1), r.stderr
    assert len(lines(r.stdout)) == 2
