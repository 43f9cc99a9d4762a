"""Animals: the catalog's files grouped into one record per dog, and staff's regrouping (merge, move).

A shelter works in animals, not photos: intake staff take several photos of each dog, and the shelter's system
holds one record per animal. ``dogcat catalog --animals MODE`` groups the files it catalogs:

- ``folder`` (the default): the photos lying directly in one sub-folder are one animal, named after the folder
  (``intake/A123456/*.jpg`` or ``intake/Max/*.jpg``). A folder named like ``A1023-Rex`` (``A1023 Rex``,
  ``A1023_Rex``; or as ``--folder-pattern`` says) is the animal with code A1023, named Rex
  (dogcat.naming.split_folder), whatever folder it lies in: renaming the folder, or a second folder with the
  same code, keeps one animal. Photos lying directly in a folder named on the command line are each an animal
  of their own: a flat intake folder is many dogs, not one.
- ``pattern``: the animal's code is read from each file name with a regular expression (its group named
  ``animal``, else its first group, else the whole match): ``A(\\d+)_`` groups ``A123456_1.jpg`` and
  ``A123456_2.jpg``. A file whose name does not match is an animal of its own.
- ``none``: every photo is an animal of its own (the same photo under two names is one).

Grouping is stored (tables ``animals`` and ``animal_files``, see dogcat.db) and kept: a later run with the
default grouping only places files that have no animal yet, a run given ``--animals`` explicitly regroups the
files it sees, and neither ever moves a file that staff placed (``dogcat animals move`` / ``merge``).

Each animal's answer is the read model's (dogcat.readmodel.answers). What staff said of an animal follows its
photos: a merge or a regrouping that empties a corrected animal carries its correction along (dogcat.db
.carry_correction). ``prune`` retires animals whose photos are all gone from disk (refusing when their folder
looks unplugged rather than gone: missing_folders); a catalog run that sees a retired animal's photo again, or a
new photo under its code, brings it back, as ``restore`` does. A folder renamed keeps its animal: by its code, or,
without one, by its photos' content (_renamed).

Layer: a job — it writes the store (dogcat.db); codes and names come from dogcat.naming.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

from sqlalchemy import and_, delete, func, insert, select, text, update
from sqlalchemy.engine import Connection, Row

from dogcat import db, naming, pathkeys, readmodel, settings
from dogcat.errors import DogcatError
from dogcat.patterns import PatternError, UserPattern

GROUPINGS = ("folder", "pattern", "none")
DEFAULT_GROUPING = "folder"
SINGLE_KEYS = ("photo:", "file:")  # naming.single's keys: an animal of one loose photo
STAFF, UPGRADE = db.STAFF, db.UPGRADED  # grouped_by: staff placed it (kept); the schema 3 migration did (regrouped)


class GroupingError(PatternError):
    """A grouping that cannot be used (a bad regular expression, one that matches no file, one that cannot be
    matched in time: dogcat.patterns); one line."""


class NotFound(DogcatError):
    """An animal code, photo path or SHA-256 that the catalog does not have; one line."""


# --- grouping ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Grouping:
    mode: str = DEFAULT_GROUPING
    # The user's regular expressions, matched with a time budget (dogcat.patterns): never re.search them here.
    pattern: UserPattern | None = None
    roots: tuple[str, ...] = ()  # absolute folders named on the command line (folder mode)
    explicit: bool = False  # asked for with --animals or --folder-pattern: regroup what catalog placed before
    folder_pattern: UserPattern | None = None  # folder mode: the shelter's own code-and-name scheme

    @classmethod
    def parse(cls, mode: str | None, pattern: str | None = None, roots: Iterable[str] = (),
              folder_pattern: str | None = None) -> Grouping:
        explicit = mode is not None or pattern is not None or folder_pattern is not None
        mode = mode or ("pattern" if pattern is not None else DEFAULT_GROUPING)
        if mode not in GROUPINGS:
            raise GroupingError(f"--animals must be one of {', '.join(GROUPINGS)}, not {mode!r}")
        compiled = None
        if mode == "pattern":
            if not pattern:
                raise GroupingError("--animals pattern needs --pattern REGEX (e.g. --pattern 'A(\\d+)_')")
            compiled = UserPattern.compile("--pattern", pattern)
        elif pattern is not None:
            raise GroupingError(f"--pattern goes with --animals pattern, not --animals {mode}")
        return cls(mode, compiled, tuple(os.path.abspath(r) for r in roots), explicit,
                   _folder_pattern(folder_pattern, mode))

    def folder_animal(self, folder: str) -> tuple[str, str, str]:
        """(key, code wanted, name) of the animal a sub-folder holds: by its code when its name holds one."""
        base = os.path.basename(folder) or folder
        if self.folder_pattern is not None:
            found = self.folder_pattern.search(base)
            split = naming.code_and_name(found[2]) if found is not None else None
        else:
            split = naming.split_folder(base)
        if split is not None:
            code, name = split
            return naming.code_key(code), code, name
        return f"folder:{folder}", naming.clean_code(base), naming.folder_name(base)

    def code_in(self, file_name: str) -> str | None:
        """pattern mode: the animal's code in a file name, or None when it does not match."""
        assert self.pattern is not None
        m = self.pattern.search(file_name)
        if m is None:
            return None
        whole, groups, named = m
        if "animal" in named:
            found = named["animal"]
        elif groups:
            found = groups[0]
        else:
            found = whole
        return found or None

    def check(self, paths: Sequence[str]):
        """Match the user's patterns against the names about to be grouped, within their time budget (one that
        cannot finish is refused: dogcat.patterns), and refuse a pattern that matches none of the files (a typo,
        most likely). Raises GroupingError or PatternError (exit 2); call it before anything is written."""
        if self.folder_pattern is not None:
            self.folder_pattern.search_all(os.path.basename(os.path.dirname(p)) for p in paths)
        if self.mode != "pattern" or not paths:
            return
        assert self.pattern is not None  # parse() sets it in pattern mode
        names = [PurePath(p).name for p in paths]
        self.pattern.search_all(names)
        if not any(self.code_in(n) for n in names):
            raise GroupingError(f"--pattern {self.pattern.typed} matches none of the {len(names)} file "
                                f"names (e.g. {names[0]!r}): nothing was catalogued")

    def animal_for(self, path: str, sha256: str | None) -> tuple[str, str, str]:
        """(key, code wanted, name) of the animal a file belongs to under this grouping."""
        folder, name = os.path.split(path)
        if self.mode == "folder" and folder not in self.roots:
            return self.folder_animal(folder)
        if self.mode == "pattern":
            code = self.code_in(name)
            if code:
                return f"pattern:{code}", naming.clean_code(code), code
        return naming.single(path, sha256)


