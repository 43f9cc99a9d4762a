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

from dogcat import asm3, catalog, db, export
from dogcat.cli import app
from dogcat.model import BreedModel
from dogcat.status import DEFAULT_UNSURE_BELOW, Judge

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
    breeds = dog_breeds()
    assert len(breeds) == 221 and breeds["mixed breed"] == 442
    assert set(model.labels) <= set(asm3.BREEDS) and len(asm3.BREEDS) == 120
    for label, name in asm3.BREEDS.items():
        assert name.lower() in breeds, f"{label} → {name!r}: not a breed in ASM3's list"
    assert asm3.asm3_breed("n02099601-golden_retriever") == "Golden Retriever"
    assert asm3.asm3_breed("n02099601-Golden-Retriever") == "Golden Retriever"  # known by its WordNet id
    assert asm3.asm3_breed("n09999999-wolf") == asm3.asm3_breed(None) == "Mixed Breed"


def test_the_documented_table_is_the_mapping():
    """docs/asm3.md lists all 120 classes with their ASM3 breed: the table must be the code's."""
    doc = (ROOT / "docs" / "asm3.md").read_text()
    rows = re.findall(r"^\| `(n\d{8}-[^`]+)` \| [^|]+ \| ([^|]+?) \|", doc, flags=re.MULTILINE)
    assert dict(rows) == asm3.BREEDS and len(rows) == 120
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
        return list(export.records(engine))
    finally:
        engine.dispose()


def test_export_is_what_asm3_imports(shelter, tmp_path):
    shelter_db, intake = shelter
    out = tmp_path / "asm3.csv"
    result = runner.invoke(app, ["export", "--db", str(shelter_db), "--format", "asm3", "-o", str(out)])
    assert result.exit_code == 0 and result.stdout == "", result.output
    data = out.read_bytes()

    header = asm3_csv_rows(data)[0]
    assert header == asm3.COLUMNS and set(header) <= set(valid_fields())
    assert {"ANIMALNAME", "ANIMALTYPE", "ANIMALSPECIES", "ANIMALBREED1", "ANIMALBREED2", "ANIMALCOMMENTS",
            "ANIMALIMAGE"} <= set(header)
    # What ASM3 reads is exactly what a standard CSV reader reads: no quote or line break that ASM3 would mangle.
    assert asm3_csv_rows(data)[1:] == list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))

    animals = {a["name"]: a for a in asm3_import(data)}
    # One animal per distinct dog photo, named after its file; the broken file and the pug's second name make none.
    by_name = {asm3.placeholder_name(r["path"]): r for r in reversed(records(shelter_db))}
    assert by_name["broken"]["status"] == "error" and by_name["torn"]["status"] == "unsure"
    assert sorted(animals) == sorted(n for n, r in by_name.items() if r["status"] in ("dog", "unsure")
                                     and n != "pug 2")
    assert {"beagle", "golden retriever", "pug", "Saint Bernard", "torn", "Rex the good boy line two"} >= set(animals)
    assert len(animals) >= 5
    asm3_ids = dog_breeds()
    for name, a in animals.items():
        record = by_name[name]
        assert f"photo {' '.join(record['path'].replace(chr(34), chr(39) * 2).split())}" in a["comments"]
        best, second = record["top_k"][0], record["top_k"][1]
        assert a["species"] == ASM3_SPECIES["dog"] and a["type"] == ASM3_TYPES["d (dog)"]
        assert a["breed1"] == asm3_ids[asm3.asm3_breed(best["label"]).lower()] != 0
        assert f"{round(best['confidence'] * 100)}%" in a["comments"] and best["breed"] in a["comments"]
        assert f"dog check {record['dog_probability']:.0%}" in a["comments"]
        if record["status"] == "dog":  # purebred: the same breed twice, so ASM3 ticks no crossbreed
            assert (a["breed2"], a["crossbreed"]) == (a["breed1"], False), a
            assert "mix?" not in a["comments"]
        else:  # unsure: a possible mix of the two best guesses
            assert a["breed2"] == asm3_ids[asm3.asm3_breed(second["label"]).lower()]
            assert a["crossbreed"] == (a["breed1"] != a["breed2"]) and "mix?" in a["comments"]
        assert a["image"] and a["image"].startswith("data:image/jpeg;base64,")
        picture = Image.open(io.BytesIO(base64.b64decode(a["image"].split(",", 1)[1])))
        assert picture.format == "JPEG" and max(picture.size) <= asm3.IMAGE_MAX_SIDE
        assert picture.size == (record["width"], record["height"])  # these crops are smaller: not scaled

    torn = animals["torn"]  # the breed model is torn on it: unsure, a mix of its two best guesses
    assert torn["crossbreed"] and "mix?" in torn["comments"]
    if by_name["torn"]["model"].startswith("xception-120@"):
        assert (torn["row"]["ANIMALBREED1"], torn["row"]["ANIMALBREED2"]) == ("Eskimo Dog", "Siberian Husky")
    pug = animals["pug"]
    assert f"(the same photo also at {intake / 'pug_2.jpg'})" in pug["comments"]
    assert pug["row"]["ANIMALBREED1"] == "Pug"
    odd = animals["Rex the good boy line two"]
    assert "''the good boy'' line two.jpg" in odd["comments"] and '"' not in odd["comments"]


