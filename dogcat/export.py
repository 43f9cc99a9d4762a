"""The catalog → CSV or JSON Lines, one record per catalogued file, with the newest prediction for its photo;
or an ASM3 import file, one animal per photographed dog (see :mod:`dogcat.asm3`).

CSV is RFC 4180 (every field with a comma, quote or line break is quoted, so any file name survives), and a
cell that a spreadsheet would run as a formula (starting with = + - @, a tab, a carriage return or a line
feed) is prefixed with a ``'``, as OWASP recommends against CSV injection.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import IO

from sqlalchemy import and_, func, or_, select

from dogcat import asm3, db, settings

FIELDS = ["path", "sha256", "size", "mtime", "width", "height", "format", "status", "label", "breed", "confidence",
          "top_k", "dog_probability", "looks_like", "model", "error", "catalogued_at", "classified_at",
          "animal", "source"]
# One record per animal (dogcat.animals.Answer.to_dict): a contract for scripts, new keys only ever added.
ANIMAL_FIELDS = ["animal", "name", "photos", "status", "label", "breed", "confidence", "breed2", "summary", "top_k",
                 "source", "corrected_by", "corrected_at", "votes", "model"]
# The column staff fill in a spreadsheet for `dogcat correct --from` (a breed, two as "A / B", or "not a dog").
CORRECTION_COLUMN = "corrected_breed"
FORMATS = ("csv", "jsonl", "asm3")
PER = ("photo", "animal")
# A leading tab, carriage return or line feed is defused too: a spreadsheet may strip it and then see = + - @.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def records(engine, *, breed: str | None = None, min_confidence: float | None = None, errors: bool = False,
            model_id: str | None = None, status: str | None = None, probabilities: bool = False,
            corrected: bool = True) -> Iterator[dict]:
    """Catalog rows as dicts (``top_k`` parsed from its JSON), in path order, filtered:

    - ``breed``: the best guess is this breed, by human name ("golden retriever") or label
      ("n02099601-golden_retriever" or "golden_retriever"), case-insensitive;
    - ``min_confidence``: the best guess's confidence is at least this;
    - ``errors``: only files recorded with an error;
    - ``model_id``: that model's predictions rather than the newest;
    - ``status``: only files with this status (dog, unsure, not_a_dog, error).

    ``label``, ``breed`` and ``confidence`` are empty for a photo that is not a dog (``looks_like`` says what it
    shows); ``top_k`` keeps the breed model's guesses for every photo. ``animal`` is the animal the file is
    in. A staff correction (of the photo, else of its animal) wins over the model: ``status``, ``label`` and
    ``breed`` are then the staff's, ``confidence`` empty and ``source`` "correction" (else "model").
    ``probabilities``: add the model's whole distribution (a list, or None), for dogcat.animals.
    ``corrected=False``: the model's answers only (dogcat.corrections.evaluate).
    """
    from dogcat.animals import active_corrections, members

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
            fix = corrections.get(("photo", record["sha256"])) or corrections.get(("animal", record["animal"]))
            if fix is not None and record["status"] != "error" and (
                    ("photo", record["sha256"]) in corrections or record["status"] in ("dog", "unsure")):
                apply_correction(record, fix)
            yield record


def _breed_matches(name: str, label: str | None, breed: str | None) -> bool:
    """--breed for an animal, as records() matches it for a photo: a human name or a label, any case."""
    wanted = name.strip().lower()
    label, breed = (label or "").lower(), (breed or "").lower()
    return (breed in (wanted, wanted.replace("_", " ")) or label == wanted
            or label.endswith("-" + wanted.replace(" ", "_")))


def animal_answers(engine, *, breed: str | None = None, min_confidence: float | None = None,
                   model_id: str | None = None, status: str | None = None, k: int = 3):
    """The animals (dogcat.animals.answers), filtered by their own answer as records() filters photos."""
    from dogcat.animals import answers

    out = []
    for a in answers(engine, model_id=model_id, k=k):
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
    from dogcat.breeds import breed_name

    record["source"] = "correction"
    record["status"] = fix.status
    record["label"] = fix.label
    record["breed"] = (breed_name(fix.label) + (f" / {breed_name(fix.label2)}" if fix.label2 else "")
                       if fix.label else None)
    record["confidence"] = None


def safe_cell(value) -> str:
    """A CSV cell a spreadsheet shows as text: None → "", formula-looking text → prefixed with '."""
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        value = json.dumps(value, ensure_ascii=False)
    text = str(value)
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def write_csv(rows, fp: IO[str], fields: list[str] = FIELDS) -> int:
    """``fp`` must be opened with newline="" so that line breaks inside quoted fields are kept as they are.
    The last column, ``corrected_breed``, is empty: staff fill it in for ``dogcat correct --from``."""
    writer = csv.writer(fp)
    writer.writerow(fields + [CORRECTION_COLUMN])
    n = 0
    for r in rows:
        writer.writerow([safe_cell(r[name]) for name in fields] + [""])
        n += 1
    return n


def write_jsonl(rows, fp: IO[str], fields: list[str] = FIELDS) -> int:
    n = 0
    for r in rows:
        fp.write(json.dumps({name: r[name] for name in fields}, ensure_ascii=False) + "\n")
        n += 1
    return n


# ANIMALIMAGE tries: (longest side, JPEG quality), largest first, until the data: URI fits a CSV field.
ASM3_IMAGE_TRIES = ((asm3.IMAGE_MAX_SIDE, settings.ASM3_IMAGE_QUALITY), (asm3.IMAGE_MAX_SIDE, 70), (800, 70),
                    (640, 65), (480, 60))


def asm3_image(record: dict) -> tuple[str, str | None]:
    """ANIMALIMAGE for a record: its photo, read again and shrunk until it fits in a CSV field
    (asm3.IMAGE_MAX_CHARS), as a data: URI (or why there is none)."""
    from dogcat import previews

    for side, quality in ASM3_IMAGE_TRIES:
        shown = previews.preview(record["path"], record["sha256"], side, quality=quality)
        if shown.problem:
            return "", shown.problem
        uri = shown.data_uri()
        if len(uri) <= asm3.IMAGE_MAX_CHARS:
            return uri, None
    return "", "too detailed to fit in a CSV field even at 480 pixels"


def write(rows, fmt: str, fp: IO[str], images: bool = True) -> int:
    """Write per-photo records; returns how many were written."""
    if fmt == "csv":
        return write_csv(rows, fp)
    if fmt == "jsonl":
        return write_jsonl(rows, fp)
    raise ValueError(f"per-photo export: unknown format {fmt!r}; known: csv, jsonl")


def write_animals(answers, fmt: str, fp: IO[str], *, images: bool = True, age: str | None = None,
                  dob: str | None = None) -> int:
    """Write per-animal answers (dogcat.animals.answers); returns how many animals were written. ``images``,
    ``age`` and ``dob``: asm3's ANIMALIMAGE and ANIMALAGE / ANIMALDOB."""
    dicts = (a.to_dict() for a in answers)
    if fmt == "csv":
        return write_csv(dicts, fp, ANIMAL_FIELDS)
    if fmt == "jsonl":
        return write_jsonl(dicts, fp, ANIMAL_FIELDS)
    if fmt == "asm3":
        return asm3.write(asm3.rows(answers, age=age, dob=dob, image_for=asm3_image if images else None), fp)
    raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
