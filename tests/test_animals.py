"""Animals: real photos catalogued with the real models into real SQLite files, grouped into animals, fused into
one answer each, corrected by staff, exported per animal and imported by Animal Shelter Manager's own code."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from dogcat import animals, catalog, corrections, db, export, fusion, readmodel
from dogcat.cli import app
from dogcat.status import Judge
from tests.conftest import needs_shared

runner = CliRunner()
DATA = Path(__file__).with_name("data")
ASM3_CHECK = Path(__file__).resolve().parents[2] / "shared" / "asm3" / "import_check.py"

BEAGLE, GOLDEN, PUG = "n02088364-beagle", "n02099601-golden_retriever", "n02110958-pug"


def photos(crops: Path, label: str, n: int, start: int = 0) -> list[Path]:
    return sorted((crops / label).glob("*.jpg"))[start:start + n]


def kennel_card(path: Path):
    card = Image.new("RGB", (600, 400), "white")
    for i, line in enumerate(["KENNEL CARD", "Name: Rex", "Intake: 2024-06-01"]):
        ImageDraw.Draw(card).text((30, 30 + 40 * i), line, fill="black")
    card.save(path)


@pytest.fixture(scope="module")
def judge(model_path):
    return Judge.load(model_path)


@pytest.fixture(scope="module")
def intake(crops, tmp_path_factory) -> Path:
    """A shelter's intake folder: a folder per animal (Max: three beagle photos and his kennel card; Bella: two
    golden retrievers; Rex: only a kennel card; Ghost: only a broken file) and a pug photo lying loose."""
    root = tmp_path_factory.mktemp("animals") / "intake"
    for name, label, n in (("Max", BEAGLE, 3), ("Bella", GOLDEN, 2)):
        (root / name).mkdir(parents=True)
        for p in photos(crops, label, n):
            shutil.copy(p, root / name / p.name)
    kennel_card(root / "Max" / "card.png")
    (root / "Rex").mkdir()
    kennel_card(root / "Rex" / "card.png")
    (root / "Ghost").mkdir()
    (root / "Ghost" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a photo")  # a JPEG cut short
    shutil.copy(photos(crops, PUG, 1)[0], root / "pug.jpg")
    return root


@pytest.fixture(scope="module")
def shelter(intake, judge, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("db") / "shelter.db"
    engine = db.connect(str(path))
    try:
        catalog.run(engine, [intake], judge)
    finally:
        engine.dispose()
    return path


@pytest.fixture
def copy(shelter, tmp_path) -> Path:
    """A copy of the catalogued shelter to change."""
    out = tmp_path / "shelter.db"
    shutil.copy(shelter, out)
    return out


def answers_of(path: Path) -> dict[str, readmodel.Answer]:
    engine = db.connect(str(path), create=False)
    try:
        return {a.animal: a for a in readmodel.answers(engine, include_empty=True)}
    finally:
        engine.dispose()


def invoke(*args: str, ok: bool = True):
    result = runner.invoke(app, list(args))
    if ok:
        assert result.exit_code == 0, result.output
    return result


# --- grouping ------------------------------------------------------------------------------------------------

def test_folders_are_animals_and_their_photos_are_fused(shelter, intake):
    found = answers_of(shelter)
    assert sorted(found, key=str.lower) == ["Bella", "Ghost", "Max", "pug", "Rex"]
    max_, bella, rex, ghost, pug = (found[k] for k in ("Max", "Bella", "Rex", "Ghost", "pug"))
    assert (max_.name, len(max_.photos), bella.name, len(bella.photos)) == ("Max", 4, "Bella", 2)
    # The kennel card is in Max's folder but shows no dog: it does not vote.
    card = next(p for p in max_.photos if p["path"].endswith("card.png"))
    assert card["status"] == "not_a_dog" and max_.votes == 3 and max_.source == "model"
    assert max_.label == BEAGLE and max_.status in ("dog", "unsure")
    assert bella.label == GOLDEN and bella.status == "dog" and bella.votes == 2
    # The fused answer is the log-mean of the photos' whole distributions, as stored by the catalog.
    voters = [p for p in bella.photos]
    fused = fusion.fuse([p["probabilities"] for p in voters])
    assert len(voters[0]["probabilities"]) == 120
    assert bella.confidence == pytest.approx(max(fused), abs=1e-5)
    assert (rex.status, ghost.status, rex.label) == ("not_a_dog", "error", None)
    assert pug.label == PUG and len(pug.photos) == 1  # a photo lying in the folder named: an animal of its own


def test_rerun_is_idempotent_and_lists_animals(shelter, intake, judge, tmp_path):
    before = {k: [p["path"] for p in a.photos] for k, a in answers_of(shelter).items()}
    engine = db.connect(str(shelter))
    try:
        summary = catalog.run(engine, [intake], judge)
        again = catalog.run(engine, [intake], judge, grouping=animals.Grouping.parse("folder", roots=[intake]))
    finally:
        engine.dispose()
    assert summary.new == 0 and summary.grouped == 0 and again.grouped == 0
    assert {k: [p["path"] for p in a.photos] for k, a in answers_of(shelter).items()} == before

    listed = [json.loads(line) for line in invoke("animals", "--db", str(shelter), "--json").stdout.splitlines()]
    assert [a["animal"] for a in listed] == ["Bella", "Ghost", "Max", "pug", "Rex"]
    assert {"animal", "name", "photos", "status", "label", "breed", "confidence", "top_k", "source"} <= set(listed[0])
    table = invoke("animals", "--db", str(shelter)).stdout
    assert "Bella" in table and "Golden" in table and "Max" in table and "not_a_dog" in table


def test_pattern_grouping_and_a_pattern_that_matches_nothing(crops, judge, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for i, p in enumerate(photos(crops, BEAGLE, 2)):
        shutil.copy(p, flat / f"A123_{i + 1}.jpg")
    shutil.copy(photos(crops, GOLDEN, 1)[0], flat / "B7_1.jpg")
    shutil.copy(photos(crops, PUG, 1)[0], flat / "IMG_0001.jpg")
    shelter = tmp_path / "s.db"

    for bad, why in ((["--animals", "pattern", "--pattern", "Z(\\d+)"], "matches none of the 4 file names"),
                     (["--animals", "pattern", "--pattern", "A(("], "not a valid regular expression"),
                     (["--animals", "pattern"], "needs --pattern"), (["--animals", "litter"], "must be one of")):
        result = invoke("catalog", str(flat), "--db", str(shelter), "-q", *bad, ok=False)
        assert result.exit_code == 2 and why in " ".join(result.stderr.split()), result.output
    if shelter.exists():  # nothing was catalogued by the refused runs
        with sqlite3.connect(shelter) as con:
            assert con.execute("SELECT COUNT(*) FROM files").fetchone() == (0,)

    invoke("catalog", str(flat), "--db", str(shelter), "-q", "--animals", "pattern", "--pattern", r"^([A-Z]\d+)_")
    found = answers_of(shelter)
    assert sorted(found) == ["A123", "B7", "IMG_0001"]
    assert [Path(p["path"]).name for p in found["A123"].photos] == ["A123_1.jpg", "A123_2.jpg"]
    assert found["A123"].label == BEAGLE and found["B7"].label == GOLDEN and found["IMG_0001"].label == PUG
    # Given explicitly, another grouping regroups what catalog grouped: each photo its own animal.
    invoke("catalog", str(flat), "--db", str(shelter), "-q", "--animals", "none")
    assert sorted(answers_of(shelter)) == ["A123_1", "A123_2", "B7_1", "IMG_0001"]


def test_staff_regrouping_survives_catalog_runs(copy, intake, judge, crops):
    invoke("animals", "merge", "Max", "Bella", "--db", str(copy))
    card = str(intake / "Max" / "card.png")
    invoke("animals", "move", card, "Rex", "--db", str(copy))
    found = answers_of(copy)
    assert "Bella" not in found and len(found["Max"].photos) == 5 and len(found["Rex"].photos) == 2
    max_ = found["Max"]  # three beagle photos and two golden retrievers: every one votes, and no breed is sure
    assert (max_.votes, max_.status, [g["label"] for g in max_.top_k[:2]]) == (5, "unsure", [BEAGLE, GOLDEN])

    extra = intake / "Bella" / "late.jpg"  # a photo added to Bella's folder later goes to Max, she was merged
    shutil.copy(photos(crops, GOLDEN, 1, start=2)[0], extra)
    try:
        engine = db.connect(str(copy))
        try:
            catalog.run(engine, [intake], judge, grouping=animals.Grouping.parse("folder", roots=[intake]))
        finally:
            engine.dispose()
        found = answers_of(copy)
        assert str(extra) in [p["path"] for p in found["Max"].photos] and "Bella" not in found
        assert card in [p["path"] for p in found["Rex"].photos]  # staff placed it: no run moves it back
    finally:
        extra.unlink()

    pug = str(intake / "pug.jpg")
    invoke("animals", "move", pug, "P-1", "--new", "Pip", "--db", str(copy))
    found = answers_of(copy)
    assert (found["P-1"].name, [p["path"] for p in found["P-1"].photos]) == ("Pip", [pug])
    assert "pug" not in found  # its animal, emptied, is gone
    assert invoke("animals", "move", pug, "Max", "--new", "x", "--db", str(copy), ok=False).exit_code == 1

    for args, why in ((["merge", "Max", "Nobody"], "Nobody: no such animal"),
                      (["merge", "Max", "Bella"], "Bella: was merged into Max"),
                      (["move", "/nowhere.jpg", "Max"], "no such photo in the catalog"),
                      (["move", card, "Nobody"], "Nobody: no such animal")):
        with sqlite3.connect(copy) as con:
            before = con.execute("SELECT * FROM animal_files ORDER BY path").fetchall()
        result = invoke("animals", *args, "--db", str(copy), ok=False)
        assert result.exit_code == 1 and why in " ".join(result.stderr.split()), result.output
        with sqlite3.connect(copy) as con:
            assert con.execute("SELECT * FROM animal_files ORDER BY path").fetchall() == before


# --- corrections ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,label", [
    ("beagle", BEAGLE), ("Beagle", BEAGLE), (BEAGLE, BEAGLE), ("GERMAN SHEPHERD DOG", "n02106662-German_shepherd"),
    ("german shepherd", "n02106662-German_shepherd"), ("Saint Bernard St. Bernard", "n02109525-Saint_Bernard"),
    ("shih tzu", "n02086240-Shih-Tzu"), ("Shih-Tzu", "n02086240-Shih-Tzu"), ("Yorkshire Terrier Yorkie",
                                                                           "n02094433-Yorkshire_terrier")])
def test_breed_names_as_staff_write_them(name, label):
    assert corrections.resolve_breed(name) == label


def test_unknown_and_ambiguous_breed_names():
    with pytest.raises(corrections.CorrectionError, match="unknown breed; did you mean Beagle"):
        corrections.resolve_breed("beagel")
    with pytest.raises(corrections.CorrectionError, match="several breeds.*Miniature Poodle"):
        corrections.resolve_breed("Poodle")
    assert corrections.resolve_breed("labrador") == "n02099712-Labrador_retriever"  # the start of one name
    with pytest.raises(corrections.CorrectionError, match="unknown breed"):
        corrections.resolve_breed("german")  # the start of several


def test_corrections_win_everywhere_and_survive_a_new_model(copy, intake, judge, make_model):
    shelter = str(copy)
    result = invoke("correct", "Max", "--breed", "beagle", "--breed2", "Labrador Retriever", "--by", "alice",
                    "--db", shelter)
    assert "animal Max: corrected" in result.stdout
    pug = str(intake / "pug.jpg")
    invoke("correct", pug, "--breed", "french bulldog", "--db", shelter)
    golden = answers_of(copy)["Bella"].photos[0]
    invoke("correct", golden["sha256"], "--not-a-dog", "--db", shelter)
    bad = invoke("correct", "Max", "--breed", "beagel", "--db", shelter, ok=False)
    assert bad.exit_code == 1 and "did you mean Beagle" in bad.stderr
    for args in (["Max"], ["Max", "--breed", "pug", "--undo"], ["Max", "--breed2", "pug"]):
        assert invoke("correct", *args, "--db", shelter, ok=False).exit_code == 2
    assert invoke("correct", "Nobody", "--not-a-dog", "--db", shelter, ok=False).exit_code == 1

    def check(bella_label: str):
        found = answers_of(copy)
        max_ = found["Max"]
        assert (max_.source, max_.status, max_.label, max_.mix) == ("correction", "dog", BEAGLE,
                                                                    ("Beagle", "Labrador Retriever"))
        assert max_.correction.by == "alice" and max_.to_dict()["corrected_by"] == "alice"
        assert found["pug"].source == "correction" and found["pug"].breed == "French Bulldog"
        bella = found["Bella"]  # one photo corrected as no dog: the other still votes
        assert bella.source == "model" and bella.votes == 1 and bella.label == bella_label
        engine = db.connect(shelter, create=False)
        try:
            by_path = {r["path"]: r for r in readmodel.records(engine)}
        finally:
            engine.dispose()
        assert by_path[pug]["source"] == "correction" and by_path[pug]["breed"] == "French Bulldog"
        assert by_path[golden["path"]]["status"] == "not_a_dog" and by_path[golden["path"]]["source"] == "correction"
        assert all(r["source"] == "correction" for p, r in by_path.items() if "/Max/" in p and r["status"] == "dog")

    check(bella_label=GOLDEN)
    evaluated = json.loads(invoke("evaluate", "--db", shelter, "--json").stdout)
    assert evaluated["animals"]["top1"] == 1.0  # the model said beagle (a beagle / labrador mix for staff)

    # A new model's run adds its predictions; the staff's word stays. This model answers otherwise: beagle and
    # golden retriever swapped in its last layer, so it calls Max a golden retriever and Bella a beagle.
    new_model = make_model("retrained@000000000001", swap=(BEAGLE, GOLDEN))
    invoke("catalog", str(intake), "--db", shelter, "--model", str(new_model), "-q")
    swapped = {BEAGLE: GOLDEN, GOLDEN: BEAGLE}
    with sqlite3.connect(copy) as con:
        said = con.execute("SELECT f.path, p.model_id, p.label FROM predictions p JOIN files f ON f.sha256 = "
                           "p.sha256 WHERE f.path LIKE '%.jpg'").fetchall()
    old = {path: label for path, model_id, label in said if model_id == judge.model.id}
    new = {path: label for path, model_id, label in said if model_id == "retrained@000000000001"}
    assert len(said) == 2 * len(old) and set(new) == set(old)
    assert new == {path: swapped.get(label, label) for path, label in old.items()}
    assert [new[p] for p in sorted(new) if "/Max/" in p] == [GOLDEN] * 3  # the model's answer changed ...
    check(bella_label=BEAGLE)  # ... and every correction held

    evaluated = json.loads(invoke("evaluate", "--db", shelter, "--json").stdout)
    assert evaluated["corrections"] == 3 and evaluated["animals"]["n"] == 1 and evaluated["photos"]["n"] == 1
    assert evaluated["animals"]["top1"] == 0.0  # the new model says golden retriever; staff said beagle
    assert evaluated["photos"]["top1"] == 0.0 and evaluated["not_a_dog"] == {"n": 1, "flagged": 0}
    text = " ".join(invoke("evaluate", "--db", shelter).stdout.split())
    assert "3 staff corrections in force" in text and "not a dog: 1 corrected, the model had flagged 0" in text

    invoke("correct", "Max", "--undo", "--db", shelter)
    assert answers_of(copy)["Max"].source == "model"
    with sqlite3.connect(copy) as con:  # kept, marked undone: nothing is deleted
        assert con.execute("SELECT corrected_by, undone_at IS NOT NULL FROM corrections WHERE target = 'Max'"
                           ).fetchall() == [("alice", 1)]
    assert invoke("correct", "Max", "--undo", "--db", shelter, ok=False).exit_code == 1


def test_corrections_from_a_spreadsheet(copy, tmp_path):
    shelter = str(copy)
    exported = invoke("export", "--db", shelter, "--per", "animal", "--format", "csv").stdout
    table = list(csv.DictReader(io.StringIO(exported)))
    assert list(table[0])[-1] == "corrected_breed" and all(r["corrected_breed"] == "" for r in table)
    filled = tmp_path / "filled.csv"

    def write(values: dict[str, str]):
        with open(filled, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(table[0]))
            w.writeheader()
            for r in table:
                w.writerow({**r, "corrected_breed": values.get(r["animal"], "")})

    write({"Max": "Beagle / Basset", "Bella": "golden retriver", "pug": "Pug"})
    result = invoke("correct", "--from", str(filled), "--db", shelter, ok=False)
    assert result.exit_code == 1 and f"{filled}:" in result.stderr and "golden retriver" in result.stderr
    with sqlite3.connect(copy) as con:
        assert con.execute("SELECT COUNT(*) FROM corrections").fetchone() == (0,)  # nothing half-applied

    write({"Max": "Beagle / Basset", "Bella": "golden retriever", "Rex": "not a dog"})
    out = " ".join(invoke("correct", "--from", str(filled), "--db", shelter, "--by", "bob").stdout.split())
    assert "3 corrected, 0 unchanged, 2 rows left blank" in out
    again = " ".join(invoke("correct", "--from", str(filled), "--db", shelter).stdout.split())
    assert "0 corrected, 3 unchanged" in again
    found = answers_of(copy)
    assert found["Max"].mix == ("Beagle", "Basset") and found["Max"].correction.by == "bob"

    photos_csv = tmp_path / "photos.csv"  # the per-photo export works the same way, row by row
    rows = list(csv.DictReader(io.StringIO(invoke("export", "--db", shelter).stdout)))
    with open(photos_csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({**r, "corrected_breed": "pug" if r["path"].endswith("pug.jpg") else ""})
    assert "1 corrected" in invoke("correct", "--from", str(photos_csv), "--db", shelter).stdout


# --- exports -------------------------------------------------------------------------------------------------

def test_per_animal_jsonl_is_the_contract(shelter):
    lines = invoke("export", "--db", str(shelter), "--per", "animal", "--format", "jsonl").stdout.splitlines()
    records = {r["animal"]: r for r in map(json.loads, lines)}
    assert sorted(records, key=str.lower) == ["Bella", "Ghost", "Max", "pug", "Rex"]
    for r in records.values():
        assert list(r) == export.ANIMAL_FIELDS
        assert r["source"] in ("model", "correction") and isinstance(r["photos"], list)
    assert records["Bella"]["breed"] == "Golden Retriever" and len(records["Bella"]["photos"]) == 2
    assert records["Rex"]["status"] == "not_a_dog" and records["Rex"]["breed"] is None
    per_photo = [json.loads(line) for line in invoke("export", "--db", str(shelter), "--format", "jsonl"
                                                     ).stdout.splitlines()]
    assert {r["animal"] for r in per_photo} == set(records)
    bad = invoke("export", "--db", str(shelter), "--per", "litter", ok=False)
    assert bad.exit_code == 2


def asm3_import(csv_file: Path, again: bool = True) -> dict:
    """ASM3's own CSV import (../shared/asm3/import_check.py) on a fresh ASM3 database."""
    needs_shared(ASM3_CHECK, "ASM3's import check")
    done = subprocess.run([sys.executable, str(ASM3_CHECK), str(csv_file), *(["--again"] if again else [])],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_asm3_imports_one_animal_per_animal_with_its_photos(copy, tmp_path):
    shelter = str(copy)
    missing = invoke("export", "--db", shelter, "--format", "asm3", ok=False)
    assert missing.exit_code == 2 and "--age" in missing.stderr and "--dob" in missing.stderr
    for bad in (["--age", "0"], ["--age", "old"], ["--dob", "2030-01-01"], ["--dob", "1/2/2020"],
                ["--age", "2", "--dob", "2020-01-01"]):
        assert invoke("export", "--db", shelter, "--format", "asm3", *bad, ok=False).exit_code == 2
    invoke("correct", "Bella", "--breed", "golden retriever", "--breed2", "labrador", "--by", "carol", "--db", shelter)

    out = tmp_path / "asm3.csv"
    said = invoke("export", "--db", shelter, "--format", "asm3", "--age", "2", "-o", str(out)).stderr
    rows = list(csv.DictReader(open(out, newline="", encoding="utf-8")))
    assert all(len(r["ANIMALIMAGE"]) <= 131_072 for r in rows)
    codes = [r["ANIMALCODE"] for r in rows]
    assert codes == ["Bella", "Bella", "Max", "Max", "Max"]  # Rex (no dog) and Ghost (unreadable) left out ...
    assert "pug.jpg: no animal: put it in a folder" in " ".join(said.split())  # ... and the loose pug (issue 29)
    first = {r["ANIMALCODE"]: r for r in reversed(rows)}
    assert first["Max"]["ANIMALAGE"] == "2" and first["Max"]["ANIMALBREED1"] == "Beagle"
    assert "staff said Golden Retriever / Labrador Retriever (carol" in first["Bella"]["LOGCOMMENTS"]
    extra = [r for r in rows if r["ANIMALTYPE"] == ""]
    assert len(extra) == 3 and all(r["ANIMALNAME"] and r["ANIMALIMAGE"].startswith("data:image/jpeg")
                                   and not r["LOGCOMMENTS"] for r in extra)

    imported = asm3_import(out)
    assert imported["success"] == len(rows) and imported["errors"] == []
    assert imported["animals"] == imported["animals_after_again"] == 2  # ANIMALCODE: a re-import updates
    made = {a["code"]: a for a in imported["per_animal"]}
    assert made["Max"]["media"] == 3 and made["Bella"]["media"] == 2
    assert all(a["species"] == "Dog" and a["type"] == "D (Dog)" for a in made.values())
    assert (made["Bella"]["breed1"], made["Bella"]["breed2"], made["Bella"]["crossbreed"]) == (
        "Golden Retriever", "Labrador Retriever", 1)

    # The file was recorded: the next export has nothing new, and after `asm3 forget` the same content again.
    again = invoke("export", "--db", shelter, "--format", "asm3", "--age", "2")
    assert list(csv.reader(again.stdout.splitlines()))[1:] == [] and "nothing new" in again.stderr
    invoke("asm3", "forget", "1", "--db", shelter)
    rewritten = list(csv.DictReader(invoke("export", "--db", shelter, "--format", "asm3", "--age", "2")
                                    .stdout.splitlines()))
    assert [r["ANIMALCODE"] for r in rewritten] == codes
    assert invoke("asm3", "forget", "9", "--db", shelter, ok=False).exit_code == 1


# --- the schema 2 → 3 upgrade ---------------------------------------------------------------------------------

def test_a_schema_2_catalog_is_upgraded_keeping_every_row(tmp_path, intake, judge):
    """tests/data/catalog-v2.db: made by dogcat 0.1.0 at schema 2 (before animals) from real photos."""
    old = tmp_path / "v2.db"
    shutil.copy(DATA / "catalog-v2.db", old)
    with sqlite3.connect(old) as con:
        assert con.execute("SELECT MAX(version) FROM schema_version").fetchone() == (2,)
        before = {t: con.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
                  for t in ("files", "photos", "models")}
        predictions = con.execute("SELECT sha256, model_id, label, status FROM predictions ORDER BY 1").fetchall()
    engine = db.connect(str(old))  # upgrades
    try:
        found = {a.animal: a for a in readmodel.answers(engine)}
    finally:
        engine.dispose()
    with sqlite3.connect(old) as con:
        assert con.execute("SELECT MAX(version) FROM schema_version").fetchone() == (db.SCHEMA_VERSION,)
        assert con.execute("SELECT * FROM files ORDER BY 1, 2").fetchall() == before["files"]
        assert con.execute("SELECT * FROM photos ORDER BY 1, 2").fetchall() == before["photos"]
        assert [r[:6] for r in con.execute("SELECT * FROM models ORDER BY 1, 2")] == [r[:6] for r in before["models"]]
        assert con.execute("SELECT sha256, model_id, label, status FROM predictions ORDER BY 1"
                           ).fetchall() == predictions
        grouped = con.execute("SELECT COUNT(*), COUNT(DISTINCT animal) FROM animal_files").fetchone()
    distinct = {sha for _, sha, *_ in before["files"]}
    assert grouped == (len(before["files"]), len(distinct))  # every file in an animal, one per distinct photo
    # Without stored distributions the answer is fused from each photo's top-k: still the photo's answer.
    for a in found.values():
        if a.status in ("dog", "unsure"):
            assert a.label == a.photos[0]["top_k"][0]["label"]
    with sqlite3.connect(old) as con:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1")]
        upgraded = {t: con.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in tables}
    db.connect(str(old)).dispose()  # a second open: nothing to upgrade, nothing changes
    with sqlite3.connect(old) as con:
        assert {t: con.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in tables} == upgraded
        assert [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1")] == tables


# --- fusion --------------------------------------------------------------------------------------------------

def test_fusion_rules():
    a, b = [0.6, 0.3, 0.1], [0.2, 0.7, 0.1]
    assert fusion.fuse([a, b], "mean") == pytest.approx([0.4, 0.5, 0.1])
    assert fusion.RULE == "log-mean" and fusion.fuse([a, b]) == logmean_of(a, b)
    logmean = fusion.fuse([a, b], "log-mean")
    assert sum(logmean) == pytest.approx(1) and logmean.index(max(logmean)) == 1
    assert fusion.fuse([[0.9, 0.0, 0.1], [0.9, 0.1, 0.0]], "log-mean")[0] > 0.98  # a zero vetoes a breed
    assert fusion.fuse([]) == []
    with pytest.raises(ValueError, match="must cover the same labels"):
        fusion.fuse([a, [1.0]])
    with pytest.raises(ValueError, match="unknown fusion rule 'median'; known: .*log-mean"):
        fusion.fuse([a], "median")


def logmean_of(*dists):
    import math

    geo = [math.exp(sum(math.log(d[i]) for d in dists) / len(dists)) for i in range(len(dists[0]))]
    return pytest.approx([g / sum(geo) for g in geo])


def test_a_schema_1_catalog_has_animals_before_any_new_run(tmp_path):
    """tests/data/catalog-v1.db (schema 1: no statuses) upgraded straight to 3: its photos are judged by their
    best guess's confidence (dogcat.decision.status_of), so they vote instead of counting as errors."""
    old = tmp_path / "v1.db"
    shutil.copy(DATA / "catalog-v1.db", old)
    engine = db.connect(str(old))
    try:
        found = {Path(a.photos[0]["path"]).name: a for a in readmodel.answers(engine)}
    finally:
        engine.dispose()
    assert found["beagle-crop.jpg"].label == BEAGLE and found["beagle-crop.jpg"].status in ("dog", "unsure")
    assert found["beagle-crop.jpg"].votes == 1 and found["broken.jpg"].status == "error"


# --- lists and one animal in full (dogcat animals, animals show) ---------------------------------------------

def test_the_list_for_scripts_and_spreadsheets(copy, intake):
    shelter = str(copy)
    long_code = "A" + "1234567890" * 3 + "123456789"  # as long as a code may be (40) and, with the name,
    # wider than any default width: a pipe gets both whole all the same
    long_name = "Sir Reginald Fluffington " * 4
    invoke("animals", "move", str(intake / "pug.jpg"), long_code, "--new", long_name.strip(), "--db", shelter)
    table = invoke("animals", "--db", shelter).stdout
    assert long_code in table and long_name.strip() in table
    row = next(line for line in table.splitlines() if long_code in line)
    assert long_name.strip() in row and "Pug" in row and len(row) > 150  # one line: nothing folded

    found = answers_of(copy)
    for status in ("dog", "unsure", "not_a_dog", "error"):
        listed = [json.loads(line)["animal"] for line in
                  invoke("animals", "--db", shelter, "--status", status, "--json").stdout.splitlines()]
        assert listed == [code for code, a in found.items() if a.status == status], status
    assert [json.loads(line)["animal"] for line in invoke("animals", "--db", shelter, "--status", "not_a_dog",
                                                          "--json").stdout.splitlines()] == ["Rex"]
    for command in (["animals"], ["animals", "show"]):
        assert "Exit codes" in invoke(*command, "--help").stdout
    bad = invoke("animals", "--db", shelter, "--status", "cat", ok=False)
    assert bad.exit_code == 2 and "--status" in bad.output
    assert invoke("animals", "--db", shelter, "--json", "--csv", ok=False).exit_code == 2

    listed = invoke("animals", "--db", shelter, "--csv").stdout
    exported = invoke("export", "--db", shelter, "--per", "animal", "--format", "csv").stdout
    assert listed == exported  # the same columns, rows and spreadsheet-safe cells
    assert list(csv.reader(io.StringIO(listed)))[0] == export.ANIMAL_FIELDS + ["corrected_breed"]
    unsure = invoke("animals", "--db", shelter, "--csv", "--status", "not_a_dog").stdout
    assert [r["animal"] for r in csv.DictReader(io.StringIO(unsure))] == ["Rex"]


def test_a_formula_in_a_name_is_defused_in_the_csv_list(copy, intake):
    shelter = str(copy)
    invoke("animals", "move", str(intake / "pug.jpg"), "P-9", "--new", "=HYPERLINK(\"x\")", "--db", shelter)
    rows = {r["animal"]: r for r in csv.DictReader(io.StringIO(invoke("animals", "--db", shelter, "--csv").stdout))}
    assert rows["P-9"]["name"] == "'=HYPERLINK(\"x\")"


def add_asm3_file(path: Path, file_path: str, written_at: str, items: list[tuple[str, str, str]],
                  forgotten_at: str | None = None) -> int:
    """What the ASM3 export records of a file it wrote (asm3_files, asm3_sent), written here directly."""
    with sqlite3.connect(path) as con:
        cursor = con.execute("INSERT INTO asm3_files (path, written_at, written_by, forgotten_at) VALUES (?, ?, ?, ?)",
                             (file_path, written_at, "dora", forgotten_at))
        file_id = cursor.lastrowid
        con.executemany("INSERT INTO asm3_sent (file, animal, kind, item) VALUES (?, ?, ?, ?)",
                        [(file_id, animal, kind, item) for animal, kind, item in items])
    assert file_id is not None
    return file_id


def test_show_one_animal_in_full(copy, intake):
    shelter = str(copy)
    invoke("correct", "Max", "--breed", "pug", "--by", "alice", "--db", shelter)
    invoke("correct", "Max", "--undo", "--by", "bob", "--db", shelter)
    invoke("correct", "Max", "--breed", "beagle", "--breed2", "labrador", "--by", "carol", "--db", shelter)
    max_photos = [p for p in answers_of(copy)["Max"].photos if p["path"].endswith(".jpg")]
    invoke("correct", max_photos[0]["sha256"], "--not-a-dog", "--by", "dan", "--db", shelter)
    with sqlite3.connect(copy) as con:
        con.execute("UPDATE animals SET dob = '2021-03-04', sex = 'Male' WHERE code = 'Max'")
    first = add_asm3_file(copy, "/exports/asm3-june.csv", "2024-06-02T10:00:00+00:00",
                          [("Max", "animal", "Beagle / Labrador Retriever"), *(("Max", "photo", p["sha256"])
                                                                               for p in max_photos[1:])])
    add_asm3_file(copy, "/exports/asm3-try.csv", "2024-06-01T09:00:00+00:00", [("Max", "animal", "Pug / Pug")],
                  forgotten_at="2024-06-01T09:05:00+00:00")

    shown = invoke("animals", "show", "max", "--db", shelter).stdout  # any case
    lines = shown.splitlines()
    assert lines[0] == "Max" and "born 2021-03-04, sex Male" in lines[1]
    assert "answer: Beagle / Labrador Retriever (staff), by staff (carol" in shown
    for p in answers_of(copy)["Max"].photos:
        assert p["path"] in shown
    card = next(line for line in lines if line.strip().startswith(str(intake / "Max" / "card.png")))
    assert card.endswith(": not a dog (looks like " + card.split("(looks like ")[1])
    # The photo staff called no dog still shows what the model said of it: a breed.
    corrected_photo = next(line for line in lines if line.strip().startswith(max_photos[0]["path"] + ":"))
    assert "%" in corrected_photo and "not a dog" not in corrected_photo
    history = lines[lines.index("corrections (3), oldest first:") + 1:][:3]  # an undo marks a row, adds none
    assert "animal Max: Pug (by alice, staff; undone by bob" in history[0] and "[in force]" not in history[0]
    assert "animal Max: Beagle / Labrador Retriever (by carol, staff)" in history[1] and "[in force]" in history[1]
    assert f"photo {max_photos[0]['path']}: not a dog (by dan, staff)" in history[2] and "[in force]" in history[2]
    asm3_lines = lines[lines.index("ASM3:") + 1:]
    assert asm3_lines[0].strip().startswith("2024-06-01T09:00:00+00:00  file 2 /exports/asm3-try.csv by dora")
    assert "forgotten 2024-06-01T09:05:00+00:00" in asm3_lines[0]
    assert asm3_lines[1].strip() == (f"2024-06-02T10:00:00+00:00  file {first} /exports/asm3-june.csv by dora: "
                                     "animal Beagle / Labrador Retriever; 2 photos")

    record = json.loads(invoke("animals", "show", "Max", "--db", shelter, "--json").stdout)
    assert set(export.ANIMAL_FIELDS) <= set(record) and record["source"] == "correction"
    assert (record["dob"], record["sex"], record["age"], record["never_sent"]) == ("2021-03-04", "Male", None, False)
    photos_by_path = {p["path"]: p for p in record["photos"]}
    assert photos_by_path[max_photos[0]["path"]]["status"] in ("dog", "unsure")  # the model's own, uncorrected
    assert photos_by_path[max_photos[0]["path"]]["breed"] == "Beagle"
    assert [(c["by"], c["undone_by"], c["in_force"]) for c in record["corrections"]] == [
        ("alice", "bob", False), ("carol", None, True), ("dan", None, True)]
    assert [f["path"] for f in record["asm3"]] == ["/exports/asm3-try.csv", "/exports/asm3-june.csv"]
    assert {"kind": "animal", "item": "Beagle / Labrador Retriever"} in record["asm3"][1]["items"]

    bella = invoke("animals", "show", "Bella", "--db", shelter).stdout
    assert bella.splitlines()[-1] == "ASM3: never sent" and "corrections: none" in bella
    assert "answer: Golden Retriever" in bella and "by model, 2 photos" in bella
    ghost = invoke("animals", "show", "Ghost", "--db", shelter).stdout
    assert f"{intake / 'Ghost' / 'broken.jpg'}: could not be read: " in ghost and "answer: no readable photo" in ghost
    missing = invoke("animals", "show", "Nobody", "--db", shelter, ok=False)
    assert missing.exit_code == 1 and missing.stderr.strip() == "dogcat: error: Nobody: no such animal"

    invoke("animals", "merge", "Max", "Bella", "--db", shelter)
    merged = invoke("animals", "show", "Bella", "--db", shelter).stdout
    assert merged.splitlines()[:2] == ["Max", "  (Bella was merged into Max)"]
