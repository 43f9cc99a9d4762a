"""dogcat as a Python library: what the command line does, as functions and a class.

    import dogcat

    for result in dogcat.classify(["examples/beagle-crop.jpg"], top_k=3):
        print(result.path, result.status, result.breed, result.confidence)

    with dogcat.Catalog("shelter.db") as catalog:
        summary = catalog.add("intake")          # as `dogcat catalog intake --db shelter.db`
        for animal in catalog.animals():         # as `dogcat animals --db shelter.db`
            print(animal.animal, animal.summary())

``import dogcat`` loads none of this (dogcat/__init__.py imports it on first use), so the command line starts
fast. The models load once per process and set of options, on the first call that needs them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dogcat import classifier, settings
from dogcat.status import Judge

Photo = Any  # a path (str or Path), a photo's bytes, or a PIL image


class Result:
    """One photo's answer. ``to_dict()`` is exactly the record ``dogcat classify --json`` prints."""

    def __init__(self, result: classifier.Result, model_id: str):
        self._result, self.model = result, model_id

    def to_dict(self) -> dict:
        return self._result.to_dict(self.model)

    @property
    def path(self) -> str:
        return self._result.path

    @property
    def status(self) -> str:
        """dog, unsure, not_a_dog or error."""
        return self._result.status

    @property
    def breed(self) -> str | None:
        return self.to_dict()["breed"]

    @property
    def label(self) -> str | None:
        return self.to_dict()["label"]

    @property
    def confidence(self) -> float | None:
        return self.to_dict()["confidence"]

    @property
    def top_k(self) -> list[dict]:
        return self.to_dict()["top_k"]

    @property
    def error(self) -> str | None:
        return self._result.error

    def __repr__(self) -> str:
        return f"Result({self.path!r}, {self.status}, {self.breed or self.error!r})"


@functools.lru_cache(maxsize=4)
def _judge(model: str | None, detector: str | None, device: str, unsure_below: float | None,
           not_dog_below: float | None) -> Judge:
    judge = Judge.load(model, detector, not_dog_below, unsure_below, device)
    judge.start()
    return judge


def _name(photo: Photo, i: int) -> str:
    if isinstance(photo, (str, Path)):
        return str(photo)
    filename = getattr(photo, "filename", None)  # a PIL image opened from a file knows it
    if filename:
        return str(filename)
    return f"<{'bytes' if isinstance(photo, (bytes, bytearray)) else 'image'} {i}>"


def classify(photos: Photo | Iterable[Photo], top_k: int = 3, *, model: str | Path | None = None,
             detector: str | Path | None = None, device: str = "auto", unsure_below: float | None = None,
             not_dog_below: float | None = None) -> list[Result]:
    """Name the breed in each photo (paths, bytes or PIL images; one photo or several), in order.

    A photo that cannot be read is a Result with status ``error`` and the reason in ``error``: never an
    exception. ``model``/``detector``: exported models (default: the bundled ones); the thresholds default to
    the model's. Raises dogcat.model.ModelError for a model that cannot be used."""
    if isinstance(photos, (str, Path, bytes, bytearray)) or hasattr(photos, "getpixel"):
        photos = [photos]
    photos = list(photos)
    judge = _judge(str(model) if model else None, str(detector) if detector else None, device, unsure_below,
                   not_dog_below)
    sources = [Path(p) if isinstance(p, str) else bytes(p) if isinstance(p, bytearray) else p for p in photos]
    names = [_name(p, i) for i, p in enumerate(photos)]
    return [Result(r, judge.model.id) for r in classifier.classify(judge, sources, top_k, names=names)]


class Catalog:
    """A shelter's catalog (a SQLite file or any SQLAlchemy URL), as ``dogcat catalog``/``export``/``animals``
    use it. Use it in a ``with`` block, or call ``close()``."""

    def __init__(self, db: str | Path = settings.DEFAULT_DB, *, model: str | Path | None = None,
                 detector: str | Path | None = None, device: str = "auto"):
        from dogcat import db as catdb

        self.db = str(db)
        self._options = (str(model) if model else None, str(detector) if detector else None, device)
        self.engine = catdb.connect(self.db, create=True)

    def add(self, *folders: str | Path, animals: str | None = None, pattern: str | None = None, top_k: int = 3,
            recursive: bool = True, progress=None):
        """Catalog the photos under ``folders`` and group them into animals (``animals``: folder, pattern or
        none; see dogcat.animals); returns the run's dogcat.catalog.Summary (``.new``, ``.skipped`` ...)."""
        from dogcat import animals as grouping
        from dogcat import catalog

        judge = _judge(*self._options, None, None)
        how = grouping.Grouping.parse(animals, pattern, [str(f) for f in folders])
        return catalog.run(self.engine, list(folders), judge, recursive=recursive, top_k=top_k,
                           progress=progress, grouping=how)

    def records(self, **filters) -> list[dict]:
        """One dict per catalogued file (dogcat.export.records: the --per photo export's records)."""
        from dogcat import export

        return list(export.records(self.engine, **filters))

    def animals(self) -> list:
        """Every animal with its answer (dogcat.animals.Answer; ``to_dict()`` is the --per animal record)."""
        from dogcat.animals import answers

        return answers(self.engine)

    def close(self):
        self.engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
