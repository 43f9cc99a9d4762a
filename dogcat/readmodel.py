"""The read model: what the catalog says of each photo and each animal, the staff's corrections in force.

Every output (exports, ASM3, the report, ``dogcat animals``, the Python API, ``evaluate --db``) reads through
here, so the rule "staff win over the model" is decided once, in this module:

- a photo (:func:`records`): its own correction, else its animal's correction when the model took the photo
  for a dog (a photo the model found unreadable or not a dog keeps that, unless staff corrected the photo
  itself) — :func:`photo_correction`;
- an animal (:func:`answer`): its own correction, else the newest dog correction of one of its photos, else
  the model's photos fused (dogcat.fusion). Photos that are not dogs, unreadable, or corrected as not a dog do
  not vote; an animal is ``not_a_dog`` only when none of its photos shows a dog.

Layer: the read model — it stands on the store (dogcat.db) and the leaf rules (decision, fusion, breeds,
naming); jobs and outputs stand on it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Connection

from dogcat import db, fusion, naming, pathkeys
from dogcat.breeds import asm3_name, breed_name, look_word
from dogcat.decision import DEFAULT_UNSURE_BELOW, breed_status, maybe_mix, status_of, unsure_words
from dogcat.errors import DogcatError
from dogcat.text import percent
from dogcat.walk import NOT_AN_IMAGE

# One record per catalogued file (:func:`records`) and per animal (Answer.to_dict): contracts for scripts, new
# keys only ever added.
FIELDS = ["path", "sha256", "size", "mtime", "width", "height", "format", "status", "label", "breed", "confidence",
          "top_k", "dog_probability", "looks_like", "model", "error", "catalogued_at", "classified_at",
          "animal", "source"]
ANIMAL_FIELDS = ["animal", "name", "photos", "status", "label", "breed", "confidence", "breed2", "summary", "top_k",
                 "source", "corrected_by", "corrected_at", "votes", "model"]


@dataclass
class Correction:
    """A correction as every output reads it. ``label``/``label2``: the model's classes (None for a breed the
    model does not have); ``breed``/``breed2``: the shelter's words in ASM3's spelling (schema 4; for an older
    row, the label's ASM3 name)."""

    id: int
    status: str  # dog / not_a_dog
    label: str | None
    label2: str | None
    by: str
    at: str
    breed: str | None = None
    breed2: str | None = None
    source: str = "staff"  # staff (dogcat correct) or asm3 (the breed ASM3 holds, read by dogcat asm3 pull)
    note: str | None = None

    @property
    def what(self) -> tuple:
        """What it says (compared with a new correction: the same is "unchanged")."""
        return self.status, self.label, self.label2, self.breed, self.breed2

    @property
    def names(self) -> list[str]:
        """The breeds as people read them: the model's name where it has the breed, else the shelter's words."""
        if self.status != "dog":
            return []
        pairs = [(self.label, self.breed), (self.label2, self.breed2)]
        return [breed_name(label) if label else str(words) for label, words in pairs if label or words]

    @property
    def outside_model(self) -> bool:
        """A breed correction naming no breed the model has: it could not have named this dog."""
        return self.status == "dog" and self.label is None and self.label2 is None

    @property
    def word(self) -> str | None:
        """The label this correction means for a model (what ``dogcat teach`` learns; a taught model answers
        with it): a model label for one of the 120 breeds, else the shelter's words as ASM3 spells them ("Pit
        Bull Terrier", "Labrador Retriever mix", "Beagle x Pug": dogcat.breeds.look_word, whatever the order); None
        for not_a_dog, and for a breed that names no look ("Mixed Breed", "Unknown": breeds.NO_LOOK_WORDS)."""
        if self.status != "dog":
            return None
        first, second = self.asm3_breeds()
        if self.label is not None and self.label2 in (None, self.label) and second == first:
            return self.label
        return look_word(first, second)

    def asm3_breeds(self) -> tuple[str, str]:
        """ANIMALBREED1/2 as ASM3 spells them; a purebred twice (ASM3 ticks Crossbreed when they differ)."""
        first = self.breed or asm3_name(self.label)
        second = self.breed2 or (asm3_name(self.label2) if self.label2 else first)
        return first, second

    def to_dict(self) -> dict:
        names = self.names
        return {"status": self.status, "label": self.label, "breed": names[0] if names else None,
                "label2": self.label2, "breed2": names[1] if len(names) > 1 else None,
                "by": self.by, "at": self.at, "source": self.source, "note": self.note}


def correction_of(row) -> Correction:
    """A row of the corrections table, as outputs read it."""
    breed, breed2 = row.breed, row.breed2
    if breed is None and row.label is not None:  # written before schema 4: the labels' ASM3 names
        breed = asm3_name(row.label)
        breed2 = asm3_name(row.label2) if row.label2 else None
    return Correction(row.id, row.status, row.label, row.label2, row.corrected_by, row.corrected_at, breed, breed2,
                      row.source or "staff", row.note)


def active_corrections(conn: Connection) -> dict[tuple[str, str], Correction]:
    """(kind, target) → the correction in force: the newest one not undone."""
    c = db.corrections
    out: dict[tuple[str, str], Correction] = {}
    for r in conn.execute(select(c).where(c.c.undone_at.is_(None)).order_by(c.c.id)):
        out[(r.target_kind, r.target)] = correction_of(r)
    return out


def photo_correction(record: dict, corrections: dict[tuple[str, str], Correction]) -> Correction | None:
    """The staff's word in force for one photo record, if any: see the module's docstring."""
    own = corrections.get(("photo", record["sha256"]))
    if own is not None:
        return own if record["status"] != "error" else None
    if record["status"] in ("dog", "unsure"):
        return corrections.get(("animal", record["animal"]))
    return None


@dataclass
class Answer:
    """One animal, the way every output shows it (``to_dict`` is the per-animal JSON Lines record)."""

    animal: str
    name: str
    photos: list[dict]  # the per-photo records (:func:`records`), in path order
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
        """(breed 1, breed 2) of a possible or known mix: staff named two breeds, or the model is unsure and its
        second breed a real contender (dogcat.decision.maybe_mix)."""
        if self.source == "correction" and self.correction and len(self.correction.names) == 2:
            first, second = self.correction.names
            return first, second
        if self.status == "unsure" and len(self.top_k) > 1 and maybe_mix(self.top_k[1].get("confidence")):
            return self.top_k[0]["breed"], self.top_k[1]["breed"]
        return None

    def summary(self) -> str:
        """One line for people (its confidence shown beside it): 'Beagle', 'maybe a mix: Beagle / Labrador
        Retriever', 'probably Beagle' (the model unsure: dogcat.decision.unsure_words), 'Beagle / Pug (staff)',
        'not a dog'."""
        staff = " (staff)" if self.source == "correction" else ""
        if self.status == "not_a_dog":
            return "not a dog" + staff
        if self.status == "error":
            return "no readable photo"
        if self.source == "model" and self.status == "unsure":
            return unsure_words([(g["breed"], g.get("confidence")) for g in self.top_k], confidences=False)
        mix = self.mix
        if mix:
            return f"{mix[0]} / {mix[1]}" + staff
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


def guess_summary(record: dict) -> str:
    """A photo's own answer from the model (its record before corrections) as one line for people: 'Beagle 96%',
    'maybe a mix: Beagle 49% / Walker Hound 30%' or 'probably Beagle (72%)' (unsure: dogcat.decision.unsure_words),
    'not a dog (looks like tabby)', 'could not be read: …'."""
    status, top_k = status_of(record), record.get("top_k") or []
    if status == "error":
        return f"could not be read: {record.get('error') or 'no prediction'}"
    if status == "not_a_dog":
        return "not a dog" + (f" (looks like {record['looks_like']})" if record.get("looks_like") else "")
    if not top_k:
        return status
    if status == "unsure":
        return unsure_words([(g["breed"], g.get("confidence")) for g in top_k])
    return f"{top_k[0]['breed']} {percent(top_k[0].get('confidence'))}"


def disagrees(photo: dict, answer: Answer) -> bool:
    """The model's own guess for one of an animal's photos (its record before corrections) names a breed the
    animal's answer does not (its breed, or either breed of a mix, the staff's or the model's): a photo perhaps
    filed with the wrong animal. Not for a photo that is no dog or unreadable, an animal that is neither dog nor
    unsure, or staff's breeds the model does not have (it could never name them)."""
    top_k = photo.get("top_k") or []
    if status_of(photo) not in ("dog", "unsure") or not top_k or answer.status not in ("dog", "unsure"):
        return False
    if answer.source == "correction" and answer.correction is not None:
        named = {answer.correction.label, answer.correction.label2} - {None}
    else:
        named = {g["label"] for g in answer.top_k[:2 if answer.mix else 1]}
    return bool(named) and top_k[0]["label"] not in named


def _guess(label: str, confidence: float | None) -> dict:
    return {"label": label, "breed": breed_name(label),
            "confidence": round(confidence, 6) if confidence is not None else None}


def _staff_top_k(c: Correction) -> list[dict]:
    labels = [c.label, c.label2][:len(c.names)]
    return [{"label": label, "breed": name, "confidence": None} for label, name in zip(labels, c.names, strict=True)]


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
    status = breed_status(top_k[0]["confidence"], unsure_below)
    return Answer(code, name, photos, status, top_k, "model", None, len(voters), newest_model)


def members(conn: Connection) -> dict[str, str]:
    """path → animal code, for every grouped file."""
    return {r.path: r.animal for r in conn.execute(select(db.animal_files.c.path, db.animal_files.c.animal))}


def answers(engine, photos: Iterable[dict] | None = None, *, k: int = 3, model_id: str | None = None,
            include_empty: bool = False, corrections: dict | None = None) -> list[Answer]:
    """Every animal with its answer, in code order; retired animals (``dogcat animals prune``) are left out.
    ``photos``: the per-photo records to group, as :func:`records` gives them (their ``animal`` says which;
    default: all of them, with probabilities). Files not in any animal yet are animals of their own.
    ``corrections``: those to apply (default: every one in force; {} for the model's answers alone)."""
    if photos is None:
        photos = records(engine, model_id=model_id, probabilities=True)
    photos = list(photos)
    with db.reading(engine) as conn:
        if corrections is None:
            corrections = active_corrections(conn)
        infos = model_infos(conn)
        known = {r.code: r for r in conn.execute(select(db.animals))}
    groups: dict[str, list[dict]] = {}
    names: dict[str, str] = {}
    for r in photos:
        code = r.get("animal")
        if code is None:  # catalogued while another run was grouping: alone until the next run
            if r.get("error") == NOT_AN_IMAGE:  # a text file named .jpg: listed as an error, never an animal
                continue
            _, code, name = naming.single(r["path"], r.get("sha256"))
            names.setdefault(code, name)
        groups.setdefault(code, []).append(r)
    if include_empty:
        for code, animal in known.items():
            if animal.merged_into is None:
                groups.setdefault(code, [])
    out = []
    for code in sorted(groups, key=str.lower):
        row = known.get(code)
        if row is not None and row.retired_at is not None:  # dogcat animals prune: its photos are gone
            continue
        name = row.name if row is not None else names.get(code, code)
        out.append(answer(code, name, groups[code], corrections, infos, k))
    return out


def gone(conn: Connection) -> dict[str, list[str]]:
    """code → its photos' paths, for every animal in use (not merged, not retired) that has photos and whose
    photos are all gone from disk (moved, deleted, a folder renamed): what ``dogcat animals prune`` retires."""
    a, f = db.animals, db.animal_files
    rows = conn.execute(select(f.c.animal, f.c.path).join(a, a.c.code == f.c.animal)
                        .where(and_(a.c.merged_into.is_(None), a.c.retired_at.is_(None))).order_by(f.c.path))
    by_animal: dict[str, list[str]] = {}
    for r in rows:
        by_animal.setdefault(r.animal, []).append(r.path)
    return {code: paths for code, paths in sorted(by_animal.items(), key=lambda kv: kv[0].lower())
            if not any(pathkeys.exists(p) for p in paths)}


def records(engine, *, breed: str | None = None, min_confidence: float | None = None, errors: bool = False,
            model_id: str | None = None, status: str | None = None, probabilities: bool = False,
            corrected: bool = True, animal: str | Sequence[str] | None = None) -> Iterator[dict]:
    """Catalog rows as dicts (``top_k`` parsed from its JSON), in path order, filtered:

    - ``breed``: the best guess is this breed, by human name ("golden retriever") or label
      ("n02099601-golden_retriever" or "golden_retriever"), case-insensitive;
    - ``min_confidence``: the best guess's confidence is at least this;
    - ``errors``: only files recorded with an error;
    - ``model_id``: that model's predictions rather than the newest;
    - ``status``: only files with this status (dog, unsure, not_a_dog, error);
    - ``animal``: only the files of the animal with this code (or of the animals with these codes).

    ``label``, ``breed`` and ``confidence`` are empty for a photo that is not a dog (``looks_like`` says what it
    shows); ``top_k`` keeps the breed model's guesses for every photo. ``animal`` is the animal the file is
    in. A staff correction (of the photo, else of its animal) wins over the model: ``status``, ``label`` and
    ``breed`` are then the staff's, ``confidence`` empty and ``source`` "correction" (else "model").
    ``probabilities``: add the model's whole distribution (a list, or None), for dogcat.animals.
    ``corrected=False``: the model's answers only (dogcat.corrections.evaluate).
    """
    c = db.catalog_select(model_id, probabilities=probabilities).subquery("c")
    columns = [name for name in FIELDS if name in c.c] + (["probabilities"] if probabilities else [])
    q = select(*(c.c[name] for name in columns))
    if breed is not None:
        name = breed.strip().lower()
        as_label = name.replace(" ", "_")
        q = q.where(or_(func.lower(c.c.breed) == name, func.lower(c.c.breed) == name.replace("_", " "),
                        func.lower(c.c.label) == name,
                        func.lower(c.c.label).endswith("-" + as_label, autoescape=True)))
    if min_confidence is not None:
        q = q.where(and_(c.c.confidence.is_not(None), c.c.confidence >= min_confidence))
    if errors:
        q = q.where(c.c.error.is_not(None))
    if status is not None:
        q = q.where(c.c.status == status)
    if animal is not None:
        codes = [animal] if isinstance(animal, str) else list(animal)
        q = q.where(c.c.path.in_(select(db.animal_files.c.path).where(db.animal_files.c.animal.in_(codes))))
    q = q.order_by(c.c.path)
    with db.reading(engine) as conn:
        member = members(conn)
        corrections = active_corrections(conn) if corrected else {}
        for row in conn.execution_options(yield_per=500).execute(q):
            record = dict(row._mapping)
            record["top_k"] = json.loads(record["top_k"]) if record["top_k"] else []
            for key in ("confidence", "dog_probability"):
                if record[key] is not None:
                    record[key] = round(record[key], 6)
            if probabilities and record["probabilities"]:
                record["probabilities"] = json.loads(record["probabilities"])
            record["animal"] = member.get(record["path"])
            record["source"] = "model"
            fix = photo_correction(record, corrections)
            if fix is not None:
                apply_correction(record, fix)
            yield record


def _breed_matches(name: str, label: str | None, breed: str | None) -> bool:
    """--breed for an animal, as records() matches it for a photo: a human name or a label, any case."""
    wanted = name.strip().lower()
    label, breed = (label or "").lower(), (breed or "").lower()
    return (breed in (wanted, wanted.replace("_", " ")) or label == wanted
            or label.endswith("-" + wanted.replace(" ", "_")))


def animal_answers(engine, *, breed: str | None = None, min_confidence: float | None = None,
                   model_id: str | None = None, status: str | None = None, k: int = 3,
                   include_empty: bool = False):
    """The animals (:func:`answers`), filtered by their own answer as records() filters photos."""
    out = []
    for a in answers(engine, model_id=model_id, k=k, include_empty=include_empty):
        if status is not None and a.status != status:
            continue
        if breed is not None and not _breed_matches(breed, a.label, a.breed):
            continue
        if min_confidence is not None and a.source == "model" and (a.confidence is None
                                                                   or a.confidence < min_confidence):
            continue
        out.append(a)
    return out


def apply_correction(record: dict, fix) -> None:
    """A per-photo record as the staff's correction says it is."""
    record["source"] = "correction"
    record["status"] = fix.status
    record["label"] = fix.label
    record["breed"] = " / ".join(fix.names) or None
    record["confidence"] = None


# --- one animal in full (dogcat animals show) ------------------------------------------------------------------

class NoSuchAnimal(DogcatError):
    """An animal code the catalog does not have; one line."""


@dataclass
class HistoryEntry:
    """One row of the corrections table about an animal or one of its photos, undone or not."""

    correction: Correction
    kind: str  # animal / photo
    target: str  # the animal's code, or the photo's path (its first name in the catalog)
    undone_by: str | None
    undone_at: str | None
    in_force: bool  # the newest row for its target not undone: what outputs use

    def said(self) -> str:
        """What it says, for people: 'Beagle / Labrador Retriever', 'not a dog'."""
        return " / ".join(self.correction.names) if self.correction.status == "dog" else "not a dog"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "target": self.target, **self.correction.to_dict(),
                "undone_by": self.undone_by, "undone_at": self.undone_at, "in_force": self.in_force}


