"""Read the animals a shelter already keeps in Animal Shelter Manager 3, from ASM3's "export animals as CSV".

ASM3 writes that file with ``csvexport_animals`` (``src/asm3/csvimport.py``). What it looks like (checked on a
real export; docs/asm3-import-notes.md has the rest):

- A header of 113 or more columns (ANIMALID, ANIMALCODE, ANIMALNAME, ANIMALSEX, ANIMALBREED1, ANIMALBREED2,
  ANIMALDOB, ..., LOGDATE, LOGTIME, LOGTYPE, LOGCOMMENTS, ..., one ANIMALADDITIONAL<NAME> per additional field),
  every field quoted, ``"`` doubled inside a field, ``\\n`` line ends, no BOM (a file saved again by a
  spreadsheet may have one).
- One row per animal with all of its fields (its ANIMALID set), then one row per vaccination, test, medical
  regimen, cost and log entry (and per photo with ``includemedia``) that repeats only ANIMALCODE and ANIMALNAME.
- Dates as the database's locale shows them: MM/DD/YYYY for "en" (the US default), DD/MM/YYYY for most others
  (``day_first=True``). The export writes no time with ANIMALDOB; a time after the date is accepted and dropped.
  ISO YYYY-MM-DD is accepted too (ASM3's import accepts it).
- ANIMALSEX is the name of the sex in ASM3's lookup: "Male", "Female" or "Unknown".
- There is no crossbreed column. :attr:`ShelterAnimal.crossbreed` is what ASM3's import would make of the row:
  a second breed that is not the first (a purebred is exported with the same breed twice). ASM3's own
  CrossBreed flag can differ from it when staff changed a breed without ticking or unticking the box.

Rows sharing an ANIMALCODE are one animal. Its fields are read from all of its rows: an empty field says
nothing, and two rows with different non-empty values for one field (or two ANIMALIDs, or codes that differ
only in case, which ASM3 refuses as "already used") make the file malformed, not a choice between them.

A malformed file raises :class:`ShelterFileError`, a one-line message naming the file and the line.
Standard library only (and dogcat.text, itself pure Python).

Layer: a leaf (names and rules; no dogcat imports but other leaves) (docs/architecture.md).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from dogcat.errors import DogcatError
from dogcat.text import visible

REQUIRED = ("ANIMALCODE", "ANIMALNAME")
SEXES = {"male": "Male", "female": "Female", "unknown": "Unknown"}
# The fields read per animal; a conflict in any of them (ANIMALID included) is a malformed file.
_FIELDS = ("ANIMALID", "ANIMALNAME", "ANIMALSEX", "ANIMALDOB", "ANIMALBREED1", "ANIMALBREED2")
_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})|(\d{4})-(\d{2})-(\d{2})")
_TIME = re.compile(r"\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?(\s*[AaPp][Mm])?")


class ShelterFileError(DogcatError, ValueError):
    """The file is not an ASM3 animal export that can be read; the message names the file and the line."""


@dataclass(frozen=True)
class ShelterAnimal:
    """One animal as ASM3 has it. ``line``: the line of the file where its first row starts (the header is 1)."""

    code: str
    name: str
    dob: date | None
    sex: str | None  # "Male", "Female", "Unknown"; None when the export leaves it empty
    breed1: str | None
    breed2: str | None  # as ASM3 has it: a purebred's breed2 is its breed1
    crossbreed: bool
    line: int


def _fail(path: Path, line: int | None, message: str) -> ShelterFileError:
    where = f"{visible(path)}, line {line}" if line else visible(path)
    return ShelterFileError(f"{where}: {message}")


def parse_date(text: str, *, day_first: bool = False) -> date:
    """An export's date (MM/DD/YYYY, or DD/MM/YYYY with ``day_first``, or YYYY-MM-DD), an optional time after it
    dropped. ValueError when it is none of these or no real day."""
    day, _, rest = text.strip().partition(" ")
    if rest.strip() and not _TIME.fullmatch(rest.strip()):
        raise ValueError(f"{text!r} is not a date")
    m = _DATE.fullmatch(day)
    if m is None:
        raise ValueError(f"{text!r} is not a date ({'DD/MM/YYYY' if day_first else 'MM/DD/YYYY'} or YYYY-MM-DD)")
    if m.group(4):
        y, mo, d = int(m.group(4)), int(m.group(5)), int(m.group(6))
    else:
        a, b, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
        d, mo = (a, b) if day_first else (b, a)
    try:
        return date(y, mo, d)
    except ValueError:
        raise ValueError(f"{text!r} is no day ({'DD/MM/YYYY' if day_first else 'MM/DD/YYYY'})") from None


class _Animal:
    """The fields gathered so far for one code, with the line each came from."""

    def __init__(self, code: str, line: int):
        self.code, self.line = code, line
        self.values: dict[str, tuple[str, int]] = {}

    def take(self, path: Path, row: dict[str, str], line: int) -> None:
        for field in _FIELDS:
            value = row.get(field, "")
            if not value:
                continue
            had = self.values.get(field)
            if had is None:
                self.values[field] = (value, line)
            elif had[0] != value:
                raise _fail(path, line, f"{visible(self.code)} has {field} {visible(value)!r} here but "
                                        f"{visible(had[0])!r} on line {had[1]}")

    def animal(self, path: Path, day_first: bool) -> ShelterAnimal:
        def get(field: str) -> str | None:
            return self.values[field][0] if field in self.values else None

        name = get("ANIMALNAME")
        if name is None:
            raise _fail(path, self.line, f"{visible(self.code)} has no ANIMALNAME")
        dob = None
        if "ANIMALDOB" in self.values:
            text, line = self.values["ANIMALDOB"]
            try:
                dob = parse_date(text, day_first=day_first)
            except ValueError as e:
                raise _fail(path, line, f"ANIMALDOB of {visible(self.code)}: {visible(e)}") from None
        sex = get("ANIMALSEX")
        if sex is not None:
            if sex.lower() not in SEXES:
                raise _fail(path, self.values["ANIMALSEX"][1],
                            f"ANIMALSEX of {visible(self.code)} is {visible(sex)!r}, not Male, Female or Unknown")
            sex = SEXES[sex.lower()]
        breed1, breed2 = get("ANIMALBREED1"), get("ANIMALBREED2")
        crossbreed = breed2 is not None and (breed1 or "").casefold() != breed2.casefold()
        return ShelterAnimal(code=self.code, name=name, dob=dob, sex=sex, breed1=breed1, breed2=breed2,
                             crossbreed=crossbreed, line=self.line)


def _header(path: Path, reader) -> list[str]:
    try:
        header = next(reader)
    except StopIteration:
        raise _fail(path, None, "the file is empty, not an ASM3 animal export") from None
    header = [h.strip() for h in header]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise _fail(path, 1, f"no {' or '.join(missing)} column: not an ASM3 animal export "
                             f"(the header starts {visible(','.join(header[:4]))[:80]!r})")
    for c in (*REQUIRED, *_FIELDS):
        if header.count(c) > 1:
            raise _fail(path, 1, f"the header has {c} {header.count(c)} times")
    return header


def _rows(path: Path, text: str):
    """(line where the row starts, row as {column: stripped value}) for each non-blank data row."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = _header(path, reader)
        start = reader.line_num + 1
        for fields in reader:
            line, start = start, reader.line_num + 1
            if not any(f.strip() for f in fields):
                continue
            if len(fields) != len(header):
                raise _fail(path, line, f"{len(fields)} fields where the header has {len(header)}")
            yield line, {h: f.strip() for h, f in zip(header, fields, strict=True)}
    except csv.Error as e:
        raise _fail(path, reader.line_num, f"not readable as CSV ({visible(e)})") from None


