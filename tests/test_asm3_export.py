"""A shelter's ordinary week on the export side (issue 29), measured with ASM3's own import: one dog is one ASM3
animal whatever staff regroup, a loose photo is no animal, two exports at once send each thing once, --all never
writes what staff own, forget takes back only what its file alone sent, a kill at any step leaves a file and a
record that agree, and a correction ASM3's import cannot take is handed to a person.

``../shared/asm3/shelter.py`` is the shelter (six dogs A1001..A1006 staff entered; ASM3's own export and import).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import SHARED, hold_write_lock, needs_env, needs_shared, new_postgres_database
from conftest import shelter_py as shelter
from typer.testing import CliRunner

from dogcat import db
from dogcat.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
CROPS = SHARED / "data" / "stanford-dogs-crops-224"
BEAGLE, SPRINGER = "n02088364-beagle", "n02102040-English_springer"
CHIHUAHUA, SHEPHERD = "n02085620-Chihuahua", "n02106662-German_shepherd"
STOP_ENV = "DOGCAT_TEST_ASM3_STOP"
STEPS = ("planned", "begun", "half-written", "written", "placed", "finished")
SUMMARY = re.compile(r"(\d+) animals \((\d+) new to ASM3\), (\d+) photos, (\d+) log entries; recorded as ASM3 "
                     r"file (\d+)")




def dogcat(*args, ok: bool = True):
    result = runner.invoke(app, [*map(str, args)])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def dogcat_process(*args, env: dict | None = None, **popen) -> subprocess.Popen:
    """The command line in a process of its own (to run two at once, or to be killed)."""
    return subprocess.Popen([sys.executable, "-m", "dogcat", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, **popen)


def photos(folder: Path, breed: str, n: int, skip: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for source in sorted((needs_shared(CROPS, "Stanford Dogs") / breed).glob("*.jpg"))[skip:skip + n]:
        out.append(Path(shutil.copy(source, folder / source.name)))
    return out


def per_animal(state: dict) -> dict[str, dict]:
    return {a["code"]: a for a in state["per_animal"]}


def dogcat_logs(animal: dict) -> list[str]:
    return [log for log in animal["logs"] if "dogcat:" in log]


def files(db_path) -> list[dict]:
    return [json.loads(line) for line in dogcat("asm3", "files", "--db", db_path, "--json").stdout.splitlines()]


def no_temporary_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# --- items 3, 4, 13: one dog is one ASM3 animal; a loose photo is no animal; ASM3's spelling; files' counts ----

@pytest.mark.slow
def test_a_loose_photo_is_no_asm3_animal(tmp_path):
    asm3, intake, shelter_db = tmp_path / "asm3", tmp_path / "intake", tmp_path / "shelter.db"
    shelter("make", asm3)
    photos(intake / "A1002 Bella", BEAGLE, 2)
    photos(intake / "Rex", SPRINGER, 2)  # a folder with no code: a dog ASM3 does not have yet
    photos(intake / "Pip", CHIHUAHUA, 1)
    loose = photos(intake, CHIHUAHUA, 1, skip=5)[0].rename(intake / "IMG_0042.jpg")
    dogcat("catalog", intake, "--db", shelter_db, "--quiet")
    dogcat("asm3", "pull", asm3 / "asm3-animals.csv", "--db", shelter_db)
    first = tmp_path / "asm3-import-1.csv"
    said = dogcat("export", "--db", shelter_db, "--format", "asm3", "--age", "2", "-o", first).stderr
    said = " ".join(said.split())
    # The loose photo is listed as not sent, and why; never an animal of its own in ASM3.
    assert f"not sent: {loose}: no animal: put it in a folder or `dogcat animals move`" in said, said
    imported = shelter("import", asm3, first)
    assert imported["errors"] == [] and sorted(imported["new_animals"]) == ["Pip", "Rex"], imported
    animals = per_animal(imported)
    assert "IMG_0042" not in animals and len(animals) == 8
    # The log entry spells the breed as ASM3's breed list does.
    [logged] = dogcat_logs(animals["Rex"])
    assert "English Springer Spaniel" in logged and not re.search(r"English Springer(?! Spaniel)", logged), logged
    # asm3 files counts what the export said it wrote.
    n_animals, n_new, n_photos, n_logs, file_id = map(int, SUMMARY.search(said).groups())  # type: ignore[union-attr]
    [recorded] = files(shelter_db)
    assert (recorded["id"], recorded["animals"], recorded["new_animals"], recorded["photos"], recorded["logs"]) == (
        file_id, n_animals, n_new, n_photos, n_logs) == (file_id, 3, 2, 5, 2), recorded  # Bella: ASM3's breed, no log
    assert imported["rows"] == 5  # a row per photo: each animal's first carries its log entry


@pytest.mark.slow
def test_a_photo_asm3_has_is_never_sent_under_another_animal(tmp_path):
    asm3, intake, shelter_db = tmp_path / "asm3", tmp_path / "intake", tmp_path / "shelter.db"
    shelter("make", asm3)
    bella = photos(intake / "A1002 Bella", BEAGLE, 2)
    photos(intake / "Rex", SPRINGER, 2)  # folders with no code: dogs ASM3 does not have yet
    photos(intake / "Pip", CHIHUAHUA, 1)
    dogcat("catalog", intake, "--db", shelter_db, "--quiet")
    dogcat("asm3", "pull", asm3 / "asm3-animals.csv", "--db", shelter_db)
    first = tmp_path / "asm3-import-1.csv"
    dogcat("export", "--db", shelter_db, "--format", "asm3", "--age", "2", "-o", first)
    assert sorted(shelter("import", asm3, first)["new_animals"]) == ["Pip", "Rex"]

    # Staff regroup: Pip was Rex all along (merge), one of Bella's photos is Rex's (move), and a volunteer
    # renames Rex's folder. No photo ASM3 has goes to it again, under any animal, and no second Rex is made.
    dogcat("animals", "merge", "Rex", "Pip", "--db", shelter_db)
    dogcat("animals", "move", bella[0], "Rex", "--db", shelter_db)
    (intake / "Rex").rename(intake / "Rexy")
    dogcat("catalog", intake, "--db", shelter_db, "--quiet")
    second = tmp_path / "asm3-import-2.csv"
    dogcat("export", "--db", shelter_db, "--format", "asm3", "--age", "2", "-o", second)
    if second.exists():
        again = shelter("import", asm3, second)
        assert again["new_animals"] == [] and again["errors"] == [], again
        assert not any("media" in fields for fields in again["changed"].values()), again["changed"]
    now = per_animal(shelter("show", asm3))
    assert len(now) == 8 and sum(a["media"] for a in now.values()) == 5  # the five photos, each once
    assert (now["A1002"]["media"], now["Rex"]["media"], now["Pip"]["media"]) == (2, 2, 1)


# --- item 5: two exports at once -----------------------------------------------------------------------------

def hold_postgres(url: str, seconds: float) -> threading.Thread:
    """A PostgreSQL session holding asm3_files locked, so that two exports start while it is held."""
    from sqlalchemy import create_engine, text

    ready = threading.Event()
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))

    def hold():
        with engine.connect() as conn, conn.begin():
            conn.execute(text("LOCK TABLE asm3_files IN ACCESS EXCLUSIVE MODE"))
            ready.set()
            time.sleep(seconds)
        engine.dispose()

    thread = threading.Thread(target=hold)
    thread.start()
    ready.wait()
    return thread


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "shelter.db")
    return request.getfixturevalue("postgres")


@pytest.fixture
def postgres():
    """A new, empty database on the test server (as tests/test_postgres.py makes them), dropped afterwards."""
    with new_postgres_database(needs_env("DOGCAT_TEST_POSTGRES",
                                         "no PostgreSQL server to test against (. .ci/services.sh)")) as url:
        yield url


@pytest.mark.slow
def test_two_exports_at_once_send_each_thing_once(catalog_url, tmp_path):
    asm3, intake = tmp_path / "asm3", tmp_path / "intake"
    shelter("make", asm3)
    on_disk = {"A1001": len(photos(intake / "A1001-Rex", SHEPHERD, 2)),
               "A1007": len(photos(intake / "A1007-Pip", CHIHUAHUA, 2))}
    dogcat("catalog", intake, "--db", catalog_url, "--quiet")
    dogcat("asm3", "pull", asm3 / "asm3-animals.csv", "--db", catalog_url)
    outputs = [tmp_path / "desk-a.csv", tmp_path / "desk-b.csv"]
    holder = (hold_write_lock(Path(catalog_url), threading.Event(), longest=8) if catalog_url.endswith(".db")
              else hold_postgres(catalog_url, 8))
    # Each export, once it holds the ASM3 export and has recorded its file, pauses 3 s (a big file's images):
    # the other then really finds it busy. (The code before had no pause, and no wait at all.)
    runs = [dogcat_process("export", "--db", catalog_url, "--format", "asm3", "--age", "2", "-o", out,
                           env={STOP_ENV: "begun:pause=3"}) for out in outputs]
    said = [run.communicate(timeout=300) for run in runs]
    holder.join()
    assert [run.returncode for run in runs] == [0, 0], said
    stderr = " ".join(" ".join(err.split()) for _, err in said)
    assert "another dogcat export is writing an ASM3 file; waiting for it" in stderr, stderr
    written = [out for out in outputs if out.exists()]
    assert len(written) == 1 and "nothing new for ASM3" in stderr, stderr  # the second found nothing left
    for out in written:  # importing every file written: each photo once, each answer logged once
        assert shelter("import", asm3, out)["errors"] == []
    now = per_animal(shelter("show", asm3))
    assert {code: now[code]["media"] for code in on_disk} == on_disk
    # A1001's breed is ASM3's own (a pull's correction): no answer of dogcat's to log; A1007's, once.
    assert {code: len(dogcat_logs(now[code])) for code in on_disk} == {"A1001": 0, "A1007": 1}
    assert len(files(catalog_url)) == 1


# --- item 6: --all and forget ----------------------------------------------------------------------------------

def rex_and_pip_imported(tmp_path: Path, *age: str) -> tuple[Path, Path]:
    """ASM3's six dogs (A1001 Rex among them), pulled; Rex and a new dog, Pip (A1007), catalogued, exported with
    ``age`` and imported: ASM3 made Pip. (ASM3's folder, the catalog.)"""
    asm3, intake, shelter_db = tmp_path / "asm3", tmp_path / "intake", tmp_path / "shelter.db"
    shelter("make", asm3)
    photos(intake / "A1001-Rex", SHEPHERD, 1)
    photos(intake / "A1007-Pip", CHIHUAHUA, 1)
    dogcat("catalog", intake, "--db", shelter_db, "--quiet")
    dogcat("asm3", "pull", asm3 / "asm3-animals.csv", "--db", shelter_db)
    first = tmp_path / "asm3-import-1.csv"
    dogcat("export", "--db", shelter_db, "--format", "asm3", *age, "-o", first)
    assert shelter("import", asm3, first)["new_animals"] == ["A1007"]
    return asm3, shelter_db


@pytest.mark.slow
def test_all_never_writes_what_staff_own(tmp_path):
    asm3, shelter_db = rex_and_pip_imported(tmp_path, "--dob", "2024-05-01")
    # Staff correct dates of birth in ASM3 (after the last pull): both are theirs now.
    shelter("edit", asm3, "A1001", "dob", "2020-02-02")
    shelter("edit", asm3, "A1007", "dob", "2024-03-03")
    staff = per_animal(shelter("show", asm3))

    everything = tmp_path / "asm3-all.csv"
    dogcat("export", "--db", shelter_db, "--format", "asm3", "--all", "--dob", "2024-05-01", "-o", everything)
    text = everything.read_text(encoding="utf-8")
    assert "2024-05-01" not in text and "2021-03-01" not in text  # no ANIMALDOB at all, for either animal
    again = shelter("import", asm3, everything)
    assert again["errors"] == [] and again["new_animals"] == [], again
    after = per_animal(again)
    for code in ("A1001", "A1007"):
        fields = ("name", "dob", "sex", "breed1", "breed2", "comments", "hidden")
        assert {f: after[code][f] for f in fields} == {f: staff[code][f] for f in fields}, code
        assert set(again["changed"].get(code, {})) <= {"media", "logs_added"}, again["changed"]  # dogcat's own



@pytest.mark.slow
def test_forget_takes_back_only_what_its_file_alone_sent(tmp_path):
    asm3, shelter_db = rex_and_pip_imported(tmp_path, "--age", "2")
    everything = tmp_path / "asm3-all.csv"
    dogcat("export", "--db", shelter_db, "--format", "asm3", "--all", "--age", "2", "-o", everything)
    # The --all file went nowhere: taken back. What the first, imported file sent stays sent: nothing to send.
    dogcat("asm3", "forget", files(shelter_db)[-1]["id"], "--db", shelter_db)
    nothing = tmp_path / "asm3-import-2.csv"
    said = dogcat("export", "--db", shelter_db, "--format", "asm3", "--age", "2", "-o", nothing).stderr
    assert not nothing.exists() and "nothing new for ASM3" in said, said
    assert [(f["photos"], bool(f["forgotten_at"])) for f in files(shelter_db)] == [(2, False), (2, True)]


# --- item 7: kill -9 at every step -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def catalogued(tmp_path_factory) -> tuple[Path, int]:
    """One catalog (a dog ASM3 has, with new photos, and one it does not), pulled from a fresh ASM3 shelter."""
    root = tmp_path_factory.mktemp("kill")
    asm3, intake, shelter_db = root / "asm3", root / "intake", root / "shelter.db"
    shelter("make", asm3)
    n = len(photos(intake / "A1001-Rex", SHEPHERD, 2)) + len(photos(intake / "A1007-Pip", CHIHUAHUA, 2))
    dogcat("catalog", intake, "--db", shelter_db, "--quiet")
    dogcat("asm3", "pull", asm3 / "asm3-animals.csv", "--db", shelter_db)
    return shelter_db, n


@pytest.mark.slow
@pytest.mark.parametrize("step", STEPS)
def test_a_kill_at_any_step_leaves_file_and_record_agreeing(step, catalogued, tmp_path):
    source_db, n_photos = catalogued
    shelter_db, out = tmp_path / "shelter.db", tmp_path / "asm3-import.csv"
    shutil.copy(source_db, shelter_db)
    killed = dogcat_process("export", "--db", shelter_db, "--format", "asm3", "--age", "2", "-o", out,
                            env={STOP_ENV: step})
    killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL, step

    # The next export settles what the killed one left: a complete file in place is recorded (nothing sent
    # again), anything else is taken back and sent now; no temporary file stays.
    complete = step in ("placed", "finished")
    assert out.exists() == complete, step
    following = tmp_path / "asm3-import-next.csv"
    said = dogcat("export", "--db", shelter_db, "--format", "asm3", "--age", "2", "-o", following).stderr
    assert no_temporary_files(tmp_path) == [], step
    assert following.exists() != complete, said
    recorded = files(shelter_db)
    live = [f for f in recorded if not f["forgotten_at"]]
    assert [Path(f["path"]).name for f in live] == [(out if complete else following).name], recorded
    assert all(f["state"] in (None, "unfinished") for f in recorded), recorded

    # What ASM3 gets from the files that exist: each photo once, each new animal once.
    asm3 = tmp_path / "asm3"
    shelter("make", asm3)
    for written in (out, following):
        if written.exists():
            assert shelter("import", asm3, written)["errors"] == []
    now = per_animal(shelter("show", asm3))
    assert sum(a["media"] for a in now.values()) == n_photos and len(now) == 7


# --- item 9: a correction ASM3's import cannot take ------------------------------------------------------------

@pytest.mark.slow
def test_a_correction_asm3_cannot_take_is_handed_to_a_person(tmp_path):
    asm3, intake, shelter_db = tmp_path / "asm3", tmp_path / "intake", tmp_path / "shelter.db"
    shelter("make", asm3)
    photos(intake / "A1007-Pip", CHIHUAHUA, 2)
    dogcat("catalog", intake, "--db", shelter_db, "--quiet")
    dogcat("asm3", "pull", asm3 / "asm3-animals.csv", "--db", shelter_db)
    first = tmp_path / "asm3-import-1.csv"
    dogcat("export", "--db", shelter_db, "--format", "asm3", "--age", "2", "-o", first)
    guess = per_animal(shelter("import", asm3, first))["A1007"]["breed1"]
    assert guess == "Chihuahua"

    dogcat("correct", "A1007", "--breed", "Miniature Pinscher", "--by", "alice", "--db", shelter_db)
    second = tmp_path / "asm3-import-2.csv"
    said = " ".join(dogcat("export", "--db", shelter_db, "--format", "asm3", "--age", "2", "-o", second)
                    .stderr.split())
    listed = ("A1007: ASM3 still says Chihuahua (dogcat's guess, sent before); staff said Miniature Pinscher "
              "(alice, ")
    where = "in ASM3 open animal A1007, Details, Breed, and set Miniature Pinscher"
    assert listed in said and where in said, said
    # ASM3's own import does not change the breed: the file's log entry alone would leave adopters the guess.
    assert per_animal(shelter("import", asm3, second))["A1007"]["breed1"] == "Chihuahua"
    shown = " ".join(dogcat("asm3", "files", "--db", shelter_db).stdout.split())
    assert listed in shown and where in shown, shown
    [handed] = [f["hand_off"] for f in files(shelter_db) if "hand_off" in f]
    assert (handed["animal"], handed["in_asm3"], handed["staff"]) == ("A1007", "Chihuahua", "Miniature Pinscher")

    # A person changes it in ASM3; once a pull shows ASM3 took the staff's word, nothing is left to hand over.
    shelter("edit", asm3, "A1007", "breed1", "Miniature Pinscher")
    shelter("edit", asm3, "A1007", "breed2", "Miniature Pinscher")
    shelter("export", asm3)
    dogcat("asm3", "pull", asm3 / "asm3-animals.csv", "--db", shelter_db)
    assert not [f for f in files(shelter_db) if "hand_off" in f]
    assert "ASM3 still says" not in dogcat("asm3", "files", "--db", shelter_db).stdout


# --- item 13: forget's one-line error --------------------------------------------------------------------------

@pytest.mark.parametrize("file_id", ["99999999999999999999", "0", "-1", "7"])
def test_forget_of_no_such_file_is_one_line(file_id, tmp_path):
    shelter_db = tmp_path / "shelter.db"
    db.connect(str(shelter_db)).dispose()
    result = dogcat("asm3", "forget", "--db", shelter_db, "--", file_id, ok=False)
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().count("\n") == 0 and "no such ASM3 file" in result.stderr, result.stderr
    assert "Overflow" not in result.output and "Traceback" not in result.output
