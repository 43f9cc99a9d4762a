"""Hostile and careless input, round two (issue 20): a pattern that never ends, a big spreadsheet against other
writers, conflicting rows, a password in --db, control characters in names, another program's database, a
catalog on read-only media, and counting what was named twice.

Most catalogs here are written directly (rows, no photos, no model), so that each test is quick; the counting test
runs the real catalog."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import typer
from sqlalchemy import event, insert
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from dogcat import corrections, db, naming, pathkeys
from dogcat.cli import app
from dogcat.shell import failures
from tests.conftest import hold_write_lock, missing
from tests.test_catalog import _as_anyone

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
CONTROLS = ("\x1b", "\u202e", "\x07", "\r")


def dogcat(*args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """The command line in a child process (the tests that can hang, or that need their own process)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "dogcat", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, **kwargs)


def make_catalog(path: Path, folders: list[str]) -> list[str]:
    """A catalog with one animal per folder name (code A0, A1 ...; named as the folder), each with one photo
    /intake/FOLDER/1.jpg; returns the photos' SHA-256."""
    engine = db.connect(str(path))
    now = db.now()
    shas = [hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest() for name in folders]
    keys = [pathkeys.key_of_bytes(os.fsencode(f"/intake/{name}/1.jpg")) for name in folders]
    with db.writing(engine) as conn:
        conn.execute(insert(db.photos), [{"sha256": s, "size": 1, "format": "JPEG", "width": 1, "height": 1,
                                          "error": None, "first_seen_at": now} for s in shas])
        conn.execute(insert(db.files), [{"path": k, "sha256": s, "size": 1, "mtime_ns": 0, "mtime": now,
                                         "error": None, "catalogued_at": now, "updated_at": now}
                                        for k, s in zip(keys, shas, strict=True)])
        conn.execute(insert(db.animals), [{"code": f"A{i}", "name": name, "key": f"code:A{i}", "merged_into": None,
                                           "created_at": now} for i, name in enumerate(folders)])
        conn.execute(insert(db.animal_files), [{"path": k, "animal": f"A{i}", "grouped_by": "folder",
                                                "grouped_at": now} for i, k in enumerate(keys)])
    engine.dispose()
    return shas


def write_csv(path: Path, rows: list[tuple[str, str]], header=("animal", "corrected_breed")) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def count(path: Path, sql: str):
    with sqlite3.connect(path) as con:
        return con.execute(sql).fetchone()[0]


# --- 1. a pattern that never ends ------------------------------------------------------------------------------

def test_a_pattern_that_never_ends_is_refused_and_writes_nothing(tmp_path):
    photos = tmp_path / "photos"
    (photos / ("a" * 60 + "!")).mkdir(parents=True)
    shutil.copy(EXAMPLES / "beagle-crop.jpg", photos / ("a" * 60 + "!.jpg"))
    shutil.copy(EXAMPLES / "beagle-crop.jpg", photos / ("a" * 60 + "!") / "1.jpg")
    shelter = tmp_path / "x.db"
    for option, pattern in ((["--animals", "pattern", "--pattern"], "(a+)+$"),
                            (["--folder-pattern"], "(?P<code>(a+)+$)"),
                            (["--animals", "pattern", "--pattern"], "zzz([0-9]+)")):  # matches nothing
        start = time.monotonic()
        done = dogcat("catalog", str(photos), "--db", str(shelter), *option, pattern, timeout=90)
        assert done.returncode == 2, done.stderr
        assert f"{option[-1]} {pattern!r}" in done.stderr
        assert time.monotonic() - start < 60
        assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]  # no catalog file, no -wal, no -shm


# --- 2. a big spreadsheet and other writers --------------------------------------------------------------------

