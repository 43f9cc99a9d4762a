"""Names as people should see them: every control and bidirectional-formatting character made visible.

A file name can hold characters that do not show but change what is shown: U+202E (right-to-left override)
makes ``photo<U+202E>gpj.exe`` display as "photoexe.jpg"; a line feed or an escape sequence can break a table
or recolour a terminal. Wherever a name is shown to a person (the HTML report, terminal tables and messages,
ASM3's names and comments), it goes through :func:`visible` first. Stored data (the database, CSV, JSON) keeps
the name exactly as it is. Pure Python, no numpy: any module may import it.

Layer: a leaf (names and rules; no dogcat imports but other leaves) (docs/architecture.md).
"""

from __future__ import annotations

import json
import re
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


# A database URL's secrets, as written in it. The password of user:password@host: what SQLAlchemy takes for it
# (everything after the user's colon up to the first @, / and ? included), and on through any further @ before
# the host's end (bob:pa@ss@host: SQLAlchemy takes "pa" and would quote "ss" in its host name). And the value of
# each query parameter named like a secret: libpq's ?password= and ?sslpassword= (psycopg takes both from the
# URL), and any other *pass*, *pwd*, *secret* or *token*.
_USER_PASSWORD = re.compile(r"(?P<keep>^[A-Za-z][\w+.-]*://[^:/@?#]*:)(?P<secret>[^@]*(?:@[^@/?#]*)*)@")
_SECRET_NAME = r"pass|pwd|secret|token"
_SECRET_PARAMETER = re.compile(rf"(?P<keep>[?&;][^=&;?#]*(?:{_SECRET_NAME})[^=&;?#]*=)(?P<secret>[^&;#]*)",
                               re.IGNORECASE)
MASK = "***"


def secret_parameter(name: str) -> bool:
    """Whether a URL's query parameter ``name`` holds a secret (password, sslpassword ...)."""
    return re.search(_SECRET_NAME, name, re.IGNORECASE) is not None


def masked_url(url: str) -> str:
    """A database URL (``--db``) as every message and file shows it: its password, in user:password@ or as
    ?password= or ?sslpassword=, written ``***``; the rest as it was given. The one place that decides what of a
    URL is secret (:func:`url_secrets` lists the same)."""
    if "://" not in url:
        return url  # a path: nothing secret in it
    url = _USER_PASSWORD.sub(lambda m: m["keep"] + MASK + "@", url, count=1)
    return _SECRET_PARAMETER.sub(lambda m: m["keep"] + (MASK if m["secret"] else ""), url)


def url_secrets(url: str) -> list[str]:
    """The secrets :func:`masked_url` hides, as written in ``url`` (a driver's error may quote one)."""
    if "://" not in url:
        return []
    found = [m["secret"] for m in _USER_PASSWORD.finditer(url)]
    return [s for s in found + [m["secret"] for m in _SECRET_PARAMETER.finditer(url)] if s]


def json_text(value: object) -> str:
    """``value`` as JSON, non-ASCII letters as they are (ensure_ascii=False), but each hidden character (a C1
    control such as U+009B, which a terminal reads as the start of an escape sequence; bidi controls ...)
    written as a ``\\uXXXX`` escape: the same data to any JSON reader, nothing a terminal acts on."""
    text = json.dumps(value, ensure_ascii=False)
    if text.isprintable():  # the common case, fast (json has escaped C0 controls already)
        return text
    return "".join(json.dumps(ch)[1:-1] if _hidden(ch) else ch for ch in text)


def percent(p: float | None, unknown: str = "") -> str:
    """A probability as people read it: '96%', '<1%' below half a percent (never a misleading '0%'), and
    ``unknown`` for none."""
    if p is None:
        return unknown
    return "<1%" if p < 0.005 else f"{p:.0%}"
