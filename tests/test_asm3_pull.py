"""dogcat asm3 pull: the shelter's records read from ASM3's own animal export (issue 23).

tests/data/asm3/asm3-animals.csv is what ASM3's "export animals as CSV" wrote for the six dogs of
``../shared/asm3/shelter.py make`` (its csvexport_animals: 113 columns, dates as MM/DD/YYYY, a log row per
animal), so these tests run without ../shared; tests/test_asm3_roundtrip.py runs ASM3 itself.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dogcat.cli import app

EXPORT = Path(__file__).resolve().parent / "data" / "asm3" / "asm3-animals.csv"
runner = CliRunner()


def dogcat(*args, code: int = 0):
    result = runner.invoke(app, [*map(str, args)])
    assert result.exit_code == code, result.output
    return result


@pytest.fixture(scope="module")
def catalogued(crops, tmp_path_factory) -> Path:
    """Folders A1001-Rex, A1002 Bella and A1003_Daisy (ASM3 has them) and A1009-Zed (it has not)."""
    root = tmp_path_factory.mktemp("pull")
    for folder, breed in (("A1001-Rex", "n02106662-German_shepherd"), ("A1002 Bella", "n02088364-beagle"),
                          ("A1003_Daisy", "n02088364-beagle"), ("A1009-Zed", "n02110958-pug")):
        (root / "intake" / folder).mkdir(parents=True)
        for photo in sorted((crops / breed).glob("*.jpg"))[:1]:
            shutil.copy(photo, root / "intake" / folder / photo.name)
    dogcat("catalog", root / "intake", "--db", root / "shelter.db", "--quiet")
    return root / "shelter.db"


@pytest.fixture
def db(catalogued, tmp_path) -> Path:
    copy = tmp_path / "shelter.db"
    shutil.copy(catalogued, copy)
    return copy


def animals(db: Path) -> dict[str, dict]:
    return {a["animal"]: a for a in map(json.loads, dogcat("animals", "--db", db, "--json").stdout.splitlines())}


def table(db: Path, name: str) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute(f"SELECT * FROM {name} ORDER BY 1").fetchall()


def test_pull_takes_the_shelters_names_dates_sexes_and_breeds(db):
    done = json.loads(dogcat("asm3", "pull", EXPORT, "--db", db, "--json").stdout)
    assert done["matched"] == ["A1001", "A1002", "A1003"]
    assert done["only_in_asm3"] == ["A1004", "A1005", "A1006"]  # reported, never invented
    assert done["corrected"] == ["A1001", "A1002", "A1003"]
    found = animals(db)
    assert [(found[c]["name"], found[c]["breed"], found[c]["source"]) for c in ("A1001", "A1002", "A1003")] == [
        ("Rex", "German Shepherd", "correction"), ("Bella", "Mixed Breed", "correction"),
        ("Daisy", "Beagle", "correction")]
    assert found["A1009"]["source"] == "model" and "A1004" not in found
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT code, dob, sex FROM animals WHERE code = 'A1003'").fetchone() == (
            "A1003", "2016-01-20", "Female")
        assert con.execute("SELECT DISTINCT source, corrected_by FROM corrections").fetchall() == [("asm3", "ASM3")]


def test_pulling_again_changes_nothing_and_never_undoes_a_staff_correction(db):
    dogcat("asm3", "pull", EXPORT, "--db", db)
    before = {t: table(db, t) for t in ("animals", "corrections", "asm3_animals")}
    again = json.loads(dogcat("asm3", "pull", EXPORT, "--db", db, "--json").stdout)
    assert (again["changed"], again["corrected"]) == ({}, [])
    assert {t: table(db, t) for t in before} == before
    # Staff say in dogcat that Bella is a beagle; the same ASM3 file pulled again leaves that in force.
    dogcat("correct", "A1002", "--breed", "beagle", "--db", db)
    dogcat("asm3", "pull", EXPORT, "--db", db)
    assert animals(db)["A1002"]["breed"] == "Beagle"


def test_a_malformed_file_changes_nothing(db, tmp_path):
    rows = EXPORT.read_text(encoding="utf-8").splitlines()
    broken = tmp_path / "broken.csv"
    lines = rows[:3] + [rows[3].replace('"06/15/2023"', '"15/31/2023"')] + rows[4:]
    assert lines != rows
    broken.write_text("\n".join(lines) + "\n", encoding="utf-8")
    before = {t: table(db, t) for t in ("animals", "corrections", "asm3_animals")}
    result = dogcat("asm3", "pull", broken, "--db", db, code=1)
    assert "broken.csv, line" in result.stderr and "ANIMALDOB" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert {t: table(db, t) for t in before} == before
    not_asm3 = tmp_path / "photos.csv"
    not_asm3.write_text("path,breed\n/x.jpg,Beagle\n", encoding="utf-8")
    assert "no ANIMALCODE or ANIMALNAME column" in dogcat("asm3", "pull", not_asm3, "--db", db, code=1).stderr
    assert "no such file" in dogcat("asm3", "pull", tmp_path / "nothing.csv", "--db", db, code=1).stderr.lower()


def test_evaluate_counts_breeds_the_model_does_not_have_apart(db):
    dogcat("asm3", "pull", EXPORT, "--db", db)
    result = json.loads(dogcat("evaluate", "--db", db, "--json").stdout)
    # Rex (German Shepherd Dog) and Daisy (Beagle) are the model's breeds; Bella's Mixed Breed is not.
    assert result["animals"]["n"] == 2 and result["animals"]["top1"] == 1.0
    assert result["outside_model"] == {"photos": 0, "animals": 1, "breeds": {"Mixed Breed": 1}}
    text = " ".join(dogcat("evaluate", "--db", db).stdout.split())
    assert "not counted: 1 animals and 0 photos whose breed the model does not have (Mixed Breed 1)" in text


def test_the_first_pull_of_a_new_shelter_creates_the_catalog(tmp_path):
    new = tmp_path / "shelter.db"
    result = dogcat("asm3", "pull", EXPORT, "--db", new)
    assert new.exists() and "0 animals matched" in result.stdout
    assert "only in ASM3" in result.stderr and "catalog the intake folders, then pull again" in result.stderr
    assert json.loads(dogcat("asm3", "pull", EXPORT, "--db", new, "--json").stdout)["only_in_asm3"] == [
        "A1001", "A1002", "A1003", "A1004", "A1005", "A1006"]
    # A file that cannot be read creates nothing.
    other = tmp_path / "other.db"
    dogcat("asm3", "pull", tmp_path / "nothing.csv", "--db", other, code=1)
    assert not other.exists()


def test_pull_says_what_it_changed_old_and_new_and_how_many_matched_are_retired(db):
    with sqlite3.connect(db) as con:  # what `dogcat animals prune` leaves when Daisy's photos are gone from disk
        con.execute("UPDATE animals SET retired_at = '2026-12-01T10:00:00+00:00' WHERE code = 'A1003'")
    done = json.loads(dogcat("asm3", "pull", EXPORT, "--db", db, "--json").stdout)
    assert done["retired"] == ["A1003"]
    assert done["changed"]["A1001"]["dob"] == [None, "2021-03-01"]
    assert done["changed"]["A1001"]["sex"] == [None, "Male"]
    assert done["changed"]["A1002"]["breed"] == ["Beagle (model)", "Mixed Breed"]  # the model's answer, then ASM3's
    dogcat("correct", "A1002", "--undo", "--db", db)  # staff take ASM3's breed back out in dogcat ...
    edited = Path(db).parent / "edited.csv"  # ... and ASM3 says Bella was born a day later
    edited.write_text(EXPORT.read_text(encoding="utf-8").replace('"06/15/2023"', '"06/16/2023"'), encoding="utf-8")
    text = " ".join(dogcat("asm3", "pull", edited, "--db", db).output.split())
    assert "3 animals matched (1 of them retired), 1 updated" in text
    assert "A1002: dob 2023-06-15 -> 2023-06-16" in text and "retired (dogcat animals prune" in text


def test_a_staff_correction_made_in_dogcat_before_the_first_pull_is_a_conflict_not_overwritten(db):
    dogcat("correct", "A1002", "--breed", "beagle", "--by", "alice", "--db", db)
    result = dogcat("asm3", "pull", EXPORT, "--db", db)
    text = " ".join(result.output.split())
    assert "1 conflicts" in text
    assert "conflict: A1002: ASM3 says Mixed Breed (never pulled before), dogcat says Beagle (staff) (alice," in text
    assert "neither changed" in text
    bella = animals(db)["A1002"]
    assert (bella["breed"], bella["corrected_by"]) == ("Beagle", "alice")
    # Listed again on every pull, until the two agree (or the correction in dogcat is undone).
    again = json.loads(dogcat("asm3", "pull", EXPORT, "--db", db, "--json").stdout)
    assert [(c["code"], c["asm3"], c["dogcat"], c["by"]) for c in again["conflicts"]] == [
        ("A1002", "Mixed Breed", "Beagle (staff)", "alice")]
    assert again["corrected"] == [] and animals(db)["A1002"]["breed"] == "Beagle"
    dogcat("correct", "A1002", "--undo", "--db", db)
    taken = json.loads(dogcat("asm3", "pull", EXPORT, "--db", db, "--json").stdout)
    assert (taken["conflicts"], taken["corrected"]) == ([], ["A1002"])
    assert animals(db)["A1002"]["breed"] == "Mixed Breed"


def test_pull_never_reads_dogcats_own_answer_back_as_staffs(db, tmp_path):
    """An animal dogcat made in ASM3 comes back in ASM3's next export with the breed dogcat sent: that is the
    model's answer, not a correction; a breed staff then set in ASM3 is one."""
    import csv

    from tests.test_asm3_records import animal_row, export_text

    sent = tmp_path / "asm3-import.csv"
    dogcat("export", "--db", db, "--format", "asm3", "--age", "1", "-o", sent)
    with open(sent, newline="", encoding="utf-8") as f:
        [zed] = [r for r in csv.DictReader(f) if r["ANIMALCODE"] == "A1009"]
    assert zed["ANIMALBREED1"] and animals(db)["A1009"]["source"] == "model"

    def shelter_export(breed1: str, breed2: str) -> Path:
        out = tmp_path / "asm3-animals.csv"
        out.write_text(export_text([animal_row(9, "A1009", zed["ANIMALNAME"], breed1=breed1, breed2=breed2)]),
                       encoding="utf-8")
        return out

    back = json.loads(dogcat("asm3", "pull", shelter_export(zed["ANIMALBREED1"], zed["ANIMALBREED2"]), "--db", db,
                             "--json").stdout)
    assert back["matched"] == ["A1009"] and back["corrected"] == []
    assert animals(db)["A1009"]["source"] == "model"
    other = "Beagle" if zed["ANIMALBREED1"] != "Beagle" else "Pug"
    staff = json.loads(dogcat("asm3", "pull", shelter_export(other, other), "--db", db, "--json").stdout)
    assert staff["corrected"] == ["A1009"]
    assert (animals(db)["A1009"]["source"], animals(db)["A1009"]["breed"]) == ("correction", other)