@dataclass
class SentFile:
    """An ASM3 import file that held this animal (asm3_files), and what of it (asm3_sent: kind, item)."""

    id: int
    path: str
    written_at: str
    written_by: str
    forgotten_at: str | None  # `dogcat asm3 forget`: never imported, so its items count as not sent
    items: list[tuple[str, str]]  # (animal | photo | log, the breeds / SHA-256 / text)

    def to_dict(self) -> dict:
        return {"file": self.id, "path": self.path, "written_at": self.written_at, "written_by": self.written_by,
                "forgotten_at": self.forgotten_at, "items": [{"kind": k, "item": i} for k, i in self.items]}


@dataclass
class AnimalDetail:
    """Everything the catalog knows of one animal: its answer, each photo with the model's own guess, every
    correction made to it or its photos (newest last), and the ASM3 files that held it."""

    answer: Answer
    asked: str  # the code asked for: another one when that animal was merged into this one
    dob: str | None
    age: str | None
    sex: str | None
    retired_at: str | None  # `dogcat animals prune` retired it (its photos were gone from disk); None: in care
    merged: list[str]  # codes of the animals merged into this one
    guesses: list[dict]  # per photo, the model's own record (records(corrected=False)), in path order
    history: list[HistoryEntry]
    sent: list[SentFile]

    @property
    def code(self) -> str:
        return self.answer.animal

    @property
    def never_sent(self) -> bool:
        return all(f.forgotten_at for f in self.sent)

    def to_dict(self) -> dict:
        return {**self.answer.to_dict(), "dob": self.dob, "age": self.age, "sex": self.sex,
                "retired_at": self.retired_at, "merged": self.merged,
                "photos": [{name: g[name] for name in GUESS_FIELDS} for g in self.guesses],
                "corrections": [h.to_dict() for h in self.history], "asm3": [f.to_dict() for f in self.sent],
                "never_sent": self.never_sent}


