"""Where an animal's code and name come from, before staff give better ones: one place that makes them.

A code is what ASM3 calls ANIMALCODE and what ``dogcat correct CODE`` takes: letters, digits, ``-``, ``_`` and
``.`` only, so it is safe in a CSV, a file name and a shell. A name is what people read; until staff give one
it is made from the photo's file name, as plain words. Leaf module: text only, no database.

Layer: a leaf (names and rules; no dogcat imports but other leaves) (docs/architecture.md).
"""

from __future__ import annotations

import re
from pathlib import PurePath

from dogcat.text import visible

CODE_MAX = 40
NAME_MAX = 40
UNNAMED = "Unnamed dog"


def clean_code(text: str) -> str:
    """A code safe everywhere it goes (ASM3's ANIMALCODE, a file name, a shell): letters, digits, - _ ."""
    code = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")[:CODE_MAX].strip("-.")
    return code or "animal"


def one_line(value: object) -> str:
    """A name as ASM3's CSV reader gives it back unchanged: one line, no double quote (written '' as ASM3's own
    exports do), no spaces around it, no control or bidi character left hidden."""
    s = "" if value is None else str(value)
    return visible(" ".join(s.replace('"', "''").split()))


def placeholder_name(path: str) -> str:
    """The animal's name until staff give it one: the photo's file name, as plain words ("IMG_0001.jpg" →
    "IMG 0001"). Never empty (ASM3 skips an animal without a name), never starts like a spreadsheet formula."""
    stem = PurePath(path.replace("\\", "/")).stem if path else ""
    words = re.sub(r"[^\w' -]+", " ", stem.replace("_", " "), flags=re.UNICODE)
    name = one_line(words).strip("-' ")[:NAME_MAX].strip()
    return name or UNNAMED


def single(path: str, sha256: str | None) -> tuple[str, str, str]:
    """(grouping key, code wanted, name) of a photo that is an animal on its own: one animal per distinct
    photo (a file that could not be read: one per file)."""
    key = f"photo:{sha256}" if sha256 else f"file:{path}"
    return key, clean_code(PurePath(path).stem), placeholder_name(path)