def _folder_pattern(pattern: str | None, mode: str) -> UserPattern | None:
    if pattern is None:
        return None
    if mode != "folder":
        raise GroupingError(f"--folder-pattern goes with --animals folder, not --animals {mode}")
    compiled = UserPattern.compile("--folder-pattern", pattern)
    if "code" not in compiled.regex.groupindex:
        raise GroupingError(f"--folder-pattern {compiled.typed}: has no group named 'code' (e.g. "
                            "'^(?P<code>A\\d+)[ _-]+(?P<name>.+)$')")
    return compiled


def _lock(conn: Connection):
    if conn.dialect.name == "postgresql":  # SQLite: the caller's BEGIN IMMEDIATE already serialises writers
        conn.execute(text(f"SELECT pg_advisory_xact_lock({settings.LOCK_GROUPING})"))


def assign(conn: Connection, grouping: Grouping, files: Sequence[tuple[str, str | None]],
           back: dict[str, str] | None = None) -> int:
    """Put the catalogued files (path key, SHA-256 or None) in their animals, in the caller's write
    transaction; returns how many files were placed or moved. Idempotent.

    The files are on disk (a catalog run just saw them): a retired animal (``prune``) that holds one of them now,
    its photos back or a new photo under its code, is in care again; ``back`` gets its code → when it had been
    retired. A folder that would be a new animal but holds photos known under an animal whose files are all gone
    from disk is that animal's folder renamed (``Rex`` → ``Rexy``): it keeps its animal (:func:`_renamed`)."""
    if not files:
        return 0
    _lock(conn)
    now = db.now()
    current: dict[str, Row] = {}
    for chunk in db.chunks([p for p, _ in files]):
        for r in conn.execute(select(db.animal_files.c.path, db.animal_files.c.animal,
                                     db.animal_files.c.grouped_by).where(db.animal_files.c.path.in_(chunk))):
            current[r.path] = r
    placing = []  # (path, sha256, its row or None, key, code wanted, name)
    for path, sha256 in files:
        row = current.get(path)
        if row is not None and (row.grouped_by == STAFF or (row.grouped_by != UPGRADE and not grouping.explicit)):
            continue
        placing.append((path, sha256, row, *grouping.animal_for(path, sha256)))
    made = _renamed(conn, placing, now)
    changed = 0
    went: dict[str, set[str]] = {}  # an animal a file left → the animals its files went to
    for path, _, row, key, wanted, name in placing:
        code = db.animal_for_key(conn, key, wanted, name, now, made)
        if row is None:
            conn.execute(insert(db.animal_files).values(path=path, animal=code, grouped_by=grouping.mode,
                                                        grouped_at=now))
        elif row.animal != code or row.grouped_by != grouping.mode:
            conn.execute(update(db.animal_files).where(db.animal_files.c.path == path)
                         .values(animal=code, grouped_by=grouping.mode, grouped_at=now))
            if row.animal != code:
                went.setdefault(row.animal, set()).add(code)
        else:
            continue
        changed += 1
    _carry_from_emptied(conn, went)
    _drop_empty(conn, went)
    _bring_back(conn, [p for p, _ in files], back if back is not None else {})
    return changed


