"""Animals: the catalog's files grouped into one record per dog, each with one answer fused from its photos.

A shelter works in animals, not photos: intake staff take several photos of each dog, and the shelter's system
holds one record per animal. ``dogcat catalog --animals MODE`` groups the files it catalogs:

- ``folder`` (the default): the photos lying directly in one sub-folder are one animal, named after the folder
  (``intake/A123456/*.jpg`` or ``intake/Max/*.jpg``). Photos lying directly in a folder named on the command
  line are each an animal of their own: a flat intake folder is many dogs, not one.
- ``pattern``: the animal's code is read from each file name with a regular expression (its group named
  ``animal``, else its first group, else the whole match): ``A(\\d+)_`` groups ``A123456_1.jpg`` and
  ``A123456_2.jpg``. A file whose name does not match is an animal of its own.
- ``none``: every photo is an animal of its own (the same photo under two names is one).

Grouping is stored (tables ``animals`` and ``animal_files``, see dogcat.db) and kept: a later run with the
default grouping only places files that have no animal yet, a run given ``--animals`` explicitly regroups the
files it sees, and neither ever moves a file that staff placed (``dogcat animals move`` / ``merge``).

Each animal's answer (:func:`answers`) prefers the staff: its own correction, else a correction of one of its
photos, else the model's photos fused (dogcat.fusion). Photos that are not dogs, unreadable, or corrected as
not a dog do not vote; an animal is ``not_a_dog`` only when none of its photos shows a dog.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath

from sqlalchemy import and_, delete, func, insert, select, text, update
from sqlalchemy.engine import Connection, Row

from dogcat import db, fusion, settings
from dogcat.breeds import breed_name
from dogcat.decision import DEFAULT_UNSURE_BELOW, status_of

GROUPINGS = ("folder", "pattern", "none")
DEFAULT_GROUPING = "folder"
STAFF = "staff"  # grouped_by of a file that staff placed: no catalog run moves it
UPGRADE = "upgrade"  # grouped_by of a file placed by the schema 2 → 3 migration: the next run regroups it
CODE_MAX = 40


class GroupingError(Exception):
    """A grouping that cannot be used (a bad regular expression, one that matches no file); one line."""


class NotFound(Exception):
    """An animal code, photo path or SHA-256 that the catalog does not have; one line."""


# --- grouping ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Grouping:
    mode: str = DEFAULT_GROUPING
    pattern: re.Pattern | None = None
    roots: tuple[str, ...] = ()  # absolute folders named on the command line (folder mode)
    explicit: bool = False  # asked for with --animals: regroup what catalog placed before

    @classmethod
    def parse(cls, mode: str | None, pattern: str | None = None, roots: Iterable[str] = ()) -> Grouping:
        explicit = mode is not None or pattern is not None
        mode = mode or ("pattern" if pattern is not None else DEFAULT_GROUPING)
        if mode not in GROUPINGS:
            raise GroupingError(f"--animals must be one of {', '.join(GROUPINGS)}, not {mode!r}")
        compiled = None
        if mode == "pattern":
            if not pattern:
                raise GroupingError("--animals pattern needs --pattern REGEX (e.g. --pattern 'A(\\d+)_')")
            try:
                compiled = re.compile(pattern)
            except re.error as e:
                raise GroupingError(f"--pattern {pattern!r}: not a valid regular expression ({e})") from None
        elif pattern is not None:
            raise GroupingError(f"--pattern goes with --animals pattern, not --animals {mode}")
        return cls(mode, compiled, tuple(os.path.abspath(r) for r in roots), explicit)

    def code_in(self, file_name: str) -> str | None:
        """pattern mode: the animal's code in a file name, or None when it does not match."""
        assert self.pattern is not None
        m = self.pattern.search(file_name)
        if m is None:
            return None
        if "animal" in m.groupdict():
            found = m.group("animal")
        elif m.re.groups:
            found = m.group(1)
        else:
            found = m.group(0)
        return found or None

    def check(self, paths: Sequence[str]):
        """Refuse a pattern that matches none of the files about to be catalogued (a typo, most likely)."""
        if self.mode != "pattern" or not paths:
            return
        assert self.pattern is not None  # parse() sets it in pattern mode
        names = [PurePath(p).name for p in paths]
        if not any(self.code_in(n) for n in names):
            raise GroupingError(f"--pattern {self.pattern.pattern!r} matches none of the {len(names)} file "
                                f"names (e.g. {names[0]!r}): nothing was catalogued")

    def animal_for(self, path: str, sha256: str | None) -> tuple[str, str, str]:
        """(key, code wanted, name) of the animal a file belongs to under this grouping."""
        folder, name = os.path.split(path)
        if self.mode == "folder" and folder not in self.roots:
            return f"folder:{folder}", clean_code(os.path.basename(folder)), os.path.basename(folder) or folder
        if self.mode == "pattern":
            code = self.code_in(name)
            if code:
                return f"pattern:{code}", clean_code(code), code
        return single(path, sha256)