def test_filters_images_and_usage(shelter, tmp_path):
    shelter_db, intake = shelter
    result = runner.invoke(app, ["export", "--db", str(shelter_db), "-f", "asm3", "--no-images", "--breed", "pug"])
    assert result.exit_code == 0, result.output
    animals = asm3_import(result.stdout_bytes)
    assert [a["row"]["ANIMALBREED1"] for a in animals] == ["Pug"] and animals[0]["row"]["ANIMALIMAGE"] == ""

    result = runner.invoke(app, ["export", "--db", str(shelter_db), "-f", "asm3", "--errors"])
    assert result.exit_code == 2 and "--errors" in result.stderr

    moved = tmp_path / "moved"  # a photo that is no longer where it was catalogued: exported without a picture
    shutil.copytree(intake, moved)
    (intake / "beagle.jpg").rename(moved / "beagle, moved.jpg")
    try:
        result = runner.invoke(app, ["export", "--db", str(shelter_db), "-f", "asm3", "--breed", "beagle"])
        [beagle] = asm3_import(result.stdout_bytes)
        assert beagle["row"]["ANIMALIMAGE"] == "" and "Photo not attached: file no longer there." in beagle["comments"]
    finally:
        (moved / "beagle, moved.jpg").rename(intake / "beagle.jpg")


# --- the rules for statuses, mixes and names -----------------------------------------------------------------

def test_status_and_mix_rules(shelter):
    """One real catalogued photo under each status, and as a catalog from before statuses records it."""
    shelter_db, intake = shelter
    real = next(r for r in records(shelter_db) if r["path"].endswith("golden_retriever.jpg"))
    best, second = real["top_k"][0], real["top_k"][1]
    assert real["status"] == "dog" and best["confidence"] >= asm3.PUREBRED_CONFIDENCE

    dog = asm3.animal(real)
    assert dog["ANIMALBREED1"] == dog["ANIMALBREED2"] == "Golden Retriever"
    assert dog["ANIMALCOMMENTS"].startswith(f"dogcat: Golden Retriever {best['confidence']:.0%} (then ")

    unsure = asm3.animal({**real, "status": "unsure"})
    assert (unsure["ANIMALBREED1"], unsure["ANIMALBREED2"]) == (asm3.asm3_breed(best["label"]),
                                                               asm3.asm3_breed(second["label"]))
    assert unsure["ANIMALCOMMENTS"].startswith("dogcat: mix? Golden Retriever")
    assert asm3.animal({**real, "status": "not_a_dog", "looks_like": "tabby"}) is None
    assert asm3.animal({**real, "status": "error"}) is None
    assert asm3.animal({**real, "error": "cannot decode image", "top_k": []}) is None

    # Schema 1 had no status: judged by the breed model's confidence, as dogcat.status does by default.
    assert asm3.PUREBRED_CONFIDENCE == DEFAULT_UNSURE_BELOW
    old = {**real, "status": None, "dog_probability": None}
    assert asm3.animal(old) == {**dog, "ANIMALCOMMENTS": dog["ANIMALCOMMENTS"].replace(
        f"; dog check {real['dog_probability']:.0%}", "")}
    torn = {**old, "top_k": [{**best, "confidence": 0.41}, {**second, "confidence": 0.38}]}
    assert asm3.status_of(torn) == "unsure" and asm3.animal(torn)["ANIMALBREED2"] == asm3.asm3_breed(second["label"])


@pytest.mark.parametrize("path,name", [
    ("/intake/IMG_0001.jpg", "IMG 0001"), ("/intake/=HYPERLINK(1).jpg", "HYPERLINK 1"),
    ("/intake/-rf.jpg", "rf"), ("/in/<img src=x onerror=alert(1)>.jpg", "img src x onerror alert 1"),
    ("/intake/Bella's pup.png", "Bella's pup"), ("/intake/ünï ✓.jpg", "ünï"), ("/intake/!!!.jpg", "Unnamed dog"),
    ("/intake/" + "x" * 80 + ".jpg", "x" * 40)])
def test_placeholder_names(path, name):
    assert asm3.placeholder_name(path) == name
