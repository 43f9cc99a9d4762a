"""An ordinary week at the shelter hides no animal for good (issue 29): a drive not plugged in is not every animal
gone, a folder a volunteer renamed keeps its animal (by its code, or by its photos without one), a retired animal
whose photos come back is in care again, and a spreadsheet's row for a merged animal corrects the animal it went
to. Real photos, the bundled model, real SQLite files and, for ASM3, ASM3's own import (../shared/asm3)."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dogcat.cli import app
from tests.conftest import shelter_py as shelter

runner = CliRunner()
BEAGLE, GOLDEN, PUG = "n02088364-beagle", "n02099601-golden_retriever", "n02110958-pug"


def photos(crops: Path, folder: Path, label: str, n: int, skip: int = 0):
    folder.mkdir(parents=True, exist_ok=True)
    for source in sorted((crops / label).glob("*.jpg"))[skip:skip + n]:
        shutil.copy(source, folder / source.name)


def dogcat(*args, code: int = 0):
    result = runner.invoke(app, [*map(str, args)])
    assert result.exit_code == code, result.output
    return result


def listed(db: Path) -> dict[str, dict]:
    return {a["animal"]: a for a in map(json.loads, dogcat("animals", "--db", db, "--json").stdout.splitlines())}


def retired(db: Path) -> dict[str, str | None]:
    with sqlite3.connect(db) as con:
        return dict(con.execute("SELECT code, retired_at FROM animals WHERE merged_into IS NULL"))


@pytest.fixture(scope="module")
def catalogued(crops, tmp_path_factory) -> tuple[Path, Path, Path]:
    """(a pristine intake, where each test's intake lies, the catalog of it there): catalogued once, with the
    bundled model. A1002-Bella (two golden retrievers, corrected by staff), Rex (two pugs; a folder without a
    code) and Max (two beagles)."""
    base = tmp_path_factory.mktemp("week")
    pristine, intake, db = base / "pristine", base / "intake", base / "pristine.db"
    photos(crops, pristine / "A1002-Bella", GOLDEN, 2)
    photos(crops, pristine / "Rex", PUG, 2)
    photos(crops, pristine / "Max", BEAGLE, 2)
    shutil.copytree(pristine, intake)  # copies keep their times: a later run skips them, classifies nothing
    dogcat("catalog", intake, "--db", db, "--quiet")
    dogcat("correct", "A1002", "--breed", "golden retriever", "--breed2", "labrador", "--by", "carol", "--db", db)
    return pristine, intake, db


@pytest.fixture
def week(catalogued, tmp_path) -> tuple[Path, Path]:
    """(intake, catalog) as catalogued, for one test to change: the intake at the path the catalog knows."""
    pristine, intake, db = catalogued
    for left in (intake, intake.with_name("intake.off")):
        shutil.rmtree(left, ignore_errors=True)
    shutil.copytree(pristine, intake)
    shutil.copy(db, tmp_path / "shelter.db")
    return intake, tmp_path / "shelter.db"


def test_a_missing_or_empty_intake_folder_is_not_a_gone_animal(week):
    intake, db = week
    off = intake.with_name("intake.off")
    intake.rename(off)  # the folder renamed, as an unplugged drive looks
    for dry_run in ([], ["--dry-run"]):
        refused = dogcat("animals", "prune", "--db", db, *dry_run, code=1)
        assert f"{intake}: is missing" in " ".join(refused.stderr.split()) and "nothing retired" in refused.stderr
        assert "Traceback" not in refused.output and len(refused.stderr.strip().splitlines()) == 1
    assert set(retired(db).values()) == {None} and sorted(listed(db)) == ["A1002", "Max", "Rex"]

    intake.mkdir()  # a mount point with the drive not in it: there, but empty
    refused = dogcat("animals", "prune", "--db", db, code=1)
    assert f"{intake}: is empty" in " ".join(refused.stderr.split())
    assert set(retired(db).values()) == {None}

    intake.rmdir()
    off.rename(intake)
    shutil.rmtree(intake / "Max")  # an animal's own folder gone from an intake folder still there: gone
    done = dogcat("animals", "prune", "--db", db)
    assert "retired Max: its 2 photos are gone from disk" in done.stdout
    assert sorted(listed(db)) == ["A1002", "Rex"]
    # Gone for good, all of them: said so explicitly.
    shutil.rmtree(intake)
    assert dogcat("animals", "prune", "--db", db, code=1).stderr
    dogcat("animals", "prune", "--db", db, "--allow-missing")
    assert listed(db) == {}


def test_a_retired_animal_comes_back_and_a_renamed_folder_keeps_its_animal(week, crops):
    intake, db = week
    before = listed(db)
    (intake / "A1002-Bella").rename(intake / "A1002-Bella-Rose")
    (intake / "Rex").rename(intake / "Rexy")
    shutil.rmtree(intake / "Max")
    pruned = dogcat("animals", "prune", "--db", db).stdout
    assert all(f"retired {code}:" in pruned for code in ("A1002", "Max", "Rex")), pruned
    assert listed(db) == {}
    shown = dogcat("animals", "show", "A1002", "--db", db).stdout
    assert "retired 20" in shown and "dogcat animals restore A1002" in " ".join(shown.split())
    assert json.loads(dogcat("animals", "show", "A1002", "--db", db, "--json").stdout)["retired_at"].startswith("20")

    photos(crops, intake / "A1002-Bella-Rose", GOLDEN, 1, skip=2)  # and a new photo of her
    summary = dogcat("catalog", intake, "--db", db).stdout
    assert "retired animals in care again, their photos back: A1002, Rex" in " ".join(summary.split()), summary
    back = json.loads(dogcat("catalog", intake, "--db", db, "--json").stdout)
    assert back["back_in_care"] == []  # once: they are in care now
    now = listed(db)
    assert sorted(now) == ["A1002", "Rex"]  # Rexy is Rex: no second animal with his photos
    bella = now["A1002"]
    assert (bella["source"], bella["breed"], bella["breed2"], bella["corrected_by"]) == (
        "correction", "Golden Retriever", "Labrador Retriever", "carol")
    assert sum(p.startswith(str(intake / "A1002-Bella-Rose")) for p in bella["photos"]) == 3
    assert sum(p.startswith(str(intake / "Rexy")) for p in now["Rex"]["photos"]) == 2
    assert (now["Rex"]["name"], now["Rex"]["breed"]) == (before["Rex"]["name"], before["Rex"]["breed"])
    # A photo added to Rexy later goes to Rex too.
    photos(crops, intake / "Rexy", PUG, 1, skip=2)
    dogcat("catalog", intake, "--db", db, "--quiet")
    assert sorted(listed(db)) == ["A1002", "Rex"] and len(listed(db)["Rex"]["photos"]) == 5

    assert "Max" not in listed(db)  # the rest: by hand
    assert "Max is in care again (retired 20" in dogcat("animals", "restore", "max", "--db", db).stdout
    assert "Max" in listed(db)
    assert "nothing to do" in dogcat("animals", "restore", "Max", "--db", db).stdout
    assert "Nobody: no such animal" in dogcat("animals", "restore", "Nobody", "--db", db, code=1).stderr


def test_a_renamed_folder_without_a_code_keeps_its_animal(week):
    """Rex -> Rexy, catalogued again without a prune in between: one dog, one animal, his correction kept."""
    intake, db = week
    dogcat("correct", "Rex", "--breed", "pug", "--breed2", "beagle", "--by", "dan", "--db", db)
    (intake / "Rex").rename(intake / "Rexy")
    dogcat("catalog", intake, "--db", db, "--quiet")
    now = listed(db)
    assert sorted(now) == ["A1002", "Max", "Rex"]
    assert sorted(Path(p).parent.name for p in now["Rex"]["photos"]) == ["Rex", "Rex", "Rexy", "Rexy"]
    assert (now["Rex"]["breed"], now["Rex"]["breed2"], now["Rex"]["corrected_by"]) == ("Pug", "Beagle", "dan")


def test_a_copied_folder_is_a_new_animal(week, crops):
    """Photos known under an animal still on disk: a copy, not a rename."""
    intake, db = week
    shutil.copytree(intake / "Rex", intake / "Rex copy")
    dogcat("catalog", intake, "--db", db, "--quiet")
    assert sorted(listed(db)) == ["A1002", "Max", "Rex", "Rex-copy"]


def test_correct_from_a_spreadsheet_follows_merges(week, tmp_path):
    """A row naming a merged animal corrects the animal it was merged into, as `correct CODE` does (issue 29
    item 10, issue 33 item 3)."""
    intake, db = week
    dogcat("animals", "merge", "Max", "Rex", "--db", db)
    filled = tmp_path / "filled.csv"
    filled.write_text("animal,corrected_breed\nrex,pug\n", encoding="utf-8")
    assert "1 corrected" in dogcat("correct", "--from", filled, "--db", db).stdout
    by_hand = json.loads(dogcat("animals", "show", "Rex", "--db", db, "--json").stdout)
    assert by_hand["animal"] == "Max" and (by_hand["source"], by_hand["breed"]) == ("correction", "Pug")
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT target FROM corrections WHERE label = 'n02110958-pug'").fetchall() == [("Max",)]


# --- with ASM3's own import --------------------------------------------------------------------------------------



@pytest.mark.slow  # ASM3's own code, two imports
def test_renamed_folders_after_prune_send_only_the_new_photo_to_asm3(crops, tmp_path):
    asm3, intake, db = tmp_path / "asm3", tmp_path / "intake", tmp_path / "shelter.db"
    shelter("make", asm3)
    photos(crops, intake / "A1002 Bella", BEAGLE, 2)
    photos(crops, intake / "Rex", PUG, 2)  # no code: a dog ASM3 does not have yet

    def cycle(n: int) -> dict | None:
        dogcat("catalog", intake, "--db", db, "--quiet")
        dogcat("asm3", "pull", asm3 / "asm3-animals.csv", "--db", db)
        out = tmp_path / f"asm3-import-{n}.csv"
        dogcat("export", "--db", db, "--format", "asm3", "--age", "2", "-o", out)
        return shelter("import", asm3, out) if out.exists() else None

    first = cycle(1)
    assert first is not None and first["errors"] == [] and first["new_animals"] == ["Rex"], first
    media = {a["code"]: a["media"] for a in first["per_animal"]}
    assert (media["A1002"], media["Rex"]) == (2, 2)

    (intake / "A1002 Bella").rename(intake / "A1002 Bella-Rose")  # a volunteer renames both folders ...
    (intake / "Rex").rename(intake / "Rexy")
    dogcat("animals", "prune", "--db", db)  # ... staff prune before the next catalog ...
    photos(crops, intake / "A1002 Bella-Rose", BEAGLE, 1, skip=2)  # ... and Bella has a new photo.
    second = cycle(2)
    assert second is not None and second["errors"] == [] and second["new_animals"] == [], second
    assert second["changed"] == {"A1002": {"media": [2, 3]}}, second["changed"]  # the new photo, nothing else
    sent = list(csv.DictReader(open(tmp_path / "asm3-import-2.csv", newline="", encoding="utf-8")))
    assert [r["ANIMALCODE"] for r in sent] == ["A1002"]
    assert {a["code"]: a["media"] for a in second["per_animal"]} == {**media, "A1002": 3}
