"""Photos → breed guesses, in batches, a bad file becoming an error result rather than an exception.

Layer: pixels and models (docs/architecture.md).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from dogcat import images, walk
from dogcat.model import BreedModel, Guess
from dogcat.status import Judge, Verdict

if TYPE_CHECKING:
    from PIL import Image



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


def read_paths(stream: BinaryIO, null: bool = False) -> list[str]:
    """Paths from standard input (``classify -``): one per line, or NUL-separated (``find -print0``) with
    ``null``. Read as bytes, so a name that is not UTF-8 still names its file; empty entries are ignored."""
    data = stream.read()
    parts = data.split(b"\0") if null else data.splitlines()
    return [os.fsdecode(p) for p in parts if p]


def folder_photos(folder: Path, videos: list[Path] | None = None) -> list[Path | Result]:
    """The photos under ``folder``, chosen exactly as ``dogcat catalog`` chooses them (the same walk, and a
    file is a photo by its content or by a photo's name), with an error result for each entry the catalog would
    record as an error (a broken link or a folder named like a photo). The videos skipped go to ``videos``."""
    picked: list[Path | Result] = []
    for entry in walk.scan([folder]).entries:
        if entry.error is not None:
            picked.append(Result(str(entry.path), error=entry.error))
        elif walk.looks_like_photo(entry.path):
            picked.append(entry.path)
        elif videos is not None and walk.is_video(entry.path):
            videos.append(entry.path)
    return picked


def expand(args: Iterable[str], stdin: BinaryIO | None = None, null: bool = False,
           videos: list[Path] | None = None) -> list[Path | Result]:
    """Arguments → what to classify, in argument order: files, folders (the photos in them, as catalog picks
    them), globs, and ``-`` (paths read from ``stdin``, taken literally). An argument naming nothing becomes
    an error result in its place. A video (a Live Photo's .MOV, named or in a folder) is no photo: it is left
    out, and added to ``videos`` when given."""
    items: list[Path | Result] = []
    videos = videos if videos is not None else []
    for arg in args:
        if arg == "-" and stdin is not None:
            for line in read_paths(stdin, null):
                p = Path(line)
                if p.is_file() and walk.is_video(p):
                    videos.append(p)
                else:
                    items.append(p if p.exists() or p.is_symlink() else Result(line, error="no such file or folder"))
            stdin = None  # read once; a second "-" adds nothing
            continue
        p = Path(arg)
        if p.is_dir():
            items += folder_photos(p, videos)
        elif p.is_file() and walk.is_video(p):
            videos.append(p)
        elif p.exists() or p.is_symlink():
            items.append(p)
        elif glob.has_magic(arg):
            matches = sorted(Path(m) for m in glob.glob(arg, recursive=True) if Path(m).is_file())
            photos = [m for m in matches if not walk.is_video(m)]
            videos += [m for m in matches if m not in photos]
            items += photos if matches else [Result(arg, error="no file matches this pattern")]
        else:
            items.append(Result(arg, error="no such file or folder"))
    return items


def classify(judge: Judge | BreedModel, paths: Iterable[str | Path | bytes | Image.Image | Result], k: int = 3,
             batch_size: int = 16, names: Iterable[str] | None = None) -> Iterator[Result]:
    """Yield one Result per path, in order; a Result given in place of a path (an argument that named
    nothing) is passed through in its place. A bare BreedModel judges breeds only (no dog check).

    A "path" may also be a photo's bytes or a PIL image (the Python API's dogcat.classify): ``names`` then
    gives each result's ``path``."""
    if isinstance(judge, BreedModel):
        judge = Judge.breeds_only(judge)
    preps = judge.preprocessings
    pending: list[tuple[str, tuple]] = []
    names = iter(names) if names is not None else None

    def flush():
        if not pending:
            return
        for (name, _), verdict in zip(pending, judge.judge([views for _, views in pending], k), strict=True):
            yield Result(name, verdict)
        pending.clear()

    for path in paths:
        name = next(names) if names is not None else str(path)
        if isinstance(path, Result):
            yield from flush()  # keep output in input order
            yield path
            continue
        try:
            pending.append((name, images.decode(path, *preps).views))
        except images.ImageError as e:
            yield from flush()  # keep output in input order
            yield Result(name, error=str(e))
            continue
        if len(pending) >= batch_size:
            yield from flush()
    yield from flush()
