"""``dogcat export --format asm3``: a real catalog (real photos, the real model, a real SQLite file) → a CSV that
is read here the way Animal Shelter Manager 3's CSV import reads it, against ASM3's published column list and
default breed list (tests/data/asm3/, copied from ASM3's source with the commit named in each file).
"""

from __future__ import annotations

import base64
import csv
import io
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from dogcat import asm3, breeds, catalog, db, export, naming, readmodel
from dogcat.cli import app
from dogcat.model import BreedModel
from dogcat.status import Judge

ROOT = Path(__file__).resolve().parents[1]
ASM3_DATA = Path(__file__).with_name("data") / "asm3"
runner = CliRunner()

# ASM3's default lookups for dogs (src/asm3/dbupdate.py, sql_default_data): species 1 "Dog", animal type 2
# "D (Dog)". Its importer falls back to the configured defaults for a name it cannot find.
ASM3_SPECIES = {"dog": 1, "cat": 2}
ASM3_TYPES = {"d (dog)": 2, "a (stray dog)": 10, "u (unwanted cat)": 11, "s (stray cat)": 12}

CONFIDENT = ["n02088364-beagle", "n02099601-golden_retriever", "n02110958-pug", "n02109525-Saint_Bernard"]
# A real photo the bundled model is torn on: Eskimo dog 37 %, Siberian husky 31 %.
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


def asm3_csv_rows(data: bytes) -> list[dict]:
    """A CSV file as ASM3's importer parses it (asm3.utils.csv_parse, re-stated from its behaviour): decoded as
    UTF-8 with or without BOM; CR LF and CR become LF; every double quote flips "inside quotes" (so a doubled
    quote stays two quotes in the value); outside quotes a comma ends a field and a line break a row; one
    leading and one trailing quote are dropped from a field, then the spaces around it; the first row names the
    columns; a row with fewer than two fields is dropped."""
    s = data.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
    records, fields, start, quoted = [], [], 0, False
    for i in range(len(s) + 1):
        c = s[i] if i < len(s) else None
        if c == '"':
            quoted = not quoted
            continue
        if quoted and c is not None:
            continue
        if c in (",", "\n", None):
            item = s[start:i]
            start = i + 1
            item = item[1:] if item.startswith('"') else item
            item = item[:-1] if item.endswith('"') else item
            fields.append(item.strip())
            if c != ",":
                records.append(fields)
                fields = []
    header, *rows = records
    parsed = [{col: items[i] for i, col in enumerate(header) if i < len(items)} for items in rows]
    return [header, *[d for d in parsed if len(d) > 1]]