def single(path: str, sha256: str | None) -> tuple[str, str, str]:
    """The animal of a photo on its own: one per distinct photo (a file that could not be read: one per file)."""
    from dogcat.asm3 import placeholder_name

    stem = PurePath(path).stem
    key = f"photo:{sha256}" if sha256 else f"file:{path}"
    return key, clean_code(stem), placeholder_name(path)


def clean_code(text: str) -> str:
    """A code safe everywhere it goes (ASM3's ANIMALCODE, a file name, a shell): letters, digits, - _ ."""
    code = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")[:CODE_MAX].strip("-.")
    return code or "animal"


def _free_code(conn: Connection, wanted: str) -> str:
    """``wanted``, or ``wanted-2``, ``-3`` ... : codes are unique regardless of case (ASM3 matches that way)."""
    def taken(code: str) -> bool:
        return bool(conn.scalar(select(func.count()).select_from(db.animals)
                                .where(func.lower(db.animals.c.code) == code.lower())))

    code, n = wanted, 1
    while taken(code):
        n += 1
        code = f"{wanted}-{n}"
    return code


def _lock(conn: Connection):
    if conn.dialect.name == "postgresql":  # SQLite: the caller's BEGIN IMMEDIATE already serialises writers
        conn.execute(text(f"SELECT pg_advisory_xact_lock({settings.LOCK_GROUPING})"))


def _resolve(conn: Connection, code: str) -> str:
    """Follow merges: the animal that now holds what ``code`` held."""
    seen = {code}
    while True:
        merged = conn.scalar(select(db.animals.c.merged_into).where(db.animals.c.code == code))
        if not merged or merged in seen:
            return code
        seen.add(merged)
        code = merged


def _animal_code(conn: Connection, key: str, wanted: str, name: str, now: str, made: dict[str, str]) -> str:
    """The code of the animal with this grouping key, made if there is none yet."""
    if key in made:
        return made[key]
    code = conn.scalar(select(db.animals.c.code).where(db.animals.c.key == key))
    if code is None:
        code = _free_code(conn, wanted)
        conn.execute(insert(db.animals).values(code=code, name=name, key=key, merged_into=None, created_at=now))
    made[key] = code = _resolve(conn, code)
    return code


