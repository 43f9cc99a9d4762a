"""Animals → a CSV that Animal Shelter Manager 3 (ASM3) imports: one ASM3 animal per dogcat animal.

ASM3 (https://github.com/sheltermanager/asm3) reads it with Settings > Import a CSV file. What it expects, from
its source (``src/asm3/csvimport.py``, ``src/asm3/utils.py``, ``src/asm3/dbupdate.py``; docs/asm3.md has the
details and the full breed table):

- Column names from its list (VALID_FIELDS); a file with any ``ANIMAL…`` column must have ``ANIMALNAME``, and
  a row whose ANIMALNAME is empty creates no animal.
- Breeds, species and types are matched by name, case-insensitively, against its lookup tables; a name it does
  not know silently becomes the default breed. So every breed here is spelt as ASM3's default list spells it.
- There is no crossbreed column: ASM3 ticks "Crossbreed" itself when ANIMALBREED2 is a different breed than
  ANIMALBREED1. A purebred therefore has the same breed twice.
- ANIMALIMAGE must be an http(s) URL or a ``data:image/…;base64,`` URI; a file path is ignored with a warning.
- Its CSV reader keeps ``""`` inside a quoted field as two quotes and strips spaces around fields, so text here
  never contains a double quote or a line break.
- A new animal needs ANIMALAGE (years, above 0, at most 100) or ANIMALDOB, else the row fails with "Estimated
  age '0.0' is not valid." dogcat never invents one: the export needs --age or --dob.
- Rows that share an ANIMALCODE are one animal: a second import of the same file updates it instead of making
  a new one, and a row with only ANIMALCODE, ANIMALNAME and ANIMALIMAGE attaches one more photo to it.
- Python's csv module refuses a field over 131,072 characters by default, so ANIMALIMAGE stays below that.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from typing import IO

# Breed names and their ASM3 spellings live in dogcat.breeds (docs/asm3.md, docs/breeds.md).
from dogcat.breeds import asm3_name as asm3_breed
from dogcat.decision import status_of
from dogcat.errors import UsageError
from dogcat.naming import UNNAMED, one_line

COLUMNS = ["ANIMALCODE", "ANIMALNAME", "ANIMALTYPE", "ANIMALSPECIES", "ANIMALBREED1", "ANIMALBREED2", "ANIMALAGE",
           "ANIMALDOB", "ANIMALCOMMENTS", "ANIMALIMAGE"]
ANIMAL_TYPE = "D (Dog)"  # ASM3's default animal types: "D (Dog)", "A (Stray Dog)", "U (Unwanted Cat)" ...
SPECIES = "Dog"
IMAGE_MAX_SIDE = 1024  # ANIMALIMAGE: big enough for ASM3's own scaling ...
IMAGE_MAX_CHARS = 131_072 - 1_024  # ... and under Python's csv field limit, which ASM3's reader keeps
NOT_ANIMALS = ("not_a_dog", "error")  # statuses that create no animal


def _percent(p: float | None) -> str:
    if p is None:
        return "?"
    return "<1%" if p < 0.005 else f"{p:.0%}"


def _guesses(top_k: list[dict], start: int) -> str:
    return ", ".join(f"{g['breed']} {_percent(g.get('confidence'))}" for g in top_k[start:])


class AgeError(UsageError, ValueError):
    """--age / --dob missing or not one ASM3 accepts; the message says why."""


def estimated_age(age: str | float | None = None, dob: str | None = None) -> dict[str, str]:
    """ANIMALAGE or ANIMALDOB, as ASM3 requires one of them for a new animal. ASM3 refuses an estimated age
    outside (0, 100] years (asm3/animal.py, insert_animal_from_form); a date of birth must be a real date,
    not in the future. Nothing is invented: without either, this raises AgeError."""
    if (age is None) == (dob is None):
        raise AgeError("ASM3 creates an animal only with an estimated age or a date of birth: give --age YEARS "
                       "(e.g. --age 2, or 0.5 for a puppy) or --dob YYYY-MM-DD, one of them")
    if age is not None:
        try:
            years = float(age)
        except ValueError:
            raise AgeError(f"--age {age!r}: not a number of years") from None
        if not 0 < years <= 100:
            raise AgeError(f"--age {age}: ASM3 accepts an estimated age above 0 and at most 100 years")
        return {"ANIMALAGE": f"{years:g}", "ANIMALDOB": ""}
    import datetime as dt

    try:
        born = dt.date.fromisoformat(str(dob))
    except ValueError:
        raise AgeError(f"--dob {dob!r}: not a date as YYYY-MM-DD") from None
    if born > dt.date.today():
        raise AgeError(f"--dob {dob}: in the future")
    return {"ANIMALAGE": "", "ANIMALDOB": born.isoformat()}


def _photos_to_attach(answer) -> list[dict]:
    """The animal's readable dog photos, each content once, the most confident first (ASM3 makes the first
    attached photo the animal's preferred one)."""
    seen, out = set(), []
    usable = [p for p in answer.photos if status_of(p) not in NOT_ANIMALS]
    usable.sort(key=lambda p: -(p.get("confidence") or 0.0))
    for p in usable:
        if p.get("sha256") not in seen:
            seen.add(p.get("sha256"))
            out.append(p)
    return out


