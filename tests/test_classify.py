"""`dogcat classify` with a real exported model (the bundled one unless $DOGCAT_TEST_MODEL) on real photos."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from dogcat.classifier import classify, expand
from dogcat.cli import app
from dogcat.model import BreedModel, ModelError

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(scope="module")
def model(model_path):
    return BreedModel(model_path)


@pytest.fixture(scope="module")
def val_split(model):
    """The validation half of the split the model was trained on (shipped beside it). A model trained on every
    crop (the bundled one: chosen by cross-validation, see its card) has none: then its training photos, and
    these tests check that the path from photo to answer works, while the card's out-of-fold figures measure it."""
    split = json.loads(model.path.with_suffix(".split.json").read_text())
    return split["val"] if any(split["val"].values()) else split["train"]


def dogcat(*args, env=None, input=None):
    return subprocess.run([sys.executable, "-m", "dogcat", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, input=input)


def dogcat_here(*args: str, env: dict | None = None) -> Result:
    """The command line in this process (typer's runner), for the tests of what it prints on stdout rather than
    of the process (its stderr, its streams, its terminal): the same code without a process's start. An
    exception is raised, not turned into an exit code, so a traceback still fails the test."""
    return runner.invoke(app, list(args), env=env, prog_name="dogcat", catch_exceptions=False)


def test_validation_crops_of_many_breeds(model, val_split, crops):
    labels = model.labels[:: max(1, len(model.labels) // 20)]  # ~20 breeds across the list
    files = [(crops / label / name, label) for label in labels for name in val_split[label][:2]]
    results = list(classify(model, [f for f, _ in files], k=3))
    top1 = sum(r.top_k[0].label == label for r, (_, label) in zip(results, files, strict=True)) / len(files)
    top3 = sum(label in [g.label for g in r.top_k]
               for r, (_, label) in zip(results, files, strict=True)) / len(files)
    # The model card claims 0.92 / 0.98 on the whole split; a 40-photo sample must not fall far below.
    assert top1 >= 0.85 and top3 >= 0.95, (top1, top3)


def test_uncropped_photos(model, val_split, originals):
    """Whole photos (dog small, off-centre), never seen in training as such: their crops are in the val split
    (or, for a model trained on every crop, were seen as crops)."""
    files = []
    for folder in sorted(originals.iterdir()):
        names = [n for n in val_split.get(folder.name, []) if (folder / n).exists()][:6]
        files += [(folder / n, folder.name) for n in names]
    assert len(files) == 24
    results = list(classify(model, [f for f, _ in files], k=3))
    top1 = sum(r.top_k[0].label == label for r, (_, label) in zip(results, files, strict=True)) / len(files)
    assert top1 >= 0.75, top1


def test_probabilities_are_a_distribution(model, crops):
    import numpy as np

    from dogcat import images

    path = next((crops / model.labels[0]).iterdir())
    probs = model.probabilities(images.load_batch([path], model.preprocessing))
    assert probs.shape == (1, len(model.labels))
    assert abs(float(probs.sum()) - 1) < 1e-4 and float(probs.min()) >= 0
    assert np.all(np.diff([g.confidence for g in model.top_k(probs[0], 5)]) <= 0)


def test_json_contract(crops, model):
    photo = crops / "n02099601-golden_retriever" / "n02099601_1010.jpg"
    done = dogcat_here("classify", "--json", "--top-k", "4", str(photo))
    assert done.exit_code == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["path"] == str(photo)
    assert record["label"] == "n02099601-golden_retriever" and record["breed"] == "Golden Retriever"
    assert 0.5 < record["confidence"] <= 1
    assert record["model"] == model.id and record["error"] is None
    assert [set(g) for g in record["top_k"]] == [{"label", "breed", "confidence"}] * 4
    assert record["top_k"][0] == {k: record[k] for k in ("label", "breed", "confidence")}
    assert sum(g["confidence"] for g in record["top_k"]) <= 1.0001


def test_folder_glob_and_errors(crops, tmp_path):
    beagles = sorted((crops / "n02088364-beagle").iterdir())[:3]
    for b in beagles:
        (tmp_path / b.name).write_bytes(b.read_bytes())
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    done = dogcat("classify", "--json", str(tmp_path), str(tmp_path / "missing.jpg"))
    assert done.returncode == 1, done.stderr  # some photos could not be classified
    records = [json.loads(line) for line in done.stdout.splitlines()]
    by_name = {Path(r["path"]).name: r for r in records}
    assert set(by_name) == {b.name for b in beagles} | {"broken.jpg", "missing.jpg"}
    assert by_name["missing.jpg"]["error"] == "no such file or folder"
    assert by_name["broken.jpg"]["label"] is None
    assert by_name["broken.jpg"]["error"].startswith("a JPEG photo dogcat could not decode: ")
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 2 and all(line.startswith("dogcat: error: ") for line in errors)
    assert sum(by_name[b.name]["label"] == "n02088364-beagle" for b in beagles) >= 2

    globbed = dogcat("classify", "--json", str(tmp_path / "n02088364_*.jpg"))
    assert len(globbed.stdout.splitlines()) == 3


def test_any_failure_exits_1_and_results_keep_the_argument_order(crops, tmp_path):
    beagles = sorted((crops / "n02088364-beagle").iterdir())[:2]
    missing = tmp_path / "missing.jpg"
    done = dogcat("classify", "--json", str(beagles[0]), str(missing), str(beagles[1]))
    assert done.returncode == 1, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["path"] for r in records] == [str(beagles[0]), str(missing), str(beagles[1])]
    assert [r["error"] is None for r in records] == [True, False, True]
    assert done.stderr.splitlines() == [f"dogcat: error: {missing}: no such file or folder"]
    assert dogcat("classify", "--json", str(beagles[0])).returncode == 0
    assert "1  at least one photo could not be" in dogcat("classify", "--help").stdout


def test_paths_from_standard_input(crops, tmp_path):
    beagles = sorted((crops / "n02088364-beagle").iterdir())[:2]
    odd = tmp_path / "two\nlines.jpg"  # a name with a line break: only --null can pass it
    odd.write_bytes(beagles[1].read_bytes())
    lines = f"{beagles[0]}\n{tmp_path / 'gone.jpg'}\n{beagles[1]}\n"
    done = dogcat("classify", "--json", "-", input=lines)
    assert done.returncode == 1, done.stderr
    assert [json.loads(line)["path"] for line in done.stdout.splitlines()] == [
        str(beagles[0]), str(tmp_path / "gone.jpg"), str(beagles[1])]
    done = dogcat("classify", "--json", "--null", str(beagles[1]), "-", input=f"{odd}\0{beagles[0]}\0")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["path"] for r in records] == [str(beagles[1]), str(odd), str(beagles[0])]
    assert records[0]["top_k"] == records[1]["top_k"]  # the same photo under the odd name


def test_a_folder_gives_the_files_catalog_takes(crops, tmp_path):
    """By content, as catalog does: a camera's extension-less IMG_0001 is a photo, notes.txt is not."""
    beagles = sorted((crops / "n02088364-beagle").iterdir())[:2]
    intake = tmp_path / "intake"
    (intake / "sub").mkdir(parents=True)
    (intake / "IMG_0001").write_bytes(beagles[0].read_bytes())
    (intake / "sub" / "b.jpg").write_bytes(beagles[1].read_bytes())
    (intake / "notes.txt").write_text("kennel 4")
    (intake / "broken.jpg").write_bytes(b"not a photo")
    shelter = tmp_path / "shelter.db"
    result = CliRunner().invoke(app, ["catalog", str(intake), "--db", str(shelter), "--quiet"])
    assert result.exit_code == 0, result.output
    import sqlite3
    with sqlite3.connect(shelter) as conn:
        catalogued = sorted(p for (p,) in conn.execute("select path from files"))
    done = dogcat_here("classify", "--json", str(intake))
    classified = [json.loads(line)["path"] for line in done.stdout.splitlines()]
    assert sorted(classified) == catalogued == sorted(str(intake / n) for n in ("IMG_0001", "sub/b.jpg",
                                                                               "broken.jpg"))


def test_exit_code_when_nothing_could_be_classified(tmp_path):
    (tmp_path / "notes.jpg").write_text("kennel card")
    done = dogcat("classify", str(tmp_path / "notes.jpg"), str(tmp_path / "gone.jpg"))
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 2 and "gone.jpg: no such file" in done.stderr
    assert "Traceback" not in done.stderr


def test_table_output(crops):
    photo = crops / "n02110958-pug" / sorted(os.listdir(crops / "n02110958-pug"))[0]
    done = dogcat_here("classify", str(photo))
    assert done.exit_code == 0 and "Pug" in done.stdout and "%" in done.stdout


def test_bad_model_is_one_line_error(tmp_path, crops):
    fake = tmp_path / "model.onnx"
    fake.write_bytes(b"not onnx")
    photo = next((crops / "n02088364-beagle").iterdir())
    done = dogcat("classify", "--model", str(fake), str(photo))
    assert done.returncode == 1 and "sidecar is missing" in done.stderr
    card = json.loads(BreedModel().path.with_suffix(".json").read_text())
    other = {**card, "backbone": {**card["backbone"], "sha256": "0" * 64}}
    (tmp_path / "model.json").write_text(json.dumps(other))
    done = dogcat("classify", "--model", str(fake), str(photo))  # a split model: its backbone is not beside it
    assert done.returncode == 1 and "the backbone that model.json names, and the bundled one is another" \
        in done.stderr
    assert "run dogcat teach again" in done.stderr and len(done.stderr.strip().splitlines()) == 1  # issue 32
    # The bundled backbone itself (as a taught model names it) is found without a copy beside the model; the
    # card's SHA-256 is checked against the file (issue 31), then ONNX Runtime reads it.
    (tmp_path / "model.json").write_text(json.dumps(card))
    done = dogcat("classify", "--model", str(fake), str(photo))
    assert done.returncode == 1 and "not the model model.json describes" in done.stderr
    card["sha256"] = hashlib.sha256(fake.read_bytes()).hexdigest()
    (tmp_path / "model.json").write_text(json.dumps(card))
    done = dogcat("classify", "--model", str(fake), str(photo))
    assert done.returncode == 1 and "ONNX Runtime cannot load it" in done.stderr
    (tmp_path / "model.json").write_text(json.dumps({k: v for k, v in card.items() if k != "backbone"}))
    done = dogcat("classify", "--model", str(fake), str(photo))
    assert done.returncode == 1 and "ONNX Runtime cannot load it" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_classify_never_imports_tensorflow(crops):
    photo = next((crops / "n02088364-beagle").iterdir())
    code = ("import sys, runpy; sys.argv = ['dogcat', 'classify', sys.argv[1]]\n"
            "try:\n    runpy.run_module('dogcat', run_name='__main__')\n"
            "except SystemExit as e:\n    assert not e.code\n"
            "heavy = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx')]\n"
            "assert not heavy, heavy\n")
    done = subprocess.run([sys.executable, "-c", code, str(photo)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_expand_reports_patterns_that_match_nothing(tmp_path):
    [missing] = expand([str(tmp_path / "*.jpg")])
    assert missing.error == "no file matches this pattern"


def test_bundled_model_ships_in_the_package():
    model = BreedModel()
    assert model.path.is_file() and model.path.parent.name == "models"
    assert len(model.labels) == 120
    card = model.card
    # A floor against shipping a worse model: out of fold over all 17,456 crops (a model trained on every crop,
    # issue #15's targets: top-1 >= 0.913, top-3 >= 0.985, int8 costing at most 0.3 points), or on the validation
    # split (a transfer run's model: 0.905 / 0.98, int8 at most 0.5 points).
    metrics = card["metrics"]
    if "oof_looks" in metrics:  # the split model: fold heads on this backbone's features (dogcat train looks)
        auto = metrics["oof_looks"]["auto"]
        assert auto["n"] == 17456 and auto["top1"] >= 0.913 and auto["top3"] >= 0.985
        if "quantization" in card:
            assert metrics["fp32_oof"]["n"] == 17456 and metrics["fp32_oof"]["top1"] - auto["top1"] <= 0.003
    elif "oof_onnx" in metrics:  # this graph through the fold heads (int8: on the folds measured)
        measured = metrics["oof_onnx"]["crops"]
        assert measured["n"] >= 3000 and measured["top1"] >= 0.913 and measured["top3"] >= 0.985
        if "quantization" in card:
            assert metrics["oof_onnx"]["fp32_same_photos"]["crops"]["top1"] - measured["top1"] <= 0.003
            assert metrics["fp32_oof"]["n"] == 17456 and metrics["fp32_oof"]["top1"] >= 0.913
    else:
        assert metrics["val"]["top1"] >= 0.905 and metrics["val"]["top3"] >= 0.98
        if "quantization" in card:
            assert metrics["fp32_val"]["top1"] - metrics["val"]["top1"] <= 0.005
    assert (model.path.parent / "MODEL_CARD.md").is_file()


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelError, match="no such model file"):
        BreedModel(tmp_path / "none.onnx")


def test_chunked_inference_matches_one_photo_at_a_time(model, crops):
    import numpy as np

    from dogcat import images
    from dogcat.model import INFERENCE_CHUNK

    files = sorted((crops / "n02110958-pug").iterdir())[: INFERENCE_CHUNK + 2]  # more than one chunk
    batch = images.load_batch(files, model.preprocessing)
    together = model.probabilities(batch)
    alone = np.concatenate([model.probabilities(batch[i:i + 1]) for i in range(len(files))])
    assert together.shape == (len(files), len(model.labels))
    np.testing.assert_allclose(together, alone, atol=1e-5)


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "table"])
def test_results_stream_as_they_are_answered(crops, tmp_path, as_json):
    """Issue 36: one result per photo as the model answers it, in argument order, not all at the end. The last
    argument is a named pipe that nobody writes to yet: opening it blocks, so the results of the photos before
    it must be out (a batch of 16) while the command still waits; then it is given bytes that are no photo."""
    import select

    photos = sorted(crops.glob("*/*.jpg"))[::10][:16]  # 16: the first batch the model answers
    assert len(photos) == 16
    fifo = tmp_path / "later.jpg"
    os.mkfifo(fifo)
    run = subprocess.Popen([sys.executable, "-m", "dogcat", "classify", *(["--json"] if as_json else []),
                            *map(str, photos), str(fifo)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           cwd=ROOT, env={**os.environ, "COLUMNS": "80"})
    try:
        lines: list[str] = []
        buffered = b""
        wanted = len(photos) + (0 if as_json else 2)  # the table: its header and rule first
        deadline = time.monotonic() + 180
        while len(lines) < wanted and time.monotonic() < deadline and run.poll() is None:
            if select.select([run.stdout], [], [], 1)[0]:
                buffered += os.read(run.stdout.fileno(), 1 << 16)
                *done, buffered = buffered.split(b"\n")
                lines += [line.decode() for line in done]
        assert run.poll() is None, "classify ended before the named pipe was opened"
        assert len(lines) == wanted, lines  # printed while the last photo is still being waited for
        if as_json:
            assert [json.loads(line)["path"] for line in lines] == [str(p) for p in photos]
        else:
            assert [line.split("│")[0].strip() for line in lines[2:]] == [str(p) for p in photos]
    finally:
        deadline = time.monotonic() + 120
        while run.poll() is None and time.monotonic() < deadline:  # once dogcat has opened it to read
            try:
                writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # not opened yet (ENXIO)
                time.sleep(0.1)
                continue
            os.write(writer, b"no photo")
            os.close(writer)
            break
        out, err = run.communicate(timeout=120)
    assert run.returncode == 1 and "later.jpg" in err.decode()
    if as_json:
        assert json.loads(out.decode().splitlines()[-1])["path"] == str(fifo)


def test_unsure_reads_as_a_mix_only_when_the_second_breed_is_a_contender(crops):
    """Issue 36: 'maybe a mix' when the second breed has at least decision.MIX_SECOND_FROM, else 'probably X
    (NN%)'. Two photos the model is unsure of, one torn between two breeds, one with a small runner-up."""
    from dogcat.decision import MIX_SECOND_FROM

    photos = [crops / "n02088364-beagle" / "n02088364_10362.jpg", crops / "n02091635-otterhound" /
              "n02091635_1083.jpg", crops / "n02088364-beagle" / "n02088364_10108.jpg"]
    records = [json.loads(line) for line in dogcat_here("classify", "--json", *map(str, photos)).stdout.splitlines()]
    table = dogcat_here("classify", *map(str, photos), env={"COLUMNS": "200"}).stdout.splitlines()[2:]
    answers = {line.split("│")[0].strip(): line.split("│")[1].strip() for line in table}
    mixes = 0
    for r in records:
        first, second = r["top_k"][0], r["top_k"][1]
        said = answers[r["path"]]
        if r["status"] == "dog":
            assert said.startswith(f"{first['breed']} {first['confidence']:.0%}"), said
        elif second["confidence"] >= MIX_SECOND_FROM:
            mixes += 1
            assert said.startswith(f"maybe a mix: {first['breed']} {first['confidence']:.0%} / {second['breed']} "
                                   f"{second['confidence']:.0%}"), said
        else:
            assert said.startswith(f"probably {first['breed']} ({first['confidence']:.0%})"), said
            assert "/" not in said.split(";")[0]
    # The two unsure photos fall on either side of the rule (second breed 0.43 and 0.05 with the amx kernels).
    assert mixes == 1 and sum(r["status"] == "unsure" for r in records) == 2, records


@pytest.mark.parametrize("no_color", [False, True], ids=["colour", "NO_COLOR"])
def test_the_table_keeps_one_line_per_photo_in_an_80_column_terminal(crops, tmp_path, no_color):
    """Issue 36: on a terminal 80 columns wide every row is one line (the runners-up shortened, never the path),
    NO_COLOR's plain terminal too; into a pipe nothing is cut. A real pseudo-terminal, as a person's."""
    import pty

    folder = tmp_path / "intake" / "A1023-Rex"
    folder.mkdir(parents=True)
    for name in ("n02088364_10362.jpg", "n02088364_10108.jpg"):
        shutil.copy(crops / "n02088364-beagle" / name, folder / name)
    shutil.copy(ROOT / "examples" / "German_shepherd-original.jpg", folder / "IMG_0001.jpg")
    args = [sys.executable, "-m", "dogcat", "classify", str(folder.relative_to(tmp_path))]
    env = {**os.environ, "COLUMNS": "80", "LINES": "24", "TERM": "xterm", "PYTHONPATH": str(ROOT)}
    env.pop("NO_COLOR", None)
    if no_color:
        env["NO_COLOR"] = "1"
    primary, secondary = pty.openpty()
    run = subprocess.Popen(args, stdin=secondary, stdout=secondary, stderr=secondary, cwd=tmp_path, env=env)
    os.close(secondary)
    screen = b""
    while True:
        try:
            chunk = os.read(primary, 1 << 16)
        except OSError:  # the terminal closed: the command has ended
            break
        if not chunk:
            break
        screen += chunk
    os.close(primary)
    assert run.wait(timeout=60) == 0
    # What stays on the screen: on each line, what follows the last carriage return or erase-line.
    lines = [re.split(r"\r|\x1b\[2K", line)[-1] for line in screen.decode().replace("\r\n", "\n").split("\n")]
    rows = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", line) for line in lines if "│" in line]
    assert len(rows) == 3 and all(len(line) <= 80 for line in rows), rows
    assert [line.split("│")[0].strip() for line in rows] == [
        f"intake/A1023-Rex/{n}" for n in ("IMG_0001.jpg", "n02088364_10108.jpg", "n02088364_10362.jpg")]
    piped = dogcat("classify", str(folder), env={"COLUMNS": "80"}).stdout.splitlines()[2:]
    assert len(piped) == 3 and all("; then " in line and line.count(",") >= 1 for line in piped[:2]), piped
    assert any(len(line) > 80 for line in piped)  # into a pipe: every runner-up, however wide
