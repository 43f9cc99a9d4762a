"""``dogcat catalog``: real photos from ../shared/data, real SQLite files, real subprocesses for crashes and
concurrency. The model is $DOGCAT_TEST_MODEL or the bundled one (the ``model_path`` fixture)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dogcat import catalog, db, images, pathkeys, readmodel
from dogcat.cli import app
from dogcat.model import BreedModel
from dogcat.status import Judge

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

# Runs the CLI with every batch's write transaction held open DOGCAT_TEST_DELAY seconds longer, so that a
# SIGKILL lands inside a transaction and two runs contend for the write lock; with DOGCAT_TEST_STALL_AFTER=N,
# the batch after the first N stalls (for minutes) inside its transaction, so that an interrupt finds the run
# there whatever the machine's load. Test-only: a wrapper, no hook.
SLOW_CLI = """
import os, signal, sys, time
# As from a terminal: a suite started in the background (`cmd &` in a script) passes SIGINT down ignored, and a
# Python started with SIGINT ignored never raises KeyboardInterrupt.
signal.signal(signal.SIGINT, signal.default_int_handler)
import dogcat.catalog as c
original = c._write_batch
written = []
def slow(*args, **kwargs):
    if len(written) == int(os.environ.get("DOGCAT_TEST_STALL_AFTER", "-1")):
        time.sleep(300)
    original(*args, **kwargs)
    written.append(1)
    time.sleep(float(os.environ.get("DOGCAT_TEST_DELAY", "0")))
