"""``dogcat similar``: the catalogued animals that look most like a photo, or like an animal, best first.

An animal looks like the mean direction of its photos' features (each photo's pooled backbone features,
which the catalog keeps: schema 5), and two looks are compared by cosine similarity (1: the same direction).
The backbone's features are what the breed head reads, so similar animals are mostly of a similar breed, coat
and build; benchmarks/teach.py measures how often the top 5 are the query's breed.

A photo that is not catalogued gets its features from the model's backbone (one look, or two where the
first is unsure, as the catalog takes them); a catalogued one, and an animal, use the catalog's. Animals in
care are compared (not merged away, not retired by ``dogcat animals prune``), and retired ones with
``retired=True`` (the same dog, back again). The animal a query photo is already in, and the query animal
itself, are left out.

Layer: jobs (docs/architecture.md).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import and_, select

from dogcat import db, images, readmodel
from dogcat.errors import DogcatError
from dogcat.model import BreedModel, file_sha256
from dogcat.status import Judge

# A dogcat with another backbone (a new release's) finds the catalog's features made by the old one: they are
# kept, not compared (features of two backbones are not alike), and the next catalog run makes the new ones.
ANOTHER_MODEL = ("their features were made by an earlier version of dogcat's model; run dogcat catalog on your "
                 "intake folder again to make them for this one (records and corrections stay as they are)")


def _made_by_another(engine, backbone: str) -> bool:
    with db.reading(engine) as conn:
        return any(b != backbone for b in db.feature_backbones(conn))


class NothingToCompare(DogcatError):
    """No animal with features to compare with, or a query without any."""


@dataclass
class Match:
    animal: str
    name: str
    similarity: float
    photos: int  # of the animal's photos, those compared (with features)
    photo: str  # its photo most like the query
    retired: bool = False
    breed: str | None = None  # the animal's answer (the staff's, else the model's), for people
    status: str | None = None

    def to_dict(self) -> dict:
        return {"animal": self.animal, "name": self.name, "similarity": round(self.similarity, 4),
                "breed": self.breed, "status": self.status, "photos": self.photos, "photo": self.photo,
                "retired": self.retired}


def normalized(x: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (a zero row stays zero), float32."""
    x = np.array(x, np.float32, copy=True, ndmin=2)
    x /= np.maximum(np.sqrt(np.einsum("ij,ij->i", x, x)), 1e-12)[:, None]
    return x


@dataclass
class Gallery:
    """Every compared photo's normalized features, with its animal; photos grouped by animal, in code order."""

    codes: list[str]  # per animal
    names: list[str]
    retired: list[bool]
    starts: np.ndarray  # per animal: its first photo's row (its photos are the rows up to the next one's)
    photo_paths: list[str]
    photo_sha: list[str]
    vectors: np.ndarray  # per photo, normalized

    @functools.cached_property
    def animal_vectors(self) -> np.ndarray:
        """Each animal's look: the mean direction of its photos'."""
        if len(self.codes) == len(self.photo_paths):  # a photo each: nothing to add up
            return self.vectors
        return normalized(np.add.reduceat(self.vectors, self.starts, axis=0))

    def photos_of(self, i: int) -> range:
        return range(int(self.starts[i]), int(self.starts[i + 1]) if i + 1 < len(self.starts) else len(self.vectors))

    def animal_of(self, row: int) -> int:
        """The animal (an index into ``codes``) whose photos hold photo ``row``."""
        return int(np.searchsorted(self.starts, row, side="right")) - 1


def gallery(engine, backbone: str) -> Gallery:
    """Every animal's photos with features from ``backbone``, retired animals too (merges followed: a merged
    animal's photos are in the animal it went to)."""
    a, af, f, ft = db.animals, db.animal_files, db.files, db.features
    q = (select(a.c.code, a.c.name, a.c.retired_at, f.c.path, f.c.sha256, ft.c.vector)
         .select_from(af.join(a, a.c.code == af.c.animal).join(f, f.c.path == af.c.path)
                      .join(ft, and_(ft.c.sha256 == f.c.sha256, ft.c.backbone == backbone)))
         .where(a.c.merged_into.is_(None)))
    with db.reading(engine) as conn:
        rows = list(conn.execute(q).all())
    if not rows and _made_by_another(engine, backbone):
        raise NothingToCompare(f"the catalog's photos: {ANOTHER_MODEL}")
    # Sorted here rather than by the database, which would sort the 4 kB vectors with the rows.
    rows.sort(key=lambda r: (r.code, r.path))
    codes: list[str] = []
    names: list[str] = []
    gone: list[bool] = []
    starts: list[int] = []
    for i, r in enumerate(rows):
        if not codes or codes[-1] != r.code:
            codes.append(r.code)
            names.append(r.name)
            gone.append(r.retired_at is not None)
            starts.append(i)
    vectors = normalized(db.feature_array([r.vector for r in rows])) if rows else np.zeros((0, 0), np.float32)
    return Gallery(codes, names, gone, np.asarray(starts, int), [r.path for r in rows], [r.sha256 for r in rows],
                   vectors)


