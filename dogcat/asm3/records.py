"""Read the animals a shelter already keeps in Animal Shelter Manager 3, from ASM3's "export animals as CSV".

ASM3 writes that file with ``csvexport_animals`` (``src/asm3/csvimport.py``). What it looks like (checked on a
real export; docs/asm3-import-notes.md has the rest):

- A header of 113 or more columns (ANIMALID, ANIMALCODE, ANIMALNAME, ANIMALSEX, ANIMALBREED1, ANIMALBREED2,
  ANIMALDOB, ..., LOGDATE, LOGTIME, LOGTYPE, LOGCOMMENTS, ..., one ANIMALADDITIONAL<NAME> per additional field),
  every field quoted, ``"`` doubled inside a field, ``\\n`` line ends, no BOM (a file saved again by a
  spreadsheet may have one).
- One row per animal with all of its fields (its ANIMALID set), then one row per vaccination, test, medical
  regimen, cost and log entry (and per photo with ``includemedia``) that repeats only ANIMALCODE and ANIMALNAME.
- Dates as the database's locale shows them (``python2display``; each locale's format is in ``locale_maps`` of
  ``src/asm3/i18n.py``): DD/MM/YYYY (55 of its 96 locales), DD.MM.YYYY (19), YYYY/MM/DD (6), MM/DD/YYYY (4: "en",
  the US default, en_BH, en_CA, en_PH), YYYY-MM-DD (4), DD-MM-YYYY (4), YYYY.MM.DD (4). A year first is always
  year, month, day. A year last is day first in every locale but the four MM/DD/YYYY ones, which use "/": so
  only "/" dates with the year last are in doubt, and their order is decided once for the whole file
  (:func:`date_order`) from every date in it (ANIMALDOB, ANIMALENTRYDATE, LOGDATE ...): a first number above
  12 is a day, a second one above 12 is a day; a file with both is malformed; a file with neither is refused
  unless the caller says (``day_first``). The export writes no time with ANIMALDOB; a time after the date is
  accepted and dropped. A date of birth in the future or more than 100 years ago (ASM3's oldest estimated age)
  is no animal's: the file is refused, naming the line.
- ANIMALSEX is the name of the sex in ASM3's lookup: "Male", "Female" or "Unknown".
- There is no crossbreed column. :attr:`ShelterAnimal.crossbreed` is what ASM3's import would make of the row:
  a second breed that is not the first (a purebred is exported with the same breed twice). ASM3's own
  CrossBreed flag can differ from it when staff changed a breed without ticking or unticking the box.

Rows sharing an ANIMALCODE are one animal. Its fields are read from all of its rows: an empty field says
nothing, and two rows with different non-empty values for one field (or two ANIMALIDs, or codes that differ
only in case, which ASM3 refuses as "already used") make the file malformed, not a choice between them.

A malformed file raises :class:`ShelterFileError`, a one-line message naming the file and the line.
Standard library only (and dogcat.text, itself pure Python).

Layer: ASM3 (docs/architecture.md); it imports only leaves (names and rules).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from dogcat.errors import DogcatError
from dogcat.text import visible

REQUIRED = ("ANIMALCODE", "ANIMALNAME")
SEXES = {"male": "Male", "female": "Female", "unknown": "Unknown"}
# The fields read per animal; a conflict in any of them (ANIMALID included) is a malformed file.
_FIELDS = ("ANIMALID", "ANIMALNAME", "ANIMALSEX", "ANIMALDOB", "ANIMALBREED1", "ANIMALBREED2")
# A year first (YYYY/MM/DD, YYYY.MM.DD, YYYY-MM-DD) or last (DD/MM/YYYY or MM/DD/YYYY, DD.MM.YYYY, DD-MM-YYYY),
# one separator throughout; a year of fewer digits is matched to be refused by name (ASM3 writes year 1 as "1").
_YEAR_FIRST = re.compile(r"(\d{4})([-/.])(\d{1,2})\2(\d{1,2})")
_YEAR_LAST = re.compile(r"(\d{1,2})([-/.])(\d{1,2})\2(\d{1,4})")
OLDEST_YEARS = 100  # ASM3 refuses an estimated age above 100 years (asm3/animal.py)
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


def _split(text: str) -> tuple[str, re.Match | None]:
    """The date part of an export's date (a time after it dropped) and its match, year first or year last."""
    day, _, rest = text.strip().partition(" ")
    if rest.strip() and not _TIME.fullmatch(rest.strip()):
        return day, None
    return day, _YEAR_FIRST.fullmatch(day) or _YEAR_LAST.fullmatch(day)