c._write_batch = slow
from dogcat.cli import main
sys.argv = ["dogcat", *sys.argv[1:]]
main()
"""


def pick(crops: Path, n: int) -> list[Path]:
    """n real photos, spread over the first breeds, in a fixed order."""
    per_breed = [sorted(d.glob("*.jpg")) for d in sorted(crops.iterdir())[:4]]
    return [per_breed[i % 4][i // 4] for i in range(n)]


def make_intake(folder: Path, photos: list[Path]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for p in photos:
        shutil.copy(p, folder / p.name)
    return folder


@pytest.fixture(scope="module")
def model(model_path) -> BreedModel:
    return BreedModel(model_path)


def run(db_path: Path, folders, model: BreedModel, **kwargs) -> catalog.Summary:
    engine = db.connect(str(db_path))
    try:
        return catalog.run(engine, [folders] if isinstance(folders, Path) else folders, model, **kwargs)
    finally:
        engine.dispose()


def query(db_path: Path, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(db_path) as conn:
        return conn.execute(sql, args).fetchall()


def model_args(model_path) -> list[str]:
    return ["--model", str(model_path)] if model_path else []


def cli(*args, env_extra=None, script=None, **kwargs) -> subprocess.Popen:
    env = {**os.environ, **(env_extra or {})}
    command = [sys.executable, "-c", script, *args] if script else [sys.executable, "-m", "dogcat", *args]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


# --- 2 and 3: what is recorded, and re-running --------------------------------------------------------------

def test_records_every_field_and_rerun_reads_nothing(crops, model, tmp_path, monkeypatch):
    intake = make_intake(tmp_path / "intake", pick(crops, 12))
    shelter = tmp_path / "shelter.db"
    s = run(shelter, intake, model, batch_size=5)
    assert (s.new, s.skipped, s.duplicates, s.errors, s.non_images) == (12, 0, 0, 0, 0)
    assert s.batches == 3 and sum(s.breeds.values()) == 12

    rows = query(shelter, "SELECT f.path, f.sha256, f.size, f.mtime_ns, f.mtime, f.error, p.width, p.height, "
                          "p.format, r.label, r.breed, r.confidence, r.top_k, r.model_id, r.catalogued_at "
                          "FROM files f JOIN photos p USING (sha256) JOIN predictions r USING (sha256) "
                          "ORDER BY f.path")
    assert len(rows) == 12
    for path, sha, size, mtime_ns, mtime, error, w, h, fmt, label, breed, conf, top_k, model_id, when in rows:
        p = Path(path)
        assert p.is_absolute() and p.parent == intake
        assert sha == hashlib.sha256(p.read_bytes()).hexdigest()
        assert size == p.stat().st_size and mtime_ns == p.stat().st_mtime_ns and mtime.startswith("20")
        assert error is None and (w, h, fmt) == (224, 224, "JPEG")
        assert label in model.labels and breed == model.breeds[model.labels.index(label)]
        guesses = json.loads(top_k)
        assert len(guesses) == 3 and guesses[0] == {"label": label, "breed": breed, "confidence": round(conf, 6)}
        assert 0 < conf <= 1 and model_id == model.id and when.endswith("+00:00")
    assert query(shelter, "SELECT version FROM schema_version") == [(db.SCHEMA_VERSION,)]
    assert query(shelter, "PRAGMA user_version") == [(db.SCHEMA_VERSION,)]
    assert query(shelter, "PRAGMA journal_mode") == [("wal",)]
    assert query(shelter, "SELECT id, breeds FROM models") == [(model.id, len(model.labels))]
    assert len(query(shelter, "SELECT * FROM catalog")) == 12  # the view people can query with sqlite3

    before = query(shelter, "SELECT * FROM files ORDER BY path")
    monkeypatch.setattr(catalog, "_read", lambda e: pytest.fail(f"{e.path} was read again"))
    monkeypatch.setattr(images, "decode", lambda *a: pytest.fail("a photo was decoded again"))
    s = run(shelter, intake, model)
    assert (s.new, s.skipped, s.duplicates, s.errors, s.batches) == (0, 12, 0, 0, 0)
    assert sum(s.breeds.values()) == 12  # the summary still counts the breeds found
    assert query(shelter, "SELECT * FROM files ORDER BY path") == before


RAW = os.fsdecode(b"a\xff.jpg")  # bytes 61 ff 2e ...: not UTF-8
LITERAL = "a\\xff.jpg"  # a backslash, x, f, f


def test_a_raw_byte_name_and_its_escaped_spelling_are_two_files(crops, model, tmp_path):
    """Schema 2 keyed both as ".../a\\xff.jpg": one row, the other photo silently lost."""
    from dogcat import previews

    first, second = pick(crops, 2)
    intake = tmp_path / "intake"
    intake.mkdir()
    shutil.copy(first, intake / RAW)
    shutil.copy(second, intake / LITERAL)
    shelter = tmp_path / "shelter.db"
    s = run(shelter, intake, model)
    assert (s.new, s.skipped, s.errors) == (2, 0, 0)
    rows = dict(query(shelter, "SELECT path, sha256 FROM files"))
    assert len(rows) == 2
    for name, photo in ((RAW, first), (LITERAL, second)):
        key = pathkeys.key(intake / name)
        assert rows[key] == hashlib.sha256(photo.read_bytes()).hexdigest()
        assert previews.preview(key, rows[key], 64).jpeg  # the report finds the very file catalogued
    assert set(rows) == {str(intake) + "/a\\xff.jpg", str(intake) + "/a\\\\xff.jpg"}
    s = run(shelter, intake, model)
    assert (s.new, s.skipped) == (0, 2)


def as_schema_2(shelter: Path, keep: set[str]):
    """Turn a catalog into what schema 2 wrote: its path keys (backslashes left alone, odd bytes as \\xNN), none
    of schema 3's tables and columns, version 2. Rows of paths not in ``keep`` are dropped (schema 2 had lost them)."""
    from dogcat import pathkeys

    with sqlite3.connect(shelter) as conn:
        keys = [key for (key,) in conn.execute("SELECT path FROM files").fetchall()]
        for key in keys:  # first out of the way: an old key may be another file's new one
            conn.execute("UPDATE files SET path = 'old:' || path WHERE path = ?", (key,))
        for key in keys:
            if key not in keep:
                conn.execute("DELETE FROM files WHERE path = ?", ("old:" + key,))
            else:
                conn.execute("UPDATE files SET path = ? WHERE path = ?",
                             (pathkeys.old_key(pathkeys.to_bytes(key)), "old:" + key))
        for table in ("claims", "animal_files", "animals", "corrections"):  # schema 3's tables
            conn.execute(f"DROP TABLE {table}")
        view = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'catalog'").fetchone()[0]
        conn.execute("DROP VIEW catalog")
        for table, column in (("predictions", "probabilities"), ("models", "labels"), ("models", "decision")):
            conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        conn.execute(view.replace(", predictions.probabilities AS probabilities", ""))
        conn.execute("DELETE FROM schema_version WHERE version > 2")
        conn.execute("INSERT OR IGNORE INTO schema_version VALUES (2, '2024-06-11T00:00:00+00:00', '0.5.0')")
        conn.execute("PRAGMA user_version = 2")


