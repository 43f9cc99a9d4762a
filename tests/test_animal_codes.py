"""Issue 23, living with the shelter's records: animal codes and names read from intake folder names (A1023-Rex),
a previous release's catalog upgraded to them, staff corrections that follow an animal's photos through merges,
moves and regroupings, animals retired once their photos are gone, and outputs that never overwrite the catalog.
Real photos, the real models, real SQLite files."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dogcat import animals, catalog, db, naming, readmodel
from dogcat.status import Judge
from tests.test_animals import answers_of, invoke

runner = CliRunner()
DATA = Path(__file__).with_name("data")
BEAGLE, GOLDEN, PUG = "n02088364-beagle", "n02099601-golden_retriever", "n02110958-pug"


def photos(crops: Path, label: str, n: int, start: int = 0) -> list[Path]:
    return sorted((crops / label).glob("*.jpg"))[start:start + n]


def put(crops: Path, folder: Path, label: str, n: int, start: int = 0):
    folder.mkdir(parents=True, exist_ok=True)
    for p in photos(crops, label, n, start):
        shutil.copy(p, folder / p.name)


def rows(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as con:
        return con.execute(sql).fetchall()


@pytest.fixture(scope="module")
def judge(model_path):
    return Judge.load(model_path)


# --- codes and names from folder names ------------------------------------------------------------------------

@pytest.mark.parametrize("folder,split", [
    ("A1023-Rex", ("A1023", "Rex")), ("A1023 Rex", ("A1023", "Rex")), ("A1023_Rex", ("A1023", "Rex")),
    ("A1023 - Big Rex", ("A1023", "Big Rex")), ("23-Pip", ("23", "Pip")), ("A1023", None), ("Max", None),
    ("Big-Max", None), ("A1023-", None),
    ("2024-06-01", None), ("2024_06_02", None)])
def test_folder_names_split_into_code_and_name(folder, split):
    assert naming.split_folder(folder) == split


def test_a_shelters_own_folder_scheme():
    scheme = re.compile(r"(?P<name>.+) \((?P<code>A\d+)\)")
    assert naming.split_folder("Rex (A1023)", scheme) == ("A1023", "Rex")
    assert naming.split_folder("A1023-Rex", scheme) is None  # the scheme given replaces the default
    assert naming.split_folder("x A9", re.compile(r"(?P<code>A\d+)")) == ("A9", "A9")  # no name group: the code


def test_codes_from_folder_names_survive_a_renamed_folder(crops, tmp_path):
    intake = tmp_path / "intake"
    put(crops, intake / "A1023-Rex", BEAGLE, 2)
    put(crops, intake / "late" / "A1023_Rex", BEAGLE, 1, start=2)  # a second folder, one code: one animal
    put(crops, intake / "A1024 Bella", GOLDEN, 1)
    put(crops, intake / "Max", PUG, 1)
    shutil.copy(photos(crops, PUG, 1, start=1)[0], intake / "IMG_0042.jpg")
    shelter = tmp_path / "shelter.db"
    invoke("catalog", str(intake), "--db", str(shelter), "-q")
    found = answers_of(shelter)
    assert sorted(found) == ["A1023", "A1024", "IMG_0042", "Max"]
    assert [(found[c].name, len(found[c].photos)) for c in sorted(found)] == [
        ("Rex", 3), ("Bella", 1), ("IMG 0042", 1), ("Max", 1)]  # a loose photo keeps its placeholder name
    assert rows(shelter, "SELECT key FROM animals WHERE code = 'A1023'") == [("code:A1023",)]
    assert found["A1023"].label == BEAGLE
    assert "animal A1023: corrected" in invoke("correct", "A1023", "--breed", "basset", "--db", str(shelter)).stdout

    (intake / "A1023-Rex").rename(intake / "A1023 Rex")  # staff tidy the folder names
    invoke("catalog", str(intake), "--db", str(shelter), "-q")
    found = answers_of(shelter)
    assert sorted(found) == ["A1023", "A1024", "IMG_0042", "Max"]
    rex = found["A1023"]
    assert len(rex.photos) == 5 and sum("/A1023 Rex/" in p["path"] for p in rex.photos) == 2
    assert (rex.source, rex.breed) == ("correction", "Basset")

    # Prune: the renamed folder's old paths are gone but Rex still has photos on disk; Bella's are all gone.
    shutil.rmtree(intake / "A1024 Bella")
    engine = db.connect(str(shelter), create=False)
    try:
        with db.reading(engine) as conn:
            assert list(readmodel.gone(conn)) == ["A1024"]
    finally:
        engine.dispose()
    dry = invoke("animals", "prune", "--dry-run", "--db", str(shelter)).stdout
    assert "would retire A1024: its 1 photo is gone from disk" in " ".join(dry.split())
    assert rows(shelter, "SELECT COUNT(*) FROM animals WHERE retired_at IS NOT NULL") == [(0,)]
    invoke("correct", "A1024", "--breed", "golden retriever", "--db", str(shelter))
    assert "retired A1024" in invoke("animals", "prune", "--db", str(shelter)).stdout
    assert "A1024" not in answers_of(shelter)
    listed = [json.loads(line)["animal"] for line in
              invoke("animals", "--db", str(shelter), "--json").stdout.splitlines()]
    exported = [json.loads(line)["animal"] for line in
                invoke("export", "--db", str(shelter), "--per", "animal", "--format", "jsonl").stdout.splitlines()]
    assert listed == exported == ["A1023", "IMG_0042", "Max"]
    # Retired, not forgotten: its files, correction and history stay.
    assert rows(shelter, "SELECT COUNT(*) FROM animal_files WHERE animal = 'A1024'") == [(1,)]
    assert rows(shelter, "SELECT COUNT(*) FROM corrections WHERE target = 'A1024'") == [(1,)]
    assert "0 animals retired" in invoke("animals", "prune", "--db", str(shelter)).stderr
    engine = db.connect(str(shelter), create=False)
    try:
        with db.reading(engine) as conn:
            assert list(readmodel.gone(conn)) == []
    finally:
        engine.dispose()


def test_folder_pattern_and_bad_ones(crops, tmp_path):
    intake = tmp_path / "intake"
    put(crops, intake / "Rex (A2001)", BEAGLE, 1)
    put(crops, intake / "Pip", PUG, 1)
    shelter = tmp_path / "shelter.db"
    for bad, why in ((["--folder-pattern", "A(("], "not a valid regular expression"),
                     (["--folder-pattern", "(?P<name>.+)"], "has no group named 'code'"),
                     (["--folder-pattern", "(?P<code>A\\d+)", "--animals", "none"], "goes with --animals folder")):
        result = invoke("catalog", str(intake), "--db", str(shelter), "-q", *bad, ok=False)
        assert result.exit_code == 2 and why in " ".join(result.stderr.split()), result.output
        assert not shelter.exists()  # refused before the database is even created
    invoke("catalog", str(intake), "--db", str(shelter), "-q", "--folder-pattern", r"(?P<name>.+) \((?P<code>A\d+)\)")
    found = answers_of(shelter)
    assert sorted(found) == ["A2001", "Pip"] and found["A2001"].name == "Rex"


# --- a catalog made by the previous release ------------------------------------------------------------------

def test_a_schema_3_catalog_gets_codes_and_keeps_its_corrections(tmp_path):
    """tests/data/catalog-v3.db: made by dogcat at 45494ef (schema 3) from folders A1023-Rex/ (2 beagles),
    more/A1023_Rex/ (1 beagle), 'A1024 Bella'/ and Max/; `correct A1023-Rex --breed beagle --by alice` and
    `correct A1023_Rex --breed basset --by bob`."""
    old = tmp_path / "v3.db"
    shutil.copy(DATA / "catalog-v3.db", old)
    assert rows(old, "SELECT MAX(version) FROM schema_version") == [(3,)]
    files_before = rows(old, "SELECT path FROM animal_files ORDER BY path")
    found = answers_of_upgraded(old)
    assert sorted(found) == ["A1023", "A1024", "Max"]
    rex = found["A1023"]
    assert (rex.name, len(rex.photos), rex.source, rex.label, rex.correction.by) == ("Rex", 3, "correction", BEAGLE,
                                                                                    "alice")
    assert (found["A1024"].name, found["Max"].name) == ("Bella", "Max")
    assert rows(old, "SELECT code, key, merged_into FROM animals ORDER BY code") == [
        ("A1023", "code:A1023", None), ("A1023_Rex", "folder:/tmp/v3intake/more/A1023_Rex", "A1023"),
        ("A1024", "code:A1024", None), ("Max", "folder:/tmp/v3intake/Max", None)]
    assert rows(old, "SELECT path FROM animal_files ORDER BY path") == files_before  # every file kept
    # Both corrections kept: Rex's own is in force; the second folder's stays in its history (merged).
    assert rows(old, "SELECT target, label, corrected_by FROM corrections ORDER BY id") == [
        ("A1023", BEAGLE, "alice"), ("A1023_Rex", "n02088238-basset", "bob")]
    shelter = str(old)
    assert "animal A1023: corrected" in invoke("correct", "A1023", "--breed", "pug", "--db", shelter).stdout
    assert answers_of(old)["A1023"].label == PUG


def answers_of_upgraded(path: Path) -> dict[str, readmodel.Answer]:
    engine = db.connect(str(path))  # upgrades
    engine.dispose()
    return answers_of(path)


def test_the_upgrade_does_not_take_a_code_in_use(tmp_path):
    """An animal that already has the code (a folder named just A1023) keeps it; Rex gets the next free one."""
    old = tmp_path / "v3.db"
    shutil.copy(DATA / "catalog-v3.db", old)
    with sqlite3.connect(old) as con:
        con.execute("UPDATE animals SET code = 'a1023', key = 'folder:/tmp/v3intake/a1023' WHERE code = 'Max'")
        con.execute("UPDATE animal_files SET animal = 'a1023' WHERE animal = 'Max'")
    found = answers_of_upgraded(old)
    assert set(found) == {"a1023", "A1023-2", "A1024"}
    assert (found["A1023-2"].name, found["A1023-2"].correction.by, found["a1023"].label) == ("Rex", "alice", PUG)


# --- staff's word follows the animal --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shelter(crops, judge, tmp_path_factory) -> tuple[Path, Path]:
    """(intake, catalog): A1023-Rex (2 beagles), A1024-Bella (2 goldens), and a pug photo lying loose."""
    intake = tmp_path_factory.mktemp("follow") / "intake"
    put(crops, intake / "A1023-Rex", BEAGLE, 2)
    put(crops, intake / "A1024-Bella", GOLDEN, 2)
    put(crops, intake, PUG, 1)
    path = tmp_path_factory.mktemp("db") / "shelter.db"
    engine = db.connect(str(path))
    try:
        catalog.run(engine, [intake], judge)
    finally:
        engine.dispose()
    return intake, path


@pytest.fixture
def copy(shelter, tmp_path) -> tuple[Path, str]:
    intake, path = shelter
    out = tmp_path / "shelter.db"
    shutil.copy(path, out)
    invoke("correct", "A1023", "--breed", "beagle", "--breed2", "labrador", "--by", "alice", "--db", str(out))
    return intake, str(out)


def staff_beagle_mix(a: readmodel.Answer):
    assert (a.source, a.status, a.mix, a.correction.by, a.to_dict()["source"]) == (
        "correction", "dog", ("Beagle", "Labrador Retriever"), "alice", "correction"), a.to_dict()


def test_a_correction_survives_a_merge(copy):
    _, shelter = copy
    pug = next(code for code in answers_of(Path(shelter)) if code.startswith("n02110958"))
    invoke("correct", "A1024", "--breed", "golden retriever", "--by", "bob", "--db", shelter)
    invoke("animals", "merge", "A1023", "A1024", "--db", shelter)  # the target's own correction wins
    found = answers_of(Path(shelter))
    assert "A1024" not in found and len(found["A1023"].photos) == 4
    staff_beagle_mix(found["A1023"])
    assert ("A1024", "bob") in rows(Path(shelter), "SELECT target, corrected_by FROM corrections")  # its history

    invoke("animals", "merge", pug, "A1023", "--db", shelter)  # the target has none: the merged one's applies
    found = answers_of(Path(shelter))
    staff_beagle_mix(found[pug])
    assert len(found[pug].photos) == 5 and "A1023" not in found
    assert rows(Path(shelter), f"SELECT note, corrected_at = (SELECT corrected_at FROM corrections WHERE "
                               f"target = 'A1023') FROM corrections WHERE target = '{pug}'") == [
        ("from A1023 (merged)", 1)]
    engine = db.connect(shelter, create=False)
    try:
        records = list(readmodel.records(engine))
    finally:
        engine.dispose()
    assert all(r["source"] == "correction" for r in records)


def test_a_correction_survives_moves(copy):
    intake, shelter = copy
    rex = sorted(str(p) for p in (intake / "A1023-Rex").iterdir())
    pug = str(next(intake.glob("*.jpg")))
    invoke("animals", "move", rex[0], "A1024", "--db", shelter)  # out: Rex keeps his correction
    found = answers_of(Path(shelter))
    staff_beagle_mix(found["A1023"])
    assert found["A1024"].source == "model" and len(found["A1024"].photos) == 3
    invoke("animals", "move", pug, "A1023", "--db", shelter)  # in: the photo gets Rex's
    found = answers_of(Path(shelter))
    staff_beagle_mix(found["A1023"])
    engine = db.connect(shelter, create=False)
    try:
        by_path = {r["path"]: r for r in readmodel.records(engine)}
    finally:
        engine.dispose()
    assert (by_path[pug]["source"], by_path[pug]["breed"]) == ("correction", "Beagle / Labrador Retriever")
    assert by_path[rex[0]]["source"] == "model"
    invoke("animals", "move", rex[1], "A1024", "--db", shelter)
    invoke("animals", "move", pug, "A1024", "--db", shelter)  # emptied by staff: Rex keeps his correction
    found = answers_of(Path(shelter))
    assert found["A1023"].photos == [] and found["A1024"].source == "model"
    staff_beagle_mix(found["A1023"])


@pytest.mark.parametrize("regroup", [["--animals", "none"], ["--animals", "pattern", "--pattern", r"^(n\d+)_"]])
def test_a_correction_follows_the_photos_through_a_regrouping(copy, regroup):
    intake, shelter = copy
    invoke("catalog", str(intake), "--db", shelter, "-q", *regroup)
    found = answers_of(Path(shelter))
    rex_photos = {str(p) for p in (intake / "A1023-Rex").iterdir()}
    holding = [a for a in found.values() if {p["path"] for p in a.photos} & rex_photos]
    assert holding and "A1023" not in [a.animal for a in holding]
    assert len(holding) == (2 if regroup[1] == "none" else 1)
    for a in holding:  # every animal Rex's photos went to answers as staff said
        staff_beagle_mix(a)
        assert rows(Path(shelter), f"SELECT note FROM corrections WHERE target = '{a.animal}'") == [
            ("from A1023 (regrouped)",)]
    bella = [a for a in found.values() if any("/A1024-Bella/" in p["path"] for p in a.photos)]
    assert bella and all(a.source == "model" for a in bella)
    assert found["A1023"].photos == []  # emptied: kept with its history (and its code taken)

    invoke("catalog", str(intake), "--db", shelter, "-q", "--animals", "folder")  # and back
    found = answers_of(Path(shelter))
    assert {p["path"] for p in found["A1023"].photos} == rex_photos
    staff_beagle_mix(found["A1023"])


# --- an output never overwrites the catalog -------------------------------------------------------------------

def test_no_output_names_the_catalog(shelter, tmp_path):
    _, path = shelter
    target = tmp_path / "shelter.db"
    shutil.copy(path, target)
    before = target.read_bytes()
    for args in (["export", "-o", str(target)], ["export", "--format", "jsonl", "-o", f"{target}-wal"],
                 ["report", "-q", "--output", f"{target}-shm"], ["report", "-q", "-o", str(target)]):
        result = invoke(*args, "--db", str(target), ok=False)
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "is the catalog's own database file" in lines[0], result.stderr
    assert target.read_bytes() == before
    assert not Path(f"{target}-shm").exists() or Path(f"{target}-shm").stat().st_size == 0
    ok = tmp_path / "shelter.csv"
    invoke("export", "--db", str(target), "-o", str(ok))
    assert ok.read_text().startswith("path,")


def test_grouping_module_refuses_a_folder_pattern_without_code():
    with pytest.raises(animals.GroupingError, match="no group named 'code'"):
        animals.Grouping.parse(None, folder_pattern="(?P<name>.+)")
