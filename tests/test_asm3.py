"""``dogcat export --format asm3``: a real catalog (real photos, the real model, a real SQLite file) → a CSV,
checked against ASM3's published column list and default breed list (tests/data/asm3/, copied from ASM3's
source with the commit named in each file) and imported by Animal Shelter Manager 3's own code
(../shared/asm3/import_check.py: its ``csvimport`` into a fresh ASM3 database), whose database is then read.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import html
import io
import json
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from dogcat import animals, breeds, catalog, db, naming, readmodel
from dogcat.asm3 import importfile as asm3
from dogcat.asm3 import plan as asm3_planning
from dogcat.cli import app
from dogcat.errors import UsageError
from dogcat.model import BreedModel
from dogcat.status import Judge
from tests.conftest import SHARED, needs_shared

ROOT = Path(__file__).resolve().parents[1]
ASM3_DATA = Path(__file__).with_name("data") / "asm3"
ASM3_CHECK = SHARED / "asm3" / "import_check.py"
runner = CliRunner()

CONFIDENT = ["n02088364-beagle", "n02099601-golden_retriever", "n02110958-pug", "n02109525-Saint_Bernard"]
# A real photo the bundled model is torn on: Eskimo dog 54 %, Siberian husky 33 %.
TORN = "n02109961-Eskimo_dog/n02109961_12118.jpg"
ODD_NAME = 'Rex, "the good boy"\nline two.jpg'


def valid_fields() -> list[str]:
    lines = (ASM3_DATA / "valid_fields.txt").read_text().splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def dog_breeds() -> dict[str, int]:
    """ASM3's default dog breeds: name as its importer compares it (lower case) → breed ID."""
    out = {}
    for line in (ASM3_DATA / "dog_breeds.tsv").read_text().splitlines():
        if line and not line.startswith("#"):
            breed_id, name = line.split("\t")
            out[name.lower()] = int(breed_id)
    return out


def csv_rows(data: bytes) -> list[dict]:
    """The file as a standard CSV reader reads it."""
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))