def test_schema_2_path_keys_are_migrated(crops, model, tmp_path):
    names = [RAW, os.fsdecode(b"b\xe9\\x.jpg"), "c\\xff.jpg", "d\\\\e.jpg", "plain.jpg", LITERAL]
    intake = tmp_path / "intake"
    intake.mkdir()
    for name, photo in zip(names, pick(crops, len(names)), strict=True):
        shutil.copy(photo, intake / name)
    shelter = tmp_path / "shelter.db"
    assert run(shelter, intake, model).new == len(names)
    keys = {name: pathkeys.key(intake / name) for name in names}
    before = {key: row for key, *row in query(shelter, "SELECT path, sha256, size, mtime_ns FROM files")}
    # Schema 2 kept one row for RAW and LITERAL: the one with LITERAL's content (its size and mtime).
    as_schema_2(shelter, keep=set(keys.values()) - {keys[RAW]})
    assert len(query(shelter, "SELECT path FROM files WHERE path LIKE '%a\\xff.jpg'")) == 1

    engine = db.connect(str(shelter))  # upgrades
    engine.dispose()
    assert query(shelter, "SELECT MAX(version) FROM schema_version") == [(db.SCHEMA_VERSION,)]
    after = {key: row for key, *row in query(shelter, "SELECT path, sha256, size, mtime_ns FROM files")}
    assert after == {k: v for k, v in before.items() if k != keys[RAW]}  # every key as this dogcat writes it
    s = run(shelter, intake, model)
    # The file schema 2 lost gets its row back (its photo's prediction stayed: a duplicate), nothing else changes.
    assert (s.new, s.skipped, s.duplicates) == (0, len(names) - 1, 1)
    assert len(query(shelter, "SELECT path FROM files")) == len(names)


def test_same_photo_under_two_names_is_one_classification(crops, model, tmp_path, monkeypatch):
    *photos, fresh = pick(crops, 7)
    intake = make_intake(tmp_path / "intake", photos)
    shelter = tmp_path / "shelter.db"
    run(shelter, intake, model)
    shutil.copy(photos[0], intake / "copy of first.jpg")  # second names of catalogued photos ...
    (intake / "sub").mkdir()
    shutil.copy(photos[2], intake / "sub" / photos[2].name)
    shutil.copy(photos[3], intake / "twin-a.jpg")
    os.utime(intake / photos[1].name, ns=(1_000_000_000, 1_000_000_000))  # touched: same bytes, new mtime
    shutil.copy(fresh, intake / "fresh.jpg")  # a new photo under two names, in the same batch
    shutil.copy(fresh, intake / "fresh-again.jpg")
    monkeypatch.setattr(images, "decode", _counting(images.decode, calls := []))
    s = run(shelter, intake, model)
    assert len(calls) == 1  # only the one new photo was decoded
    assert (s.new, s.duplicates, s.errors) == (1, 4, 0)  # copy, sub/, twin-a, fresh-again
    assert s.skipped == 6  # five untouched, one touched (read and hashed, recognised, not decoded)
    assert query(shelter, "SELECT count(*), count(DISTINCT path) FROM files") == [(11, 11)]
    assert query(shelter, "SELECT count(*) FROM predictions") == [(7,)]
    same = query(shelter, "SELECT path FROM files WHERE sha256 = (SELECT sha256 FROM files WHERE path = ?)",
                 str(intake / photos[0].name))
    assert sorted(Path(p).name for p, in same) == sorted([photos[0].name, "copy of first.jpg"])
    assert query(shelter, "SELECT mtime_ns FROM files WHERE path = ?", str(intake / photos[1].name)) \
        == [(1_000_000_000,)]


def _counting(function, calls: list):
    def wrapper(*args, **kwargs):
        calls.append(args[0])
        return function(*args, **kwargs)
    return wrapper


def test_new_model_adds_predictions_and_export_shows_newest(crops, model, make_model, tmp_path):

    intake = make_intake(tmp_path / "intake", pick(crops, 5))  # two Chihuahuas, a Japanese spaniel, ...
    shelter = tmp_path / "shelter.db"
    run(shelter, intake, model)
    # A model that answers otherwise: these two classes swapped in its last layer.
    swap = {"n02085620-Chihuahua": "n02085782-Japanese_spaniel", "n02085782-Japanese_spaniel": "n02085620-Chihuahua"}
    newer = BreedModel(make_model("newer-model@0123456789ab", swap=tuple(swap)))
    s = run(shelter, intake, newer)
    assert (s.new, s.skipped, s.model_id) == (5, 0, "newer-model@0123456789ab")
    assert query(shelter, "SELECT model_id, count(*) FROM predictions GROUP BY model_id ORDER BY 1") == \
        [("newer-model@0123456789ab", 5), (model.id, 5)]
    assert query(shelter, "SELECT count(*) FROM photos") == [(5,)]
    engine = db.connect(str(shelter), create=False)
    try:
        newest = {r["path"]: (r["model"], r["label"]) for r in readmodel.records(engine)}
        old = {r["path"]: (r["model"], r["label"]) for r in readmodel.records(engine, model_id=model.id)}
    finally:
        engine.dispose()
    assert {m for m, _ in newest.values()} == {"newer-model@0123456789ab"}
    assert {m for m, _ in old.values()} == {model.id}
    assert {path: swap.get(label, label) for path, (_, label) in old.items()} == \
        {path: label for path, (_, label) in newest.items()}  # each answer is the new model's ...
    assert sum(newest[p][1] != old[p][1] for p in old) >= 3  # ... and three of them changed
    assert run(shelter, intake, model).skipped == 5  # the old model's run is still complete


