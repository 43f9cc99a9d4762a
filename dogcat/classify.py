"""Photos → breed guesses, in batches, a bad file becoming an error result rather than an exception."""

from __future__ import annotations

import glob
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dogcat import images
from dogcat.model import BreedModel, Guess

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


@dataclass
class Result:
    path: str
    top_k: list[Guess] = field(default_factory=list)
    error: str | None = None

    def to_dict(self, model_id: str) -> dict:
        best = self.top_k[0] if self.top_k else None
        return {"path": self.path, "label": best.label if best else None, "breed": best.breed if best else None,
                "confidence": round(best.confidence, 6) if best else None,
                "top_k": [g.to_dict() for g in self.top_k], "model": model_id, "error": self.error}


def expand(args: Iterable[str]) -> tuple[list[Path], list[Result]]:
    """Files, folders (walked recursively for photo suffixes) and globs → photo paths, plus errors for
    arguments that name nothing."""
    files, missing = [], []
    for arg in args:
        p = Path(arg)
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix.lower() in PHOTO_SUFFIXES and f.is_file())
        elif p.exists() or p.is_symlink():
            files.append(p)
        elif glob.has_magic(arg):
            matches = sorted(Path(m) for m in glob.glob(arg, recursive=True) if Path(m).is_file())
            if matches:
                files += matches
            else:
                missing.append(Result(arg, error="no file matches this pattern"))
        else:
            missing.append(Result(arg, error="no such file or folder"))
    return files, missing


def classify(model: BreedModel, paths: Iterable[Path], k: int = 3, batch_size: int = 16) -> Iterator[Result]:
    """Yield one Result per path, in order."""
    pending: list[tuple[Path, np.ndarray]] = []

    def flush():
        if not pending:
            return
        probs = model.probabilities(np.stack([px for _, px in pending]))
        for (path, _), row in zip(pending, probs):
            yield Result(str(path), model.top_k(row, k))
        pending.clear()

    for path in paths:
        try:
            pending.append((path, images.load(path, model.preprocessing)))
        except images.ImageError as e:
            yield from flush()  # keep output in input order
            yield Result(str(path), error=str(e))
            continue
        if len(pending) >= batch_size:
            yield from flush()
    yield from flush()
