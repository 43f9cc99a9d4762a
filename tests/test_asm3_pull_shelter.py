"""dogcat asm3 pull against ASM3's own export, made by ASM3's own code (issue 29): a shelter's ASM3 in any of
its locales' date formats, dates of birth no animal has, and breeds changed on both sides since the last pull.

``../shared/asm3/shelter.py make`` makes the shelter (six dogs), ``edit`` is staff working in ASM3's screens,
and ``export`` is ASM3's "export animals as CSV" (its csvexport_animals). An ASM3 in another language writes its
dates as the locale its configuration names (``Locale``), which ASM3 puts on the database object at login
(src/asm3/users.py: ``dbo.locale = asm3.configuration.locale(dbo)``); :func:`export_in` does the same, then
runs shelter.py's export.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from conftest import SHARED
from conftest import shelter_py as shelter
from typer.testing import CliRunner

from dogcat.asm3.records import read_animals
from dogcat.cli import app

pytestmark = pytest.mark.slow  # ASM3's own code: a few seconds per export

runner = CliRunner()
ASM3 = SHARED / "asm3"
# A locale of each date format ASM3's locales use (src/asm3/i18n.py, locale_maps): en MM/DD/YYYY, en_GB
# DD/MM/YYYY, de DD.MM.YYYY, nl DD-MM-YYYY, en_JP YYYY/MM/DD, hu YYYY.MM.DD, sv YYYY-MM-DD.
LOCALES = {"en": "06/15/2023", "en_GB": "15/06/2023", "de": "15.06.2023", "nl": "15-06-2023",
           "en_JP": "2023/06/15", "hu": "2023.06.15", "sv": "2023-06-15"}
EXPORT_IN = """
import sys
sys.path.insert(0, sys.argv[1])
import shelter, import_check
sys.path.insert(0, import_check.SRC)
import asm3.configuration
folder, locale = sys.argv[2], sys.argv[3]
opened = shelter.dbo_for
def dbo_for(folder):
    dbo = opened(folder)
    asm3.configuration.cset(dbo, "Locale", locale)
    dbo.locale = asm3.configuration.locale(dbo)  # what ASM3's login does (users.py)
    return dbo
shelter.dbo_for = dbo_for
sys.stdout = sys.stderr  # ASM3 prints on stdout
shelter.export(folder)
"""




def export_in(folder: Path, locale: str) -> Path:
    """ASM3's own animal export of the shelter in ``folder``, as an ASM3 set to ``locale`` writes it."""
    done = subprocess.run([sys.executable, "-c", EXPORT_IN, str(ASM3), str(folder), locale], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return folder / "asm3-animals.csv"


def dogcat(*args, code: int = 0):
    result = runner.invoke(app, [*map(str, args)])
    assert result.exit_code == code, result.output
    return result


@pytest.fixture(scope="module")
def six_dogs(tmp_path_factory) -> tuple[Path, dict[str, date]]:
    """shelter.py's shelter, made once, and its dogs' dates of birth as ASM3 holds them."""
    folder = tmp_path_factory.mktemp("asm3")
    shelter("make", folder)
    held = {a["code"]: date.fromisoformat(a["dob"]) for a in shelter("show", folder)["per_animal"]}
    return folder, held


@pytest.mark.parametrize("locale", LOCALES)
def test_every_date_format_asm3_writes_is_read(six_dogs, tmp_path, locale):
    made, held = six_dogs
    folder = tmp_path / "asm3"
    shutil.copytree(made, folder)
    export = export_in(folder, locale)
    assert f'"{LOCALES[locale]}"' in export.read_text(encoding="utf-8")  # Bella's, as this locale writes it
    assert {a.code: a.dob for a in read_animals(export)} == held
    # The command line: the first pull of a new shelter, no option needed.
    done = json.loads(dogcat("asm3", "pull", export, "--db", tmp_path / "shelter.db", "--json").stdout)
    assert done["only_in_asm3"] == list(held)


def test_a_day_first_file_is_never_read_month_first(tmp_path):
    """A British ASM3 whose dogs were all born on a day of 12 or less: read day first, or refused naming the
    option, never with day and month swapped (the export's own dates, today's, may tell the order)."""
    folder = tmp_path / "asm3"
    dogs = tmp_path / "dogs.json"
    dogs.write_text(json.dumps([
        {"code": "A2001", "name": "Rex", "dob": "2021-03-01", "sex": "Male", "breed1": "Beagle"},
        {"code": "A2002", "name": "Bella", "dob": "2023-06-02", "sex": "Female", "breed1": "Pug"}]),
        encoding="utf-8")
    shelter("make", folder, "--animals", dogs)
    export = export_in(folder, "en_GB")
    assert '"01/03/2021"' in export.read_text(encoding="utf-8")
    want = {"A2001": date(2021, 3, 1), "A2002": date(2023, 6, 2)}
    try:
        got = {a.code: a.dob for a in read_animals(export)}
    except ValueError as e:  # no date in the file tells the order (today's day is 12 or less)
        assert "--day-first" in str(e) and "--month-first" in str(e), e
    else:
        assert got == want
    assert {a.code: a.dob for a in read_animals(export, day_first=True)} == want
    result = dogcat("asm3", "pull", export, "--db", tmp_path / "shelter.db", "--day-first")
    assert "0 animals matched" in result.stdout


@pytest.mark.parametrize("dob, locale, shown", [("2999-01-05", "en", "01/05/2999"), ("2999-01-05", "de", "05.01.2999"),
                                                ("0001-01-05", "de", "05.01.1")])
def test_a_date_of_birth_no_animal_has_is_refused_naming_its_line(six_dogs, tmp_path, dob, locale, shown):
    made, _ = six_dogs
    folder = tmp_path / "asm3"
    shutil.copytree(made, folder)
    shelter("edit", folder, "A1003", "dob", dob)
    export = export_in(folder, locale)
    result = dogcat("asm3", "pull", export, "--db", tmp_path / "shelter.db", code=1)
    assert "asm3-animals.csv, line 6: ANIMALDOB of A1003" in result.stderr and shown in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "shelter.db").exists()


