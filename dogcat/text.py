"""Names as people should see them: every control and bidirectional-formatting character made visible.

A file name can hold characters that do not show but change what is shown: U+202E (right-to-left override)
makes ``photo<U+202E>gpj.exe`` display as "photoexe.jpg"; a line feed or an escape sequence can break a table
or recolour a terminal. Wherever a name is shown to a person (the HTML report, terminal tables and messages,
ASM3's names and comments), it goes through :func:`visible` first. Stored data (the database, CSV, JSON) keeps
the name exactly as it is. Pure Python, no numpy: any module may import it.

Layer: a leaf (names and rules; no dogcat imports but other leaves) (docs/architecture.md).
"""

from __future__ import annotations

import unicodedata

# Format characters (category Cf) that joined scripts need to be written correctly: zero-width non-joiner and
# joiner (Persian, Indic scripts, emoji sequences). They cannot reorder or hide text, so they stay.
_KEEP = {"\u200c", "\u200d"}


def _hidden(ch: str) -> bool:
    # Cc: C0/C1 controls and DEL (line feed, ESC ...); Cf: format characters, which include every bidi control
    # (U+061C, U+200E/F, U+202A-202E, U+2066-2069) and invisible ones (U+200B, U+2060, U+FEFF); Zl/Zp: line and
    # paragraph separators; Cs: a lone surrogate (a non-UTF-8 byte that Python decoded with surrogateescape).
    return unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs") and ch not in _KEEP


def visible(name: object) -> str:
    """``name`` with each hidden or reordering character written as ``<U+XXXX>``; other text unchanged."""
    s = "" if name is None else str(name)
    if s.isprintable() and not any(_hidden(ch) for ch in s):  # the common case, fast
        return s
    return "".join(f"<U+{ord(ch):04X}>" if _hidden(ch) else ch for ch in s)


def percent(p: float | None, unknown: str = "") -> str:
    """A probability as people read it: '96%', '<1%' below half a percent (never a misleading '0%'), and
    ``unknown`` for none."""
    if p is None:
        return unknown
    return "<1%" if p < 0.005 else f"{p:.0%}"
