"""``--db postgresql://…``: the catalog on a real PostgreSQL server, the same as on SQLite.

The server is the one ``.ci/run`` starts on loopback (``.ci/services.sh``); its URL comes in
$DOGCAT_TEST_POSTGRES. Each test gets a database of its own, created here and dropped afterwards.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from dogcat import catalog, db
from dogcat.cli import app
from dogcat.model import BreedModel
from tests.conftest import needs_env, new_postgres_database

ROOT = Path(__file__).resolve().parents[1]
SERVER = needs_env("DOGCAT_TEST_POSTGRES", "no PostgreSQL server to test against (.ci/run starts one; by hand: "
                   ". .ci/services.sh)")
runner = CliRunner()

# The CLI with every batch's transaction held open a while longer, so that two runs really overlap.
SLOW_CLI = """
import os, sys, time
import dogcat.catalog as c
original = c._write_batch
def slow(*args, **kwargs):
    original(*args, **kwargs)
    time.sleep(float(os.environ["DOGCAT_TEST_DELAY"]))
c._write_batch = slow
from dogcat.cli import main
sys.argv = ["dogcat", *sys.argv[1:]]
main()
"""


@pytest.fixture
def postgres() -> str:
    """The URL of a new, empty database on the test server (as a user writes it: plain postgresql://)."""
    with new_postgres_database(SERVER) as url:
        yield url


def pick(crops: Path, n: int) -> list[Path]:
    per_breed = [sorted(d.glob("*.jpg")) for d in sorted(crops.iterdir())[:4]]
    return [per_breed[i % 4][i // 4] for i in range(n)]


def make_intake(folder: Path, photos: list[Path]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for p in photos:
        shutil.copy(p, folder / p.name)
    return folder


def model_args(model_path) -> list[str]:
    return ["--model", str(model_path)] if model_path else []


def export_jsonl(database: str) -> list[dict]:
    result = runner.invoke(app, ["export", "--db", database, "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def sql(database: str, query: str) -> list[tuple]:
    engine = db.connect(database, create=False)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(query))]
    finally:
        engine.dispose()


def test_catalog_and_export_are_the_same_as_on_sqlite(crops, model_path, postgres, tmp_path):
    intake = make_intake(tmp_path / "intake", pick(crops, 6))
    shutil.copy(intake / pick(crops, 1)[0].name, intake / "same photo, second name.jpg")
    (intake / "broken.jpg").write_text("not a photo")
    for database in (str(tmp_path / "shelter.db"), postgres):
        result = runner.invoke(app, ["catalog", str(intake), "--db", database, *model_args(model_path)])
        assert result.exit_code == 0, result.output
        summary = " ".join(result.stdout.split())
        assert "6 new" in summary and "1 duplicates" in summary and "1 errors" in summary, summary
    assert "postgresql+psycopg://" in summary and "***@" in summary  # the driver found; the password hidden

    def comparable(records):  # the times differ between the two runs, nothing else may
        return [{k: v for k, v in r.items() if not k.endswith("_at")} for r in records]

    on_sqlite, on_postgres = export_jsonl(str(tmp_path / "shelter.db")), export_jsonl(postgres)
    assert len(on_postgres) == 8 and comparable(on_postgres) == comparable(on_sqlite)
    assert all(r["catalogued_at"] for r in on_postgres)
    assert sql(postgres, "SELECT count(*) FROM catalog") == [(8,)]  # the view, for people with psql
    assert sql(postgres, "SELECT max(version) FROM schema_version") == [(db.SCHEMA_VERSION,)]
    pages = []
    for database in (str(tmp_path / "shelter.db"), postgres):  # the picture catalog reads it the same way
        result = runner.invoke(app, ["report", "--db", database, "--quiet", "--title", "intake"])
        assert result.exit_code == 0, result.output
        pages.append(re.sub(r"catalog [^<]*?, \d{4}-\d\d-\d\d \d\d:\d\d UTC", "", result.stdout))
    assert pages[0] == pages[1] and pages[0].count("<figure") == 7 and "broken.jpg" in pages[0]

    model = BreedModel(model_path)
    engine = db.connect(postgres)
    try:
        again = catalog.run(engine, [intake], model)
    finally:
        engine.dispose()
    assert (again.new, again.skipped, again.batches) == (0, 8, 0)  # re-running is as cheap as on SQLite


@pytest.mark.slow  # several processes, or a whole install: the full tier
def test_two_runs_at_once_from_two_processes(crops, model_path, postgres, tmp_path):
    """Two intake stations catalog the same folder into one new database at the same moment: both race to
    create the schema, then write the same photos; nothing fails and nothing is recorded twice."""
    n = 16
    intake = make_intake(tmp_path / "intake", pick(crops, n))
    args = ["catalog", str(intake), "--db", postgres, "--batch-size", "4", "--quiet", *model_args(model_path)]
    env = {**os.environ, "DOGCAT_TEST_DELAY": "0.3", "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", SLOW_CLI, *args], cwd=ROOT, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (stdout, stderr) in zip(procs, outputs, strict=True):
        assert (p.returncode, stdout) == (0, ""), stderr
        assert "Traceback" not in stderr and "error" not in stderr.lower(), stderr
    assert sql(postgres, "SELECT count(*), count(DISTINCT path) FROM files") == [(n, n)]
    assert sql(postgres, "SELECT count(*) FROM files WHERE error IS NULL AND sha256 IS NOT NULL") == [(n,)]
    assert sql(postgres, "SELECT count(*), count(DISTINCT sha256) FROM predictions") == [(n, n)]
    assert sql(postgres, "SELECT count(*) FROM photos") == [(n,)]
    assert sql(postgres, "SELECT count(*) FROM schema_version") == [(1,)]  # created once
    assert {Path(r["path"]).name for r in export_jsonl(postgres)} == {p.name for p in intake.iterdir()}


@pytest.mark.slow  # several processes, or a whole install: the full tier
def test_three_stations_classify_each_photo_once_and_a_kill_loses_nothing(crops, model_path, postgres, tmp_path):
    """Three runs (as three machines would) into one PostgreSQL, one killed with -9 mid-run: each photo is
    classified by exactly one of them, and the others take over what the killed one had claimed."""
    from test_catalog import three_runs_one_killed

    n = 24
    intake = make_intake(tmp_path / "intake", pick(crops, n))
    engine = create_engine(make_url(postgres).set(drivername="postgresql+psycopg"))

    def count(tail: str) -> int:
        try:
            with engine.connect() as conn:
                return conn.scalar(text(f"SELECT count(*) FROM {tail}"))
        except Exception:  # noqa: BLE001 — the schema is not there yet
            return 0

    try:
        left, killed_new, summaries = three_runs_one_killed(postgres, intake, count, model_args(model_path))
    finally:
        engine.dispose()
    assert left > 0  # it died holding claims
    assert killed_new + sum(s["new"] for s in summaries) == n, (killed_new, summaries)
    assert all(s["new"] + s["skipped"] + s["duplicates"] == n and s["errors"] == 0 for s in summaries)
    assert any(s["waited"] > 0 for s in summaries)
    assert sql(postgres, "SELECT count(*), count(DISTINCT path) FROM files") == [(n, n)]
    assert sql(postgres, "SELECT count(*), count(DISTINCT sha256) FROM predictions") == [(n, n)]
    assert sql(postgres, "SELECT count(*) FROM claims") == [(0,)]
    assert {Path(r["path"]).name for r in export_jsonl(postgres)} == {p.name for p in intake.iterdir()}


def test_a_server_that_refuses_is_one_line(postgres):
    url = make_url(postgres)
    cases = [(url.set(password="wrong"), "password authentication failed"),
             (url.set(port=1), "Connection refused"),
             (url.set(database="no_such_database"), 'database "no_such_database" does not exist')]
    for bad, message in cases:
        result = runner.invoke(app, ["export", "--db", bad.render_as_string(hide_password=False)])
        assert result.exit_code == 1, result.output
        stderr = result.stderr
        assert message in stderr and stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
        assert "wrong" not in stderr and "dogcat-ci" not in stderr  # passwords never printed
    result = runner.invoke(app, ["export", "--db", postgres])  # an empty database is not a catalog yet
    assert result.exit_code == 1 and "not a dogcat catalog" in result.stderr


def test_teach_and_similar_on_postgresql(crops, postgres, tmp_path):
    """The features (BYTEA), teach and similar, on a PostgreSQL catalog as on SQLite (tests/test_teach.py)."""
    amstaff = sorted((crops / "n02093428-American_Staffordshire_terrier").glob("*.jpg"))
    for i, photo in enumerate(amstaff[:6]):
        (tmp_path / "intake" / f"P{i}").mkdir(parents=True)
        shutil.copy(photo, tmp_path / "intake" / f"P{i}")
    (tmp_path / "intake" / "B1").mkdir()
    for photo in sorted((crops / "n02088364-beagle").glob("*.jpg"))[:3]:
        shutil.copy(photo, tmp_path / "intake" / "B1")
    assert runner.invoke(app, ["catalog", str(tmp_path / "intake"), "--db", postgres, "--quiet"]).exit_code == 0
    for i in range(6):
        done = runner.invoke(app, ["correct", f"P{i}", "--breed", "pit bull", "--db", postgres])
        assert done.exit_code == 0, done.output
    done = runner.invoke(app, ["teach", "--db", postgres, "-o", str(tmp_path / "m.onnx"), "--json"])
    assert done.exit_code == 0, done.output
    taught = json.loads(done.stdout)
    assert taught["added"] == {"Pit Bull Terrier": 6} and taught["features_computed"] == 0
    done = runner.invoke(app, ["similar", str(amstaff[10]), "--db", postgres, "--json", "--top", "2"])
    assert done.exit_code == 0, done.output
    assert [json.loads(line)["animal"][0] for line in done.stdout.splitlines()] == ["P", "P"]


def test_a_password_given_as_a_url_parameter_is_never_shown_nor_written(crops, postgres, tmp_path):
    """libpq's ?password= (and ?sslpassword=) in --db, which SQLAlchemy's own masking leaves as it is: not in the
    catalog summary, the report, teach's "use it" line and card, nor an error (issue 29, item 14)."""
    server = make_url(postgres)
    secret = str(server.password)
    with_parameter = (f"postgresql://{server.username}@{server.host}:{server.port}/{server.database}"
                      f"?password={secret}&sslpassword=ssl-SECRET")
    amstaff = sorted((crops / "n02093428-American_Staffordshire_terrier").glob("*.jpg"))
    for i, photo in enumerate(amstaff[:6]):
        (tmp_path / "intake" / f"P{i}").mkdir(parents=True)
        shutil.copy(photo, tmp_path / "intake" / f"P{i}")
    said = []
    done = runner.invoke(app, ["catalog", str(tmp_path / "intake"), "--db", with_parameter, "--quiet"])
    assert done.exit_code == 0, done.output
    done = runner.invoke(app, ["catalog", str(tmp_path / "intake"), "--db", with_parameter])
    said.append(done.stdout)
    assert done.exit_code == 0 and "password=***" in " ".join(done.stdout.split()), done.output
    for i in range(6):
        assert runner.invoke(app, ["correct", f"P{i}", "--breed", "pit bull", "--db", with_parameter]).exit_code == 0
    done = runner.invoke(app, ["report", "--db", with_parameter, "--quiet", "-o", str(tmp_path / "r.html")])
    assert done.exit_code == 0, done.output
    page = (tmp_path / "r.html").read_text()
    assert "password=***" in page
    done = runner.invoke(app, ["teach", "--db", with_parameter, "-o", str(tmp_path / "m.onnx")])
    said.append(done.stdout)
    assert done.exit_code == 0 and "use it: dogcat catalog FOLDER --db postgresql" in " ".join(done.stdout.split())
    card = (tmp_path / "m.json").read_text()
    assert "password=***" in json.loads(card)["taught"]["catalog"]
    wrong = with_parameter.replace(f"password={secret}", "password=wrong-SECRET")
    done = runner.invoke(app, ["animals", "--db", wrong])
    assert done.exit_code == 1 and "password authentication failed" in done.stderr, done.output
    said.append(done.stderr)
    for shown in [*said, page, card]:
        assert secret not in shown and "SECRET" not in shown, shown
