"""``dogcat teach``: the shipped model plus the shelter's own breed words, learnt from the photos staff labelled.

What a photo teaches is the staff's word in force for it (its own correction, else its animal's: the read
model's rule), as a *word* (dogcat.breeds.look_word): a breed of the model's 120 is that breed's column; anything
else ("Pit Bull Terrier", "Labrador Retriever mix", "Beagle x Pug", ASM3's "Poodle") is a label of the
shelter's, one word whatever the order of a cross and whatever the case (``same_words``). Words that name no look
("Mixed Breed", "Unknown": breeds.NO_LOOK_WORDS) mark a mix and teach nothing: the photo counts as unlabelled. A
word of the shelter's with at least ``min_photos`` photos becomes a new column of the head, fitted on the
catalog's features with every other column frozen (dogcat.heads.fit_new_columns, each word on its own, so the
cost grows linearly with the words): the shipped model's 120 breeds keep what they knew, and a new word has to
win its photos against them. Fewer photos: the word waits (``too_few``), and teach says so.

The figures teach reports are out of fold: every catalog photo (those the model was not sure of too) answered
by a head fitted without it. A share measured on fewer than MEASURE_MIN photos is not given ("too few photos to
measure"), and a word that takes more than MAX_TAKEN of other breeds' photos is refused unless asked.

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

import contextlib
import functools
import hashlib
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

try:
    import fcntl
except ImportError:  # Windows: no lock; the checksum every load checks still catches a pair that disagrees
    fcntl = None  # type: ignore[assignment]

from dogcat import breeds, db, heads, images, pathkeys, readmodel
from dogcat.errors import DogcatError, UsageError
from dogcat.model import BreedModel, bundled_path
from dogcat.modelcard import ModelCard, ModelError, sidecar_path, split_model_id
from dogcat.status import Judge
from dogcat.text import masked_url

MIN_PHOTOS = 5  # k: photos a new word needs (benchmarks/teach.py: with 5, 0.924 of a new breed's photos answered)
L2 = 3e-4  # the penalty on a new column's weights (benchmarks/teach.py: 1e-4 … 3e-3 changed little)
# An unlabelled photo counts against the new words only when the model is this sure of its own answer: the most
# answered with at most 0.2 % of other photos taken and others' top-1 down at most 0.1 point. Over all 120
# breeds left out in turn (benchmarks/teach.py, k = 5, issue 32's backbone): at 0.8, 0.917 of a new breed's
# photos answered with it, 0.171 % of other photos taken for it, a drop of 0.084 point; at 0.85, 0.924, 0.187 %
# and 0.096; at 0.9 (the previous backbone's choice), 0.935, 0.211 % and 0.113: over both targets.
NEGATIVES_SURE = 0.85
FOLDS = 5  # the taught model's own figures: each photo answered by a head fitted without it
STEPS = 200  # L-BFGS or Newton steps at most (they stop earlier, at their tolerance)
KIND = "dogcat-teach/1"  # the card's "taught" block: a file teach wrote, and may write again
# A share measured on fewer photos than this is not given as a figure ("too few photos to measure"): one photo
# of 5 is 20 points.
MEASURE_MIN = 10
# A word that takes more than this share of other breeds' photos (out of fold, photos the model was not sure of
# included) is not taught unless asked (--teach-anyway): it is not one look. Words of many looks took 75 % and
# 88 % (issue 31's catalogs); a real breed's word 8 % of a 24-photo catalog's hardest photos (tests/test_teach.py:
# 2 unsure beagles), 0.19 % of 8,700 photos on average (benchmarks/teach.py, k = 5).
MAX_TAKEN = 0.15
PROGRESS_WORDS = 50  # fits of this many words or more report their progress


class TeachError(DogcatError):
    """Nothing to teach, or a word that would take other breeds' photos."""


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
    answers: np.ndarray | None = None  # per photo: the model's own answer (a column of its labels)
    labelled: np.ndarray | None = None  # per photo: staff gave it a word that names a look

    def counts(self) -> dict[str, int]:
        return {w: int((self.targets == self.first_new + i).sum()) for i, w in enumerate(self.words)}


