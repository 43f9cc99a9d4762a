"""Each schema version's migration to the next (``MIGRATIONS``), and the ``catalog`` view they create.

A catalog of any earlier version is upgraded by ``dogcat.db.ensure_schema``, one step at a time, each in the
write transaction that records it.

Layer: the store (docs/architecture.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import (
    and_,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection

from dogcat import naming, pathkeys

if TYPE_CHECKING:
    pass

from dogcat.db.queries import animal_for_key, follow_merges, free_code, merge_rows, rename_animal
from dogcat.db.tables import (
    CATALOG_VIEW,
    UPGRADED,
    animal_files,
    animals,
    asm3_animals,
    asm3_files,
    asm3_sends,
    asm3_sent,
    catalog_select,
    claims,
    corrections,
    features,
    files,
    now,
)

# --- schema -------------------------------------------------------------------------------------------------

def create_view(conn: Connection):
    compiled = catalog_select().compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    conn.execute(text(f"CREATE VIEW {CATALOG_VIEW} AS {compiled}"))


def _to_2(conn: Connection):
    """Statuses (issue 5): four nullable columns on predictions, and the view that shows them."""
    for column in ("status TEXT", "dog_probability FLOAT", "looks_like TEXT", "detector_id TEXT"):
        conn.execute(text(f"ALTER TABLE predictions ADD COLUMN {column}"))
    conn.execute(text(f"DROP VIEW IF EXISTS {CATALOG_VIEW}"))
    create_view(conn)


def _to_3_path_keys(conn: Connection):
    """Issue 13: path keys that cannot collide (dogcat.pathkeys). Schema 2 wrote a byte that is not UTF-8 as
    \\xNN but left a literal backslash alone, so a key holding a backslash may need rewriting, and one holding
    \\xNN may mean either of two names. Decided by the file system where it can: the candidate that exists
    with the row's size and mtime, else the one that exists, else the non-UTF-8 name (a literal \\xNN in a name is
    far rarer than an old camera's Latin-1 name). Keys without a backslash, nearly all, are unchanged."""
    def stat(raw: bytes):
        try:
            return os.lstat(raw)
        except (OSError, ValueError):
            return None

    moves = []
    rows = conn.execute(select(files.c.path, files.c.size, files.c.mtime_ns)
                        .where(files.c.path.contains("\\", autoescape=True))).all()
    for row in rows:
        candidates = pathkeys.old_key_candidates(row.path)
        stats = [stat(c) for c in candidates]
        same = [c for c, st in zip(candidates, stats, strict=True)
                if st is not None and (st.st_size, st.st_mtime_ns) == (row.size, row.mtime_ns)]
        there = [c for c, st in zip(candidates, stats, strict=True) if st is not None]
        chosen = (same or there or candidates[-1:])[0]
        new = pathkeys.key_of_bytes(chosen)
        if new != row.path:
            moves.append((row.path, new))
    # Two steps, through keys no path can have (a key is absolute), so that no rename meets a key not yet moved.
    for i, (old, _) in enumerate(moves):
        conn.execute(update(files).where(files.c.path == old).values(path=f"dogcat-schema-3:{i}"))
    for i, (_, new) in enumerate(moves):
        if conn.execute(select(files.c.path).where(files.c.path == new)).first() is not None:
            conn.execute(files.delete().where(files.c.path == f"dogcat-schema-3:{i}"))  # kept: the exact row
        else:
            conn.execute(update(files).where(files.c.path == f"dogcat-schema-3:{i}").values(path=new))


def _to_3_claims(conn: Connection):
    """Issue 13: the claims table (see ``claims``)."""
    claims.create(conn)  # with its index


def _to_3(conn: Connection):
    """Issue 13: path keys that cannot collide, and claims with a lease for concurrent runs; issue 12: animals.
    Path keys first, so that the animals made from the files see their new keys."""
    _to_3_path_keys(conn)
    _to_3_claims(conn)
    _to_3_animals(conn)


