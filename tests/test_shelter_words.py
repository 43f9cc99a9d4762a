"""Staff say what shelters say (issue 23): `dogcat correct` and `correct --from` take the shelter's breed words,
store a breed outside the model's 120 in those words, and send them to ASM3 as written."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from tests.test_asm3_pull import dogcat


@pytest.fixture(scope="module")
def catalogued(crops, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("words")
    for folder, breed in (("A2001-Kona", "n02093256-Staffordshire_bullterrier"), ("A2002-Pip", "n02088364-beagle")):
        (root / "intake" / folder).mkdir(parents=True)
        shutil.copy(sorted((crops / breed).glob("*.jpg"))[0], root / "intake" / folder)
    dogcat("catalog", root / "intake", "--db", root / "shelter.db", "--quiet")
    return root / "shelter.db"


@pytest.fixture
def db(catalogued, tmp_path) -> Path:
    copy = tmp_path / "shelter.db"
    shutil.copy(catalogued, copy)
    return copy


def answer(db: Path, code: str) -> dict:
    return next(a for a in map(json.loads, dogcat("animals", "--db", db, "--json").stdout.splitlines())
                if a["animal"] == code)


@pytest.mark.parametrize("said, breed, breed2", [
    ("Mixed Breed", "Mixed Breed", None), ("Pit Bull Terrier", "Pit Bull Terrier", None),
    ("pit bull", "Pit Bull Terrier", None), ("lab", "Labrador Retriever", None),
    ("GSD", "German Shepherd", None), ("yorkie", "Yorkshire Terrier", None),
    ("Lab mix", "Labrador Retriever", "Mixed Breed"), ("St. Bernard", "Saint Bernard", None)])
def test_correct_takes_the_shelters_words(db, said, breed, breed2):
    dogcat("correct", "A2001", "--breed", said, "--db", db)
    a = answer(db, "A2001")
    assert (a["status"], a["breed"], a["breed2"], a["source"]) == ("dog", breed, breed2, "correction")


def test_a_breed_outside_the_model_goes_to_asm3_in_the_shelters_words(db):
    dogcat("correct", "A2001", "--breed", "pit bull", "--db", db)
    dogcat("correct", "A2002", "--breed", "beagle mix", "--db", db)
    rows = {r["ANIMALCODE"]: r for r in csv.DictReader(io.StringIO(
        dogcat("export", "--db", db, "--format", "asm3", "--age", "2", "--no-images").stdout))}
    assert (rows["A2001"]["ANIMALBREED1"], rows["A2001"]["ANIMALBREED2"]) == ("Pit Bull Terrier", "Pit Bull Terrier")
    assert (rows["A2002"]["ANIMALBREED1"], rows["A2002"]["ANIMALBREED2"]) == ("Beagle", "Mixed Breed")
    assert "staff said Pit Bull Terrier" in rows["A2001"]["LOGCOMMENTS"]


def test_unknown_words_are_one_line_naming_the_nearest(db):
    result = dogcat("correct", "A2001", "--breed", "pit bul", "--db", db, code=1)
    assert result.stderr.strip().splitlines() == [
        "dogcat: error: 'pit bul': unknown breed; did you mean Pit Bull Terrier?"]


@pytest.mark.parametrize("separator", [",", ";", "\t"])
def test_correct_from_a_hand_written_csv_in_any_separator(db, tmp_path, separator):
    sheet = tmp_path / "fixes.csv"
    sheet.write_text(f"animal{separator}corrected_breed\nA2001{separator}Staffie\nA2002{separator}Lab mix\n",
                     encoding="utf-8-sig")  # a BOM, as Excel writes it
    assert "2 corrected" in dogcat("correct", "--from", sheet, "--db", db).stdout
    assert answer(db, "A2001")["breed"] == "Staffordshire Bullterrier"
    assert (answer(db, "A2002")["breed"], answer(db, "A2002")["breed2"]) == ("Labrador Retriever", "Mixed Breed")


def test_correct_from_refuses_two_rows_that_disagree(db, tmp_path):
    sheet = tmp_path / "fixes.csv"
    sheet.write_text("animal,corrected_breed\nA2001,Beagle\nA2002,Pug\nA2001,Pug\n", encoding="utf-8")
    result = dogcat("correct", "--from", sheet, "--db", db, code=1)
    assert "fixes.csv:4: A2001: says 'Pug' here but 'Beagle' on line 2" in " ".join(result.stderr.split())
    assert answer(db, "A2001")["source"] == answer(db, "A2002")["source"] == "model"  # nothing applied
    plain = tmp_path / "plain.csv"
    plain.write_text("animal;breed\nA2001;Beagle\n", encoding="utf-8")
    assert "has no corrected_breed column (its header: animal, breed" in dogcat(
        "correct", "--from", plain, "--db", db, code=1).stderr