def test_who_changed_a_breed_last_wins_and_both_is_a_conflict(six_dogs, crops, tmp_path):
    made, _ = six_dogs
    asm3, db = tmp_path / "asm3", tmp_path / "shelter.db"
    shutil.copytree(made, asm3)
    for folder, breed in (("A1002 Bella", "n02088364-beagle"), ("A1003_Daisy", "n02088364-beagle")):
        (tmp_path / "intake" / folder).mkdir(parents=True)
        shutil.copy(sorted((crops / breed).glob("*.jpg"))[0], tmp_path / "intake" / folder)
    dogcat("catalog", tmp_path / "intake", "--db", db, "--quiet")
    export = asm3 / "asm3-animals.csv"

    def pull() -> dict:
        return json.loads(dogcat("asm3", "pull", export, "--db", db, "--json").stdout)

    def breed(code: str) -> tuple[str, str | None, str]:
        found = {a["animal"]: a for a in map(json.loads, dogcat("animals", "--db", db, "--json").stdout.splitlines())}
        return found[code]["breed"], found[code]["breed2"], found[code]["corrected_by"]

    assert pull()["corrected"] == ["A1002", "A1003"]  # ASM3's breeds: Mixed Breed, Beagle
    # Both sides change Bella's breed: staff in dogcat say Beagle, staff in ASM3 Labrador Retriever (a mix).
    dogcat("correct", "A1002", "--breed", "beagle", "--by", "alice", "--db", db)
    shelter("edit", asm3, "A1002", "breed1", "Labrador Retriever")
    # Only dogcat changes Daisy's (Pug); then a pull; then only ASM3 changes it (Basset Hound): ASM3 said it last.
    dogcat("correct", "A1003", "--breed", "pug", "--by", "bob", "--db", db)
    assert pull()["corrected"] == []
    assert breed("A1003") == ("Pug", None, "bob")
    conflicted = pull()
    (conflict,) = conflicted["conflicts"]
    assert (conflict["code"], conflict["asm3"], conflict["dogcat"], conflict["by"]) == (
        "A1002", "Labrador Retriever / Mixed Breed", "Beagle (staff)", "alice")
    assert conflict["at"] and conflict["asm3_changed_since"]
    assert breed("A1002") == ("Beagle", None, "alice")  # neither changed
    shelter("edit", asm3, "A1003", "breed1", "Basset Hound")
    text = " ".join(dogcat("asm3", "pull", export, "--db", db).output.split())
    assert "conflict: A1002: ASM3 says Labrador Retriever / Mixed Breed (changed since the pull of" in text
    assert "dogcat says Beagle (staff) (alice," in text
    assert breed("A1003") == ("Basset", "Beagle", "ASM3")  # ASM3 keeps breed2: a crossbreed now
    assert "A1003: breed Pug (staff) -> Basset Hound / Beagle" in text
    # The two agree once ASM3 says Beagle too: no conflict, nothing to take.
    shelter("edit", asm3, "A1002", "breed1", "Beagle")
    shelter("edit", asm3, "A1002", "breed2", "Beagle")
    agreed = pull()
    assert (agreed["conflicts"], agreed["corrected"]) == ([], [])
    assert breed("A1002") == ("Beagle", None, "alice")
