"""The file walk: which files under a folder are photos, found the same way by ``dogcat catalog`` and
``dogcat classify`` (a folder argument).

Each real folder is listed once (no symlink loop can trap the walk), symlinked folders are followed only when
asked, a pipe or a device is never opened (it could block forever), and an entry that cannot be read becomes
an error entry rather than an exception.

Layer: pixels and files — it reads names and first bytes (dogcat.images.sniff), nothing else.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from dogcat import images, pathkeys
from dogcat.errors import DogcatError

# Names that promise a photo: such a file becomes a row even when its content is not an image (with an error
# saying so, and no animal: dogcat.catalog.NOT_AN_IMAGE). Any other file is catalogued only when its first bytes
# are those of an image format.
# HEIC is an iPhone's own (HEIF a camera's: .HIF on Canon and Sony); AVIF is Android's and the web's.
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic", ".heif", ".hif",
                  ".avif"}
IMAGE_SUFFIXES = PHOTO_SUFFIXES | {".jpe", ".jfif", ".jp2"}
# The error of a file named like a photo whose bytes are no picture at all (a text file saved as notes.jpg): it is
# reported (export --errors) but never made an animal. A damaged photo (a JPEG cut short) is an animal's problem.
NOT_AN_IMAGE = "not an image: named like a photo, but its content is no picture format"


class WalkError(DogcatError):
    """A folder to walk that does not exist (the catalog cannot start); one line."""


@dataclass(slots=True)
class Entry:
    """A path found by the walk: a regular file (size, mtime) or one that cannot be read (error)."""

    path: Path
    key: str  # what the database records: the absolute path as text (pathkeys.key)
    size: int | None = None
    mtime_ns: int | None = None
    error: str | None = None


@dataclass
class Scan:
    entries: list[Entry] = field(default_factory=list)
    non_images: int = 0  # special files and broken links without a photo's name
    links_skipped: int = 0  # symlinked folders not followed


def path_key(path: str | os.PathLike) -> str:
    """The absolute path as the database stores it: see :mod:`dogcat.pathkeys` (two names never share a key)."""
    return pathkeys.key(path)


def reason(e: OSError) -> str:
    if e.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if e.errno == errno.ENOENT:
        return "no such file (it disappeared during the run)"
    if e.errno == errno.EISDIR:
        return "is a directory, not an image"
    if e.errno == errno.ELOOP:
        return "too many levels of symbolic links"
    return f"cannot read ({e.strerror or type(e).__name__})"


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _head(path: Path) -> bytes:
    """A file's first bytes, never blocking on a pipe; raises OSError."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb") as f:
        return f.read(images.SNIFF_BYTES)


def looks_like_photo(path: Path) -> bool:
    """Whether the catalog takes this regular file as a photo: by its first bytes, or by a photo's name. A file
    that cannot be opened counts as one, so that its error is recorded (``dogcat classify`` picks by this too)."""
    if is_image_name(path):
        return True
    try:
        return images.sniff(_head(path)) is not None
    except OSError:
        return True


def is_video(path: Path) -> bool:
    """Whether a regular file is a video by its first bytes (a Live Photo's .MOV beside its .HEIC, an MP4) and
    not named like a photo: skipped by ``dogcat classify`` and ``catalog``, and counted, never an error."""
    if is_image_name(path):
        return False
    try:
        return images.is_video(_head(path))
    except OSError:
        return False


def scan(roots: Iterable[str | Path], recursive: bool = True, follow_symlinks: bool = False,
         exclude: Iterable[str] = ()) -> Scan:
    """List the files under ``roots`` in a stable order, each real folder once (so no symlink loop can
    trap the walk); symlinked folders are followed only with ``follow_symlinks``. ``exclude``: absolute paths
    to leave out silently (the catalog's own database files)."""
    walk = _Walk(recursive, follow_symlinks, set(exclude))
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            if not root.exists():
                raise WalkError(f"{root}: no such folder")
            walk.add_file(root, root.stat())
            continue
        stack = [root]
        while stack:
            folder = stack.pop()
            children = walk.list_once(folder)
            if children is None:
                continue
            subfolders: list[Path] = []
            for child in children:
                walk.add_child(child, subfolders)
            stack.extend(reversed(subfolders))  # depth first, in name order
    # A file named twice (``a.jpg a.jpg``, or a photo and the folder holding it) is one file: counted once.
    first: dict[str, Entry] = {}
    for e in walk.out.entries:
        first.setdefault(e.key, e)
    walk.out.entries = list(first.values())
    return walk.out


@dataclass
class _Walk:
    """scan's state: what it found so far and the real folders it has listed."""
    recursive: bool
    follow_symlinks: bool
    exclude: set[str]
    out: Scan = field(default_factory=Scan)
    seen: set[tuple[int, int]] = field(default_factory=set)

    def add_file(self, p: Path, st: os.stat_result) -> None:
        if self.exclude and os.path.abspath(p) in self.exclude:
            return
        if stat.S_ISREG(st.st_mode):
            self.out.entries.append(Entry(p, path_key(p), st.st_size, st.st_mtime_ns))
        elif is_image_name(p):  # never open a pipe or a device: it could block forever
            self.out.entries.append(Entry(p, path_key(p), error="not a regular file (a pipe, socket or device)"))
        else:
            self.out.non_images += 1

    def add_folder(self, p: Path, subfolders: list[Path]) -> None:
        if is_image_name(p):
            self.out.entries.append(Entry(p, path_key(p), error="is a directory, not an image"))
        if self.recursive:
            subfolders.append(p)

    def list_once(self, folder: Path) -> list[os.DirEntry[str]] | None:
        """The folder's entries in name order; None when this real folder was listed already or cannot be
        listed (then an error entry says why)."""
        try:
            st = folder.stat()
            if (st.st_dev, st.st_ino) in self.seen:
                return None
            self.seen.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as it:
                return sorted(it, key=lambda c: c.name)
        except OSError as e:
            self.out.entries.append(Entry(folder, path_key(folder), error=f"cannot list folder: {reason(e)}"))
            return None

    def add_child(self, child: os.DirEntry[str], subfolders: list[Path]) -> None:
        """One entry of a listed folder: a file, a subfolder to walk (appended to ``subfolders``), or an error."""
        p = Path(child.path)
        try:
            if child.is_symlink():
                try:
                    st = p.stat()
                except OSError:
                    if is_image_name(p):
                        self.out.entries.append(Entry(p, path_key(p), error="broken symbolic link"))
                    else:
                        self.out.non_images += 1
                    return
                if not stat.S_ISDIR(st.st_mode):
                    self.add_file(p, st)
                elif self.follow_symlinks:
                    self.add_folder(p, subfolders)
                else:
                    self.out.links_skipped += 1
            elif child.is_dir(follow_symlinks=False):
                self.add_folder(p, subfolders)
            else:
                self.add_file(p, child.stat(follow_symlinks=False))
        except OSError as e:
            self.out.entries.append(Entry(p, path_key(p), error=reason(e)))