def plan(labels: Sequence[str], words: Sequence[str | None], answers: np.ndarray, confidence: np.ndarray,
         min_photos: int = MIN_PHOTOS, sure: float = NEGATIVES_SURE, renamed: bool = True,
         refit: bool = False) -> Lesson:
    """The lesson (see the module's docstring) from each photo's staff word (None: not labelled) and the model's
    own answer (a column of ``labels``) with its confidence."""
    known = {label: i for i, label in enumerate(labels)}
    words = same_words(words, set(known))
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
    return Lesson(new, len(labels), targets, weights, too_few, sorted(labels[a] for a in taken_over), refitted,
                  np.asarray(answers, int), np.array([w is not None for w in words], bool))


def same_words(words: Sequence[str | None], known: set[str]) -> list[str | None]:
    """The shelter's words with every spelling of one word made one (breeds.key: case, spaces, punctuation):
    the spelling most photos have, the first in order among equals. The model's own labels stay as they are."""
    spellings: dict[str, Counter] = {}
    for w in words:
        if w is not None and w not in known:
            spellings.setdefault(breeds.key(w), Counter())[w] += 1
    chosen = {k: min(c, key=lambda w: (-c[w], w)) for k, c in spellings.items()}
    return [w if w is None or w in known else chosen[breeds.key(w)] for w in words]


def fit(base: heads.Head, lesson: Lesson, features: np.ndarray, l2: float = L2, steps: int = STEPS,
        progress: Callable[[int, int], None] | None = None) -> heads.Head:
    """The base head with the lesson's new columns fitted (the others frozen)."""
    return _fitted(base, lesson, features, l2, steps, progress)[0]


def _fitted(base: heads.Head, lesson: Lesson, features: np.ndarray, l2: float, steps: int, progress=None,
            rows: list[np.ndarray] | None = None) -> tuple[heads.Head, list[np.ndarray] | None]:
    """The taught head, and the rows each new column was fitted on (heads.fit_new_columns)."""
    head, new = _fit_new(base, lesson, features, l2, steps, progress, rows)
    return head, new.rows if new is not None else None


def _fit_new(base: heads.Head, lesson: Lesson, features: np.ndarray, l2: float, steps: int, progress=None,
             rows: list[np.ndarray] | None = None) -> tuple[heads.Head, heads.NewColumns | None]:
    """The taught head, and its new columns as fitted (their rows, where the out-of-fold fits start from)."""
    head = base.with_columns(len(lesson.words))
    if lesson.refit:  # the model's own columns too: one joint fit (measured, not used: docs/teach.md)
        used = lesson.targets >= 0
        columns = lesson.refit + list(range(base.classes, head.classes))
        return heads.fit_columns(head, columns, features[used], lesson.targets[used], lesson.weights[used], l2,
                                 steps), None
    if not lesson.words:
        return head, None
    new = heads.fit_new_columns(base, features, lesson.targets, lesson.weights, l2, rows=rows, steps=steps,
                                n_new=len(lesson.words), progress=progress)
    assert isinstance(new, heads.NewColumns)
    head.weights[:, base.classes:] = new.weights
    head.bias[base.classes:] = new.bias
    return head, new


def _share(part: int, whole: int) -> float | None:
    """part / whole, or None when whole is too few photos to measure (MEASURE_MIN)."""
    return round(part / whole, 5) if whole >= MEASURE_MIN else None


