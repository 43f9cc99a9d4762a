"""Where an animal's code and name come from, before staff give better ones: one place that makes them.

A code is what ASM3 calls ANIMALCODE and what ``dogcat correct CODE`` takes: letters, digits, ``-``, ``_`` and
``.`` only, so it is safe in a CSV, a file name and a shell. A name is what people read; until staff give one
it is made from the photo's file name, as plain words. Leaf module: text only, no database.

A shelter's intake folders often carry both: ``A1023-Rex``, ``A1023 Rex`` and ``A1023_Rex`` are the animal with
code ``A1023``, named Rex (:func:`split_folder`; ``dogcat catalog --folder-pattern`` for other schemes).

Layer: a leaf (names and rules; no dogcat imports but other leaves) (docs/architecture.md).
"""

from __future__ import annotations

import os
import re
from pathlib import PurePath

from dogcat import pathkeys
from dogcat.text import visible

CODE_MAX = 40
NAME_MAX = 40
UNNAMED = "Unnamed dog"


def clean_code(text: str) -> str:
    """A code safe everywhere it goes (ASM3's ANIMALCODE, a file name, a shell): letters, digits, - _ ."""
    code = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")[:CODE_MAX].strip("-.")
    return code or "animal"


# A first token holding a digit (the shelter's code), one or more separators (- _ or spaces), then the name. The
# digit keeps "Big-Max" and "Rex_Jr" whole names (a code is what a shelter's system numbers); the name must start
# with a letter, so that dated folders (2024-06-01, 2024_06_02) are not all one animal "2024".
FOLDER_CODE = re.compile(r"(?P<code>[^\s_-]*\d[^\s_-]*)[\s_-]+(?P<name>[^\W\d_].*)", re.DOTALL)


def split_folder(folder_name: str, pattern: re.Pattern | None = None) -> tuple[str, str] | None:
    """(code, name) of an intake folder named after its animal, or None when the name holds no code (the folder is
    then its own code and name). ``pattern``: the shelter's own scheme, a regular expression with groups ``code``
    and, optionally, ``name`` (searched in the folder's name); default :data:`FOLDER_CODE` (matched whole)."""
    m = pattern.search(folder_name) if pattern is not None else FOLDER_CODE.fullmatch(folder_name)
    return code_and_name(m.groupdict()) if m is not None else None


def code_and_name(groups: dict[str, str | None]) -> tuple[str, str] | None:
    """(code, name) from a folder name's match: its groups ``code`` and, optionally, ``name``; None without a
    code."""
    if not groups.get("code"):
        return None
    code = clean_code(groups["code"] or "")
    name = one_line(groups.get("name") or "")[:NAME_MAX].strip() or code
    return code, name


def code_key(code: str) -> str:
    """The grouping key of an animal known by its code (dogcat.animals): one animal per code whatever folders it
    is found in or renamed to, in any case (ASM3 matches codes regardless of case)."""
    return f"code:{code.upper()}"


def one_line(value: object) -> str:
    """A name as ASM3's CSV reader gives it back unchanged: one line, no double quote (written '' as ASM3's own
    exports do), no spaces around it, no control or bidi character left hidden."""
    s = "" if value is None else str(value)
    return visible(" ".join(s.replace('"', "''").split()))


def placeholder_name(path: str) -> str:
    """The animal's name until staff give it one: the photo's file name, as plain words ("IMG_0001.jpg" →
    "IMG 0001"). Never empty (ASM3 skips an animal without a name), never starts like a spreadsheet formula.
    ``path``: a path key (dogcat.pathkeys); a byte that is not UTF-8 is shown as the tables show it
    (``caf<U+DCE9>`` for caf + byte 0xE9), so that two names that differ stay different."""
    stem = PurePath(_name_of_key(path)).stem if path else ""
    # \udc80-\udcff: a non-UTF-8 byte, kept for one_line (visible) to show.
    words = re.sub(r"[^\w' \udc80-\udcff-]+", " ", stem.replace("_", " "), flags=re.UNICODE)
    name = one_line(words).strip("-' ")[:NAME_MAX].strip()
    return name or UNNAMED


def _name_of_key(key: str) -> str:
    """The path a key names, as Python holds it (a non-UTF-8 byte as a lone surrogate); on Windows, where a
    backslash separates folders, with / instead."""
    if os.name == "nt":
        return key.replace("\\", "/")
    return pathkeys.to_bytes(key).decode("utf-8", "surrogateescape")


def folder_name(key: str) -> str:
    """A folder's name from its path key, for people: a non-UTF-8 byte written as visible() writes it."""
    if "\\" not in key:
        return key
    text = _name_of_key(key)
    return "".join(visible(ch) if 0xDC80 <= ord(ch) <= 0xDCFF else ch for ch in text)


def single(path: str, sha256: str | None) -> tuple[str, str, str]:
    """(grouping key, code wanted, name) of a photo that is an animal on its own: one animal per distinct
    photo (a file that could not be read: one per file)."""
    key = f"photo:{sha256}" if sha256 else f"file:{path}"
    return key, clean_code(PurePath(path).stem), placeholder_name(path)