# --- 5: odd but valid images, and bad input ------------------------------------------------------------------

def _png_header_only(path: Path, width: int, height: int):
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IEND", b""))


def _save_reference(im: Image.Image, path: Path) -> Path:
    im.convert("RGB").save(path)  # PNG: lossless, so the reference holds exactly the pixels expected
    return path


def test_odd_but_valid_images_are_classified_like_their_pixels(crops, model, tmp_path):
    base = Image.open(pick(crops, 1)[0]).convert("RGB").crop((0, 0, 224, 160))  # not square: orientation shows
    intake, refs = tmp_path / "intake", tmp_path / "refs"
    intake.mkdir()
    refs.mkdir()
    expected = {}  # name → (reference file with the exact pixels the model must see, upright width x height)

    base.convert("CMYK").save(intake / "cmyk.jpg", quality=95)
    expected["cmyk.jpg"] = (_save_reference(Image.open(intake / "cmyk.jpg"), refs / "cmyk.png"), (224, 160))
    base.convert("L").save(intake / "grey.jpg", quality=95)
    expected["grey.jpg"] = (_save_reference(Image.open(intake / "grey.jpg"), refs / "grey.png"), (224, 160))

    rgba = base.convert("RGBA")
    alpha = np.full((160, 224), 255, np.uint8)
    alpha[:40, :60] = 0  # a transparent corner: shown on white
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(intake / "rgba.png")
    white = np.asarray(base).copy()
    white[:40, :60] = 255
    expected["rgba.png"] = (_save_reference(Image.fromarray(white), refs / "rgba.png"), (224, 160))

    grey = np.asarray(base.convert("L"), dtype=np.uint16)
    Image.fromarray(grey * 257).save(intake / "deep16.png")  # 16-bit: 0..65535
    assert Image.open(intake / "deep16.png").mode.startswith("I")
    expected["deep16.png"] = (_save_reference(Image.fromarray(grey.astype(np.uint8)), refs / "deep.png"), (224, 160))

    base.save(intake / "lossless.webp", lossless=True)
    expected["lossless.webp"] = (_save_reference(base, refs / "webp.png"), (224, 160))

    base.save(intake / "animated.gif", save_all=True, append_images=[Image.new("RGB", (224, 160), "black")],
              duration=100, loop=0)
    expected["animated.gif"] = (_save_reference(Image.open(intake / "animated.gif"), refs / "gif.png"), (224, 160))

    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side: "rotate 90° clockwise to display", as a phone's portrait shot
    base.transpose(Image.Transpose.ROTATE_90).save(intake / "portrait.jpg", quality=95, exif=exif)
    upright = Image.open(intake / "portrait.jpg").transpose(Image.Transpose.ROTATE_270)
    expected["portrait.jpg"] = (_save_reference(upright, refs / "portrait.png"), (224, 160))

    shelter = tmp_path / "shelter.db"
    s = run(shelter, intake, model, top_k=3)
    assert (s.new, s.errors) == (len(expected), 0)
    rows = {Path(p).name: (w, h, err, json.loads(top_k)) for p, w, h, err, top_k in query(
        shelter, "SELECT path, width, height, error, top_k FROM catalog")}
    for name, (reference, size) in expected.items():
        w, h, error, guesses = rows[name]
        assert error is None and (w, h) == size, name
        # as the catalog judges it: a second look only where the first is unsure (the model card's rule)
        probs = Judge.breeds_only(model).breed_probabilities(images.load(reference, model.preprocessing)[None])[0][0]
        for g in guesses:
            assert abs(g["confidence"] - probs[model.labels.index(g["label"])]) < 1e-4, name


@pytest.fixture(scope="module")
def bad_intake(crops, tmp_path_factory) -> Path:
    """A folder of broken, odd and non-image files, plus three good photos under odd names."""
    good = pick(crops, 3)
    intake = tmp_path_factory.mktemp("bad") / "intake"
    intake.mkdir()
    (intake / "empty.jpg").write_bytes(b"")
    (intake / "truncated.jpg").write_bytes(good[0].read_bytes()[:2000])
    (intake / "notes.jpg").write_text("kennel card: Rex, 3 years, friendly")
    _png_header_only(intake / "bomb.png", 100_000, 100_000)  # 10 gigapixels claimed, 57 bytes on disk
    Image.new("1", (12000, 12000)).save(intake / "big.png")  # 144 megapixels: over the limit, 20 KB on disk
    (intake / "folder.jpg").mkdir()  # a directory with a photo's name ...
    shutil.copy(good[1], intake / "folder.jpg" / "inside.jpg")  # ... holding a real photo
    (intake / "gone.jpg").symlink_to(intake / "does-not-exist.jpg")
    os.mkfifo(intake / "pipe.jpg")  # opening it would block forever
    (intake / "readme.txt").write_text("intake of 2024-06-01\n")
    (intake / "scan.pdf").write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n")
    shutil.copy(good[2], intake / "IMG_0001")  # a photo without an extension: known by its content
    shutil.copy(good[0], intake / 'Rex, "the good boy"\nline two ✓ ünïcödé.jpg')
    shutil.copy(good[1], intake / os.fsdecode(b"caf\xe9-latin1.jpg"))  # not UTF-8
    return intake


