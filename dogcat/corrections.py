"""Staff corrections: what people at the shelter know better than the model ("that's Max, a Beagle mix").

A correction targets an animal (its code) or a photo (a catalogued path, or its SHA-256: the content, under
every name). It is a row of its own in ``corrections`` with who and when; it is never overwritten by a model
run, and every output prefers it (dogcat.readmodel decides how). ``--undo`` marks the one in
force as undone, so the one before it (or the model) speaks again; nothing is deleted.

Breed names are read by dogcat.breeds.resolve: the model's class label (``n02088364-beagle``, ``beagle``), the
human name (``Beagle``), ASM3's spelling (``German Shepherd Dog``), a shelter's short name (``GSD``, ``yorkie``)
or the first words of exactly one breed (``labrador``), in any case; an unknown name is an error that lists the
closest known ones. A correction names breeds of the model, so a breed outside its 120 (``Pit Bull Terrier``) or
an ASM3 name for several of them (``Poodle``) is refused here with the reason.

Layer: a job (docs/architecture.md).
"""

from __future__ import annotations

import csv
import getpass
import io
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from dogcat import animals, breeds, db, pathkeys, readmodel
from dogcat.breeds import breed_name
from dogcat.errors import DogcatError

# The column staff fill in a spreadsheet for `dogcat correct --from` (a breed, two as "A / B", or "not a dog");
# dogcat export's CSV ends with it, empty.
CORRECTION_COLUMN = "corrected_breed"
NOT_A_DOG_WORDS = ("not a dog", "not_a_dog", "not-a-dog", "no dog")


class CorrectionError(DogcatError):
    """A correction that cannot be applied (unknown breed, unknown target ...); the message is one line."""


def _key(name: str) -> str:
    return " ".join(name.lower().replace("_", " ").replace("-", " ").split())


def resolve_words(name: str) -> breeds.BreedWords:
    """A breed as staff write it (dogcat.breeds.resolve: any ASM3 breed, a short name, "X mix" ...) →
    BreedWords; CorrectionError if unknown."""
    try:
        return breeds.resolve(name)
    except breeds.UnknownBreed as e:
        raise CorrectionError(str(e)) from None


def resolve_breed(name: str) -> str:
    """A breed name as staff write it → the model's label; CorrectionError if unknown, ambiguous, a mix or not
    one of the model's breeds. For what a breed means to the model (training, evaluation); corrections take any
    shelter breed (:func:`resolve_words`)."""
    words = resolve_words(name)
    if words.crossbreed:
        raise CorrectionError(f"{name!r} is a mix ({words.breed1} / {words.breed2}), not one of the model's breeds")
    if words.label1 is not None:
        return words.label1
    labels = breeds.model_labels(words.breed1)
    if len(labels) > 1 and words.breed1 not in breeds.CATCH_ALL:
        choices = ", ".join(sorted(breed_name(label) for label in labels))
        raise CorrectionError(f"{name!r} is ASM3's name for several breeds ({choices}): say which")
    nearest = f" (the model's nearest: {breed_name(labels[0])})" if len(labels) == 1 else ""
    raise CorrectionError(f"{name!r} is ASM3's {words.breed1}, not one of the model's {len(breeds.ASM3_BREEDS)} "
                          f"breeds{nearest}")


