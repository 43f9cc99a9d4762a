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

from dogcat import asm3, db

FIELDS = ["path", "sha256", "size", "mtime", "width", "height", "format", "status", "label", "breed", "confidence",
          "top_k", "dog_probability", "looks_like", "model", "error", "catalogued_at", "classified_at"]
FORMATS = ("csv", "jsonl", "asm3")
# A leading tab, carriage return or line feed is defused too: a spreadsheet may strip it and then see = + - @.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def records(engine, *, breed: str | None = None, min_confidence: float | None = None, errors: bool = False,
            model_id: str | None = None, status: str | None = None) -> Iterator[dict]:
    """Catalog rows as dicts (``top_k`` parsed from its JSON), in path order, filtered:

    - ``breed``: the best guess is this breed, by human name ("golden retriever") or label
      ("n02099601-golden_retriever" or "golden_retriever"), case-insensitive;
    - ``min_confidence``: the best guess's confidence is at least this;
    - ``errors``: only files recorded with an error;
    - ``model_id``: that model's predictions rather than the newest;
    - ``status``: only files with this status (dog, unsure, not_a_dog, error).

    ``label``, ``breed`` and ``confidence`` are empty for a photo that is not a dog (``looks_like`` says what it
    shows); ``top_k`` keeps the breed model's guesses for every photo.
    """
    c = db.catalog_select(model_id).subquery("c")
    q = select(*(c.c[name] for name in FIELDS))
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
        for row in conn.execution_options(yield_per=500).execute(q):
            record = dict(row._mapping)
            record["top_k"] = json.loads(record["top_k"]) if record["top_k"] else []
            for key in ("confidence", "dog_probability"):
                if record[key] is not None:
                    record[key] = round(record[key], 6)
            yield record


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


def write_csv(rows, fp: IO[str]) -> int:
    """``fp`` must be opened with newline="" so that line breaks inside quoted fields are kept as they are."""
    writer = csv.writer(fp)
    writer.writerow(FIELDS)
    n = 0
    for r in rows:
        writer.writerow([safe_cell(r[name]) for name in FIELDS])
        n += 1
    return n


def write_jsonl(rows, fp: IO[str]) -> int:
    n = 0
    for r in rows:
        fp.write(json.dumps({name: r[name] for name in FIELDS}, ensure_ascii=False) + "\n")
        n += 1
    return n


def asm3_image(record: dict) -> tuple[str, str | None]:
    """ANIMALIMAGE for a record: its photo, read again and shrunk, as a data: URI (or why there is none)."""
    from dogcat import previews

    shown = previews.preview(record["path"], record["sha256"], asm3.IMAGE_MAX_SIDE, quality=85)
    return shown.data_uri(), shown.problem


def write(rows, fmt: str, fp: IO[str], images: bool = True) -> int:
    """Write the records; returns how many were written (animals, for asm3). ``images``: asm3's ANIMALIMAGE."""
    if fmt == "csv":
        return write_csv(rows, fp)
    if fmt == "jsonl":
        return write_jsonl(rows, fp)
    if fmt == "asm3":
        return asm3.write(asm3.animals(rows, asm3_image if images else None), fp)
    raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