BAD = {"empty.jpg": "empty file", "truncated.jpg": "a JPEG photo dogcat could not decode: the file is cut short",
       "notes.jpg": "not an image",
       "bomb.png": "too large", "big.png": "too large", "folder.jpg": "is a directory",
       "gone.jpg": "broken symbolic link", "pipe.jpg": "not a regular file"}


def test_bad_files_become_rows_and_nothing_crashes(bad_intake, model_path, tmp_path):
    shelter = tmp_path / "shelter.db"
    proc = cli("catalog", str(bad_intake), "--db", str(shelter), "--verbose", *model_args(model_path))
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stdout + stderr
    errors = dict(query(shelter, "SELECT path, error FROM catalog WHERE error IS NOT NULL"))
    assert {Path(p).name: e for p, e in errors.items()}.keys() == BAD.keys()
    for path, error in errors.items():
        assert BAD[Path(path).name] in error and "\n" not in error
        assert f"{Path(path).name}: {error}" in " ".join(stderr.split())  # --verbose lists them
    good = {Path(p).name: breed for p, breed in query(shelter, "SELECT path, breed FROM catalog WHERE error IS NULL")}
    assert set(good) == {"inside.jpg", "IMG_0001", 'Rex, "the good boy"\nline two ✓ ünïcödé.jpg',
                         "caf\\xe9-latin1.jpg"}  # undecodable bytes recorded as \xNN
    assert all(good.values())
    summary = " ".join(stdout.split())
    assert "2 not images" in summary and "8 errors" in summary and "3 new" in summary  # and 1 duplicate

    rerun = cli("catalog", str(bad_intake), "--db", str(shelter), "--quiet", *model_args(model_path))
    stdout, stderr = rerun.communicate(timeout=300)
    assert (rerun.returncode, stdout, stderr) == (0, "", "")
    assert query(shelter, "SELECT count(*), count(DISTINCT path) FROM files") == [(12, 12)]


def _as_anyone():
    """In a child, before it runs dogcat: root without the capabilities that let it read any file
    (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so that a file's mode binds it as it binds anyone. They are dropped
    from the bounding set too: exec would give root its bounding set back. Nothing to drop for another user."""
    import ctypes

    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    dac = (1, 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH (linux/capability.h)
    for cap in dac:
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), f"prctl(PR_CAPBSET_DROP, {cap})")
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    sets = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable: capabilities 0-31, then 32-63
    if libc.capget(header, sets) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    for i in range(3):
        sets[i] &= ~sum(1 << cap for cap in dac)
    if libc.capset(header, sets) != 0:
        raise OSError(ctypes.get_errno(), "capset")


def test_unreadable_file_is_an_error_row(crops, model_path, tmp_path):
    """Run as root too (CI is root): the catalog runs in a child that file modes bind (_as_anyone)."""
    intake = make_intake(tmp_path / "intake", pick(crops, 2))
    locked = intake / pick(crops, 1)[0].name
    locked.chmod(0)
    proc = cli("catalog", str(intake), "--db", str(tmp_path / "s.db"), "--quiet", *model_args(model_path),
               preexec_fn=_as_anyone)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert query(tmp_path / "s.db", "SELECT path, error FROM files ORDER BY error IS NULL") == \
        [(str(locked), "permission denied"), (str(intake / pick(crops, 2)[1].name), None)]


def test_walk_options_and_symlinked_folders(crops, model, tmp_path):
    photos = pick(crops, 3)
    intake = make_intake(tmp_path / "intake", photos[:1])
    make_intake(intake / "sub", photos[1:2])
    outside = make_intake(tmp_path / "outside", photos[2:3])
    (intake / "link-out").symlink_to(outside, target_is_directory=True)
    (intake / "sub" / "loop").symlink_to(intake, target_is_directory=True)  # a cycle

    s = run(tmp_path / "flat.db", intake, model, recursive=False)
    assert (s.new, s.links_skipped) == (1, 1)
    s = run(tmp_path / "walk.db", intake, model)
    assert (s.new, s.links_skipped) == (2, 2)
    s = run(tmp_path / "follow.db", intake, model, follow_symlinks=True)
    assert (s.new, s.links_skipped) == (3, 0)  # the loop is walked once, as the folder it points to
    names = sorted(p for p, in query(tmp_path / "follow.db", "SELECT path FROM files"))
    assert names == sorted([str(intake / photos[0].name), str(intake / "sub" / photos[1].name),
                            str(intake / "link-out" / photos[2].name)])