def _renamed(conn: Connection, placing: list[tuple], at: str) -> dict[str, str]:
    """Keys about to make a new animal whose photos (same content) the catalog knows under an animal whose files
    are all gone from disk: a folder renamed or moved (``Rex`` → ``Rexy``, the drive's ``intake`` → ``Intake``).
    Such a key becomes a pointer to that animal (a row merged into it, as ``dogcat animals merge`` leaves), so
    this run and every later one put the folder's photos there: one dog stays one animal (its code, name,
    corrections and ASM3 link), not a second one with the same photos. Returns key → code, animal_for_key's
    memo. A folder whose photos are known under an animal still on disk is a copy: a new animal, as before."""
    a, af, f = db.animals, db.animal_files, db.files
    hashes_of: dict[str, set[str]] = {}
    paths_of: dict[str, set[str]] = {}
    for path, sha256, _, key, _, _ in placing:
        if sha256:
            hashes_of.setdefault(key, set()).add(sha256)
            paths_of.setdefault(key, set()).add(path)
    new_keys = [k for k in hashes_of if conn.scalar(select(a.c.code).where(a.c.key == k)) is None]
    made: dict[str, str] = {}
    for key in new_keys:
        holders: dict[str, set[str]] = {}  # animal → the key's contents it holds under other paths
        for chunk in db.chunks(sorted(hashes_of[key])):
            for r in conn.execute(select(af.c.animal, f.c.sha256, f.c.path).join(f, f.c.path == af.c.path)
                                  .where(f.c.sha256.in_(chunk))):
                if r.path not in paths_of[key]:
                    holders.setdefault(r.animal, set()).add(r.sha256)
        for code in sorted(holders, key=lambda c: (-len(holders[c]), c.lower())):
            holder = conn.execute(select(a.c.key, a.c.merged_into).where(a.c.code == code)).one()
            if holder.merged_into or (holder.key or "").startswith(SINGLE_KEYS):
                continue  # loose photos put in a folder are staff's grouping: a new animal, as before
            theirs = conn.scalars(select(af.c.path).where(af.c.animal == code)).all()
            if any(pathkeys.exists(p) for p in theirs if p not in paths_of[key]):
                continue  # its folder is still there: this one is a copy
            wanted, name = next((w, n) for _, _, _, k, w, n in placing if k == key)
            conn.execute(insert(a).values(code=db.free_code(conn, wanted), name=name, key=key, merged_into=code,
                                          created_at=at))
            made[key] = code
            break
    return made


