"""File paths as database text, one key per path and one path per key (no two names can collide).

A POSIX file name is bytes; the database stores text. A name that is valid UTF-8 is stored as it is. A byte that
is not UTF-8 is written ``\\xNN`` (lowercase hex), and so that a file literally named ``a\\xff.jpg`` (backslash,
x, f, f) cannot be mistaken for ``a`` + byte 0xFF + ``.jpg``, a backslash that the key would otherwise show just
before ``x`` or another backslash is doubled. So:

    b"a\\xff.jpg"   (bytes 61 ff 2e ...)  → key  a\\xff.jpg
    "a\\\\xff.jpg"  (a backslash, x, f, f) → key  a\\\\xff.jpg
    "C:\\photos\\dog.jpg"                  → key  C:\\photos\\dog.jpg   (unchanged: no x or backslash follows)

Keys of ordinary names are the names themselves, which is what people read in exports. Schema 2 wrote the
first two alike (the bug of issue 13); :func:`old_key` is that rule, which the schema 3 migration reads.
Pure Python: db/migrations.py and previews.py import it.

Layer: a leaf (names and rules; no dogcat imports but other leaves) (docs/architecture.md).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_ESCAPED_BYTE = range(0xDC80, 0xDD00)  # surrogateescape: how Python holds a non-UTF-8 byte 0x80-0xFF in a str


def key_of_bytes(raw: bytes) -> str:
    """The key of a path given as bytes."""
    text = raw.decode("utf-8", "surrogateescape")
    if "\\" not in text and not any(ord(c) in _ESCAPED_BYTE for c in text):
        return text  # nearly every name
    out = []
    for i, ch in enumerate(text):
        if ord(ch) in _ESCAPED_BYTE:
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        elif ch == "\\":
            nxt = text[i + 1] if i + 1 < len(text) else ""
            # Doubled only where the key would read as an escape: before x, a backslash or an escaped byte.
            out.append("\\\\" if nxt in ("x", "\\") or (nxt and ord(nxt) in _ESCAPED_BYTE) else "\\")
        else:
            out.append(ch)
    return "".join(out)


def key(path: str | os.PathLike) -> str:
    """The key of a file: its absolute path, written as above."""
    return key_of_bytes(os.fsencode(os.path.abspath(path)))


_TOKEN = re.compile(r"\\\\|\\x([0-9a-f]{2})")


def to_bytes(key_text: str) -> bytes:
    """The path a key names, as bytes (the inverse of :func:`key_of_bytes`)."""
    if "\\" not in key_text:
        return key_text.encode("utf-8", "surrogateescape")
    out = bytearray()
    pos = 0
    for m in _TOKEN.finditer(key_text):
        out += key_text[pos:m.start()].encode("utf-8", "surrogateescape")
        out += b"\\" if m.group(1) is None else bytes([int(m.group(1), 16)])
        pos = m.end()
    out += key_text[pos:].encode("utf-8", "surrogateescape")
    return bytes(out)


def to_path(key_text: str) -> Path:
    """The file a key names, to open it."""
    return Path(os.fsdecode(to_bytes(key_text)))


def exists(key_text: str) -> bool:
    """Whether something is still at the path a key names (a broken link counts: the file is there, unreadable)."""
    return os.path.lexists(to_bytes(key_text))


def old_key(raw: bytes) -> str:
    """Schema 2's key: UTF-8 as it is, else every undecodable byte as \\xNN and backslashes left alone."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace")


_OLD_ESCAPE = re.compile(rb"\\x([89a-f][0-9a-f])")  # backslashreplace only wrote bytes >= 0x80


def old_key_candidates(old: str) -> list[bytes]:
    """The paths a schema 2 key may have meant: the name as written and, if it holds \\xNN escapes of bytes that
    are not UTF-8, the name with those bytes. Only a key in both forms can be ambiguous."""
    literal = old.encode("utf-8")
    raw = _OLD_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), literal)
    if raw != literal and old_key(raw) == old:
        return [literal, raw]
    return [literal]