def _comments(answer, attached: list[dict]) -> str:
    notes = []
    if answer.source == "correction":
        c = answer.correction
        notes.append(f"breed from staff ({c.by}, {c.at[:10]})")
        top = [g["breed"] for g in answer.top_k]
        notes.append(" / ".join(top))
    elif answer.mix:
        notes.append(f"mix? {_guesses(answer.top_k, 0)}")
    else:
        then = _guesses(answer.top_k, 1)
        best = answer.top_k[0]
        notes.append(f"{best['breed']} {_percent(best.get('confidence'))}" + (f" (then {then})" if then else ""))
    if answer.source == "model":
        notes.append(f"from {answer.votes} photo{'s' if answer.votes != 1 else ''}")
        dog = [p["dog_probability"] for p in answer.photos if p.get("dog_probability") is not None]
        if dog:
            notes.append(f"dog check {_percent(max(dog))}")
    paths = [p["path"] for p in answer.photos]
    notes.append("photo" + ("s " if len(paths) > 1 else " ") + ", ".join(paths))
    if answer.model:
        notes.append(f"model {answer.model}")
    return one_line("dogcat: " + "; ".join(notes) + ".")


def _breeds(answer) -> tuple[str, str]:
    """ANIMALBREED1/2: a purebred is the same breed twice (ASM3 ticks Crossbreed when they differ)."""
    if answer.source == "correction":
        c = answer.correction
        return asm3_breed(c.label), asm3_breed(c.label2 or c.label)
    first = asm3_breed(answer.top_k[0]["label"])
    if answer.mix:
        return first, asm3_breed(answer.top_k[1]["label"])
    return first, first


def rows(answers, *, age: str | float | None = None, dob: str | None = None,
         image_for: Callable[[dict], tuple[str, str | None]] | None = None) -> Iterator[dict]:
    """ASM3 rows for animals (dogcat.animals.Answer): the animal's row, then one row per further photo with
    the same ANIMALCODE and ANIMALNAME and its ANIMALIMAGE, as ASM3's own export writes extra photos. Animals
    that are not dogs, or have no readable photo, are left out. ``image_for(record)`` → (data: URI or "",
    why there is none). Raises AgeError without an age or a date of birth."""
    born = estimated_age(age, dob)
    for a in answers:
        if a.status in NOT_ANIMALS or not a.top_k:
            continue
        attached = _photos_to_attach(a)
        breed1, breed2 = _breeds(a)
        name = one_line(a.name) or UNNAMED
        row = {"ANIMALCODE": a.animal, "ANIMALNAME": name, "ANIMALTYPE": ANIMAL_TYPE, "ANIMALSPECIES": SPECIES,
               "ANIMALBREED1": breed1, "ANIMALBREED2": breed2, **born,
               "ANIMALCOMMENTS": _comments(a, attached), "ANIMALIMAGE": ""}
        extra = []
        if image_for is not None:  # reading and shrinking photos is the slow part
            problems = []
            for p in attached:
                uri, problem = image_for(p)
                if problem:
                    problems.append(f"{p['path']}: {problem}")
                elif not row["ANIMALIMAGE"]:
                    row["ANIMALIMAGE"] = uri
                else:
                    extra.append({**{c: "" for c in COLUMNS}, "ANIMALCODE": a.animal, "ANIMALNAME": name,
                                  "ANIMALIMAGE": uri})
            if problems:
                row["ANIMALCOMMENTS"] += one_line(" Photo not attached: " + "; ".join(problems) + ".")
        yield row
        yield from extra


def write(rows: Iterable[dict], fp: IO[str]) -> int:
    """``fp`` opened with newline=""; every field quoted, as ASM3's own CSV files are."""
    writer = csv.writer(fp, quoting=csv.QUOTE_ALL)
    writer.writerow(COLUMNS)
    n = 0
    for row in rows:
        writer.writerow([row[c] for c in COLUMNS])
        n += 1
    return n