def out_of_fold(base: heads.Head, lesson: Lesson, features: np.ndarray, folds: int = FOLDS,
                l2: float = L2, steps: int = STEPS, seed: int = 0, rows: list[np.ndarray] | None = None,
                progress: Callable[[int, int], None] | None = None, start: heads.NewColumns | None = None) -> dict:
    """The taught model's figures, each photo answered by a head fitted without it (``folds`` folds; each
    word's photos spread over them): every catalog photo, the ones the model was not sure of and those left
    out of the lesson included.

    Per new word: of its photos, how many it answers with the word; of the other breeds' photos (every photo
    not labelled with the word, except unlabelled ones the model gives a breed staff renamed to it: those
    are the word's, as far as staff have shown), how many it takes. Overall: of the other photos, how many any
    new word takes, and of those the lesson used, how many keep their answer. A share is given only when
    measured on MEASURE_MIN photos or more (None: too few to measure; the counts are there)."""
    n_base = base.classes
    n = len(lesson.targets)
    rng = np.random.default_rng(seed)
    fold = rng.integers(0, folds, n)
    for i in range(len(lesson.words)):  # each word's photos spread over the folds, none with all of them
        mine = rng.permutation(np.flatnonzero(lesson.targets == n_base + i))
        fold[mine] = (np.arange(len(mine)) + rng.integers(folds)) % folds
    base_logits = base.logits(features)
    model_answer = lesson.answers if lesson.answers is not None else base_logits.argmax(axis=1)
    labelled = lesson.labelled if lesson.labelled is not None else lesson.targets >= n_base
    answered = np.full(n, -1, int)
    if lesson.refit or rows is None or not lesson.words:  # one fit a fold
        for k in range(folds):
            held = fold == k
            trained = Lesson(lesson.words, lesson.first_new, np.where(held, -1, lesson.targets),
                             np.where(held, 0, lesson.weights), refit=lesson.refit)
            head, _ = _fitted(base, trained, features, l2, steps)
            answered[held] = head.logits(features[held]).argmax(axis=1)
    else:  # every fold's new columns at once, on the full fit's rows (heads.fit_new_columns)
        held_out = [fold == k for k in range(folds)]
        fitted = heads.fit_new_columns(base, features, lesson.targets, lesson.weights, l2, rows=rows, steps=steps,
                                       n_new=len(lesson.words), progress=progress, folds=held_out, start=start)
        for held, new_columns in zip(held_out, fitted, strict=True):
            new_logits = features[held] @ new_columns.weights + new_columns.bias
            answered[held] = np.concatenate([base_logits[held], new_logits], axis=1).argmax(axis=1)
    per_word = {}
    new = lesson.targets >= n_base
    renamed_all = np.zeros(n, bool)
    for i, w in enumerate(lesson.words):
        col = n_base + i
        mine = lesson.targets == col
        renamed = ~labelled & np.isin(model_answer, np.unique(model_answer[mine]))
        renamed_all |= renamed
        others = ~mine & ~renamed
        got, taken = int((answered[mine] == col).sum()), int((answered[others] == col).sum())
        per_word[w] = {"photos": int(mine.sum()), "answered_photos": got, "answered": _share(got, int(mine.sum())),
                       "others": int(others.sum()), "taken_photos": taken, "taken": _share(taken, int(others.sum()))}
    others = ~new & ~renamed_all
    used_others = others & (lesson.targets >= 0)
    taken = int((answered[others] >= n_base).sum())
    return {"folds": folds, "labels": per_word, "measure_min": MEASURE_MIN,
            "others": int(others.sum()), "others_taken_photos": taken,
            "others_taken": _share(taken, int(others.sum())),
            "others_agree": _share(int((answered[used_others] == lesson.targets[used_others]).sum()),
                                   int(used_others.sum()))}


# --- the catalog's photos -------------------------------------------------------------------------------------

@dataclass
class Photos:
    """The catalog's photos a lesson can use: their features and staff words, and what could not be used."""

    sha256: list[str]
    features: np.ndarray
    words: list[str | None]
    computed: int = 0  # features computed now (photos catalogued before the catalog kept them)
    missing: int = 0  # photos without features whose files are gone
    no_look: Counter = field(default_factory=Counter)  # staff words that name no look (a mix): their photos


