"""The catalog's records → CSV or JSON Lines (one record per catalogued file, or per animal), or an ASM3
import file (one animal per dog, see :mod:`dogcat.asm3.importfile`). The records come from the read model
(dogcat.readmodel), staff corrections already in force.

Layer: an output. CSV is RFC 4180 (every field with a comma, quote or line break is quoted, so any file name
survives), and a cell that a spreadsheet would run as a formula (starting with = + - @, a tab, a carriage
return or a line feed) is prefixed with a ``'``, as OWASP recommends against CSV injection.
"""

from __future__ import annotations

import csv
import json
from typing import IO

from dogcat.corrections import CORRECTION_COLUMN
from dogcat.readmodel import ANIMAL_FIELDS, FIELDS
from dogcat.text import json_text

FORMATS = ("csv", "jsonl", "asm3")
PER = ("photo", "animal")
# A leading tab, carriage return or line feed is defused too: a spreadsheet may strip it and then see = + - @.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


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
        fp.write(json_text({name: r[name] for name in fields}) + "\n")
        n += 1
    return n


def write(rows, fmt: str, fp: IO[str]) -> int:
    """Write per-photo records; returns how many were written."""
    if fmt == "csv":
        return write_csv(rows, fp)
    if fmt == "jsonl":
        return write_jsonl(rows, fp)
    raise ValueError(f"per-photo export: unknown format {fmt!r}; known: csv, jsonl")


def write_animals(answers, fmt: str, fp: IO[str]) -> int:
    """Write per-animal answers (dogcat.readmodel.answers); returns how many animals were written. (ASM3's
    import file is written by dogcat.asm3.importfile, from what dogcat.asm3.plan plans.)"""
    dicts = (a.to_dict() for a in answers)
    if fmt == "csv":
        return write_csv(dicts, fp, ANIMAL_FIELDS)
    if fmt == "jsonl":
        return write_jsonl(dicts, fp, ANIMAL_FIELDS)
    raise ValueError(f"per-animal export: unknown format {fmt!r}; known: csv, jsonl")
