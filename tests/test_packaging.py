"""A newcomer's fresh machine: `pip install .` (no extras) into a new venv, then classify an example photo.

This is the README's first command, run for real: the model must ship inside the wheel, and the base install
must neither need nor pull in TensorFlow.
"""

from __future__ import annotations

import json
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # several processes, or a whole install: the full tier
def test_plain_install_classifies_examples_without_tensorflow(tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", str(ROOT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]

    examples = sorted((ROOT / "examples").glob("*.jpg"))
    assert len(examples) >= 3
    run = subprocess.run([str(env_dir / "bin" / "dogcat"), "classify", "--json", *map(str, examples)],
                         capture_output=True, text=True, cwd=tmp_path)  # not the repo: only the installed copy
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(records) == len(examples)
    for record, photo in zip(records, examples, strict=True):
        # Example photos are named after their breed's class folder: golden_retriever-original.jpg …
        assert record["label"].split("-", 1)[1] == photo.stem.rsplit("-", 1)[0], record

    # An iPhone's HEIC, with the plain install's own HEIF decoder (a base dependency: pi-heif).
    heic = subprocess.run([str(env_dir / "bin" / "dogcat"), "classify", "--json",
                           str(ROOT / "tests" / "data" / "heif" / "golden.heic")], capture_output=True, text=True,
                          cwd=tmp_path)
    assert heic.returncode == 0 and json.loads(heic.stdout)["label"] == "n02099601-golden_retriever", heic.stderr

    installed = subprocess.run([str(python), "-m", "pip", "list", "--format=json"], capture_output=True, text=True)
    names = {p["name"].lower().replace("_", "-") for p in json.loads(installed.stdout)}  # pip lists pi_heif
    assert "tensorflow" not in names and "onnxruntime" in names and "pi-heif" in names
    # The distribution's own name: "dogcat" on the package index is an unrelated project.
    assert "dogcat-shelter" in names and "dogcat" not in names
    top_level = {p.name for p in (env_dir / "lib").glob("python3*/site-packages/*")}
    assert "dogcat" in top_level and "train" not in top_level and "tests" not in top_level