@dataclass(frozen=True)
class Change:
    """What staff say about a target: a breed (two for a mix), not a dog, or undo the last correction.

    ``breed``/``breed2`` are the shelter's words in ASM3's spelling ("Pit Bull Terrier", "Mixed Breed");
    ``label``/``label2`` the model's class for each, None where the model has no such breed. A purebred has no
    second breed."""

    status: str | None  # dog / not_a_dog; None for undo
    label: str | None = None
    label2: str | None = None
    breed: str | None = None
    breed2: str | None = None
    source: str = "staff"  # staff: dogcat correct; asm3: the breed ASM3 holds (dogcat asm3 pull)

    @classmethod
    def of_words(cls, first: breeds.BreedWords, second: breeds.BreedWords | None = None,
                 source: str = "staff") -> Change:
        """A dog of breed ``first`` ("Lab mix" is already two breeds), crossed with ``second`` if given."""
        breed2, label2 = (second.breed1, second.label1) if second is not None else (first.breed2, first.label2)
        if breed2 == first.breed1:
            return cls("dog", first.label1, None, first.breed1, None, source)
        return cls("dog", first.label1, label2, first.breed1, breed2, source)

    @classmethod
    def parse(cls, breed: str | None = None, breed2: str | None = None, not_a_dog: bool = False,
              undo: bool = False) -> Change:
        given = sum([breed is not None, not_a_dog, undo])
        if given != 1:
            raise CorrectionError("say one of --breed NAME, --not-a-dog or --undo")
        if breed2 is not None and breed is None:
            raise CorrectionError("--breed2 goes with --breed")
        if undo:
            return cls(None)
        if not_a_dog:
            return cls("not_a_dog")
        assert breed is not None  # exactly one was given, and it was neither --not-a-dog nor --undo
        first = resolve_words(breed)
        second = resolve_words(breed2) if breed2 else None
        if second is not None and first.crossbreed:
            raise CorrectionError(f"{breed!r} already names two breeds ({first.breed1} / {first.breed2}): leave "
                                  "out --breed2")
        return cls.of_words(first, second)

    @classmethod
    def from_cell(cls, cell: str) -> Change:
        """A spreadsheet cell: "Beagle", "Beagle / Pug" or "Lab mix" (a mix), or "not a dog"."""
        value = cell.strip()
        if _key(value) in NOT_A_DOG_WORDS:
            return cls("not_a_dog")
        parts = [p.strip() for p in value.split("/") if p.strip()]
        if len(parts) > 2:
            raise CorrectionError(f"{value!r}: at most two breeds (a mix: 'Beagle / Pug')")
        return cls.parse(parts[0], parts[1] if len(parts) > 1 else None)

    @property
    def what(self) -> tuple:
        """What the change says, to compare with the correction in force."""
        return self.status, self.label, self.label2, self.breed, self.breed2


def who(by: str | None = None) -> str:
    if by:
        return by
    try:
        return os.environ.get("USER") or getpass.getuser()
    except Exception:  # no user name in a container: still record the change
        return "unknown"


def resolve_target(conn: Connection, target: str) -> tuple[str, str, str]:
    """(kind, target, shown) for an animal code, a photo path or a SHA-256."""
    code = db.find_animal(conn, target)
    if code is not None:
        return "animal", code, f"animal {code}"
    try:
        paths = animals.photo_paths(conn, target)
    except animals.NotFound:
        raise CorrectionError(f"{target}: no animal with this code and no such photo in the catalog (an animal "
                              "code, a photo path as catalogued, or a SHA-256)") from None
    sha = conn.scalar(select(db.files.c.sha256).where(db.files.c.path == paths[0]))
    if sha is None:
        raise CorrectionError(f"{target}: this file could not be read when catalogued, so it has no photo "
                              "to correct")
    return "photo", sha, f"photo {paths[0]}"


def apply(conn: Connection, kind: str, target: str, change: Change, by: str) -> str:
    """Record one change in the caller's write transaction; returns what happened, for people: "corrected",
    "unchanged" (the same correction is already in force) or "undone"."""
    now = db.now()
    current = db.correction_in_force(conn, target, kind)
    if change.status is None:
        if current is None:
            raise CorrectionError(f"{target}: has no correction to undo")
        conn.execute(update(db.corrections).where(db.corrections.c.id == current.id)
                     .values(undone_by=by, undone_at=now))
        return "undone"
    if current is not None and readmodel.correction_of(current).what == change.what:
        return "unchanged"
    conn.execute(insert(db.corrections).values(target_kind=kind, target=target, status=change.status,
                                               label=change.label, label2=change.label2, breed=change.breed,
                                               breed2=change.breed2, source=change.source, corrected_by=by,
                                               corrected_at=now))
    return "corrected"


def correct(engine, target: str, change: Change, by: str) -> tuple[str, str]:
    """One correction, in its own transaction: (what happened, the target as people read it)."""
    with db.writing(engine) as conn:
        kind, key, shown = resolve_target(conn, target)
        return apply(conn, kind, key, change, by), shown


