"""Shared fixtures: the real Stanford Dogs copy in ../shared/data and the model under test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CROPS = DATA / "stanford-dogs-crops-224"
ORIGINALS = DATA / "stanford-dogs-originals"


@pytest.fixture(scope="session")
def model_path() -> str | None:
    """The model the inference tests use: $DOGCAT_TEST_MODEL, or None for the bundled model."""
    return os.environ.get("DOGCAT_TEST_MODEL")


@pytest.fixture(scope="session")
def crops() -> Path:
    assert CROPS.is_dir(), f"{CROPS}: the Stanford Dogs crops are missing (see ../shared/data/README.md)"
    return CROPS


@pytest.fixture(scope="session")
def originals() -> Path:
    assert ORIGINALS.is_dir(), f"{ORIGINALS}: the uncropped originals are missing"
    return ORIGINALS


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


if os.environ.get("DOGCAT_RECORD_DATA"):  # temporary: which dataset files do the tests read?
    import sys as _sys

    _seen = set()

    def _hook(event, args):
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            p = os.fsdecode(args[0])
            if "/shared/data/" in p and p not in _seen:
                _seen.add(p)
                with open(os.environ["DOGCAT_RECORD_DATA"], "a") as f:
                    f.write(p + "\n")

    _sys.addaudithook(_hook)