def catalog_photos(engine, model: BreedModel, batch: int = 16,
                   progress: Callable[[int, int], None] | None = None) -> Photos:
    """Every catalogued photo that is a dog (the model's answer, or the staff's), with its staff word and its
    features under ``model``'s backbone, computing and keeping those the catalog lacks."""
    backbone = model.split_backbone("teaching")
    wanted: dict[str, tuple[str, str | None]] = {}  # sha256 → (a path, the staff's word)
    no_look: dict[str, str] = {}  # sha256 → the staff's words that name no look (the photo is a mix's)
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
        if fix is not None and word is None:  # "Mixed Breed", "Unknown": taught nothing (breeds.NO_LOOK_WORDS)
            no_look[r["sha256"]] = " / ".join(dict.fromkeys(fix.asm3_breeds()))
        if r["sha256"] not in wanted or (wanted[r["sha256"]][1] is None and word is not None):
            wanted[r["sha256"]] = (r["path"], word)
    with db.reading(engine) as conn:
        stored = db.features_of(conn, backbone, list(wanted))
    lacking = [h for h in wanted if h not in stored]
    computed, missing = _compute(engine, model, [(h, wanted[h][0]) for h in lacking], stored, batch, progress)
    hashes = [h for h in wanted if h in stored]
    words = [wanted[h][1] for h in hashes]
    mixes = Counter(no_look[h] for h, w in zip(hashes, words, strict=True) if w is None and h in no_look)
    return Photos(hashes, db.feature_array([stored[h] for h in hashes]), words, computed, missing, mixes)


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
    no_look: dict[str, int] = field(default_factory=dict)  # words that name no look → their photos (not taught)
    taught_anyway: list[str] = field(default_factory=list)  # words over MAX_TAKEN, taught as asked

    def to_dict(self) -> dict:
        return {"model": str(self.path), "id": self.model_id, "base": self.base, "photos": self.photos,
                "labelled": self.labelled, "added": self.added, "too_few": self.too_few,
                "measured": self.measured, "features_computed": self.computed, "photos_gone": self.missing,
                "not_a_look": self.no_look, "taught_anyway": self.taught_anyway}


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
          progress: Callable[..., None] | None = None, anyway: bool = False) -> Taught:
    """Teach ``base`` the catalog's staff words; write the taught model to ``out`` (see the module's docstring).
    ``progress(done, total, what)``: features computed, and a long fit's words. A word that takes more than
    MAX_TAKEN of other breeds' photos out of fold is refused (TeachError) unless ``anyway``. ``catalog``: the
    catalog as messages and the card name it (a URL's password is never written)."""
    out, catalog = Path(out), masked_url(catalog)
    check_output(out, base)
    base.split_backbone("teaching")
    block = base.card.backbone or {}
    head = heads.read(base.path, block["output"])
    photos = catalog_photos(engine, base, progress=_phase(progress, "features of older photos"))
    labelled = sum(w is not None for w in photos.words)
    if not labelled:
        mixes = f" (staff's words that name no look are not taught: {_listed(photos.no_look)})" \
            if photos.no_look else ""
        raise TeachError(f"{catalog or 'the catalog'}: no photo has a breed from the staff yet (dogcat correct, "
                         f"or dogcat asm3 pull){mixes}: nothing to teach")
    probs = head.probabilities(photos.features)
    lesson = plan(base.labels, photos.words, probs.argmax(axis=1), probs.max(axis=1), min_photos)
    if not lesson.words:
        waiting = ", ".join(f"{w} ({n})" for w, n in lesson.too_few.items()) or "none"
        raise TeachError(f"{catalog or 'the catalog'}: no breed word of the shelter's has {min_photos} labelled "
                         f"photos yet (a new label needs {min_photos}; have: {waiting}); nothing taught")
    long = len(lesson.words) >= PROGRESS_WORDS
    taught, new = _fit_new(head, lesson, photos.features, L2, STEPS,
                           _phase(progress, "fitting the words") if long else None)
    measured = out_of_fold(head, lesson, photos.features, rows=new.rows if new is not None else None, start=new,
                           progress=_phase(progress, "measuring out of fold") if long else None)
    over = {w: got for w, got in measured["labels"].items() if got["taken"] is not None and got["taken"] > MAX_TAKEN}
    if over and not anyway:
        shown = "; ".join(f"{w!r} took {got['taken']:.1%} ({got['taken_photos']} of {got['others']})"
                          for w, got in sorted(over.items(), key=lambda kv: -kv[1]["taken"]))
        raise TeachError(f"{catalog or 'the catalog'}: not taught: {shown} of other breeds' photos out of fold, "
                         f"more than the {MAX_TAKEN:.0%} allowed: a word for many looks, not one (teach it all the "
                         "same with --teach-anyway; docs/teach.md)")
    added = lesson.counts()
    data = base.card.to_dict()
    for stale in ("metrics", "parity", "split_from"):  # measured for the base model, not this one
        data.pop(stale, None)
    name = out.stem
    data.update(
        name=name, created=db.now(),
        labels=base.labels + lesson.words, breeds=base.breeds + lesson.words,
        taught={"format": KIND, "from": base.id, "catalog": catalog, "min_photos": min_photos, "l2": L2,
                "negatives_sure": NEGATIVES_SURE, "max_taken": MAX_TAKEN,
                "photos": len(photos.sha256), "labelled": labelled,
                "learnt_from": {"added": added, "against": int((lesson.targets >= 0).sum()) - sum(added.values()),
                                "left_out_as_renamed": lesson.renamed},
                "not_a_look": dict(photos.no_look), "taught_anyway": sorted(over),
                "too_few": lesson.too_few, "out_of_fold": measured,
                "how": "dogcat teach: new head columns fitted on the catalog's features, the base's 120 frozen "
                       "(dogcat/teach.py; docs/teach.md)"})
    model_id = write_model(out, base, taught, block, data)
    return Taught(out, model_id, base.id, len(photos.sha256), labelled, added, lesson.too_few, measured,
                  photos.computed, photos.missing, dict(photos.no_look), sorted(over))