def test_correct_from_looks_up_in_batches_and_writes_once(tmp_path):
    shelter = tmp_path / "s.db"
    make_catalog(shelter, [f"dog{i}" for i in range(3000)])
    table = write_csv(tmp_path / "c.csv", [(f"a{i}", ("Beagle", "Pug / Beagle", "not a dog")[i % 3])
                                           for i in range(3000)])
    engine = db.connect(str(shelter), create=False)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    try:
        assert corrections.from_csv(engine, table, "bob") == {"corrected": 3000, "unchanged": 0, "blank": 0}
        assert len(statements) < 40, len(statements)  # one query per row before: thousands
        statements.clear()
        assert corrections.from_csv(engine, table, "bob")["unchanged"] == 3000
    finally:
        engine.dispose()
    assert count(shelter, "SELECT count(*) FROM corrections") == 3000


def test_a_writer_waits_for_another_and_says_so(tmp_path, monkeypatch):
    """The lock is held until the waiting child has said so, however long a loaded machine takes to start it."""
    shelter = tmp_path / "s.db"
    make_catalog(shelter, ["Rex"])
    release = threading.Event()
    holder = hold_write_lock(shelter, release)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    child = subprocess.Popen([sys.executable, "-m", "dogcat", "correct", "A0", "--breed", "pug", "--db",
                              str(shelter)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    said = ""
    try:
        assert child.stderr is not None
        for line in child.stderr:  # until the child says it waits, or ends without saying so
            said += line
            if "waiting for it" in line:
                break
    finally:
        release.set()
        holder.join()
    out, rest = child.communicate(timeout=120)
    said += rest
    assert child.returncode == 0, said
    assert "another program is writing to the catalog; waiting for it (up to 600 s)" in said
    assert count(shelter, "SELECT count(*) FROM corrections") == 1

    monkeypatch.setattr(db, "WRITE_WAIT_S", 2.0)  # and one that waits too long gives up in one line
    monkeypatch.setattr(db, "QUIET_WAIT_S", 0.5)
    release = threading.Event()
    holder = hold_write_lock(shelter, release)
    engine = db.connect(str(shelter), create=False)
    try:
        with pytest.raises(db.DatabaseError, match="held the catalog's write lock for more than 2 s"):
            with db.writing(engine):
                pass
    finally:
        release.set()
        engine.dispose()
        holder.join()


# --- 3. conflicting rows ---------------------------------------------------------------------------------------

def test_two_rows_saying_different_things_of_one_animal_apply_nothing(tmp_path):
    shelter = tmp_path / "s.db"
    make_catalog(shelter, ["Rex", "Max"])
    table = write_csv(tmp_path / "c.csv", [("A0", "Beagle"), ("A1", "Pug"), ("a0", "Pug")])
    result = runner.invoke(app, ["correct", "--from", str(table), "--db", str(shelter)])
    assert result.exit_code == 1
    assert f"{table}:4: a0: says 'Pug' here but 'Beagle' on line 2" in " ".join(result.stderr.split())
    assert count(shelter, "SELECT count(*) FROM corrections") == 0


def test_a_column_named_twice_is_refused(tmp_path):
    """Which of two corrected_breed columns a row means cannot be told: refused, naming the file and the column,
    nothing applied (before, the last one silently won). Blank headers (a spreadsheet's empty columns) are no
    names."""
    shelter = tmp_path / "s.db"
    make_catalog(shelter, ["Rex", "Max"])
    table = write_csv(tmp_path / "c.csv", [("A0", "Beagle", "Pug")], header=("animal", "corrected_breed",
                                                                             "corrected_breed"))
    result = runner.invoke(app, ["correct", "--from", str(table), "--db", str(shelter)])
    assert result.exit_code == 1, result.output
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert (f"{table}: its header names the column corrected_breed more than once (columns 2 and 3); keep one"
            in " ".join(result.stderr.split())), result.stderr
    assert count(shelter, "SELECT count(*) FROM corrections") == 0
    blank = write_csv(tmp_path / "b.csv", [("A0", "Beagle", "", "")], header=("animal", "corrected_breed", "", ""))
    result = runner.invoke(app, ["correct", "--from", str(blank), "--db", str(shelter)])
    assert result.exit_code == 0 and count(shelter, "SELECT count(*) FROM corrections") == 1, result.output


# --- 4. a password in --db -------------------------------------------------------------------------------------

CLOSED = "postgresql://dogcat:SECRET-pw@127.0.0.1:1/shelter"


@pytest.mark.parametrize("url", [
    CLOSED,  # no server: the connection fails
    "postgresql://dogcat:SECRET-pw@127.0.0.1:notaport/shelter",  # not a valid URL
    "nosuchdb://dogcat:SECRET-pw@host/shelter",  # no such dialect
    "postgresql+psycopg2://dogcat:SECRET-pw@127.0.0.1:1/shelter",  # a driver not installed (or the closed port)
    "postgresql://dogcat@127.0.0.1:1/shelter?password=SECRET-pw&sslpassword=SECRET-ssl",  # libpq's parameters
    "postgresql://dogcat:SECRET@pw@127.0.0.1:1/shelter",  # an @ not written %40: SQLAlchemy's host would be "pw@…"
])
def test_a_password_in_the_url_is_never_shown(url, tmp_path):
    table = write_csv(tmp_path / "c.csv", [("A0", "Beagle")])
    for args in (["animals"], ["animals", "show", "A0"], ["export"], ["report", "-o", str(tmp_path / "r.html")],
                 ["evaluate"], ["correct", "--from", str(table)], ["correct", "A0", "--breed", "pug"],
                 ["asm3", "files"], ["catalog", str(EXAMPLES)]):
        result = runner.invoke(app, [*args, "--db", url])
        assert result.exit_code == 1, (args, result.output)
        assert "SECRET" not in result.stdout + result.stderr and "pw" not in result.stderr, (args, result.stderr)
        assert "***" in result.stderr or "the database" in result.stderr, result.stderr


def test_a_database_error_mid_command_never_shows_the_password(capsys):
    quoted = OperationalError("INSERT ...", {}, Exception(f"server closed the connection ({CLOSED})"))
    with pytest.raises(typer.Exit) as exited:
        with failures(CLOSED):
            raise quoted
    assert exited.value.exit_code == 1
    shown = capsys.readouterr()
    assert "SECRET" not in shown.out + shown.err and "database error: server closed the connection" in shown.err


@pytest.mark.parametrize("url, shown, secrets", [
    ("postgresql://bob:SECRET@db.example.org:5432/shelter?sslmode=require",
     "postgresql+psycopg://bob:***@db.example.org:5432/shelter?sslmode=require", ["SECRET"]),
    ("postgresql://bob@db.example.org/shelter?password=SECRET&sslpassword=SECRET2&application_name=dogcat",
     "postgresql+psycopg://bob@db.example.org/shelter?application_name=dogcat&password=***&sslpassword=***",
     ["SECRET", "SECRET2"]),
    ("postgresql://bob:SEC%40RET@h/shelter?PassWord=SEC%20RET", "postgresql+psycopg://bob:***@h/shelter?PassWord=***",
     ["SEC@RET", "SEC RET", "SEC+RET", "SEC%20RET"]),
])
def test_every_name_of_a_database_url_hides_its_secrets(url, shown, secrets):
    """The one mask (dogcat.text.masked_url) in every place that names --db: the catalog summary's, report's and
    teach's name for it (Catalog.name), messages (db.describe_db) and whatever a driver quotes back."""
    from dogcat.api import Catalog
    from dogcat.text import masked_url

    catalog = Catalog(url)  # a catalog that may be created is opened on first use: no server needed to name it
    assert catalog.name == db.describe_db(url) == shown
    assert "SEC" not in masked_url(url) and masked_url(url).count("***") == shown.count("***")
    quoted = f"could not connect: {url} (with {', '.join(secrets)})"
    assert "SEC" not in db.without_password(quoted, url), db.without_password(quoted, url)


# --- 5. control characters in names ----------------------------------------------------------------------------

HOSTILE = ["red\x1b[31mdog", "evil\u202egpj.exe", "two\nlines"]


def test_no_control_character_reaches_the_terminal(tmp_path):
    shelter = tmp_path / "s.db"
    shas = make_catalog(shelter, HOSTILE)
    table = write_csv(tmp_path / "c\x1b[2J.csv", [(sha, "beagle") for sha in shas], header=("sha256",
                                                                                            "corrected_breed"))
    runs = [["correct", sha, "--breed", "pug"] for sha in shas]
    runs += [["correct", "--from", str(table)], ["animals"], ["animals", "show", "A0"], ["animals", "show", "A1"],
             ["correct", "A2", "--not-a-dog", "--by", "bob\x1b[31m"], ["animals"], ["evaluate"],
             ["animals", "merge", "A0", "A1"], ["animals", "move", shas[2], "A0"],
             ["correct", "/intake/two\nlines/1.jpg", "--breed", "pug"]]
    for args in runs:
        result = runner.invoke(app, [*args, "--db", str(shelter)])
        assert result.exit_code == 0, (args, result.output)
        shown = result.stdout + result.stderr
        assert not any(c in shown for c in CONTROLS), (args, shown)
        assert "two\nlines" not in shown
    assert "photo /intake/red<U+001B>[31mdog/1.jpg: corrected" in runner.invoke(
        app, ["correct", shas[0], "--breed", "boxer", "--db", str(shelter)]).stdout


def test_data_printed_to_a_terminal_passes_no_control_character(tmp_path):
    """animals --csv, export (CSV, JSON Lines) and animals --json on a person's terminal: the names (ASM3 sends
    them; a folder may hold anything) with ESC, CSI (U+009B), BEL, CR and U+202E made visible, the line ends kept;
    the same commands into a pipe or a file write every name exactly as it is (issue 29, item 13)."""
    from tests.test_command_line import in_a_terminal

    shelter = tmp_path / "s.db"
    names = [*HOSTILE, "csi\x9b31mdog", "bell\x07\rover"]
    make_catalog(shelter, names)
    for args in (["animals", "--csv"], ["export"], ["export", "--per", "animal"], ["export", "--format", "jsonl"],
                 ["animals", "--json"], ["animals", "show", "A0", "--json"]):
        code, shown = in_a_terminal(*args, "--db", str(shelter), env_extra={"NO_COLOR": "1"})
        assert code == 0, (args, shown)
        shown = shown.replace(b"\r\r\n", b"\n").replace(b"\r\n", b"\n")  # the terminal's own line ends
        for control in ("\x1b", "\x9b", "\x07", "\r", "\u202e"):
            assert control.encode() not in shown, (args, control, shown)
        assert b"<U+001B>[31mdog" in shown or b"\\u001b[31mdog" in shown, (args, shown)
    on_a_pipe = runner.invoke(app, ["animals", "--csv", "--db", str(shelter)]).stdout
    assert [r["name"] for r in csv.DictReader(io.StringIO(on_a_pipe, newline=""))] == names
    lines = runner.invoke(app, ["export", "--per", "animal", "--format", "jsonl", "--db", str(shelter)]
                          ).stdout.splitlines()
    assert sorted(json.loads(line)["name"] for line in lines) == sorted(names)
    assert not any(c in "".join(lines) for c in ("\x1b", "\x9b", "\u202e"))  # escaped in JSON: the same data


# --- 6. another program's database -----------------------------------------------------------------------------

def test_another_programs_database_is_refused_and_left_as_it_was(tmp_path):
    stranger = tmp_path / "notes.db"
    with sqlite3.connect(stranger) as con:
        con.execute("CREATE TABLE files (id INTEGER PRIMARY KEY, name TEXT)")
        con.execute("CREATE TABLE notes (body TEXT)")
        con.execute("INSERT INTO files VALUES (1, 'a')")
    before = stranger.read_bytes()
    table = write_csv(tmp_path / "c.csv", [("A0", "Beagle")])
    for args in (["catalog", str(EXAMPLES)], ["animals"], ["correct", "--from", str(table)], ["export"]):
        result = runner.invoke(app, [*args, "--db", str(stranger)])
        assert result.exit_code == 1, (args, result.output)
        assert "not a dogcat catalog" in result.stderr
    assert stranger.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.csv", "notes.db"]  # no -wal, no -shm, no journal


# --- 7. a catalog on read-only media ---------------------------------------------------------------------------

READS = [["animals"], ["animals", "show", "A0"], ["export"], ["evaluate"], ["asm3", "files"]]


def test_a_catalog_on_read_only_media_can_be_read(tmp_path):
    unshare = shutil.which("unshare")
    probe = subprocess.run([unshare or "unshare", "-rm", "true"], capture_output=True) if unshare else None
    if probe is None or probe.returncode != 0:
        missing("needs unshare -rm (user and mount namespaces) for a read-only bind mount")
    media = tmp_path / "media"
    media.mkdir()
    make_catalog(media / "s.db", ["Rex"])
    assert sorted(p.name for p in media.iterdir()) == ["s.db"]  # closed cleanly: no -wal, no -shm to lean on
    script = [f"mount --bind -o ro {media} {media}"]
    for args in [*READS, ["correct", "A0", "--breed", "pug"], ["catalog", str(EXAMPLES)]]:
        script.append(f"{sys.executable} -m dogcat {' '.join(args)} --db {media / 's.db'}; echo \"rc=$?\"")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    done = subprocess.run([unshare, "-rm", "sh", "-c", "\n".join(script)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.stdout.count("rc=0") == len(READS), done.stdout + done.stderr
    assert done.stdout.count("rc=1") == 2 and "unable to open" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("dogcat: error:")]
    assert len(lines) == 2 and all("the catalog is read-only" in line for line in lines), done.stderr


def test_a_read_only_file_can_be_read_and_a_write_says_so(tmp_path):
    shelter = tmp_path / "s.db"
    make_catalog(shelter, ["Rex"])
    shelter.chmod(0o444)
    for args in READS:
        done = dogcat(*args, "--db", str(shelter), preexec_fn=_as_anyone)
        assert done.returncode == 0, (args, done.stderr)
    done = dogcat("correct", "A0", "--breed", "pug", "--db", str(shelter), preexec_fn=_as_anyone)
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "the catalog is read-only" in done.stderr


# --- 8. counting, and names ------------------------------------------------------------------------------------

def test_placeholder_names_keep_distinct_names_distinct():
    names = {raw: naming.placeholder_name(pathkeys.key_of_bytes(raw))
             for raw in (b"/in/caf\xe9.jpg", b"/in/a\xff.jpg", b"/in/a\\xff.jpg", b"/in/IMG_0001.jpg")}
    assert names == {b"/in/caf\xe9.jpg": "caf<U+DCE9>", b"/in/a\xff.jpg": "a<U+DCFF>", b"/in/a\\xff.jpg": "a xff",
                     b"/in/IMG_0001.jpg": "IMG 0001"}


def test_a_file_named_twice_is_one_file_and_text_is_no_animal(tmp_path, model_path):
    intake = tmp_path / "X"
    intake.mkdir()
    shutil.copy(EXAMPLES / "beagle-crop.jpg", intake / "a.jpg")
    shutil.copy(EXAMPLES / "pug-crop.jpg", intake / "b.jpg")
    (intake / "notes.jpg").write_text("call the vet on Monday")
    shelter = tmp_path / "s.db"
    model = ["--model", model_path] if model_path else []
    done = dogcat("catalog", str(intake / "a.jpg"), str(intake / "a.jpg"), str(intake), "--db", str(shelter),
                  "--json", *model, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["files"], summary["new"], summary["duplicates"], summary["errors"]) == (3, 2, 0, 1)
    listed = runner.invoke(app, ["animals", "--db", str(shelter), "--json"])
    assert sorted(json.loads(line)["name"] for line in listed.stdout.splitlines()) == ["a", "b"]
    errors = runner.invoke(app, ["export", "--db", str(shelter), "--errors", "--format", "jsonl"]).stdout
    assert [(Path(r["path"]).name, r["error"][:12]) for r in map(json.loads, errors.splitlines())] == \
        [("notes.jpg", "not an image")]
