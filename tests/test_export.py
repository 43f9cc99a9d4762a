"""``dogcat export``: a real catalog (real photos, real SQLite file) → CSV / JSON Lines, filtered."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dogcat import catalog, db
from dogcat.cli import app
from dogcat.export import CORRECTION_COLUMN, FIELDS, safe_cell
from dogcat.model import BreedModel

runner = CliRunner()

ODD_NAMES = ["a,b.jpg", 'say "cheese".jpg', "two\nlines.jpg", "=HYPERLINK(1).jpg", "-rf.jpg", "ünï ✓.jpg"]
REQUIRED = ["path", "sha256", "label", "breed", "confidence", "top_k", "model", "error", "catalogued_at"]


def _pick(crops: Path, n: int) -> list[Path]:
    folders = sorted(crops.iterdir())[:3]
    return [sorted(folders[i % 3].glob("*.jpg"))[i // 3] for i in range(n)]


def _catalog(shelter: Path, intake: Path, model_path):
    engine = db.connect(str(shelter))
    try:
        catalog.run(engine, [intake], BreedModel(model_path))
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def shelter(crops, model_path, tmp_path_factory) -> Path:
    """A catalog of photos under odd names, plus two broken files."""
    intake = tmp_path_factory.mktemp("export") / "intake"
    intake.mkdir()
    for name, photo in zip(ODD_NAMES, _pick(crops, len(ODD_NAMES)), strict=True):
        shutil.copy(photo, intake / name)
    (intake / "broken.jpg").write_text("not a photo")
    (intake / "empty.jpg").write_bytes(b"")
    path = intake.parent / "shelter.db"
    _catalog(path, intake, model_path)
    return path


def query(path: Path, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql, args).fetchall()


def export(*args) -> tuple[int, str, str]:
    result = runner.invoke(app, ["export", *args])
    return result.exit_code, result.stdout_bytes.decode("utf-8"), result.stderr


def read_csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_csv_survives_any_file_name(shelter, tmp_path):
    out = tmp_path / "out.csv"
    code, stdout, _ = export("--db", str(shelter), "-o", str(out))
    assert code == 0 and stdout == ""
    text = out.read_bytes().decode("utf-8")  # as written: \r\n ends a record, a bare \n is in a name
    rows = read_csv(text)
    assert set(REQUIRED) <= set(rows[0]) and list(rows[0]) == FIELDS + [CORRECTION_COLUMN]
    assert sorted(r["path"] for r in rows) == sorted(p for p, in query(shelter, "SELECT path FROM files"))
    assert {Path(r["path"]).name for r in rows} == set(ODD_NAMES) | {"broken.jpg", "empty.jpg"}
    for r in rows:
        if r["error"]:
            assert r["label"] == "" and r["top_k"] == "[]"
        else:
            assert 0 < float(r["confidence"]) <= 1 and json.loads(r["top_k"])[0]["label"] == r["label"]
    code, stdout, _ = export("--db", str(shelter))  # stdout: the same bytes
    assert code == 0 and stdout == text
    assert not list(tmp_path.glob(".*.tmp"))


def test_jsonl_one_object_per_file(shelter):
    code, stdout, _ = export("--db", str(shelter), "--format", "jsonl")
    assert code == 0
    records = [json.loads(line) for line in stdout.splitlines()]
    assert len(records) == len(ODD_NAMES) + 2 and all(list(r) == FIELDS for r in records)
    assert {Path(r["path"]).name for r in records} >= set(ODD_NAMES)  # newlines escaped inside JSON strings
    good = [r for r in records if not r["error"]]
    assert all(isinstance(r["top_k"], list) and r["top_k"][0]["breed"] == r["breed"] for r in good)
    assert all(r["catalogued_at"] and r["model"] and len(r["sha256"]) == 64 for r in good)


def test_filters(shelter):
    _, stdout, _ = export("--db", str(shelter), "--format", "jsonl")
    records = [json.loads(line) for line in stdout.splitlines()]

    _, stdout, _ = export("--db", str(shelter), "--format", "jsonl", "--errors")
    errors = [json.loads(line) for line in stdout.splitlines()]
    assert sorted(Path(r["path"]).name for r in errors) == ["broken.jpg", "empty.jpg"]
    assert all(r["error"] and "\n" not in r["error"] for r in errors)

    confidences = sorted(r["confidence"] for r in records if r["confidence"] is not None)
    threshold = confidences[len(confidences) // 2]
    _, stdout, _ = export("--db", str(shelter), "--format", "jsonl", "--min-confidence", str(threshold))
    confident = [json.loads(line) for line in stdout.splitlines()]
    assert confident and len(confident) == sum(c >= threshold for c in confidences)
    assert all(r["confidence"] >= threshold for r in confident)

    first = next(r for r in records if r["breed"])
    expected = sorted(r["path"] for r in records if r["breed"] == first["breed"])
    for name in (first["breed"], first["breed"].upper(), first["label"], first["label"].split("-", 1)[1]):
        _, stdout, _ = export("--db", str(shelter), "--format", "jsonl", "--breed", name)
        assert sorted(json.loads(line)["path"] for line in stdout.splitlines()) == expected, name
    code, stdout, _ = export("--db", str(shelter), "--breed", "no such breed")
    assert code == 0 and stdout.splitlines() == [",".join(FIELDS + [CORRECTION_COLUMN])]  # the header alone

    assert export("--db", str(shelter), "--min-confidence", "1.5")[0] == 2
    assert export("--db", str(shelter), "--format", "xml")[0] == 2


def test_cells_that_look_like_formulas_are_defused(crops, model_path, make_model, tmp_path):
    """A model whose breed names start with = + - @ (and a file named =HYPERLINK...): no cell starts a formula.
    Also: the newest model's predictions are shown, and --model-id picks the older one."""
    intake = tmp_path / "intake"
    intake.mkdir()
    for name, photo in zip(["=1+1.jpg", "@SUM(A1).jpg", "plain.jpg"], _pick(crops, 3), strict=True):
        shutil.copy(photo, intake / name)
    shelter = tmp_path / "shelter.db"
    _catalog(shelter, intake, model_path)
    plain = BreedModel(model_path)
    hostile = [("=", "+", "-", "@")[i % 4] + breed for i, breed in enumerate(plain.breeds)]
    _catalog(shelter, intake, make_model("hostile@000000000000", breeds=hostile))

    code, stdout, _ = export("--db", str(shelter))
    rows = read_csv(stdout)
    assert code == 0 and len(rows) == 3
    for r in rows:
        assert r["model"] == "hostile@000000000000"
        assert r["breed"].startswith("'") and r["breed"][1:] in hostile
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in r.values())
    _, stdout, _ = export("--db", str(shelter), "--format", "jsonl")
    assert all(json.loads(line)["breed"] in hostile for line in stdout.splitlines())  # JSON: as recorded
    _, stdout, _ = export("--db", str(shelter), "--model-id", plain.id)
    assert {r["breed"] for r in read_csv(stdout)} <= set(plain.breeds)