def parse_date(text: str, *, day_first: bool = False) -> date:
    """An export's date in any format of ASM3's locales, an optional time after it dropped. ``day_first``: a
    date with the year last and "/" is DD/MM/YYYY, else MM/DD/YYYY (with "." or "-" it is always day first, as
    in every locale of ASM3 that writes them). ValueError when it is none of these or no real day."""
    day, m = _split(text)
    order = "DD/MM/YYYY" if day_first else "MM/DD/YYYY"
    if m is None:
        raise ValueError(f"{text!r} is not a date ({order}, DD.MM.YYYY, YYYY/MM/DD, YYYY-MM-DD ...)")
    if m.re is _YEAR_FIRST:
        y, mo, d = int(m.group(1)), int(m.group(3)), int(m.group(4))
        order = "YYYY-MM-DD"  # every locale that writes the year first writes the month next
    else:
        a, sep, b, year = int(m.group(1)), m.group(2), int(m.group(3)), m.group(4)
        if len(year) != 4:
            raise ValueError(f"{text!r}: the year {year} is not four digits")
        y = int(year)
        d, mo = (a, b) if day_first or sep != "/" else (b, a)
        order = f"DD{sep}MM{sep}YYYY" if day_first or sep != "/" else order
    try:
        return date(y, mo, d)
    except ValueError:
        raise ValueError(f"{text!r} is no day ({order})") from None


def _dated(column: str) -> bool:
    """A column of ASM3's export that holds a date in the locale's format (not an additional field of the
    shelter's own, whose format is the shelter's)."""
    return (column == "ANIMALDOB" or column.endswith("DATE")) and not column.startswith("ANIMALADDITIONAL")


def date_order(path: Path, dates: list[tuple[int, str, str, str]], day_first: bool | None = None) -> bool:
    """Whether the file's "/" dates with the year last are day first, decided once from all of its ``dates``
    (line, column, code, text): see the module's docstring. ``day_first`` (the caller's word, None: not given)
    must agree with the file. Raises ShelterFileError when the file says both, contradicts ``day_first``, or
    cannot tell and ``day_first`` is None."""
    first: dict[bool, tuple[int, str, str, str]] = {}  # day first? -> the first date that says so
    doubt = fixed = None
    for line, column, code, text in dates:
        m = _split(text)[1]
        if m is None or m.re is not _YEAR_LAST:
            continue
        a, sep, b = int(m.group(1)), m.group(2), int(m.group(3))
        if sep != "/":
            fixed = fixed or (line, column, code, text)
        elif a > 12 >= b >= 1:
            first.setdefault(True, (line, column, code, text))
        elif b > 12 >= a >= 1:
            first.setdefault(False, (line, column, code, text))
        else:
            doubt = doubt or (line, column, code, text)

    def said(d: tuple[int, str, str, str], order: str) -> str:
        return f"{d[1]} of {visible(d[2])} is {visible(d[3])!r}, {order}"

    if len(first) == 2:
        (day, month) = first[True], first[False]
        late, early = (day, month) if day[0] > month[0] else (month, day)
        raise _fail(path, late[0], f"{said(late, 'day first' if late is day else 'month first')}, but line "
                                   f"{early[0]} has {said(early, 'day first' if early is day else 'month first')}: "
                                   "one ASM3 export has one date order")
    found = next(iter(first), None)
    if day_first is not None:
        if found is not None and found != day_first:
            d = first[found]
            raise _fail(path, d[0], f"{said(d, 'day first' if found else 'month first')}, but "
                                    f"{'--day-first' if day_first else '--month-first'} was given")
        return day_first
    if found is not None:
        return found
    if fixed is not None:
        return True
    if doubt is not None:
        raise _fail(path, doubt[0], f"{said(doubt, 'day or month first')}, and no date in the file tells which "
                                    "(none has a number above 12 first or second): give --day-first (DD/MM/YYYY) "
                                    "or --month-first (MM/DD/YYYY), as the ASM3 it came from shows dates")
    return False


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
            today = date.today()
            if dob > today + timedelta(days=1) or dob.year < today.year - OLDEST_YEARS:
                raise _fail(path, line, f"ANIMALDOB of {visible(self.code)} is {visible(text)!r} "
                                        f"({dob.isoformat()}): no animal's date of birth "
                                        f"({'in the future' if dob > today else f'over {OLDEST_YEARS} years ago'})")
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


def read_animals(path: str | Path, *, day_first: bool | None = None) -> list[ShelterAnimal]:
    """The animals in an ASM3 animal export (UTF-8, with or without a BOM), in the order their codes first
    appear. ``day_first``: whether its "/" dates with the year last are DD/MM/YYYY (True) or MM/DD/YYYY (False);
    None: decided from the file's own dates (see :func:`date_order`). Raises ShelterFileError for a file that is
    malformed or whose date order cannot be told, OSError when it cannot be read."""
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
    dates: list[tuple[int, str, str, str]] = []
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
        dates += [(line, column, code, value) for column, value in row.items() if value and _dated(column)]
    order = date_order(path, dates, day_first)
    return [a.animal(path, order) for a in animals.values()]