def _bring_back(conn: Connection, paths: Sequence[str], back: dict[str, str]):
    """Retired animals holding any of ``paths`` (on disk again) are in care again: code → when it was retired."""
    a, af = db.animals, db.animal_files
    for chunk in db.chunks(list(paths)):
        for r in conn.execute(select(a.c.code, a.c.retired_at).join(af, af.c.animal == a.c.code)
                              .where(af.c.path.in_(chunk), a.c.retired_at.is_not(None)).distinct()):
            back.setdefault(r.code, r.retired_at)
    for chunk in db.chunks(sorted(back)):
        conn.execute(update(a).where(a.c.code.in_(chunk)).values(retired_at=None))


def _carry_from_emptied(conn: Connection, went: dict[str, set[str]]):
    """Staff's word follows the photos: an animal a regrouping emptied hands its correction to every animal its
    files went to that has none of its own (it keeps it too, in its history)."""
    for old in sorted(went):
        if conn.scalar(select(func.count()).select_from(db.animal_files).where(db.animal_files.c.animal == old)):
            continue
        for new in sorted(went[old]):
            db.carry_correction(conn, old, new, "regrouped")


def _drop_empty(conn: Connection, codes: Iterable[str]):
    """Animals a regrouping emptied go, unless staff made or corrected them, or one was merged into them."""
    for code in codes:
        has_files = conn.scalar(select(func.count()).select_from(db.animal_files)
                                .where(db.animal_files.c.animal == code))
        kept = conn.scalar(select(func.count()).select_from(db.corrections).where(and_(
            db.corrections.c.target_kind == "animal", db.corrections.c.target == code)))
        merged_here = conn.scalar(select(func.count()).select_from(db.animals)
                                  .where(db.animals.c.merged_into == code))
        if not (has_files or kept or merged_here):
            conn.execute(delete(db.animals).where(and_(db.animals.c.code == code, db.animals.c.key.is_not(None))))


# --- staff: regrouping ----------------------------------------------------------------------------------------

def _existing(conn: Connection, code: str) -> str:
    row = conn.execute(select(db.animals.c.code, db.animals.c.merged_into)
                       .where(func.lower(db.animals.c.code) == code.lower())).first()
    if row is None:
        raise NotFound(f"{code}: no such animal (dogcat animals lists them)")
    if row.merged_into:
        raise NotFound(f"{row.code}: was merged into {row.merged_into}; use that code")
    return row.code


def merge(conn: Connection, into: str, other: str) -> int:
    """Move every photo of ``other`` into ``into``; ``other`` remembers it (a later catalog run that finds its
    folder again puts new photos into ``into`` too), and its correction applies to ``into`` unless ``into`` has
    its own. Returns the number of files moved."""
    _lock(conn)
    into, other = _existing(conn, into), _existing(conn, other)
    if into == other:
        raise NotFound(f"{into}: cannot merge an animal into itself")
    # What staff said of ``other`` applies to ``into`` unless ``into`` has its own (db.carry_correction).
    return db.merge_rows(conn, into, other, STAFF, db.now())


def move(conn: Connection, photo: str, to: str, create_name: str | None = None) -> list[str]:
    """Move a photo (a path, or a SHA-256: every file holding it) into animal ``to``; with ``create_name``,
    ``to`` is a new animal made by staff. Returns the paths moved."""
    _lock(conn)
    paths = photo_paths(conn, photo)
    now = db.now()
    if create_name is not None:
        if conn.scalar(select(func.count()).select_from(db.animals)
                       .where(func.lower(db.animals.c.code) == to.lower())):
            raise NotFound(f"{to}: an animal with this code already exists (leave out --new to move into it)")
        if naming.clean_code(to) != to:
            raise NotFound(f"{to}: an animal code may only hold letters, digits, '-', '_' and '.'")
        conn.execute(insert(db.animals).values(code=to, name=create_name or to, key=None, merged_into=None,
                                               created_at=now))
    else:
        to = _existing(conn, to)
    old = set()
    for path in paths:
        before = conn.scalar(select(db.animal_files.c.animal).where(db.animal_files.c.path == path))
        if before is None:
            conn.execute(insert(db.animal_files).values(path=path, animal=to, grouped_by=STAFF, grouped_at=now))
        else:
            old.add(before)
            conn.execute(update(db.animal_files).where(db.animal_files.c.path == path)
                         .values(animal=to, grouped_by=STAFF, grouped_at=now))
    _drop_empty(conn, old - {to})
    return paths


