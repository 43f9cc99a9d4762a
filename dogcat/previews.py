"""Small JPEG copies of catalogued photos, read again from the paths the catalog recorded: the report's
thumbnails and ASM3's ANIMALIMAGE.

A file is only shown if it still holds the bytes that were classified (the same SHA-256): a photo replaced
since the last ``dogcat catalog`` would otherwise show one dog under another dog's breed.

Layer: pixels and models (docs/architecture.md).
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from dogcat import images, pathkeys, settings

MAX_BYTES = 256 << 20  # a bigger "photo" is not read back for a preview


@dataclass(frozen=True)
class Preview:
    jpeg: bytes | None  # None when there is no picture to show; ``problem`` says why
    problem: str | None = None

    def data_uri(self) -> str:
        return "data:image/jpeg;base64," + base64.b64encode(self.jpeg).decode("ascii") if self.jpeg else ""


def on_disk(key: str) -> Path:
    """The file a catalog path names (a name that is not UTF-8 is recorded with \\xNN escapes: see
    dogcat.pathkeys)."""
    return pathkeys.to_path(key)


def preview(path: str, sha256: str | None, max_side: int, quality: int = settings.PREVIEW_QUALITY) -> Preview:
    """The photo at ``path`` as a JPEG of at most ``max_side`` pixels a side, if it still has this SHA-256."""
    file = on_disk(path)
    try:
        st = os.stat(file)
        if not stat.S_ISREG(st.st_mode):  # never open a pipe or a device: it could block forever
            return Preview(None, "not a regular file any more")
        if st.st_size > MAX_BYTES:
            return Preview(None, "too large to preview")
        data = file.read_bytes()
    except FileNotFoundError:
        return Preview(None, "file no longer there")
    except OSError as e:
        return Preview(None, f"cannot read ({e.strerror or type(e).__name__})")
    if sha256 and hashlib.sha256(data).hexdigest() != sha256:
        return Preview(None, "file changed since it was catalogued (run dogcat catalog again)")
    try:
        return Preview(images.jpeg_preview(data, max_side, quality))
    except images.ImageError as e:
        return Preview(None, str(e))
