"""``dogcat teach``: the shipped model plus the shelter's own breed words, learnt from the photos staff labelled.

What a photo teaches is the staff's word in force for it (its own correction, else its animal's: the read
model's rule), as a *word*: a breed of the model's 120 is that breed's column; anything else ("Pit Bull
Terrier", "Mixed Breed", "Labrador Retriever mix", ASM3's "Poodle") is a label of the shelter's. A word of the
shelter's with at least ``min_photos`` photos becomes a new column of the head, fitted on the catalog's features
with every other column frozen (dogcat.heads.fit_columns): the shipped model's 120 breeds keep what they knew,
and a new word has to win its photos against them. Fewer photos: the word waits (``too_few``), and teach says so.

The photos it is fitted against are the catalog's others: those staff labelled (with their word), and those
they did not, with the shipped model's answer, where the model is sure of it (``NEGATIVES_SURE``) and where staff
have not shown that the model's answer is one of theirs: when staff gave a new word to photos the model called American
Staffordshire Terrier, the model's other American Staffordshire Terrier photos are no evidence against that
word, and are left out (``renamed``). Each new word's photos weigh as much together as an average breed's do.
benchmarks/teach.py measured the choices (docs/teach.md).

A correction to one of the model's own breeds (staff say Beagle where the model said Basset Hound) teaches
nothing to the frozen columns; it counts as labelled evidence against the new words. Refitting the columns staff
corrected into (``plan(refit=True)``) was measured to lose top-1 on held-out photos (docs/teach.md), so teach
does not.

Every photo's features are the catalog's (schema 5: the backbone runs once per photo); photos catalogued
before have theirs computed here once, from their files. The shipped model is never changed: the result is a
new head beside the same backbone, an ordinary model for ``--model``, with its own card (what it added, what it
learnt from, what was measured out of fold).

Layer: jobs (docs/architecture.md).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dogcat import db, heads, images, pathkeys, readmodel
from dogcat.errors import DogcatError, UsageError
from dogcat.model import BreedModel, bundled_path
from dogcat.modelcard import ModelCard, ModelError, split_model_id
from dogcat.status import Judge
from dogcat.text import masked_url

MIN_PHOTOS = 5  # k: photos a new word needs (benchmarks/teach.py: with 5, 0.926 of a new breed's photos answered)
L2 = 3e-4  # the penalty on a new column's weights (benchmarks/teach.py: 1e-4 … 3e-3 changed little)
# An unlabelled photo counts against the new words only when the model is this sure of its own answer. Chosen
# on 48 breeds left out in turn (k = 5); over all 120, benchmarks/teach.py: at 0.8, 0.910 of a new breed's
# photos answered with it and 0.155 % of other photos taken for it; at 0.9, 0.926 and 0.186 %; at 0.95, 0.941
# and 0.227 % (over the 0.2 % target).
NEGATIVES_SURE = 0.9
FOLDS = 5  # the taught model's own figures: each photo answered by a head fitted without it
STEPS = 200  # L-BFGS steps at most (it stops earlier, at its tolerance)
KIND = "dogcat-teach/1"  # the card's "taught" block: a file teach wrote, and may write again


class TeachError(DogcatError):
    """Nothing to teach."""


@dataclass
class Lesson:
    """What the head is fitted on: for every photo, the column it should answer (-1: left out) and its weight."""

    words: list[str]  # the new columns' words, in column order (after the model's own)
    first_new: int  # the first new column (the model's own labels come before)
    targets: np.ndarray
    weights: np.ndarray
    too_few: dict[str, int] = field(default_factory=dict)  # words of the shelter's with fewer photos than needed
    renamed: list[str] = field(default_factory=list)  # model labels whose unlabelled photos were left out
    refit: list[int] = field(default_factory=list)  # the model's own columns refitted from staff corrections

    def counts(self) -> dict[str, int]:
        return {w: int((self.targets == self.first_new + i).sum()) for i, w in enumerate(self.words)}


def plan(labels: Sequence[str], words: Sequence[str | None], answers: np.ndarray, confidence: np.ndarray,
         min_photos: int = MIN_PHOTOS, sure: float = NEGATIVES_SURE, renamed: bool = True,
         refit: bool = False) -> Lesson:
    """The lesson (see the module's docstring) from each photo's staff word (None: not labelled) and the model's
    own answer (a column of ``labels``) with its confidence."""
    known = {label: i for i, label in enumerate(labels)}
    counted = Counter(w for w in words if w is not None and w not in known)
    new = sorted(w for w, n in counted.items() if n >= min_photos)
    too_few = {w: n for w, n in sorted(counted.items()) if n < min_photos}
    column = known | {w: len(labels) + i for i, w in enumerate(new)}
    taken_over = {int(a) for w, a in zip(words, answers, strict=True) if w in new} if renamed else set()
    targets = np.full(len(words), -1, int)
    for i, (w, a, c) in enumerate(zip(words, answers, confidence, strict=True)):
        if w is not None:
            targets[i] = column.get(w, -1)  # a word with too few photos teaches nothing yet
        elif c >= sure and int(a) not in taken_over:
            targets[i] = int(a)
    weights = np.ones(len(words), np.float32)
    used = targets >= 0
    if new and used.any():
        # The new columns' photos weigh as much as an average class's: a handful of photos against thousands
        # would otherwise barely move the fit.
        average = used.sum() / len(set(targets[used].tolist()))
        for w in new:
            mine = targets == column[w]
            weights[mine] = max(1.0, average / mine.sum())
    weights[~used] = 0.0
    refitted: list[int] = []
    if refit:  # the model's own breeds that staff corrected photos into, where the model said otherwise
        fixed = Counter(known[w] for w, a in zip(words, answers, strict=True)
                        if w in known and known[w] != int(a))
        refitted = sorted(c for c, n in fixed.items() if n >= min_photos)
    return Lesson(new, len(labels), targets, weights, too_few, sorted(labels[a] for a in taken_over), refitted)


def fit(base: heads.Head, lesson: Lesson, features: np.ndarray, l2: float = L2, steps: int = STEPS) -> heads.Head:
    """The base head with the lesson's new columns fitted (the others frozen)."""
    head = base.with_columns(len(lesson.words))
    columns = lesson.refit + list(range(base.classes, head.classes))
    if not columns:
        return head
    used = lesson.targets >= 0
    return heads.fit_columns(head, columns, features[used], lesson.targets[used], lesson.weights[used], l2, steps)


def out_of_fold(base: heads.Head, lesson: Lesson, features: np.ndarray, folds: int = FOLDS,
                l2: float = L2, steps: int = STEPS, seed: int = 0) -> dict:
    """The taught model's figures, each photo answered by a head fitted without it: per new word, how many of
    its photos it answers with that word; of the other photos it was fitted against (staff-labelled, or the
    model's sure answers), how many a new word takes, and how many keep their answer."""
    n_base = base.classes
    rng = np.random.default_rng(seed)
    fold = rng.integers(0, folds, len(lesson.targets))
    answered = np.full(len(lesson.targets), -1, int)
    for k in range(folds):
        held = fold == k
        if not held.any():
            continue
        trained = Lesson(lesson.words, lesson.first_new, np.where(held, -1, lesson.targets),
                         np.where(held, 0, lesson.weights), refit=lesson.refit)
        head = fit(base, trained, features, l2, steps)
        answered[held] = head.logits(features[held]).argmax(axis=1)
    used = lesson.targets >= 0
    new = lesson.targets >= n_base
    per_word = {}
    for i, w in enumerate(lesson.words):
        mine = lesson.targets == n_base + i
        per_word[w] = {"photos": int(mine.sum()), "answered": round(float((answered[mine] == n_base + i).mean()), 4)}
    others = used & ~new
    return {"folds": folds, "labels": per_word,
            "others": int(others.sum()),
            "others_taken": round(float((answered[others] >= n_base).mean()), 5) if others.any() else None,
            "others_agree": round(float((answered[others] == lesson.targets[others]).mean()), 4)
            if others.any() else None}


# --- the catalog's photos -------------------------------------------------------------------------------------

@dataclass
class Photos:
    """The catalog's photos a lesson can use: their features and staff words, and what could not be used."""

    sha256: list[str]
    features: np.ndarray
    words: list[str | None]
    computed: int = 0  # features computed now (photos catalogued before the catalog kept them)
    missing: int = 0  # photos without features whose files are gone


def catalog_photos(engine, model: BreedModel, batch: int = 16,
                   progress: Callable[[int, int], None] | None = None) -> Photos:
    """Every catalogued photo that is a dog (the model's answer, or the staff's), with its staff word and its
    features under ``model``'s backbone, computing and keeping those the catalog lacks."""
    backbone = model.split_backbone("teaching")
    wanted: dict[str, tuple[str, str | None]] = {}  # sha256 → (a path, the staff's word)
    with db.reading(engine) as conn:
        corrections = readmodel.active_corrections(conn)
    for r in readmodel.records(engine, corrected=False):
        if r["status"] in ("error", None) or r["sha256"] is None:
            continue
        fix = readmodel.photo_correction(r, corrections)
        if fix is not None and fix.status != "dog":
            continue
        if fix is None and r["status"] == "not_a_dog":
            continue
        word = fix.word if fix is not None else None
        if r["sha256"] not in wanted or (wanted[r["sha256"]][1] is None and word is not None):
            wanted[r["sha256"]] = (r["path"], word)
    with db.reading(engine) as conn:
        stored = db.features_of(conn, backbone, list(wanted))
    lacking = [h for h in wanted if h not in stored]
    computed, missing = _compute(engine, model, [(h, wanted[h][0]) for h in lacking], stored, batch, progress)
    hashes = [h for h in wanted if h in stored]
    return Photos(hashes, db.feature_array([stored[h] for h in hashes]), [wanted[h][1] for h in hashes], computed,
                  missing)


def _compute(engine, model: BreedModel, todo: list[tuple[str, str]], stored: dict[str, bytes], batch: int,
             progress) -> tuple[int, int]:
    """Features of photos catalogued before schema 5, from their files (as the catalog would have computed
    them: dogcat.status.Judge with the model's looks), kept in the catalog batch by batch."""
    if not todo:
        return 0, 0
    judge, backbone = Judge.breeds_only(model), model.split_backbone("teaching")
    computed = missing = 0
    for start in range(0, len(todo), batch):
        chunk, rows, pixels = todo[start:start + batch], [], []
        for sha, path in chunk:
            try:
                pixels.append((sha, images.decode(pathkeys.to_path(path), model.preprocessing).views[0]))
            except (images.ImageError, OSError):
                missing += 1
        if pixels:
            _, looks, feats = judge.breed_probabilities(np.stack([p for _, p in pixels]))
            assert feats is not None  # a split model's
            at = db.now()
            for (sha, _), n, f in zip(pixels, looks, feats, strict=True):
                rows.append(db.feature_row(sha, backbone, n, f, at))
                stored[sha] = rows[-1]["vector"]
            with db.writing(engine) as conn:
                db.insert_ignore(conn, db.features, rows)
            computed += len(rows)
        if progress:
            progress(min(start + batch, len(todo)), len(todo))
    return computed, missing


# --- the taught model -------------------------------------------------------------------------------------------

@dataclass
class Taught:
    """What ``dogcat teach`` made (the summary it prints, and --json)."""

    path: Path
    model_id: str
    base: str
    photos: int
    labelled: int
    added: dict[str, int]
    too_few: dict[str, int]
    measured: dict
    computed: int
    missing: int

    def to_dict(self) -> dict:
        return {"model": str(self.path), "id": self.model_id, "base": self.base, "photos": self.photos,
                "labelled": self.labelled, "added": self.added, "too_few": self.too_few,
                "measured": self.measured, "features_computed": self.computed, "photos_gone": self.missing}


def check_output(out: Path, base: BreedModel) -> None:
    """Refuse to write over the shipped model, the base, or a model teach did not write."""
    out = Path(out)
    if out.suffix != ".onnx":
        raise UsageError(f"{out}: the taught model is an .onnx file (its card goes beside it, as .json)")
    if out.resolve() in {bundled_path().resolve(), base.path.resolve()}:
        raise UsageError(f"{out}: that is the model being taught from; the shipped model is never changed: "
                         "write the taught one elsewhere")
    if out.exists() or out.with_suffix(".json").exists():
        try:
            ours = (ModelCard.read(out).get("taught") or {}).get("format") == KIND
        except ModelError:
            ours = False
        if not ours:
            raise UsageError(f"{out}: already exists and is not a model dogcat teach wrote; not overwritten")


def teach(engine, base: BreedModel, out: Path, *, min_photos: int = MIN_PHOTOS, catalog: str = "",
          progress: Callable[[int, int], None] | None = None) -> Taught:
    """Teach ``base`` the catalog's staff words; write the taught model to ``out`` (see the module's docstring).
    ``catalog``: the catalog as messages and the card name it (a URL's password is never written)."""
    out, catalog = Path(out), masked_url(catalog)
    check_output(out, base)
    base.split_backbone("teaching")
    block = base.card.backbone or {}
    head = heads.read(base.path, block["output"])
    photos = catalog_photos(engine, base, progress=progress)
    labelled = sum(w is not None for w in photos.words)
    if not labelled:
        raise TeachError(f"{catalog or 'the catalog'}: no photo has a breed from the staff yet (dogcat correct, "
                         "or dogcat asm3 pull): nothing to teach")
    probs = head.probabilities(photos.features)
    lesson = plan(base.labels, photos.words, probs.argmax(axis=1), probs.max(axis=1), min_photos)
    if not lesson.words:
        waiting = ", ".join(f"{w} ({n})" for w, n in lesson.too_few.items()) or "none"
        raise TeachError(f"{catalog or 'the catalog'}: no breed word of the shelter's has {min_photos} labelled "
                         f"photos yet (a new label needs {min_photos}; have: {waiting}); nothing taught")
    taught = fit(head, lesson, photos.features)
    measured = out_of_fold(head, lesson, photos.features)
    out.parent.mkdir(parents=True, exist_ok=True)
    heads.write(taught, out, block["output"], base.card.output)
    head_sha = hashlib.sha256(out.read_bytes()).hexdigest()
    name = out.stem
    model_id = split_model_id(name, block["sha256"], head_sha)
    added = lesson.counts()
    data = base.card.to_dict()
    for stale in ("metrics", "parity", "split_from"):  # measured for the base model, not this one
        data.pop(stale, None)
    data.update(
        name=name, id=model_id, sha256=head_sha, created=db.now(),
        labels=base.labels + lesson.words, breeds=base.breeds + lesson.words,
        taught={"format": KIND, "from": base.id, "catalog": catalog, "min_photos": min_photos, "l2": L2,
                "negatives_sure": NEGATIVES_SURE,
                "photos": len(photos.sha256), "labelled": labelled,
                "learnt_from": {"added": added, "against": int((lesson.targets >= 0).sum()) - sum(added.values()),
                                "left_out_as_renamed": lesson.renamed},
                "too_few": lesson.too_few, "out_of_fold": measured,
                "how": "dogcat teach: new head columns fitted on the catalog's features, the base's 120 frozen "
                       "(dogcat/teach.py; docs/teach.md)"})
    ModelCard(data, out).write(out)
    return Taught(out, model_id, base.id, len(photos.sha256), labelled, added, lesson.too_few, measured,
                  photos.computed, photos.missing)