def assign(conn: Connection, grouping: Grouping, files: Sequence[tuple[str, str | None]]) -> int:
    """Put the catalogued files (path key, SHA-256 or None) in their animals, in the caller's write
    transaction; returns how many files were placed or moved. Idempotent."""
    if not files:
        return 0
    _lock(conn)
    now = db.now()
    current: dict[str, Row] = {}
    for chunk in db._chunks([p for p, _ in files]):
        for r in conn.execute(select(db.animal_files.c.path, db.animal_files.c.animal,
                                     db.animal_files.c.grouped_by).where(db.animal_files.c.path.in_(chunk))):
            current[r.path] = r
    made: dict[str, str] = {}
    changed, left = 0, set()
    for path, sha256 in files:
        row = current.get(path)
        if row is not None and (row.grouped_by == STAFF or (row.grouped_by != UPGRADE and not grouping.explicit)):
            continue
        key, wanted, name = grouping.animal_for(path, sha256)
        code = _animal_code(conn, key, wanted, name, now, made)
        if row is None:
            conn.execute(insert(db.animal_files).values(path=path, animal=code, grouped_by=grouping.mode,
                                                        grouped_at=now))
        elif row.animal != code or row.grouped_by != grouping.mode:
            conn.execute(update(db.animal_files).where(db.animal_files.c.path == path)
                         .values(animal=code, grouped_by=grouping.mode, grouped_at=now))
            if row.animal != code:
                left.add(row.animal)
        else:
            continue
        changed += 1
    _drop_empty(conn, left)
    return changed


def _drop_empty(conn: Connection, codes: Iterable[str]):
    """Animals a regrouping emptied go, unless staff made or corrected them, or one was merged into them."""
    for code in codes:
        has_files = conn.scalar(select(func.count()).select_from(db.animal_files)
                                .where(db.animal_files.c.animal == code))
        kept = conn.scalar(select(func.count()).select_from(db.corrections).where(and_(
            db.corrections.c.target_kind == "animal", db.corrections.c.target == code)))
        merged_here = conn.scalar(select(func.count()).select_from(db.animals)
                                  .where(db.animals.c.merged_into == code))
        if not (has_files or kept or merged_here):
            conn.execute(delete(db.animals).where(and_(db.animals.c.code == code, db.animals.c.key.is_not(None))))


def assign_upgraded(conn: Connection):
    """Schema 2 → 3: every file already catalogued becomes an animal of its own (one per distinct photo), as
    the exports grouped them before; the next catalog run groups them as asked."""
    rows = conn.execute(select(db.files.c.path, db.files.c.sha256).order_by(db.files.c.path)).all()
    now = db.now()
    made: dict[str, str] = {}
    for path, sha256 in rows:
        key, wanted, name = single(path, sha256)
        code = _animal_code(conn, key, wanted, name, now, made)
        conn.execute(insert(db.animal_files).values(path=path, animal=code, grouped_by=UPGRADE, grouped_at=now))


# --- staff: regrouping ----------------------------------------------------------------------------------------

def _existing(conn: Connection, code: str) -> str:
    row = conn.execute(select(db.animals.c.code, db.animals.c.merged_into)
                       .where(func.lower(db.animals.c.code) == code.lower())).first()
    if row is None:
        raise NotFound(f"{code}: no such animal (dogcat animals lists them)")
    if row.merged_into:
        raise NotFound(f"{row.code}: was merged into {row.merged_into}; use that code")
    return row.code


def merge(conn: Connection, into: str, other: str) -> int:
    """Move every photo of ``other`` into ``into``; ``other`` remembers it (a later catalog run that finds its
    folder again puts new photos into ``into`` too). Returns the number of files moved."""
    _lock(conn)
    into, other = _existing(conn, into), _existing(conn, other)
    if into == other:
        raise NotFound(f"{into}: cannot merge an animal into itself")
    now = db.now()
    moved = conn.execute(update(db.animal_files).where(db.animal_files.c.animal == other)
                         .values(animal=into, grouped_by=STAFF, grouped_at=now)).rowcount
    conn.execute(update(db.animals).where(db.animals.c.code == other).values(merged_into=into))
    conn.execute(update(db.animals).where(db.animals.c.merged_into == other).values(merged_into=into))
    return moved


