"""Living with a shelter that already keeps its animals in ASM3 (issue 23), measured with ASM3's own code.

``../shared/asm3/shelter.py`` is such a shelter: six dogs staff entered (names, dates of birth, sexes, breeds
such as "Mixed Breed" and "Pit Bull Terrier", comments for adopters, hidden details), ASM3's own animal export,
staff edits, and ASM3's own import, which says what it changed. Three cycles of pull → export → import, with a
new photo and a staff edit in ASM3 in between: nothing staff own may change, every photo is attached once,
the new animal is made once with its age, and a cycle with nothing new changes nothing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import SHARED, needs_shared
from conftest import shelter_py as shelter
from typer.testing import CliRunner

from dogcat.cli import app

pytestmark = pytest.mark.slow  # ASM3's own code, several imports: about half a minute

runner = CliRunner()
CROPS = SHARED / "data" / "stanford-dogs-crops-224"
# The shelter's six dogs (shelter.py's DEFAULT_ANIMALS), each given two photos of a breed like it, and one dog
# ASM3 does not have yet (A1007).
FOLDERS = {"A1001-Rex": "n02106662-German_shepherd", "A1002 Bella": "n02088364-beagle",
           "A1003_Daisy": "n02088364-beagle", "A1004-Bruno": "n02099712-Labrador_retriever",
           "A1005-Max": "n02093256-Staffordshire_bullterrier", "A1006-Luna": "n02110958-pug",
           "A1007-Pip": "n02085620-Chihuahua"}
STAFF_FIELDS = ("name", "dob", "sex", "breed1", "breed2", "crossbreed", "comments", "hidden")




def dogcat(*args: str) -> str:
    result = runner.invoke(app, [*map(str, args)])
    assert result.exit_code == 0, result.output
    return result.stdout


def photos(folder: Path, breed: str, n: int, skip: int = 0):
    folder.mkdir(parents=True, exist_ok=True)
    for source in sorted((needs_shared(CROPS, "Stanford Dogs") / breed).glob("*.jpg"))[skip:skip + n]:
        shutil.copy(source, folder / source.name)


def sources(db: Path) -> dict[str, str]:
    """Each animal's answer's source in dogcat: "correction" (staff's word, ASM3's included) or "model"."""
    return {a["animal"]: a["source"] for a in map(json.loads, dogcat("animals", "--db", db, "--json").splitlines())}


def test_three_cycles_with_a_shelter_that_uses_asm3(tmp_path):
    asm3, intake, db = tmp_path / "asm3", tmp_path / "intake", tmp_path / "shelter.db"
    shelter("make", asm3)
    before = {a["code"]: a for a in shelter("show", asm3)["per_animal"]}
    for folder, breed in FOLDERS.items():
        photos(intake / folder, breed, 2)
    ages = tmp_path / "ages.csv"
    ages.write_text("code;name;dob;sex\nA1007;Pip;2025-02-01;Male\n", encoding="utf-8")  # a European spreadsheet

    def cycle(n: int) -> dict | None:
        """catalog, pull, export, import; None when the export had nothing new (and wrote no file)."""
        dogcat("catalog", intake, "--db", db, "--quiet")
        dogcat("asm3", "pull", asm3 / "asm3-animals.csv", "--db", db)
        out = tmp_path / f"asm3-import-{n}.csv"
        dogcat("export", "--db", db, "--format", "asm3", "--animals-csv", ages, "-o", out)
        return shelter("import", asm3, out) if out.exists() else None

    # Cycle 1: the six dogs get their photos only; A1007 is made, with its date of birth and sex.
    first = cycle(1)
    assert first is not None and first["errors"] == [] and first["new_animals"] == ["A1007"], first
    after = {a["code"]: a for a in first["per_animal"]}
    for code, staff in before.items():
        assert {f: after[code][f] for f in STAFF_FIELDS} == {f: staff[f] for f in STAFF_FIELDS}, code
        assert set(first["changed"].get(code, {})) <= {"media"}, first["changed"][code]
    assert after["A1007"]["name"] == "Pip" and after["A1007"]["sex"] == "Male"
    assert after["A1007"]["dob"].startswith("2025-02-01")
    assert (after["A1007"]["breed1"], after["A1007"]["crossbreed"]) == ("Chihuahua", 0)
    assert [log for log in after["A1007"]["logs"] if "dogcat:" in log][0].startswith("History: dogcat: Chihuahua")
    assert {code: a["media"] for code, a in after.items()} == {code: 2 for code in after}  # = photos on disk
    # The animals ASM3 had speak the shelter's names and breeds in dogcat now.
    animals = {a["animal"]: a for a in map(json.loads, dogcat("animals", "--db", db, "--json").splitlines())}
    assert (animals["A1001"]["name"], animals["A1005"]["breed"]) == ("Rex", "Pit Bull Terrier")
    assert animals["A1002"]["breed"] == "Mixed Breed"
    # Staff's breeds for the six; dogcat's own answer for A1007, which ASM3 now holds too: after every cycle,
    # pull must not read dogcat's own answer back as if staff had said it.
    said = {code: "correction" for code in before} | {"A1007": "model"}
    assert sources(db) == said

    # Staff work in ASM3: Bella is a Beagle mix after all, and has a new comment; a new photo of her comes in.
    shelter("edit", asm3, "A1002", "breed1", "Beagle")
    shelter("edit", asm3, "A1002", "comments", "Bella turned out to love cats.")
    photos(intake / "A1002 Bella", FOLDERS["A1002 Bella"], 1, skip=10)
    edited = {a["code"]: a for a in shelter("show", asm3)["per_animal"]}

    second = cycle(2)
    assert second is not None and second["errors"] == [] and second["new_animals"] == [], second
    assert sources(db) == said
    assert second["changed"] == {"A1002": {"media": [2, 3]}}, second["changed"]  # the new photo, nothing else
    after = {a["code"]: a for a in second["per_animal"]}
    for code, staff in edited.items():
        assert {f: after[code][f] for f in STAFF_FIELDS} == {f: staff[f] for f in STAFF_FIELDS}, code
    bella = json.loads(dogcat("animals", "--db", db, "--json").splitlines()[1])
    assert (bella["animal"], bella["breed"], bella["breed2"], bella["source"]) == (
        "A1002", "Beagle", "Mixed Breed", "correction")
    assert bella["corrected_by"] == "ASM3"
    shown = json.loads(dogcat("animals", "show", "A1002", "--db", db, "--json"))
    in_force = [c for c in shown["corrections"] if c["in_force"]]
    assert [(c["source"], c["breed"], c["breed2"]) for c in in_force] == [("asm3", "Beagle", "Mixed Breed")]
    assert [(c["source"], c["breed"]) for c in shown["corrections"]] == [("asm3", "Mixed Breed"),
                                                                          ("asm3", "Beagle")]

    # Cycle 3: nothing new anywhere, so there is nothing to import; ASM3 holds each photo on disk once.
    shelter("export", asm3)
    assert cycle(3) is None
    assert sources(db) == said
    last = {a["code"]: a for a in shelter("show", asm3)["per_animal"]}
    assert {code: {f: a[f] for f in (*STAFF_FIELDS, "media")} for code, a in last.items()} == \
        {code: {f: a[f] for f in (*STAFF_FIELDS, "media")} for code, a in after.items()}
    assert {code: a["media"] for code, a in last.items()} == {
        code: len(list((intake / folder).glob("*.jpg"))) for code, folder in
        ((f.replace("_", "-").replace(" ", "-").split("-")[0], f) for f in FOLDERS)}
    # ... and dogcat's file record says what each import held.
    files = [json.loads(line) for line in dogcat("asm3", "files", "--db", db, "--json").splitlines()]
    assert [(f["animals"], f["new_animals"], f["photos"]) for f in files] == [(7, 1, 14), (1, 0, 1)]