@pytest.mark.parametrize("value,cell", [("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"), ("+1", "'+1"),
                                        ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"),
                                        ("\rx", "'\rx"), ("\n=1+1", "'\n=1+1"), ("\n@A1", "'\n@A1"),
                                        ("\r-1", "'\r-1"), ("\t+1", "'\t+1"), ("Golden Retriever", "Golden Retriever"),
                                        (None, ""), (0.5, "0.5"), ([{"a": 1}], '[{"a": 1}]')])
def test_safe_cell(value, cell):
    assert safe_cell(value) == cell


def test_missing_or_foreign_database(tmp_path):
    missing = tmp_path / "missing.db"
    code, _, stderr = export("--db", str(missing))
    assert code == 1 and "no such database file" in stderr and not missing.exists()
    sqlite3.connect(tmp_path / "other.db").execute("CREATE TABLE t (x)").connection.close()
    code, _, stderr = export("--db", str(tmp_path / "other.db"))
    assert code == 1 and "not a dogcat catalog" in stderr
    (tmp_path / "text.db").write_text("hello")
    code, _, stderr = export("--db", str(tmp_path / "text.db"))
    assert code == 1 and "not a database" in stderr and "Traceback" not in stderr


def test_unwritable_output_and_help(shelter, tmp_path):
    code, _, stderr = export("--db", str(shelter), "-o", str(tmp_path / "no" / "such" / "out.csv"))
    assert code == 1 and "cannot write" in stderr
    code, stdout, _ = export("--help")
    assert code == 0 and "Exit codes" in stdout and "--min-confidence" in stdout