class FolderMissing(DogcatError):
    """``prune`` refused: a folder its animals' photos were in is missing or empty (an unplugged drive, a renamed
    intake folder), so their photos are not known to be gone; one line."""


def prune(conn: Connection, dry_run: bool = False, allow_missing: bool = False) -> dict[str, list[str]]:
    """Retire every animal whose photos are all gone from disk (readmodel.gone): it stays in the catalog with
    its files, corrections and history, but no output lists it any more (a catalog run that finds its photos
    again, or :func:`restore`, brings it back). Returns code → its gone paths, retired (or, ``dry_run``, that
    would be). Raises FolderMissing, retiring nothing, when the photos' folders look unplugged rather than gone
    (:func:`missing_folders`), unless ``allow_missing``."""
    _lock(conn)
    found = readmodel.gone(conn)
    missing = {} if allow_missing else missing_folders(found)
    if missing:
        (folder, why), *rest = missing.items()
        also = f" (and {len(rest)} more folder{'s' if len(rest) != 1 else ''})" if rest else ""
        raise FolderMissing(f"{folder}: {why}{also}: the photos of {len(found)} animal"
                            f"{'s' if len(found) != 1 else ''} may be out of reach, not gone; nothing retired (plug "
                            "the drive in or rename the folder back; if they are gone for good: prune "
                            "--allow-missing)")
    if not dry_run:
        at = db.now()
        for chunk in db.chunks(list(found)):
            conn.execute(update(db.animals).where(db.animals.c.code.in_(chunk)).values(retired_at=at))
    return found


def missing_folders(gone: dict[str, list[str]]) -> dict[str, str]:
    """folder → "is missing" / "is empty" / "cannot be read (why)", for the folders that say the photos ``gone``
    lists are out of reach rather than gone: a photo's folder that is there but empty (a drive's mount point, an
    intake folder emptied), or missing together with the folder above it (the intake folder renamed, a drive not
    mounted: named by its topmost missing folder). A photo's own folder missing inside a folder still there is an
    animal's folder deleted or renamed (``A1002-Bella`` → ``A1002-Bella-Rose``): its photos are gone from where
    they were."""
    out: dict[str, str] = {}
    seen: set[Path] = set()
    for paths in gone.values():
        for key in paths:
            folder = pathkeys.to_path(key).parent
            if folder in seen:
                continue
            seen.add(folder)
            for level in (folder, folder.parent):
                if level.is_dir():
                    try:
                        if not any(level.iterdir()):
                            out.setdefault(str(level), "is empty")
                    except OSError as e:  # there, but not to be looked into: not known to be gone either
                        out.setdefault(str(level), f"cannot be read ({e.strerror or e})")
                    break
            else:
                top = folder.parent
                while top.parent != top and not top.parent.is_dir():
                    top = top.parent
                out.setdefault(str(top), "is missing")
    return out


def restore(conn: Connection, code: str) -> tuple[str, str | None]:
    """Bring a retired animal back into care (``dogcat animals restore``): (its code, when it had been retired,
    None when it was not). Raises NotFound for an unknown code; a merged code names the animal it went to."""
    _lock(conn)
    found = db.find_animal(conn, code)
    if found is None:
        raise NotFound(f"{code}: no such animal (dogcat animals lists those in care)")
    retired_at = conn.scalar(select(db.animals.c.retired_at).where(db.animals.c.code == found))
    if retired_at is not None:
        conn.execute(update(db.animals).where(db.animals.c.code == found).values(retired_at=None))
    return found, retired_at


def photo_paths(conn: Connection, photo: str) -> list[str]:
    """The catalogued files a user means by ``photo``: a path (as given, or absolute) or a SHA-256."""
    if re.fullmatch(r"[0-9a-fA-F]{64}", photo):
        paths = list(conn.scalars(select(db.files.c.path).where(db.files.c.sha256 == photo.lower())
                                  .order_by(db.files.c.path)))
        if paths:
            return paths
    for candidate in dict.fromkeys((photo, pathkeys.key(photo))):
        if conn.scalar(select(func.count()).select_from(db.files).where(db.files.c.path == candidate)):
            return [candidate]
    raise NotFound(f"{photo}: no such photo in the catalog (a path as catalogued, or a SHA-256)")