def _phase(progress: Callable[..., None] | None, what: str) -> Callable[[int, int], None] | None:
    """``progress`` for one phase of the work: progress(done, total, what)."""
    return functools.partial(progress, what=what) if progress is not None else None


def _listed(counts: Counter) -> str:
    return ", ".join(f"{w} ({n})" for w, n in counts.most_common())


@contextmanager
def _one_writer(out: Path) -> Iterator[None]:
    """Hold the lock of ``out``'s pair (a file beside it): one teach writes a pair at a time."""
    lock = out.with_name(f".{out.name}.lock")
    with open(lock, "a") as f:
        if fcntl is not None:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        yield


def write_model(out: Path, base: BreedModel, head: heads.Head, block: dict, data: dict) -> str:
    """Write the taught head (.onnx) and its card (.json, with the head's SHA-256 and the model's id) as a pair:
    each through a temporary file of its own (two teach runs never share one), renamed into place one after the
    other while this teach holds the pair's lock, so that two runs at once leave one run's pair. A reader that
    comes between the two renames, or after a teach killed between them, finds a card whose SHA-256 is not the
    head's: every load checks it (dogcat.model), and says so. Returns the model's id."""
    payload = heads.to_bytes(head, block["output"], base.card.output)
    head_sha = hashlib.sha256(payload).hexdigest()
    data = dict(data, id=split_model_id(out.stem, block["sha256"], head_sha), sha256=head_sha)
    card = ModelCard(data, out)  # validated before anything is written
    out.parent.mkdir(parents=True, exist_ok=True)
    with _one_writer(out):
        check_output(out, base)  # again: another teach may have written meanwhile, and that is allowed
        temps = []
        try:
            for text in (payload, card.to_json().encode("utf-8")):
                fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.stem}.", suffix=".tmp")
                temps.append(tmp)
                with os.fdopen(fd, "wb") as f:
                    f.write(text)
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(temps[0], out)
            os.replace(temps[1], sidecar_path(out))
        finally:
            for tmp in temps:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
    return str(data["id"])