# A photo's own guess in `animals show --json`: the model's answer, before any correction.
GUESS_FIELDS = ["path", "sha256", "status", "label", "breed", "confidence", "top_k", "dog_probability", "looks_like",
                "error", "model"]


def _merged_into(conn: Connection, code: str) -> list[str]:
    """Every code whose animal was merged, directly or through others, into ``code``."""
    pointers = {r.code: r.merged_into for r in conn.execute(select(db.animals.c.code, db.animals.c.merged_into)
                                                             .where(db.animals.c.merged_into.is_not(None)))}
    found, frontier = [], {code}
    while frontier:
        frontier = {c for c, into in pointers.items() if into in frontier and c not in found and c != code}
        found.extend(sorted(frontier))
    return found


def animal_detail(engine, code: str, *, k: int = 3) -> AnimalDetail:
    """One animal by its code (any case; a merged animal's code shows the animal it went to). NoSuchAnimal if
    the catalog has none."""
    c, files, sent = db.corrections, db.asm3_files, db.asm3_sent
    with db.reading(engine) as conn:
        found = db.find_animal(conn, code)
        if found is None:
            raise NoSuchAnimal(f"{code}: no such animal")
        row = conn.execute(select(db.animals).where(db.animals.c.code == found)).one()
        codes = [row.code, *_merged_into(conn, row.code)]
        fixes = active_corrections(conn)
        infos = model_infos(conn)
        history_rows = list(conn.execute(select(c).where(c.c.target_kind == "animal", c.c.target.in_(codes))))
        sent_rows = list(conn.execute(
            select(files, sent.c.kind, sent.c.item).join(sent, sent.c.file == files.c.id)
            .where(sent.c.animal.in_(codes)).order_by(files.c.written_at, files.c.id, sent.c.kind, sent.c.item)))
    guesses = list(records(engine, animal=row.code, probabilities=True, corrected=False))
    corrected = []
    for guess in guesses:
        record = dict(guess, animal=row.code)
        fix = photo_correction(record, fixes)
        if fix is not None:
            apply_correction(record, fix)
        corrected.append(record)
    the_answer = answer(row.code, row.name, corrected, fixes, infos, k)
    for g in guesses:
        g.pop("probabilities", None)
    path_of: dict[str, str] = {}
    for g in guesses:
        if g["sha256"]:
            path_of.setdefault(g["sha256"], g["path"])
    if path_of:
        with db.reading(engine) as conn:
            history_rows += list(conn.execute(select(c).where(c.c.target_kind == "photo",
                                                              c.c.target.in_(list(path_of)))))
    in_force = {fix.id for fix in fixes.values()}
    history = [HistoryEntry(correction_of(r), r.target_kind, path_of.get(r.target, r.target) if r.target_kind ==
                            "photo" else r.target, r.undone_by, r.undone_at, r.id in in_force)
               for r in sorted(history_rows, key=lambda r: r.id)]
    by_file: dict[int, SentFile] = {}
    for r in sent_rows:
        by_file.setdefault(r.id, SentFile(r.id, r.path, r.written_at, r.written_by, r.forgotten_at, [])
                           ).items.append((r.kind, r.item))
    return AnimalDetail(the_answer, code, row.dob, row.age, row.sex, row.retired_at, codes[1:], guesses, history,
                        list(by_file.values()))