def move(conn: Connection, photo: str, to: str, create_name: str | None = None) -> list[str]:
    """Move a photo (a path, or a SHA-256: every file holding it) into animal ``to``; with ``create_name``,
    ``to`` is a new animal made by staff. Returns the paths moved."""
    _lock(conn)
    paths = photo_paths(conn, photo)
    now = db.now()
    if create_name is not None:
        if conn.scalar(select(func.count()).select_from(db.animals)
                       .where(func.lower(db.animals.c.code) == to.lower())):
            raise NotFound(f"{to}: an animal with this code already exists (leave out --new to move into it)")
        if clean_code(to) != to:
            raise NotFound(f"{to}: an animal code may only hold letters, digits, '-', '_' and '.'")
        conn.execute(insert(db.animals).values(code=to, name=create_name or to, key=None, merged_into=None,
                                               created_at=now))
    else:
        to = _existing(conn, to)
    old = set()
    for path in paths:
        before = conn.scalar(select(db.animal_files.c.animal).where(db.animal_files.c.path == path))
        if before is None:
            conn.execute(insert(db.animal_files).values(path=path, animal=to, grouped_by=STAFF, grouped_at=now))
        else:
            old.add(before)
            conn.execute(update(db.animal_files).where(db.animal_files.c.path == path)
                         .values(animal=to, grouped_by=STAFF, grouped_at=now))
    _drop_empty(conn, old - {to})
    return paths


def photo_paths(conn: Connection, photo: str) -> list[str]:
    """The catalogued files a user means by ``photo``: a path (as given, or absolute) or a SHA-256."""
    if re.fullmatch(r"[0-9a-fA-F]{64}", photo):
        paths = list(conn.scalars(select(db.files.c.path).where(db.files.c.sha256 == photo.lower())
                                  .order_by(db.files.c.path)))
        if paths:
            return paths
    from dogcat.catalog import path_key

    for candidate in dict.fromkeys((photo, path_key(photo))):
        if conn.scalar(select(func.count()).select_from(db.files).where(db.files.c.path == candidate)):
            return [candidate]
    raise NotFound(f"{photo}: no such photo in the catalog (a path as catalogued, or a SHA-256)")


# --- answers ---------------------------------------------------------------------------------------------------

@dataclass
class Correction:
    id: int
    status: str  # dog / not_a_dog
    label: str | None
    label2: str | None
    by: str
    at: str

    def to_dict(self) -> dict:
        return {"status": self.status, "label": self.label, "breed": breed_name(self.label) if self.label else None,
                "label2": self.label2, "breed2": breed_name(self.label2) if self.label2 else None,
                "by": self.by, "at": self.at}


def active_corrections(conn: Connection) -> dict[tuple[str, str], Correction]:
    """(kind, target) → the correction in force: the newest one not undone."""
    c = db.corrections
    out: dict[tuple[str, str], Correction] = {}
    for r in conn.execute(select(c).where(c.c.undone_at.is_(None)).order_by(c.c.id)):
        out[(r.target_kind, r.target)] = Correction(r.id, r.status, r.label, r.label2, r.corrected_by,
                                                    r.corrected_at)
    return out