def _ranked(g: Gallery, query: np.ndarray, top: int, leave_out: set[int]) -> list[Match]:
    """The ``top`` animals most like ``query`` (normalized), best first."""
    sims = g.animal_vectors @ query
    for i in leave_out:
        sims[i] = -np.inf
    order = [int(i) for i in np.argsort(-sims, kind="stable")[:top] if np.isfinite(sims[i])]
    out = []
    for i in order:
        mine = g.photos_of(i)
        best = mine[int(np.argmax(g.vectors[mine.start:mine.stop] @ query))]
        out.append(Match(g.codes[i], g.names[i], float(sims[i]), len(mine), g.photo_paths[best], g.retired[i]))
    return out


def _with_answers(engine, matches: list[Match]) -> list[Match]:
    """Each match's breed as every output shows its animal (the staff's word, else the model's)."""
    if not matches:
        return matches
    photos = list(readmodel.records(engine, animal=[m.animal for m in matches], probabilities=True))
    found = {a.animal: a for a in readmodel.answers(engine, photos=photos)}
    for m in matches:
        a = found.get(m.animal)
        if a is not None:
            m.breed, m.status = a.breed, a.status
    return matches


def by_animal(engine, backbone: str, code: str, top: int = 5, retired: bool = False,
              answers: bool = False) -> list[Match]:
    """The animals that look most like animal ``code`` (a code or, as everywhere, any case of it)."""
    with db.reading(engine) as conn:
        found = db.find_animal(conn, code)
    if found is None:
        raise readmodel.NoSuchAnimal(f"{code}: no such animal in the catalog")
    g = gallery(engine, backbone)
    if found not in g.codes:
        if _made_by_another(engine, backbone):
            raise NothingToCompare(f"{found}: {ANOTHER_MODEL}")
        raise NothingToCompare(f"{found}: none of its photos has features yet (run dogcat catalog, or dogcat "
                               "teach, on a catalog made before dogcat kept them)")
    mine = g.codes.index(found)
    return _finish(engine, g, g.animal_vectors[mine], top, {mine}, retired, answers)


def by_photo(engine, model: BreedModel, photo: str | Path, top: int = 5, retired: bool = False,
             answers: bool = False) -> list[Match]:
    """The animals that look most like the photo at ``photo`` (catalogued or not)."""
    backbone = model.split_backbone("dogcat similar")
    # Decoded from its path first, as classify decodes one: Pillow reads what it needs, so a file that is no
    # image, or one of too many pixels, is refused before its bytes are read (a 3 GB "big.jpg" in memory ...);
    # then hashed in pieces. A file changed between the two is a race the catalog's own hash would lose too.
    try:
        pixels = images.decode(Path(photo), model.preprocessing).views[0]
        sha = file_sha256(Path(photo))
    except images.ImageError as e:
        raise DogcatError(f"{photo}: {e}") from None  # exit 1, as classify
    except OSError as e:
        raise DogcatError(f"{photo}: cannot be read ({e.strerror or e})") from None
    g = gallery(engine, backbone)
    own = {g.animal_of(i) for i, h in enumerate(g.photo_sha) if h == sha}
    with db.reading(engine) as conn:
        stored = db.features_of(conn, backbone, [sha]).get(sha)
    if stored is not None:
        vector = db.feature_array([stored])[0]
    else:
        features = Judge.breeds_only(model).breed_probabilities(pixels[None])[2]
        assert features is not None  # a split model's
        vector = features[0]
    return _finish(engine, g, normalized(vector[None])[0], top, own, retired, answers)


def _finish(engine, g: Gallery, query: np.ndarray, top: int, leave_out: set[int], retired: bool,
            answers: bool) -> list[Match]:
    """The ranked matches, the query's own animals left out, and retired animals unless ``retired``."""
    if not retired:
        leave_out = leave_out | {i for i, gone in enumerate(g.retired) if gone}
    if len(g.codes) - len(leave_out) <= 0:
        raise NothingToCompare("no other animal in the catalog has features to compare with (catalog photos "
                               "with this dogcat first)")
    found = _ranked(g, query, top, leave_out)
    return _with_answers(engine, found) if answers else found