def asm3_import(data: bytes, folder: Path) -> dict:
    """ASM3's own import of ``data`` (import_check.py, ASM3's csvimport on a fresh ASM3 database): its JSON, with
    ``per_animal`` keyed by ANIMALCODE, and ``stored``: what ASM3's database then holds per ANIMALCODE (name,
    comments, date of birth, and each attached photo's bytes, from ASM3's media and dbfs tables)."""
    check = needs_shared(ASM3_CHECK, "ASM3's import check")
    source, kept = folder / "import.csv", folder / "asm3.db"
    source.write_bytes(data)
    done = subprocess.run([sys.executable, str(check), str(source), "--keep", str(kept)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    result["per_animal"] = {a["code"]: a for a in result["per_animal"]}
    with sqlite3.connect(kept) as con:
        result["stored"] = {code: {"name": name, "comments": comments, "dob": dob, "sex": sex, "photos": [],
                                   "logs": []} for code, name, comments, dob, sex in con.execute(
            "SELECT ShelterCode, AnimalName, AnimalComments, DateOfBirth, Sex FROM animal ORDER BY ID")}
        for code, logged, kind in con.execute("SELECT a.ShelterCode, l.Comments, t.LogTypeName FROM log l JOIN "
                                              "animal a ON a.ID = l.LinkID LEFT JOIN logtype t ON t.ID = "
                                              "l.LogTypeID WHERE l.LinkType = 0 AND l.Comments LIKE 'dogcat:%' "
                                              "ORDER BY l.ID"):
            result["stored"][code]["logs"].append((kind, html.unescape(logged.replace("`", "'"))))
        for code, content in con.execute("SELECT a.ShelterCode, d.Content FROM media m JOIN animal a ON a.ID = "
                                         "m.LinkID JOIN dbfs d ON d.ID = m.DBFSID WHERE m.LinkTypeID = 0 "
                                         "ORDER BY m.ID"):
            result["stored"][code]["photos"].append(base64.b64decode(content))
    return result


# --- the breed table ----------------------------------------------------------------------------------------

def test_every_class_of_the_model_has_an_asm3_breed(model_path):
    model = BreedModel(model_path)
    asm3_names = dog_breeds()
    assert len(asm3_names) == 221 and asm3_names["mixed breed"] == 442
    assert set(model.labels) <= set(breeds.ASM3_BREEDS) and len(breeds.ASM3_BREEDS) == 120
    for label, name in breeds.ASM3_BREEDS.items():
        assert name.lower() in asm3_names, f"{label} → {name!r}: not a breed in ASM3's list"
    assert breeds.asm3_name("n02099601-golden_retriever") == "Golden Retriever"
    assert breeds.asm3_name("n02099601-Golden-Retriever") == "Golden Retriever"  # known by its WordNet id
    assert breeds.asm3_name("n09999999-wolf") == breeds.asm3_name(None) == "Mixed Breed"


def test_the_documented_table_is_the_mapping():
    """docs/asm3.md lists all 120 classes with their ASM3 breed: the table must be the code's."""
    doc = (ROOT / "docs" / "asm3.md").read_text()
    rows = re.findall(r"^\| `(n\d{8}-[^`]+)` \| [^|]+ \| ([^|]+?) \|", doc, flags=re.MULTILINE)
    assert dict(rows) == breeds.ASM3_BREEDS and len(rows) == 120
    assert "csvimport.py" in doc and "dbupdate.py" in doc  # where the names came from


# --- a real catalog, exported and imported ------------------------------------------------------------------

@pytest.fixture(scope="module")
def shelter(crops, model_path, tmp_path_factory) -> tuple[Path, Path]:
    """Four clear photos, one the model is torn on, a second name for one photo, an oddly named one, a broken
    file: catalogued with the real models (breed model and dog detector) into a real SQLite file, each photo an
    animal of its own on purpose (--animals none: loose photos in folder mode are no ASM3 animal)."""
    intake = tmp_path_factory.mktemp("asm3") / "intake"
    intake.mkdir()
    for folder in CONFIDENT:
        photo = sorted((crops / folder).glob("*.jpg"))[0]
        shutil.copy(photo, intake / f"{folder.split('-', 1)[1]}.jpg")
    shutil.copy(crops / TORN, intake / "torn.jpg")
    shutil.copy(intake / "pug.jpg", intake / "pug_2.jpg")
    shutil.copy(sorted((crops / "n02113799-standard_poodle").glob("*.jpg"))[0], intake / ODD_NAME)
    (intake / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a photo")  # a JPEG cut short
    path = intake.parent / "shelter.db"
    engine = db.connect(str(path))
    try:
        catalog.run(engine, [intake], Judge.load(model_path), grouping=animals.Grouping.parse("none"))
    finally:
        engine.dispose()
    return path, intake


def records(shelter_db: Path) -> list[dict]:
    engine = db.connect(str(shelter_db), create=False)
    try:
        return list(readmodel.records(engine))
    finally:
        engine.dispose()


def answers(shelter_db: Path) -> dict[str, object]:
    from dogcat.readmodel import answers as all_answers

    engine = db.connect(str(shelter_db), create=False)
    try:
        return {a.animal: a for a in all_answers(engine)}
    finally:
        engine.dispose()


def export_asm3(shelter_db: Path, *args: str) -> bytes:
    result = runner.invoke(app, ["export", "--db", str(shelter_db), "--format", "asm3", *args])
    assert result.exit_code == 0, result.output
    return result.stdout_bytes


@pytest.fixture
def fresh(shelter, tmp_path):
    """The module's catalog, copied: an ASM3 export records what it sent, and each test starts from nothing sent."""
    shelter_db, intake = shelter
    copy = tmp_path / "fresh.db"
    shutil.copy(shelter_db, copy)
    return copy, intake


def test_export_writes_asm3s_columns(fresh, tmp_path):
    shelter_db, intake = fresh
    out = tmp_path / "asm3.csv"
    result = runner.invoke(app, ["export", "--db", str(shelter_db), "--format", "asm3", "--all", "--age", "3",
                                 "-o", str(out)])
    assert result.exit_code == 0 and result.stdout == "", result.output
    rows = csv_rows(out.read_bytes())
    header = list(rows[0])
    assert header == asm3.COLUMNS and set(header) <= set(valid_fields())
    # Never a field ASM3 would overwrite staff's with on an animal it has: no comments, no description.
    assert not {"ANIMALCOMMENTS", "ANIMALDESCRIPTION", "ANIMALHIDDENDETAILS"} & set(header)

    # The photos lie loose in the intake folder: each is an animal of its own, and the pug's two names (one
    # photo) are one animal with one picture; the broken file makes none.
    animals = {r["ANIMALCODE"]: r for r in rows}
    assert len(animals) == len(rows)  # no extra photo rows here
    found = answers(shelter_db)
    assert found["broken"].status == "error" and found["torn"].status == "unsure"
    assert sorted(animals) == sorted(code for code, a in found.items() if a.status in ("dog", "unsure"))
    assert len(animals) >= 5 and "pug_2" not in animals
    assert (len(found["pug"].photos), found["pug"].votes) == (2, 1)  # one photo under two names: one vote
    asm3_breeds = dog_breeds()
    today = dt.date.today().isoformat()
    for code, row in animals.items():
        answer = found[code]
        record, logged = answer.photos[0], row["LOGCOMMENTS"]
        assert row["ANIMALAGE"] == "3" and row["ANIMALNAME"] == naming.placeholder_name(record["path"])
        assert (row["ANIMALSPECIES"], row["ANIMALTYPE"]) == ("Dog", "D (Dog)")
        assert (row["LOGDATE"], row["LOGTYPE"]) == (today, "History")  # dogcat's answer, as a dated log entry
        best, second = answer.top_k[0], answer.top_k[1]
        assert row["ANIMALBREED1"] == breeds.asm3_name(best["label"]) and row["ANIMALBREED1"].lower() in asm3_breeds
        assert f"{round(best['confidence'] * 100)}%" in logged and best["breed"] in logged
        assert f"from {answer.votes} photo" in logged and record["path"] not in logged
        if not answer.mix:  # purebred (or unsure with no second breed to speak of): the same breed twice, so
            assert row["ANIMALBREED2"] == row["ANIMALBREED1"] and "mix?" not in logged, row  # no crossbreed
            assert ("dogcat: probably " in logged) == (answer.status == "unsure"), logged
        else:  # unsure, the second breed a real contender: a possible mix of the two best guesses
            assert row["ANIMALBREED2"] == breeds.asm3_name(second["label"]) and "mix?" in logged
        assert row["ANIMALIMAGE"].startswith("data:image/jpeg;base64,")
        picture = Image.open(io.BytesIO(base64.b64decode(row["ANIMALIMAGE"].split(",", 1)[1])))
        assert picture.format == "JPEG" and max(picture.size) <= asm3.IMAGE_MAX_SIDE
        assert picture.size == (record["width"], record["height"])  # these crops are smaller: not scaled

    torn = animals["torn"]  # the breed model is torn on it: unsure, a mix of its two best guesses
    assert torn["ANIMALBREED1"] != torn["ANIMALBREED2"] and "mix?" in torn["LOGCOMMENTS"]
    if found["torn"].model == BreedModel().id:  # the bundled model (the default): its two guesses, by name
        assert (torn["ANIMALBREED1"], torn["ANIMALBREED2"]) == ("Eskimo Dog", "Siberian Husky")
    assert animals["pug"]["ANIMALBREED1"] == "Pug"
    odd = next(a for a in animals.values() if "Rex" in a["ANIMALNAME"])
    assert odd["ANIMALNAME"] == "Rex the good boy line two" and '"' not in odd["LOGCOMMENTS"]


@pytest.mark.slow  # ASM3's own import, twice: a few seconds
def test_asm3_imports_the_export(fresh, tmp_path):
    """What ASM3's code makes of the export: every row imported, one animal per animal with its breeds found
    by name (an unknown name would silently become the database's default), every text as a standard CSV
    reader reads it (no quote or line break that ASM3's own parser mangles), the photo attached and dogcat's
    answer in the animal's log."""
    shelter_db, _ = fresh
    data = export_asm3(shelter_db, "--all", "--age", "3")
    rows = csv_rows(data)
    imported = asm3_import(data, tmp_path)
    assert (imported["rows"], imported["success"], imported["errors"]) == (len(rows), len(rows), [])
    made, stored = imported["per_animal"], imported["stored"]
    assert sorted(made) == sorted(r["ANIMALCODE"] for r in rows) and len(made) >= 5
    found = answers(shelter_db)
    for row in rows:
        code, record = row["ANIMALCODE"], found[row["ANIMALCODE"]].photos[0]
        a = made[code]
        assert (a["species"], a["type"], a["media"]) == ("Dog", "D (Dog)", 1), a
        assert (a["breed1"], a["breed2"]) == (row["ANIMALBREED1"], row["ANIMALBREED2"])
        assert a["crossbreed"] == (row["ANIMALBREED1"] != row["ANIMALBREED2"]), a
        # ASM3 stores text XSS-escaped, ' as ` and ` as &bt; (src/asm3/dbms/base.py, encode_str_before_write;
        # encode_str_after_read turns them back, its screens undo the HTML escaping)
        name = html.unescape(stored[code]["name"].replace("`", "'").replace("&bt;", "`"))
        assert (name, stored[code]["comments"] or "") == (row["ANIMALNAME"], "")
        assert stored[code]["logs"] == [("History", row["LOGCOMMENTS"])]
        [photo] = stored[code]["photos"]
        picture = Image.open(io.BytesIO(photo))
        assert picture.format == "JPEG" and picture.size == (record["width"], record["height"])
    assert made["torn"]["crossbreed"] and made["torn"]["breed1"] != made["torn"]["breed2"]
    assert "Rex the good boy line two" in {a["name"] for a in made.values()}

    # No photo and a date of birth: the animals have no picture and that birthday (the first file taken back,
    # as it went to another ASM3: --all never writes a date of birth for an animal ASM3 has).
    assert runner.invoke(app, ["asm3", "forget", "1", "--db", str(shelter_db)]).exit_code == 0
    (tmp_path / "dob").mkdir()
    plain = asm3_import(export_asm3(shelter_db, "--all", "--no-images", "--dob", "2023-05-01"), tmp_path / "dob")
    assert (plain["success"], plain["errors"]) == (len(rows), [])
    assert (plain["per_animal"]["pug"]["breed1"], plain["per_animal"]["pug"]["media"]) == ("Pug", 0)
    assert plain["stored"]["pug"]["dob"].startswith("2023-05-01")


def test_usage_errors_write_nothing(fresh, tmp_path):
    shelter_db, _ = fresh
    out = tmp_path / "asm3.csv"
    for bad in (["--errors"], ["--breed", "pug"], ["--status", "dog"], ["--per", "photo"], ["--age", "0"],
                ["--age", "old"], ["--dob", "2999-01-01"], ["--age", "2", "--dob", "2020-01-01"]):
        result = runner.invoke(app, ["export", "--db", str(shelter_db), "-f", "asm3", "--all", *bad, "-o", str(out)])
        assert result.exit_code == 2 and not out.exists(), (bad, result.output)
    # No age for animals new to ASM3: exit 2, each listed, nothing written or recorded.
    result = runner.invoke(app, ["export", "--db", str(shelter_db), "-f", "asm3", "-o", str(out)])
    assert result.exit_code == 2 and not out.exists() and "pug" in result.stderr and "--age" in result.stderr
    assert runner.invoke(app, ["asm3", "files", "--db", str(shelter_db), "--json"]).stdout == ""
    result = runner.invoke(app, ["export", "--db", str(shelter_db), "--age", "1"])
    assert result.exit_code == 2 and "go with --format asm3" in result.stderr


def test_a_photo_gone_from_disk_is_not_attached_and_not_recorded(fresh, tmp_path):
    copy, intake = fresh
    moved = tmp_path / "moved"
    moved.mkdir()
    (intake / "beagle.jpg").rename(moved / "beagle.jpg")
    try:
        result = runner.invoke(app, ["export", "--db", str(copy), "-f", "asm3", "--age", "1"])
    finally:
        (moved / "beagle.jpg").rename(intake / "beagle.jpg")
    assert result.exit_code == 0, result.output
    assert "beagle: every photo is gone from disk; left out" in " ".join(result.stderr.split())
    assert "beagle" not in {r["ANIMALCODE"] for r in csv_rows(result.stdout_bytes)}
    # Back on disk: the next export sends it, and only it.
    again = csv_rows(export_asm3(copy, "--age", "1"))
    assert [r["ANIMALCODE"] for r in again] == ["beagle"]


def test_a_photo_too_detailed_for_a_csv_field_is_shrunk(tmp_path):
    """ANIMALIMAGE stays under Python's csv field limit (131,072 characters), which ASM3's reader keeps."""
    import numpy as np

    noise = np.random.default_rng(0).integers(0, 256, (1200, 1600, 3), dtype=np.uint8)
    path = tmp_path / "noise.png"
    Image.fromarray(noise).save(path)
    import hashlib

    uri, problem = asm3.image_for({"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
    assert problem is None and uri.startswith("data:image/jpeg;base64,") and len(uri) <= asm3.IMAGE_MAX_CHARS
    first_try = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert max(first_try.size) < asm3.IMAGE_MAX_SIDE  # noise at 1024 px is too big: it took a smaller try


# --- the rules for ages, mixes and names ---------------------------------------------------------------------

def test_age_rules():
    assert asm3_planning.estimated_age("2") == {"ANIMALAGE": "2", "ANIMALDOB": ""}
    assert asm3_planning.estimated_age(0.5) == {"ANIMALAGE": "0.5", "ANIMALDOB": ""}
    assert asm3_planning.estimated_age(dob="2020-02-29") == {"ANIMALAGE": "", "ANIMALDOB": "2020-02-29"}
    assert asm3_planning.estimated_age() == {}  # none given: the animal needs one of its own
    for age, dob, why in (("0", None, "above 0"), ("101", None, "at most 100"), ("two", None, "not a number"),
                          (None, "29/02/2020", "YYYY-MM-DD"), (None, "2999-01-01", "in the future"),
                          ("2", "2020-01-01", "not both")):
        with pytest.raises(UsageError, match=why):
            asm3_planning.estimated_age(age, dob)


def test_formula_looking_names_are_defused():
    assert asm3.text("=HYPERLINK(1)") == "'=HYPERLINK(1)" and asm3.text("@SUM") == "'@SUM"
    assert asm3.text("Rex") == "Rex" and asm3.text(' -1"x"') == "'-1''x''"


@pytest.mark.parametrize("path,name", [
    ("/intake/IMG_0001.jpg", "IMG 0001"), ("/intake/=HYPERLINK(1).jpg", "HYPERLINK 1"),
    ("/intake/-rf.jpg", "rf"), ("/in/<img src=x onerror=alert(1)>.jpg", "img src x onerror alert 1"),
    ("/intake/Bella's pup.png", "Bella's pup"), ("/intake/ünï ✓.jpg", "ünï"), ("/intake/!!!.jpg", "Unnamed dog"),
    ("/intake/" + "x" * 80 + ".jpg", "x" * 40)])
def test_placeholder_names(path, name):
    assert naming.placeholder_name(path) == name


def test_names_and_comments_show_hidden_characters():
    """A bidi override in a folder or file name must not reorder what staff read in ASM3 (issue 13)."""
    assert naming.one_line("Max\u202egpj.exe") == "Max<U+202E>gpj.exe"
    assert naming.one_line('Rex "the\tgood"\nboy') == "Rex ''the good'' boy"  # whitespace still folded first