@dataclass
class Answer:
    """One animal, the way every output shows it (``to_dict`` is the per-animal JSON Lines record)."""

    animal: str
    name: str
    photos: list[dict]  # the per-photo records (dogcat.export.records), in path order
    status: str  # dog / unsure / not_a_dog / error
    top_k: list[dict] = field(default_factory=list)  # fused (or the staff's breeds), best first
    source: str = "model"  # "correction" when staff said what the animal is
    correction: Correction | None = None
    votes: int = 0  # photos whose breed probabilities were fused
    model: str | None = None

    @property
    def label(self) -> str | None:
        return self.top_k[0]["label"] if self.top_k and self.status in ("dog", "unsure") else None

    @property
    def breed(self) -> str | None:
        return self.top_k[0]["breed"] if self.top_k and self.status in ("dog", "unsure") else None

    @property
    def confidence(self) -> float | None:
        if self.source == "correction" or not self.top_k or self.status not in ("dog", "unsure"):
            return None
        return self.top_k[0]["confidence"]

    @property
    def mix(self) -> tuple[str, str] | None:
        """(breed 1, breed 2) of a possible or known mix: staff named two breeds, or the model is unsure."""
        if self.source == "correction" and self.correction and self.correction.label and self.correction.label2:
            return breed_name(self.correction.label), breed_name(self.correction.label2)
        if self.status == "unsure" and len(self.top_k) > 1:
            return self.top_k[0]["breed"], self.top_k[1]["breed"]
        return None

    def summary(self) -> str:
        """One line for people: 'Beagle', 'Beagle / Labrador Retriever?', 'Beagle / Pug (staff)', 'not a dog'."""
        staff = " (staff)" if self.source == "correction" else ""
        if self.status == "not_a_dog":
            return "not a dog" + staff
        if self.status == "error":
            return "no readable photo"
        mix = self.mix
        if mix:
            return f"{mix[0]} / {mix[1]}" + ("?" if self.source == "model" else staff)
        return (self.breed or "") + staff

    def to_dict(self) -> dict:
        mix = self.mix
        return {"animal": self.animal, "name": self.name, "photos": [p["path"] for p in self.photos],
                "status": self.status, "label": self.label, "breed": self.breed,
                "confidence": round(self.confidence, 6) if self.confidence is not None else None,
                "breed2": mix[1] if mix else None, "summary": self.summary(),
                "top_k": self.top_k, "source": self.source,
                "corrected_by": self.correction.by if self.correction else None,
                "corrected_at": self.correction.at if self.correction else None,
                "votes": self.votes, "model": self.model}


def _guess(label: str, confidence: float | None) -> dict:
    return {"label": label, "breed": breed_name(label),
            "confidence": round(confidence, 6) if confidence is not None else None}


def _staff_top_k(c: Correction) -> list[dict]:
    labels = [c.label] + ([c.label2] if c.label2 else [])
    return [_guess(label, None) for label in labels if label]


class ModelInfo:
    """What a model recorded in the catalog says about its probabilities and thresholds."""

    def __init__(self, labels: list[str] | None, unsure_below: float):
        self.labels, self.unsure_below = labels, unsure_below


def model_infos(conn: Connection) -> dict[str, ModelInfo]:
    out = {}
    for r in conn.execute(select(db.models.c.id, db.models.c.labels, db.models.c.decision)):
        decision = json.loads(r.decision) if r.decision else {}
        out[r.id] = ModelInfo(json.loads(r.labels) if r.labels else None,
                              decision.get("unsure_below", DEFAULT_UNSURE_BELOW))
    return out


def _distribution(photo: dict, info: ModelInfo | None) -> dict[str | None, float]:
    """label → probability for one photo; what a top-k-only prediction left out is under None."""
    probs = photo.get("probabilities")
    if probs and info is not None and info.labels and len(info.labels) == len(probs):
        return dict(zip(info.labels, probs, strict=True))
    listed = {g["label"]: float(g["confidence"]) for g in photo.get("top_k") or [] if g.get("confidence") is not None}
    listed[None] = max(0.0, 1.0 - sum(listed.values()))
    return listed


def fuse_photos(photos: Sequence[dict], infos: dict[str, ModelInfo], k: int = 3) -> list[dict]:
    """The fused top-k of several photo records (each with top_k and, from schema 3, probabilities)."""
    dists = [_distribution(p, infos.get(p["model"]) if p.get("model") is not None else None) for p in photos]
    labels = sorted({label for d in dists for label in d if label is not None})
    dense = []
    for d in dists:
        unlisted = [label for label in labels if label not in d]
        share = d.get(None, 0.0) / max(1, len(unlisted) + 1)  # +1: the labels nobody listed
        dense.append([d.get(label, share) for label in labels])
    fused = fusion.fuse(dense)
    return [_guess(label, p) for label, p in fusion.ranked(fused, labels, k)]