def _to_3_animals(conn: Connection):
    """Animals (issue 12): three new tables, the full distribution on predictions, and every file already
    catalogued put in an animal of its own (one per distinct photo), as exports grouped them before."""
    conn.execute(text("ALTER TABLE predictions ADD COLUMN probabilities TEXT"))
    for column in ("labels TEXT", "decision TEXT"):
        conn.execute(text(f"ALTER TABLE models ADD COLUMN {column}"))
    for table in (animals, animal_files, corrections):
        table.create(conn)
    # Every file already catalogued becomes an animal of its own (one per distinct photo), as the exports
    # grouped them before; the next catalog run groups them as asked.
    rows = conn.execute(select(files.c.path, files.c.sha256).order_by(files.c.path)).all()
    at = now()
    made: dict[str, str] = {}
    for path, sha256 in rows:
        key, wanted, name = naming.single(path, sha256)
        code = animal_for_key(conn, key, wanted, name, at, made)
        conn.execute(insert(animal_files).values(path=path, animal=code, grouped_by=UPGRADED, grouped_at=at))


def _to_4(conn: Connection):
    """Issue 23: what the shelter knows of each animal, breeds in the shelter's words, and the ASM3 tables."""
    # A schema 2 catalog got its animals tables from _to_3 as this release defines them: with these columns.
    for table, columns in ((animals, ("dob", "age", "sex", "retired_at")),
                           (corrections, ("breed", "breed2", "source", "note"))):
        present = {c["name"] for c in inspect(conn).get_columns(table.name)}
        for column in columns:
            if column not in present:
                conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {column} TEXT"))
    for table in (asm3_animals, asm3_files, asm3_sent):
        table.create(conn, checkfirst=True)
    _to_4_codes(conn)


def _to_4_codes(conn: Connection):
    """Issue 23: folders named ``A1023-Rex`` mean code A1023, name Rex (dogcat.naming.split_folder); animals
    grouped by such a folder take that code, its key (``code:A1023``) and that name, as a catalog run of this
    release would have made them, and every reference follows (photos, corrections, merges, ASM3 rows).

    A code already taken by another animal (a folder named just ``A1023``, a staff-made animal) is not taken
    over: the free-code rule gives ``A1023-2``, as a catalog run would. Two folders holding one code
    (``A1023-Rex`` and ``other/A1023_Rex``) become one animal, as a run of this release groups them: the first by
    code is renamed, the others are merged into it (``dogcat animals merge``'s rule: its own correction wins, the
    other's stays in the history and applies when it has none). Animals merged by staff keep their code."""
    rows = conn.execute(select(animals.c.code, animals.c.key)
                        .where(and_(animals.c.key.like("folder:%"), animals.c.merged_into.is_(None)))
                        .order_by(animals.c.code)).all()
    for row in rows:
        split = naming.split_folder(os.path.basename(row.key[len("folder:"):]))
        if split is None:
            continue
        code, name = split
        key = naming.code_key(code)
        owner = conn.scalar(select(animals.c.code).where(animals.c.key == key))
        if owner is not None:
            merge_rows(conn, follow_merges(conn, owner), row.code)
            continue
        rename_animal(conn, row.code, code if code == row.code else free_code(conn, code), name, key)


def _to_5(conn: Connection):
    """Issue 21: each photo's features (``features``), for teaching and for finding animals that look alike.
    Photos catalogued before get theirs from ``dogcat teach`` or ``dogcat similar``, once."""
    features.create(conn, checkfirst=True)


def _to_6(conn: Connection):
    """Issue 29: an ASM3 file's state and content hash (asm3_files.state, .sha256), so that a killed export's
    file and record agree. A catalog made before schema 4 got them already from _to_4's create."""
    present = {c["name"] for c in inspect(conn).get_columns(asm3_files.name)}
    for column in ("state", "sha256"):
        if column not in present:
            conn.execute(text(f"ALTER TABLE {asm3_files.name} ADD COLUMN {column} TEXT"))


def _to_7(conn: Connection):
    """Issue 34: ASM3 files sent over its service API (asm3_sends)."""
    asm3_sends.create(conn, checkfirst=True)


# MIGRATIONS[n] upgrades a database from schema n to n + 1, inside the schema transaction.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _to_2, 2: _to_3, 3: _to_4, 4: _to_5, 5: _to_6,
                                                   6: _to_7}