def test_large_files_are_hashed_in_chunks_and_decoded_from_disk(crops, model, tmp_path, monkeypatch):
    intake = make_intake(tmp_path / "intake", pick(crops, 2))
    run(tmp_path / "memory.db", intake, model)
    monkeypatch.setattr(catalog, "IN_MEMORY_LIMIT", 0)
    run(tmp_path / "disk.db", intake, model)
    sql = "SELECT path, sha256, width, height, label, confidence FROM catalog ORDER BY path"
    assert query(tmp_path / "memory.db", sql) == query(tmp_path / "disk.db", sql)


def test_database_inside_the_folder_is_not_counted(crops, model, tmp_path):
    intake = make_intake(tmp_path / "intake", pick(crops, 2))
    run(intake / "shelter.db", intake, model)
    s = run(intake / "shelter.db", intake, model)
    assert (s.files, s.skipped, s.non_images) == (2, 2, 0)


# --- 4: kill -9 and concurrent runs --------------------------------------------------------------------------

def _count(db_path: Path, table: str) -> int:
    try:
        with sqlite3.connect(db_path, timeout=1) as conn:
            return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def _check_database(db_path: Path, n: int):
    assert query(db_path, "PRAGMA integrity_check") == [("ok",)]
    assert query(db_path, "PRAGMA foreign_key_check") == []
    assert query(db_path, "SELECT count(*), count(DISTINCT path) FROM files") == [(n, n)]
    assert query(db_path, "SELECT count(*) FROM files WHERE error IS NULL AND sha256 IS NOT NULL") == [(n,)]
    assert query(db_path, "SELECT count(*), count(DISTINCT sha256) FROM predictions") == [(n, n)]
    assert query(db_path, "SELECT count(*) FROM photos") == [(n,)]


def test_ctrl_c_exits_130_keeping_whole_batches_and_a_rerun_finishes(crops, model_path, tmp_path):
    """README: exit status 130 when interrupted; the batches committed before are kept. The second batch stalls
    inside its transaction until the interrupt comes (with batches that merely took 0.3 s, a loaded machine once
    let the run finish first: exit 0)."""
    n = 8
    intake = make_intake(tmp_path / "intake", pick(crops, n))
    shelter = tmp_path / "shelter.db"
    args = ["catalog", str(intake), "--db", str(shelter), "--batch-size", "2", "--quiet", *model_args(model_path)]
    proc = cli(*args, script=SLOW_CLI, env_extra={"DOGCAT_TEST_STALL_AFTER": "1"})
    deadline = time.monotonic() + 120
    while _count(shelter, "predictions") < 2:  # the first batch is committed
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no batch was committed in time"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr, stderr
    committed = _count(shelter, "predictions")
    assert committed == 2  # the first batch, whole; the stalled one rolled back
    assert query(shelter, "PRAGMA integrity_check") == [("ok",)]

    rerun = cli(*args, "--json")
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    summary = json.loads(stdout.splitlines()[-1])
    assert (summary["new"], summary["skipped"], summary["errors"]) == (n - committed, committed, 0)
    _check_database(shelter, n)


@pytest.mark.slow  # several processes, or a whole install: the full tier
def test_sigkill_mid_run_then_rerun_completes(crops, model_path, tmp_path):
    intake = make_intake(tmp_path / "intake", pick(crops, 40))
    shelter = tmp_path / "shelter.db"
    args = ["catalog", str(intake), "--db", str(shelter), "--batch-size", "4", "--quiet", *model_args(model_path)]
    proc = cli(*args, script=SLOW_CLI, env_extra={"DOGCAT_TEST_DELAY": "0.5"})
    deadline = time.monotonic() + 240
    while _count(shelter, "predictions") < 4:  # the first batch is committed ...
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no batch was committed in time"
        time.sleep(0.02)
    time.sleep(0.1)  # ... and the second is inside its transaction
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    committed = _count(shelter, "predictions")
    assert 4 <= committed < 40 and committed % 4 == 0  # whole batches, never part of one
    assert query(shelter, "PRAGMA integrity_check") == [("ok",)]
    assert _count(shelter, "files") == committed

    rerun = cli(*args, "--json")
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    _check_database(shelter, 40)
    # The killed run's claims (a process of this machine that is gone) were ended at once: the rerun took its
    # batch over without waiting out the lease.
    summary = json.loads(stdout.splitlines()[-1])
    assert summary["new"] == 40 - committed and summary["waited"] == 0, summary


