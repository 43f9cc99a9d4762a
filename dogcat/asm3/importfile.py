"""An ASM3 import plan (dogcat.asm3.plan) → the CSV that Animal Shelter Manager 3 imports.

ASM3 (https://github.com/sheltermanager/asm3) reads it with Settings > Import a CSV file. What it expects, from
its source (``src/asm3/csvimport.py``, ``src/asm3/animal.py``, ``src/asm3/dbupdate.py``) and measured with its
own import (docs/asm3-import-notes.md; docs/asm3.md has the breed table):

- Column names from its list (VALID_FIELDS); a row is an animal's only when ANIMALNAME is not empty (its log
  columns are dropped otherwise).
- A row finds an animal ASM3 has by ANIMALCODE alone, case-sensitively: the code is sent as ASM3 spells it.
  Such a row's non-empty comments, date of birth, weight ... overwrite staff's, so they are left empty; its
  name, sex, type, species and breeds are never applied, and its ANIMALIMAGE attaches one more photo (every
  time: ASM3 does not look for duplicates).
- Breeds, species and types are matched by name, case-insensitively; a name ASM3 does not know silently
  becomes the default. So breeds are spelt as ASM3's list spells them. There is no crossbreed column: ASM3
  ticks "Crossbreed" when ANIMALBREED2 differs from ANIMALBREED1, so a purebred has the same breed twice.
- A new animal needs ANIMALAGE (years, above 0, at most 100) or ANIMALDOB; ANIMALSEX by its first letter.
- ANIMALIMAGE must be an http(s) URL or a ``data:image/…;base64,`` URI; Python's csv module refuses a field over
  131,072 characters by default, so ANIMALIMAGE stays below that.
- LOGDATE as YYYY-MM-DD (read the same in every locale), LOGTYPE by name (an unknown one is lost), LOGCOMMENTS.
  The same log row imported twice makes two entries: dogcat logs an answer once, when it changed.
- Its CSV reader keeps ``""`` inside a quoted field as two quotes and strips spaces around fields, so text here
  never contains a double quote or a line break, and text that a spreadsheet would run as a formula is defused
  with a leading ``'`` as in dogcat's CSV export.

Layer: ASM3. Writes what the plan says; dogcat.asm3.plan decides what that is and dogcat.asm3.sent records it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable, Iterator
from typing import IO

from dogcat import previews, settings
from dogcat.asm3.plan import LOG_TYPE, Plan
from dogcat.naming import UNNAMED, one_line

COLUMNS = ["ANIMALCODE", "ANIMALNAME", "ANIMALTYPE", "ANIMALSPECIES", "ANIMALBREED1", "ANIMALBREED2", "ANIMALSEX",
           "ANIMALAGE", "ANIMALDOB", "ANIMALIMAGE", "LOGDATE", "LOGTYPE", "LOGCOMMENTS"]
ANIMAL_TYPE = "D (Dog)"  # ASM3's default animal types: "D (Dog)", "A (Stray Dog)", "U (Unwanted Cat)" ...
SPECIES = "Dog"
IMAGE_MAX_SIDE = 1024  # ANIMALIMAGE: big enough for ASM3's own scaling ...
IMAGE_MAX_CHARS = 131_072 - 1_024  # ... and under Python's csv field limit, which ASM3's reader keeps
FORMULA_STARTS = ("=", "+", "-", "@")  # one_line() already removed tabs and line breaks


def text(value: object) -> str:
    """A field ASM3 gives back as written: one line, no double quote, not a spreadsheet formula."""
    s = one_line(value)
    return "'" + s if s.startswith(FORMULA_STARTS) else s


# ANIMALIMAGE tries: (longest side, JPEG quality), largest first, until the data: URI fits a CSV field.
ASM3_IMAGE_TRIES = ((IMAGE_MAX_SIDE, settings.ASM3_IMAGE_QUALITY), (IMAGE_MAX_SIDE, 70), (800, 70),
                    (640, 65), (480, 60))


def image_for(record: dict) -> tuple[str, str | None]:
    """ANIMALIMAGE for a record: its photo, read again and shrunk until it fits in a CSV field
    (IMAGE_MAX_CHARS), as a data: URI (or why there is none)."""
    for side, quality in ASM3_IMAGE_TRIES:
        shown = previews.preview(record["path"], record["sha256"], side, quality=quality)
        if shown.problem:
            return "", shown.problem
        uri = shown.data_uri()
        if len(uri) <= IMAGE_MAX_CHARS:
            return uri, None
    return "", "too detailed to fit in a CSV field even at 480 pixels"


def attach_images(plan: Plan, image_of: Callable[[dict], tuple[str, str | None]] | None = image_for
                  ) -> dict[str, str]:
    """SHA-256 → the ANIMALIMAGE of every photo the plan attaches (``image_of(record)`` → (data: URI or "",
    why there is none)). A photo without one leaves the plan, with a warning, so that it is not recorded as
    sent; with ``image_of`` None (--no-images) no photo is attached."""
    images: dict[str, str] = {}
    for a in plan.animals:
        kept = []
        for p in a.photos:
            if image_of is None:
                break
            uri, problem = image_of(p)
            if problem:
                plan.warnings.append(f"{a.answer.animal}: {p['path']}: {problem}; not attached")
            else:
                images[p["sha256"]] = uri
                kept.append(p)
        a.photos = kept
    return images


def rows(plan: Plan, images: dict[str, str], today: dt.date | None = None) -> Iterator[dict]:
    """The file's rows: per animal, its row (a full one for an animal new to ASM3; code, name and the first
    photo for one it has), dogcat's answer as a log entry on it when there is one to send, then one row per
    further photo. An animal ASM3 has with nothing new gets no row."""
    logged = (today or dt.date.today()).isoformat()
    empty = dict.fromkeys(COLUMNS, "")
    for a in plan.animals:
        pictures = [images[p["sha256"]] for p in a.photos]
        if not a.new and not pictures and not a.log:
            continue
        name = text(a.name) or UNNAMED
        row = {**empty, "ANIMALCODE": a.code, "ANIMALNAME": name}
        if a.new:
            row.update({"ANIMALTYPE": ANIMAL_TYPE, "ANIMALSPECIES": SPECIES, "ANIMALBREED1": a.breeds[0],
                        "ANIMALBREED2": a.breeds[1], "ANIMALSEX": a.sex, **a.born})
        if a.log:
            row.update({"LOGDATE": logged, "LOGTYPE": LOG_TYPE, "LOGCOMMENTS": text(a.log)})
        row["ANIMALIMAGE"] = pictures[0] if pictures else ""
        yield row
        for picture in pictures[1:]:
            yield {**empty, "ANIMALCODE": a.code, "ANIMALNAME": name, "ANIMALIMAGE": picture}


def content(plan: Plan, images: dict[str, str], today: dt.date | None = None) -> bytes:
    """The whole file, as bytes (UTF-8): hashed and recorded before it is put in place (dogcat.asm3.sent)."""
    buffer = io.StringIO(newline="")
    write(rows(plan, images, today), buffer)
    return buffer.getvalue().encode("utf-8")


def write(rows: Iterator[dict], fp: IO[str]) -> int:
    """``fp`` opened with newline=""; every field quoted, as ASM3's own CSV files are. Returns the rows written."""
    writer = csv.writer(fp, quoting=csv.QUOTE_ALL)
    writer.writerow(COLUMNS)
    n = 0
    for row in rows:
        writer.writerow([row[c] for c in COLUMNS])
        n += 1
    return n