def asm3_import(data: bytes) -> list[dict]:
    """What ASM3's CSV import (src/asm3/csvimport.py) makes of the file's animal columns: it refuses a file
    without a column it knows or with animal columns but no ANIMALNAME; a row with an empty ANIMALNAME makes no
    animal; species, type and breeds are looked up by lower-cased name (' written as `), 0 when not found;
    Crossbreed is ticked when breed 2 is found and differs from breed 1; ANIMALIMAGE must be an http URL or a
    data:image URI, anything else is ignored with a warning."""
    header, *rows = asm3_csv_rows(data)
    known = set(valid_fields())
    assert any(col in known for col in header), "ASM3: no fields that ASM recognises"
    assert not any(col.startswith("ANIMAL") for col in header) or "ANIMALNAME" in header, "ASM3: no ANIMALNAME"
    breeds = dog_breeds()

    def lookup(table: dict, value: str) -> int:
        return table.get(value.strip().lower().replace("'", "`"), 0)

    animals = []
    for row in rows:
        if not row.get("ANIMALNAME"):
            continue
        breed1, breed2 = lookup(breeds, row.get("ANIMALBREED1", "")), lookup(breeds, row.get("ANIMALBREED2", ""))
        image = row.get("ANIMALIMAGE", "")
        animals.append({"name": row["ANIMALNAME"], "species": lookup(ASM3_SPECIES, row.get("ANIMALSPECIES", "")),
                        "type": lookup(ASM3_TYPES, row.get("ANIMALTYPE", "")), "breed1": breed1, "breed2": breed2,
                        "crossbreed": breed2 != 0 and breed2 != breed1, "comments": row.get("ANIMALCOMMENTS", ""),
                        "image": image if image.startswith(("http", "data:image")) else None, "row": row})
    return animals


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
    file: catalogued with the real models (breed model and dog detector) into a real SQLite file."""
    intake = tmp_path_factory.mktemp("asm3") / "intake"
    intake.mkdir()
    for folder in CONFIDENT:
        photo = sorted((crops / folder).glob("*.jpg"))[0]
        shutil.copy(photo, intake / f"{folder.split('-', 1)[1]}.jpg")
    shutil.copy(crops / TORN, intake / "torn.jpg")
    shutil.copy(intake / "pug.jpg", intake / "pug_2.jpg")
    shutil.copy(sorted((crops / "n02113799-standard_poodle").glob("*.jpg"))[0], intake / ODD_NAME)
    (intake / "broken.jpg").write_text("not a photo")
    path = intake.parent / "shelter.db"
    engine = db.connect(str(path))
    try:
        catalog.run(engine, [intake], Judge.load(model_path))
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


def test_export_is_what_asm3_imports(shelter, tmp_path):
    shelter_db, intake = shelter
    out = tmp_path / "asm3.csv"
    result = runner.invoke(app, ["export", "--db", str(shelter_db), "--format", "asm3", "--age", "3", "-o",
                                 str(out)])
    assert result.exit_code == 0 and result.stdout == "", result.output
    data = out.read_bytes()

    header = asm3_csv_rows(data)[0]
    assert header == asm3.COLUMNS and set(header) <= set(valid_fields())
    assert {"ANIMALCODE", "ANIMALNAME", "ANIMALTYPE", "ANIMALSPECIES", "ANIMALBREED1", "ANIMALBREED2", "ANIMALAGE",
            "ANIMALCOMMENTS", "ANIMALIMAGE"} <= set(header)
    # What ASM3 reads is exactly what a standard CSV reader reads: no quote or line break that ASM3 would mangle.
    assert asm3_csv_rows(data)[1:] == list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))

    # The photos lie loose in the intake folder: each is an animal of its own, and the pug's two names (one
    # photo) are one animal with one picture; the broken file makes none.
    rows = asm3_import(data)
    assert len({r["row"]["ANIMALCODE"] for r in rows}) == len(rows)  # no extra photo rows here
    animals = {a["row"]["ANIMALCODE"]: a for a in rows}
    found = answers(shelter_db)
    assert found["broken"].status == "error" and found["torn"].status == "unsure"
    assert sorted(animals) == sorted(code for code, a in found.items() if a.status in ("dog", "unsure"))
    assert len(animals) >= 5 and "pug_2" not in animals
    assert (len(found["pug"].photos), found["pug"].votes) == (2, 1)  # one photo under two names: one vote
    asm3_ids = dog_breeds()
    for code, a in animals.items():
        answer = found[code]
        record = answer.photos[0]
        assert a["row"]["ANIMALAGE"] == "3" and a["name"] == naming.placeholder_name(record["path"])
        assert " ".join(record["path"].replace(chr(34), chr(39) * 2).split()) in a["comments"]
        best, second = answer.top_k[0], answer.top_k[1]
        assert a["species"] == ASM3_SPECIES["dog"] and a["type"] == ASM3_TYPES["d (dog)"]
        assert a["breed1"] == asm3_ids[breeds.asm3_name(best["label"]).lower()] != 0
        assert f"{round(best['confidence'] * 100)}%" in a["comments"] and best["breed"] in a["comments"]
        assert f"dog check {record['dog_probability']:.0%}" in a["comments"]
        assert f"from {answer.votes} photo" in a["comments"]
        if answer.status == "dog":  # purebred: the same breed twice, so ASM3 ticks no crossbreed
            assert (a["breed2"], a["crossbreed"]) == (a["breed1"], False), a
            assert "mix?" not in a["comments"]
        else:  # unsure: a possible mix of the two best guesses
            assert a["breed2"] == asm3_ids[breeds.asm3_name(second["label"]).lower()]
            assert a["crossbreed"] == (a["breed1"] != a["breed2"]) and "mix?" in a["comments"]
        assert a["image"] and a["image"].startswith("data:image/jpeg;base64,")
        picture = Image.open(io.BytesIO(base64.b64decode(a["image"].split(",", 1)[1])))
        assert picture.format == "JPEG" and max(picture.size) <= asm3.IMAGE_MAX_SIDE
        assert picture.size == (record["width"], record["height"])  # these crops are smaller: not scaled

    torn = animals["torn"]  # the breed model is torn on it: unsure, a mix of its two best guesses
    assert torn["crossbreed"] and "mix?" in torn["comments"]
    if found["torn"].model.startswith("xception-120@"):
        assert (torn["row"]["ANIMALBREED1"], torn["row"]["ANIMALBREED2"]) == ("Eskimo Dog", "Siberian Husky")
    pug = animals["pug"]
    assert f"photos {intake / 'pug.jpg'}, {intake / 'pug_2.jpg'}" in pug["comments"]
    assert pug["row"]["ANIMALBREED1"] == "Pug"
    odd = next(a for a in animals.values() if "Rex" in a["name"])
    assert odd["name"] == "Rex the good boy line two"
    assert "''the good boy'' line two.jpg" in odd["comments"] and '"' not in odd["comments"]


def test_filters_images_and_usage(shelter, tmp_path):
    shelter_db, intake = shelter
    result = runner.invoke(app, ["export", "--db", str(shelter_db), "-f", "asm3", "--no-images", "--breed", "pug",
                                 "--dob", "2023-05-01"])
    assert result.exit_code == 0, result.output
    animals = asm3_import(result.stdout_bytes)
    assert [a["row"]["ANIMALBREED1"] for a in animals] == ["Pug"] and animals[0]["row"]["ANIMALIMAGE"] == ""
    assert animals[0]["row"]["ANIMALDOB"] == "2023-05-01" and animals[0]["row"]["ANIMALAGE"] == ""

    for bad in (["--errors", "--age", "1"], ["--per", "photo", "--age", "1"], []):
        result = runner.invoke(app, ["export", "--db", str(shelter_db), "-f", "asm3", *bad])
        assert result.exit_code == 2, (bad, result.output)
    result = runner.invoke(app, ["export", "--db", str(shelter_db), "--age", "1"])
    assert result.exit_code == 2 and "--age and --dob go with --format asm3" in result.stderr

    moved = tmp_path / "moved"  # a photo that is no longer where it was catalogued: exported without a picture
    shutil.copytree(intake, moved)
    (intake / "beagle.jpg").rename(moved / "beagle, moved.jpg")
    try:
        result = runner.invoke(app, ["export", "--db", str(shelter_db), "-f", "asm3", "--breed", "beagle",
                                     "--age", "1"])
        [beagle] = asm3_import(result.stdout_bytes)
        assert beagle["row"]["ANIMALIMAGE"] == ""
        assert f"Photo not attached: {intake / 'beagle.jpg'}: file no longer there." in beagle["comments"]
    finally:
        (moved / "beagle, moved.jpg").rename(intake / "beagle.jpg")


def test_a_photo_too_detailed_for_a_csv_field_is_shrunk(tmp_path):
    """ANIMALIMAGE stays under Python's csv field limit (131,072 characters), which ASM3's reader keeps."""
    import numpy as np

    noise = np.random.default_rng(0).integers(0, 256, (1200, 1600, 3), dtype=np.uint8)
    path = tmp_path / "noise.png"
    Image.fromarray(noise).save(path)
    import hashlib

    uri, problem = export.asm3_image({"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
    assert problem is None and uri.startswith("data:image/jpeg;base64,") and len(uri) <= asm3.IMAGE_MAX_CHARS
    first_try = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert max(first_try.size) < asm3.IMAGE_MAX_SIDE  # noise at 1024 px is too big: it took a smaller try


# --- the rules for ages, mixes and names ---------------------------------------------------------------------

def test_age_rules():
    assert asm3.estimated_age("2") == {"ANIMALAGE": "2", "ANIMALDOB": ""}
    assert asm3.estimated_age(0.5) == {"ANIMALAGE": "0.5", "ANIMALDOB": ""}
    assert asm3.estimated_age(dob="2020-02-29") == {"ANIMALAGE": "", "ANIMALDOB": "2020-02-29"}
    for age, dob in ((None, None), ("0", None), ("101", None), ("two", None), (None, "29/02/2020"),
                     (None, "2999-01-01"), ("2", "2020-01-01")):
        with pytest.raises(asm3.AgeError):
            asm3.estimated_age(age, dob)


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
