"""Photos → breed guesses, in batches, a bad file becoming an error result rather than an exception."""

from __future__ import annotations

import glob
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path


from dogcat import images
from dogcat.model import BreedModel, Guess
from dogcat.status import Judge, Thresholds, Verdict

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


@dataclass
class Result:
    path: str
    verdict: Verdict | None = None
    error: str | None = None

    @property
    def top_k(self) -> list[Guess]:
        return self.verdict.top_k if self.verdict else []

    @property
    def status(self) -> str:
        return self.verdict.status if self.verdict else "error"

    def to_dict(self, model_id: str) -> dict:
        v = self.verdict
        best = v.best if v else None
        return {"path": self.path, "status": self.status, "label": best.label if best else None,
                "breed": best.breed if best else None,
                "confidence": round(best.confidence, 6) if best else None,
                "top_k": [g.to_dict() for g in self.top_k],
                "dog_probability": round(v.dog_probability, 6) if v and v.dog_probability is not None else None,
                "looks_like": v.looks_like if v else None, "model": model_id, "error": self.error}


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


def classify(judge: Judge | BreedModel, paths: Iterable[Path], k: int = 3, batch_size: int = 16) -> Iterator[Result]:
    """Yield one Result per path, in order. A bare BreedModel judges breeds only (no dog check)."""
    if isinstance(judge, BreedModel):
        judge = Judge(judge, None, Thresholds(0.0, 0.0))
    preps = judge.preprocessings
    pending: list[tuple[Path, tuple]] = []

    def flush():
        if not pending:
            return
        for (path, _), verdict in zip(pending, judge.judge([views for _, views in pending], k)):
            yield Result(str(path), verdict)
        pending.clear()

    for path in paths:
        try:
            pending.append((path, images.decode(path, *preps).views))
        except images.ImageError as e:
            yield from flush()  # keep output in input order
            yield Result(str(path), error=str(e))
            continue
        if len(pending) >= batch_size:
            yield from flush()
    yield from flush()