def test_connect_waits_for_a_writer_before_switching_to_wal(tmp_path):
    """SQLite refuses PRAGMA journal_mode = WAL at once ("database is locked", no busy wait) while another
    connection writes to a rollback-mode file, as when a second run races the first to create the catalog.
    (The writer here gives up its table: a file holding another program's tables is refused, issue 20.)"""
    shelter = tmp_path / "shelter.db"
    writer = sqlite3.connect(shelter, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("CREATE TABLE other_tool (x)")  # the file is still in rollback mode, and locked
    release = threading.Timer(0.5, lambda: writer.execute("ROLLBACK"))
    release.start()
    started = time.monotonic()
    engine = db.connect(str(shelter))
    waited = time.monotonic() - started
    release.join()
    writer.close()
    assert waited >= 0.4  # it waited for the writer instead of failing
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()
    tables = {name for (name,) in query(shelter, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"files", "predictions"} <= tables and "other_tool" not in tables


@pytest.mark.slow  # several processes, or a whole install: the full tier
def test_two_runs_at_once_share_the_database(crops, model_path, tmp_path):
    intake = make_intake(tmp_path / "intake", pick(crops, 24))
    shelter = tmp_path / "shelter.db"  # both runs also race to create it
    args = ["catalog", str(intake), "--db", str(shelter), "--batch-size", "4", "--quiet", *model_args(model_path)]
    procs = [cli(*args, script=SLOW_CLI, env_extra={"DOGCAT_TEST_DELAY": "0.2"}) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (_, stderr) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, stderr
        assert "locked" not in stderr and "Traceback" not in stderr
    _check_database(shelter, 24)


# The slow CLI that also says, after each batch is committed, how many photos the run has classified so far: what
# a run killed with -9 had done is then known.
COUNTING_CLI = SLOW_CLI.replace("from dogcat.cli import main", """original_finish = c._Run.finish
def finish(self, prepared):
    original_finish(self, prepared)
    print(f"dogcat-test: committed new={self.s.new}", file=sys.stderr, flush=True)
c._Run.finish = finish
from dogcat.cli import main""")


def three_runs_one_killed(database: str, intake: Path, count, extra_args=()) -> tuple[int, int, list[dict]]:
    """Three runs catalog one folder into ``database`` at once; the third is killed with -9 while it holds
    claims. Returns (claims it left, photos it had committed, the two others' --json summaries).
    ``count(sql_tail)``: SELECT count(*) FROM sql_tail in the database, 0 when the table is not there yet."""
    args = ["catalog", str(intake), "--db", database, "--batch-size", "2", "--quiet", "--json", "--lease", "5",
            *extra_args]
    env = {**os.environ, "DOGCAT_TEST_DELAY": "0.3", "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", COUNTING_CLI, *args], cwd=ROOT, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    victim = procs[2]
    mine = f"claims WHERE owner LIKE '%:{victim.pid}:%'"
    deadline = time.monotonic() + 240
    while not (count("predictions") >= 2 and count(mine) > 0):  # mid-run, holding work
        assert victim.poll() is None, victim.communicate()
        assert time.monotonic() < deadline, "the runs never got going"
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)
    _, stderr = victim.communicate(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    left = count(mine)
    committed = [int(line.rsplit("=", 1)[1]) for line in stderr.splitlines() if line.startswith("dogcat-test:")]
    summaries = []
    for p in procs[:2]:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr
        assert "Traceback" not in stderr and "locked" not in stderr, stderr
        summaries.append(json.loads(stdout))  # one JSON object, nothing else, on stdout
    return left, (committed or [0])[-1], summaries


@pytest.mark.slow  # several processes, or a whole install: the full tier
def test_three_runs_at_once_classify_each_photo_once_and_a_kill_loses_nothing(crops, model_path, tmp_path):
    n = 24
    intake = make_intake(tmp_path / "intake", pick(crops, n))
    shelter = tmp_path / "shelter.db"
    left, killed_new, summaries = three_runs_one_killed(str(shelter), intake, lambda t: _count(shelter, t),
                                                        model_args(model_path))
    assert left > 0  # the killed run died holding claims: the others had to take them over
    assert killed_new + sum(s["new"] for s in summaries) == n, (killed_new, summaries)
    assert all(s["files"] == n and s["errors"] == 0 and s["new"] + s["skipped"] + s["duplicates"] == n
               and set(s) >= {"new", "skipped", "duplicates", "errors", "not_images", "seconds"} for s in summaries)
    assert any(s["waited"] > 0 for s in summaries)  # the taking over: after the killed run's lease was over
    _check_database(shelter, n)
    assert query(shelter, "SELECT count(*) FROM claims") == [(0,)]
    # Grouped into animals by three runs at once: each photo (lying loose in the folder) one animal, once.
    assert query(shelter, "SELECT count(*), count(DISTINCT animal) FROM animal_files") == [(n, n)]
    assert query(shelter, "SELECT count(*) FROM animals") == [(n,)]


@pytest.mark.slow  # several processes, or a whole install: the full tier
def test_a_run_slower_than_its_lease_keeps_its_claims(crops, model_path, tmp_path):
    """A run whose batch takes 8 s to classify, with a 1.5 s lease, is alive: a second run must leave its photos
    to it (the first renews its claims while it works), not take them over and classify them again."""
    n = 6
    intake = make_intake(tmp_path / "intake", pick(crops, n))
    shelter = tmp_path / "shelter.db"
    slow_model = """
import sys, time
import dogcat.status as st
original = st.Judge.judge
def judge(self, *args, **kwargs):
    time.sleep(8)
    return original(self, *args, **kwargs)
st.Judge.judge = judge
from dogcat.cli import main
sys.argv = ["dogcat", *sys.argv[1:]]
main()
"""
    args = ["catalog", str(intake), "--db", str(shelter), "--batch-size", str(n), "--json", "--quiet",
            "--lease", "1.5", *model_args(model_path)]
    slow = cli(*args, script=slow_model)
    deadline = time.monotonic() + 120
    while _count(shelter, "claims") < n:  # it holds every photo, and now sleeps over them
        assert slow.poll() is None and time.monotonic() < deadline, slow.communicate()
        time.sleep(0.05)
    fast = cli(*args)
    summaries = []
    for p in (slow, fast):
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr
        summaries.append(json.loads(stdout))
    assert [s["new"] for s in summaries] == [n, 0], summaries
    assert summaries[1]["skipped"] == n and summaries[1]["waited"] > 0
    _check_database(shelter, n)


# --- 6: the command line -------------------------------------------------------------------------------------

def test_summary_quiet_and_exit_codes(crops, model_path, tmp_path):
    intake = make_intake(tmp_path / "intake", pick(crops, 4))
    (intake / "notes.txt").write_text("not a photo")
    shelter = tmp_path / "shelter.db"
    result = runner.invoke(app, ["catalog", str(intake), "--db", str(shelter), *model_args(model_path)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    for line in ("4 new", "0 skipped", "0 duplicates", "0 errors", "1 not images", "top breeds"):
        assert line in text
    assert "5/5 files" in result.stderr and "images/s" in result.stderr and "ETA" in result.stderr  # progress
    result = runner.invoke(app, ["catalog", str(intake), "--db", f"sqlite:///{shelter}", "--quiet",
                                 *model_args(model_path)])
    assert (result.exit_code, result.output) == (0, "")
    assert query(shelter, "SELECT count(*) FROM files") == [(4,)]

    result = runner.invoke(app, ["catalog", "--help"])
    assert result.exit_code == 0 and "Exit codes" in result.stdout
    for args, message in [
        ([str(tmp_path / "nowhere")], "no such folder"),
        ([str(intake), "--db", "nosuchdialect://x/y"], "cannot use this database URL"),
        ([str(intake), "--db", "not a url://"], "not a valid database URL"),
        ([str(intake), "--db", str(tmp_path / "no" / "such" / "dir.db")], "does not exist"),
        ([str(intake), "--db", str(intake / "notes.txt")], "not a database"),
        ([str(intake), "--model", str(tmp_path / "none.onnx")], "no such model file"),
    ]:
        db_args = [] if "--db" in args else ["--db", str(shelter)]
        result = runner.invoke(app, ["catalog", *args, *db_args,
                                     *([] if "--model" in args else model_args(model_path))])
        assert result.exit_code == 1, (args, result.output)
        assert message in " ".join(result.stderr.split()) and "Traceback" not in result.output


def test_newer_schema_is_refused(crops, model, model_path, tmp_path):
    intake = make_intake(tmp_path / "intake", pick(crops, 1))
    shelter = tmp_path / "shelter.db"
    run(shelter, intake, model)
    with sqlite3.connect(shelter) as conn:
        conn.execute("INSERT INTO schema_version VALUES (99, '2099-01-01', 'dogcat 9')")
    result = runner.invoke(app, ["catalog", str(intake), "--db", str(shelter), *model_args(model_path)])
    assert result.exit_code == 1 and "newer dogcat" in result.stderr


def test_never_imports_tensorflow(crops, model_path, tmp_path):
    intake = make_intake(tmp_path / "intake", pick(crops, 2))
    code = f"""
import sys
import dogcat.cli
assert "sqlalchemy" not in sys.modules and "onnxruntime" not in sys.modules, "imported at startup"
for args in (["catalog", {str(intake)!r}, "--db", {str(tmp_path / "s.db")!r}, "--quiet", *{model_args(model_path)!r}],
             ["export", "--db", {str(tmp_path / "s.db")!r}]):
    try:
        dogcat.cli.app(args, prog_name="dogcat")
    except SystemExit as e:
        assert e.code in (0, None), e.code
assert "tensorflow" not in sys.modules and "keras" not in sys.modules
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