def read_table(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """A CSV that a person or a spreadsheet wrote: (header, [(line, row)]). The separator is the header's: a
    comma, a semicolon (what Excel saves in many European locales) or a tab; UTF-8 with or without a BOM.
    Raises CorrectionError naming the file when it cannot be read, or names a column twice."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise CorrectionError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None
    first = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader, [])]
        rows, start = [], reader.line_num + 1
        for fields in reader:
            line, start = start, reader.line_num + 1
            if any(f.strip() for f in fields):
                rows.append((line, dict(zip(header, fields, strict=False))))
    except csv.Error as e:
        raise CorrectionError(f"{path}:{reader.line_num}: not readable as CSV ({e})") from None
    # A column named twice: which of the two a row means cannot be told (a row would silently take the last).
    twice = next((h for h in header if h and header.count(h) > 1), None)
    if twice is not None:
        columns = " and ".join(str(i + 1) for i, h in enumerate(header) if h == twice)
        raise CorrectionError(f"{path}: its header names the column {twice} more than once (columns {columns}); "
                              "keep one")
    return header, rows


@dataclass(frozen=True)
class _Row:
    """A CSV row that says something: where it is, what it names, what it says."""

    line: int
    target: str
    cell: str
    change: Change


def from_csv(engine, csv_path: Path, by: str) -> dict[str, int]:
    """Apply the ``corrected_breed`` column of a CSV staff filled in: an export of dogcat's (per photo or per
    animal), or one written by hand with just ``animal,corrected_breed``. Every row is checked first; one bad
    row (unknown breed, unknown animal or photo, two rows saying different things of one target) and nothing
    is applied: CorrectionError lists each bad row. Returns counts: corrected, unchanged, blank.

    Fast, and short on the write lock, whatever its size (100,000 rows in a few seconds): the cells are read once
    per distinct value, the targets are looked up in batches, first in a read transaction (a bad row costs no
    lock), then again in the one short write transaction that inserts every correction at once (what another
    writer changed in between counts)."""
    fields, table = read_table(csv_path)
    if CORRECTION_COLUMN not in fields:
        raise CorrectionError(f"{csv_path}: has no {CORRECTION_COLUMN} column (its header: "
                              f"{', '.join(fields)[:80] or 'empty'}; export with dogcat export --format csv, or "
                              f"write animal,{CORRECTION_COLUMN})")
    per_photo = "photos" not in fields and ("sha256" in fields or "path" in fields)
    by_column = ("sha256" if "sha256" in fields else "path") if per_photo else "animal" if "animal" in fields \
        else None
    if by_column is None:
        raise CorrectionError(f"{csv_path}: needs an animal, sha256 or path column beside {CORRECTION_COLUMN} to "
                              "say what each row is")
    problems: list[str] = []
    rows: list[_Row] = []
    cells: dict[str, Change | CorrectionError] = {}  # a spreadsheet repeats a few breeds many times
    blank = 0
    for line, row in table:
        cell = (row.get(CORRECTION_COLUMN) or "").strip()
        if not cell:
            blank += 1
            continue
        if cell not in cells:
            try:
                cells[cell] = Change.from_cell(cell)
            except CorrectionError as e:
                cells[cell] = e
        said = cells[cell]
        target = (row.get(by_column) or "").strip().lstrip("'")  # a defused cell starts with '
        if isinstance(said, CorrectionError):
            problems.append(f"{csv_path}:{line}: {said}")
        else:
            rows.append(_Row(line, target, cell, said))
    with db.reading(engine) as conn:  # everything checked before the write lock is taken
        _plan(conn, csv_path, rows, by_column, problems)
    with db.writing(engine) as conn:
        new, unchanged = _plan(conn, csv_path, rows, by_column, [])
        now = db.now()
        if new:
            conn.execute(insert(db.corrections), [
                {"target_kind": kind, "target": key, "status": c.status, "label": c.label, "label2": c.label2,
                 "breed": c.breed, "breed2": c.breed2, "source": c.source, "corrected_by": by, "corrected_at": now}
                for (kind, key), c in new.items()])
    return {"corrected": len(new), "unchanged": unchanged, "blank": blank}


def _plan(conn: Connection, csv_path: Path, rows: list[_Row], by_column: str, problems: list[str]
          ) -> tuple[dict[tuple[str, str], Change], int]:
    """What the rows change: ((kind, target) → the change to record, how many say what is in force already).
    Raises CorrectionError listing every bad row (``problems`` and those found here): then nothing is applied."""
    found = _targets(conn, [r.target for r in rows], photos=by_column != "animal")
    planned: dict[tuple[str, str], _Row] = {}
    for r in rows:
        target = found.get(r.target)
        if isinstance(target, str):
            problems.append(f"{csv_path}:{r.line}: {r.target}: {target}")
            continue
        assert target is not None  # _targets answers every name asked
        earlier = planned.get(target)
        if earlier is not None and earlier.change != r.change:
            problems.append(f"{csv_path}:{r.line}: {r.target}: says {r.cell!r} here but {earlier.cell!r} on line "
                            f"{earlier.line}")
            continue
        planned.setdefault(target, r)
    if problems:
        raise CorrectionError(f"{len(problems)} row(s) cannot be applied, so none was: " + " | ".join(problems))
    in_force = _in_force_of(conn, list(planned))
    new = {target: r.change for target, r in planned.items() if in_force.get(target) != r.change.what}
    return new, len(planned) - len(new)


def _targets(conn: Connection, names: list[str], photos: bool) -> dict[str, tuple[str, str] | str]:
    """What each name in a CSV means, looked up in batches: (kind, key) as :func:`resolve_target` gives it (an
    animal code, any case, merges followed; with ``photos``, else a photo's SHA-256 or catalogued path), or
    why it means nothing (a string)."""
    out: dict[str, tuple[str, str] | str] = {}
    wanted = sorted(set(names))
    codes: dict[str, str] = {}
    query = select(db.animals.c.code, db.animals.c.merged_into)
    # Codes match in any case, which no index serves: many names, one pass over the animals, not one per batch.
    batches = [query] if len(wanted) > db.PARAMS_PER_QUERY else \
        [query.where(func.lower(db.animals.c.code).in_([n.lower() for n in chunk])) for chunk in db.chunks(wanted)]
    for q in batches:
        for code, merged_into in conn.execute(q).all():
            # A merged animal's row writes to the animal that holds its photos now, as `correct CODE` does.
            codes[code.lower()] = db.follow_merges(conn, merged_into) if merged_into else code
    rest = []
    for name in wanted:
        code = codes.get(name.lower())
        if code is not None:
            out[name] = ("animal", code)
        elif photos:
            rest.append(name)
        else:
            out[name] = "no such animal (dogcat animals lists them)"
    if not rest:
        return out
    # Photos: a SHA-256 names every file holding it; a path as given, or as its absolute path key.
    files = db.files.c
    hashes = [n for n in rest if re.fullmatch(r"[0-9a-fA-F]{64}", n)]
    known_hashes: set[str] = set()
    for chunk in db.chunks(sorted({h.lower() for h in hashes})):
        known_hashes.update(conn.scalars(select(files.sha256).where(files.sha256.in_(chunk)).distinct()))
    keys = {n: list(dict.fromkeys((n, pathkeys.key(n)))) for n in rest if n.lower() not in known_hashes}
    path_sha: dict[str, str | None] = {}
    for chunk in db.chunks(sorted({k for ks in keys.values() for k in ks})):
        path_sha.update(conn.execute(select(files.path, files.sha256).where(files.path.in_(chunk))).tuples())
    for name in rest:
        if name.lower() in known_hashes:
            out[name] = ("photo", name.lower())
            continue
        path = next((k for k in keys[name] if k in path_sha), None)
        if path is None:
            out[name] = ("no animal with this code and no such photo in the catalog (an animal code, a photo path "
                         "as catalogued, or a SHA-256)")
        elif path_sha[path] is None:
            out[name] = "this file could not be read when catalogued, so it has no photo to correct"
        else:
            out[name] = ("photo", str(path_sha[path]))
    return out


def _in_force_of(conn: Connection, targets: list[tuple[str, str]]) -> dict[tuple[str, str], tuple]:
    """(kind, target) → what its correction in force (the newest not undone) says (Change.what), for those that
    have one; in batches, or in one pass over the corrections for many targets."""
    c = db.corrections.c
    query = select(c.id, c.target_kind, c.target, c.status, c.label, c.label2, c.breed, c.breed2, c.corrected_by,
                   c.corrected_at, c.source, c.note).where(c.undone_at.is_(None)).order_by(c.id)
    if len(targets) > db.PARAMS_PER_QUERY:
        batches = [query]
    else:
        batches = [query.where(c.target_kind == kind, c.target.in_(chunk))
                   for kind in sorted({k for k, _ in targets})
                   for chunk in db.chunks(sorted(t for k, t in targets if k == kind))]
    wanted = set(targets)
    said: dict[tuple, tuple] = {}  # a row's words → what it says: few distinct ones
    out: dict[tuple[str, str], tuple] = {}
    for q in batches:
        for row in conn.execute(q):
            target = (row.target_kind, row.target)
            if target in wanted:
                words = (row.status, row.label, row.label2, row.breed, row.breed2)
                if words not in said:
                    said[words] = readmodel.correction_of(row).what
                out[target] = said[words]  # the newest last
    return out


def evaluate(engine, model_id: str | None = None) -> dict:
    """The model against the staff: for every correction in force, what the model said without it. The
    shelter's own real-world accuracy (its photos, its dogs), unlike any validation split.

    Breed corrections count top-1 / top-3 right when the model's guess is one of the staff's breeds (a mix
    has two); animals are judged by their fused answer. ``not_a_dog`` corrections count how many the model
    had flagged; ``dog_precision``: of the model's confident (``dog``) answers that staff corrected or
    confirmed, the share that named a breed staff gave. A breed outside the model's labels ("Mixed Breed", "Pit
    Bull Terrier": the model could not have named it, unless ``dogcat teach`` taught it the word) is counted
    apart, in ``outside_model``, by breed."""
    records = list(readmodel.records(engine, model_id=model_id, probabilities=True, corrected=False))
    with db.reading(engine) as conn:
        fixes = readmodel.active_corrections(conn)
    by_sha: dict[str, dict] = {}
    for record in records:
        by_sha.setdefault(record["sha256"], record)
    model_animals = {a.animal: a for a in readmodel.answers(engine, records, k=3, corrections={})}
    with db.reading(engine) as conn:
        infos = readmodel.model_infos(conn)

    breed = {"photo": [0, 0, 0], "animal": [0, 0, 0]}  # n, top-1 right, top-3 right
    not_dog = {"n": 0, "flagged": 0}
    outside: dict[str, Counter] = {"photo": Counter(), "animal": Counter()}
    dog_answers = [0, 0]  # model said dog, and it was right
    for (kind, target), fix in fixes.items():
        if kind == "photo":
            r = by_sha.get(target)
            if r is None:
                continue
            status, guesses, model = r["status"], r["top_k"], r["model"]
        else:
            a = model_animals.get(target)
            if a is None:
                continue
            status, guesses, model = a.status, a.top_k, a.model
        if fix.status == "not_a_dog":
            not_dog["n"] += 1
            not_dog["flagged"] += status == "not_a_dog"
            continue
        truth = {fix.label, fix.label2} - {None}
        if fix.outside_model:
            # A model taught the shelter's word (dogcat teach) could name it; any other could not.
            info = infos.get(model) if model else None
            if info is None or not info.labels or fix.word not in info.labels:
                outside[kind][" / ".join(fix.names)] += 1
                continue
            truth = {fix.word}
        labels = [g["label"] for g in guesses] if status in ("dog", "unsure") else []
        counts = breed[kind]
        counts[0] += 1
        counts[1] += bool(labels[:1]) and labels[0] in truth
        counts[2] += bool(truth & set(labels[:3]))
        if status == "dog":
            dog_answers[0] += 1
            dog_answers[1] += labels[0] in truth

    def rates(c):
        return {"n": c[0], "top1": round(c[1] / c[0], 4) if c[0] else None,
                "top3": round(c[2] / c[0], 4) if c[0] else None}

    return {"corrections": len(fixes), "photos": rates(breed["photo"]), "animals": rates(breed["animal"]),
            "not_a_dog": not_dog,
            "outside_model": {"photos": sum(outside["photo"].values()), "animals": sum(outside["animal"].values()),
                              "breeds": dict((outside["photo"] + outside["animal"]).most_common())},
            "dog_precision": round(dog_answers[1] / dog_answers[0], 4) if dog_answers[0] else None,
            "dog_answers": dog_answers[0]}