def read_animals(path: str | Path, *, day_first: bool = False) -> list[ShelterAnimal]:
    """The animals in an ASM3 animal export (UTF-8, with or without a BOM), in the order their codes first
    appear. ``day_first``: the database's locale shows dates as DD/MM/YYYY (any locale but US English and
    en_CA). Raises ShelterFileError for a file that is malformed, OSError when it cannot be read."""
    path = Path(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise _fail(path, line, f"not UTF-8 text (byte {e.start}): not an ASM3 animal export") from None
    if "\0" in text:
        raise _fail(path, text[:text.index("\0")].count("\n") + 1, "a NUL character: not a CSV text file")
    animals: dict[str, _Animal] = {}
    folded: dict[str, str] = {}
    for line, row in _rows(path, text):
        code = row["ANIMALCODE"]
        if not code:
            raise _fail(path, line, "a row without ANIMALCODE (ASM3 would make it a new animal)")
        other = folded.setdefault(code.casefold(), code)
        if other != code:
            raise _fail(path, line, f"codes {visible(other)!r} and {visible(code)!r} differ only in case "
                                    f"(ASM3 takes them for one code), line {animals[other].line}")
        animal = animals.get(code)
        if animal is None:
            animal = animals[code] = _Animal(code, line)
        animal.take(path, row, line)
    return [a.animal(path, day_first) for a in animals.values()]