def answer(code: str, name: str, photos: list[dict], corrections: dict[tuple[str, str], Correction],
           infos: dict[str, ModelInfo], k: int = 3) -> Answer:
    """One animal's answer from its photo records; see the module's docstring for the order of preference."""
    own = corrections.get(("animal", code))
    if own is not None:
        status = own.status
        return Answer(code, name, photos, status, _staff_top_k(own) if status == "dog" else [], "correction", own)
    photo_fixes = [corrections[("photo", p["sha256"])] for p in photos if ("photo", p.get("sha256")) in corrections]
    dog_fixes = sorted((c for c in photo_fixes if c.status == "dog"), key=lambda c: c.id)
    if dog_fixes:
        newest = dog_fixes[-1]
        return Answer(code, name, photos, "dog", _staff_top_k(newest), "correction", newest)
    # What is left are not_a_dog corrections: those photos do not vote.
    not_dogs = {p["sha256"] for p in photos if ("photo", p.get("sha256")) in corrections}
    voters = [p for p in photos if status_of(p) in ("dog", "unsure") and p.get("sha256") not in not_dogs]
    voters = list({p["sha256"]: p for p in reversed(voters)}.values())[::-1]  # one vote per photo, not per name
    if not voters:
        if not_dogs and not any(status_of(p) == "not_a_dog" and p["sha256"] not in not_dogs for p in photos):
            staff = max((c for c in photo_fixes), key=lambda c: c.id)
            return Answer(code, name, photos, "not_a_dog", [], "correction", staff)
        any_not_dog = any(status_of(p) == "not_a_dog" for p in photos)
        return Answer(code, name, photos, "not_a_dog" if any_not_dog else "error")
    top_k = fuse_photos(voters, infos, k)
    newest_model = max((p.get("classified_at") or "", p.get("model") or "") for p in voters)[1] or None
    info = infos.get(newest_model or "")
    unsure_below = info.unsure_below if info else DEFAULT_UNSURE_BELOW
    status = "dog" if top_k[0]["confidence"] >= unsure_below else "unsure"
    return Answer(code, name, photos, status, top_k, "model", None, len(voters), newest_model)


def members(conn: Connection) -> dict[str, str]:
    """path → animal code, for every grouped file."""
    return {r.path: r.animal for r in conn.execute(select(db.animal_files.c.path, db.animal_files.c.animal))}


def answers(engine, records: Iterable[dict] | None = None, *, k: int = 3, model_id: str | None = None,
            include_empty: bool = False, corrections: dict | None = None) -> list[Answer]:
    """Every animal with its answer, in code order. ``records``: the per-photo records to group, as
    dogcat.export.records gives them (their ``animal`` says which; default: all of them, with probabilities).
    Files not in any animal yet are animals of their own.
    ``corrections``: those to apply (default: every one in force; {} for the model's answers alone)."""
    from dogcat import export

    if records is None:
        records = export.records(engine, model_id=model_id, probabilities=True)
    records = list(records)
    with db.reading(engine) as conn:
        if corrections is None:
            corrections = active_corrections(conn)
        infos = model_infos(conn)
        known = {r.code: r for r in conn.execute(select(db.animals))}
    groups: dict[str, list[dict]] = {}
    names: dict[str, str] = {}
    for r in records:
        code = r.get("animal")
        if code is None:  # catalogued while another run was grouping: alone until the next run
            _, code, name = single(r["path"], r.get("sha256"))
            names.setdefault(code, name)
        groups.setdefault(code, []).append(r)
    if include_empty:
        for code, animal in known.items():
            if animal.merged_into is None:
                groups.setdefault(code, [])
    out = []
    for code in sorted(groups, key=str.lower):
        row = known.get(code)
        name = row.name if row is not None else names.get(code, code)
        out.append(answer(code, name, groups[code], corrections, infos, k))
    return out
