"""Shared fixtures: real Stanford Dogs photos and the model under test.

Two tiers (README, "Run the tests"):

- fast, ``python -m pytest -m "not slow"``: passes on a fresh clone, without ../shared and without TensorFlow.
  Its photos are tests/data/stanford-dogs/: the 205 Stanford Dogs photos (3.7 MB) that these tests read, in the
  dataset's own layout;
- full, ``python -m pytest -q`` (what .ci/run runs): everything, with the whole dataset in ../shared/data, ASM3's
  import check in ../shared/asm3 and TensorFlow. A test that needs one of these and does not find it is skipped
  with the reason on a developer's machine, and fails under CI (``CI`` set, as .ci/run has it): there a skip
  would hide a missing install step.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DATA = SHARED / "data"  # the whole Stanford Dogs copy: the lab's tests
PHOTOS = ROOT / "tests" / "data" / "stanford-dogs"  # the few photos the other tests read, checked in
CROPS = PHOTOS / "stanford-dogs-crops-224"
ORIGINALS = PHOTOS / "stanford-dogs-originals"
IN_CI = bool(os.environ.get("CI"))


def missing(what: str):
    """A test's requirement is not here: skip on a developer's machine, fail under CI."""
    if IN_CI:
        pytest.fail(f"{what} (CI must have it)", pytrace=False)
    pytest.skip(what, allow_module_level=True)


def needs_shared(path: Path, what: str) -> Path:
    """``path`` under ../shared (the dataset, ASM3's code, the tools), or skip/fail as :func:`missing`."""
    if not path.exists():
        missing(f"{path}: {what} is missing (../shared; see README, Run the tests)")
    return path


def needs_module(name: str):
    """Import ``name`` (TensorFlow, keras ...: the train extra), or skip/fail as :func:`missing`."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        missing(f"{name} is not installed ({e}): pip install '.[train]'")


@pytest.fixture(scope="session")
def model_path() -> str | None:
    """The model the inference tests use: $DOGCAT_TEST_MODEL, or None for the bundled model."""
    return os.environ.get("DOGCAT_TEST_MODEL")


@pytest.fixture(scope="session")
def crops() -> Path:
    """Stanford Dogs crops, <wnid>-<name>/*.jpg: the few the tests use (tests/data/stanford-dogs)."""
    assert CROPS.is_dir(), f"{CROPS}: the tests' photos are missing from the checkout"
    return CROPS


@pytest.fixture(scope="session")
def originals() -> Path:
    assert ORIGINALS.is_dir(), f"{ORIGINALS}: the tests' uncropped photos are missing from the checkout"
    return ORIGINALS


@pytest.fixture(scope="session")
def xception_weights() -> str:
    """The real ImageNet Xception backbone, built offline by the shared tool (cached in ~/.cache/dogcat)."""
    import subprocess
    import sys

    tool = needs_shared(DATA.parent / "tools" / "offline_weights.py", "the offline weights tool")
    done = subprocess.run([sys.executable, str(tool), "xception"], capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def dataset() -> Path:
    """The whole Stanford Dogs copy in ../shared/data (slow tests)."""
    return needs_shared(DATA / "stanford-dogs-crops-224", "the Stanford Dogs crops").parent


@pytest.fixture(scope="session")
def make_model(model_path, tmp_path_factory):
    """make_model(id, breeds=None) → a path to a "new" model: the model under test (its .onnx linked, not
    copied) with another id in its sidecar, and optionally other human breed names."""
    import json

    from dogcat.model import BreedModel, sidecar_path

    source = BreedModel(model_path).path

    def make(model_id: str, breeds: list[str] | None = None) -> Path:
        folder = tmp_path_factory.mktemp("model")
        (folder / "model.onnx").symlink_to(source.resolve())
        card = json.loads(sidecar_path(source).read_text())
        card["id"] = model_id
        if breeds is not None:
            card["breeds"] = breeds
        (folder / "model.json").write_text(json.dumps(card))
        return folder / "model.onnx"

    return make
