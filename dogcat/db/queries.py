"""The catalog's queries: known photos and paths, upserts, animal rows, merges, corrections in force, features.

Each takes an open connection (``dogcat.db.reading`` / ``writing``); ``from dogcat import db``
gives them as ``db.known_paths`` ...

Layer: the store (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import (
    Table,
    and_,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import dml as postgresql_dml
    from sqlalchemy.dialects.sqlite import dml as sqlite_dml

from dogcat.db.tables import (
    animal_files,
    animals,
    asm3_animals,
    asm3_sent,
    corrections,
    features,
    files,
    now,
    photos,
    predictions,
)

PARAMS_PER_QUERY = 500  # stay well under SQLite's limit on bound parameters


# --- queries ------------------------------------------------------------------------------------------------

def chunks(items: Sequence, n: int = PARAMS_PER_QUERY) -> Iterator[Sequence]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def known_paths(conn: Connection, paths: Sequence[str], model_id: str) -> dict[str, Row]:
    """path → row(sha256, size, mtime_ns, error, photo_error, label, breed, status) for paths already in
    ``files``; label/breed/status are this model's prediction, if any."""
    pred = predictions.alias("p")
    q = (select(files.c.path, files.c.sha256, files.c.size, files.c.mtime_ns, files.c.error,
                photos.c.error.label("photo_error"), pred.c.label, pred.c.breed, pred.c.status)
         .select_from(files.outerjoin(photos, photos.c.sha256 == files.c.sha256)
                      .outerjoin(pred, and_(pred.c.sha256 == files.c.sha256, pred.c.model_id == model_id))))
    out = {}
    for chunk in chunks(list(paths)):
        for row in conn.execute(q.where(files.c.path.in_(chunk))):
            out[row.path] = row
    return out


def known_photos(conn: Connection, hashes: Iterable[str], model_id: str) -> dict[str, Row]:
    """sha256 → row(sha256, error, label, breed, status) for contents already in ``photos``."""
    pred = predictions.alias("p")
    q = (select(photos.c.sha256, photos.c.error, pred.c.label, pred.c.breed, pred.c.status)
         .select_from(photos.outerjoin(pred, and_(pred.c.sha256 == photos.c.sha256,
                                                  pred.c.model_id == model_id))))
    out = {}
    for chunk in chunks(sorted(set(hashes))):
        for row in conn.execute(q.where(photos.c.sha256.in_(chunk))):
            out[row.sha256] = row
    return out


def dialect_insert(conn: Connection) -> Callable[[Table], sqlite_dml.Insert | postgresql_dml.Insert] | None:
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert
    return None


def insert_ignore(conn: Connection, table: Table, rows: list[dict]):
    """INSERT the rows, leaving alone any whose primary key is already there (another run wrote it)."""
    if not rows:
        return
    keys = [c.name for c in table.primary_key.columns]
    insert_for = dialect_insert(conn)
    if insert_for is not None:
        conn.execute(insert_for(table).on_conflict_do_nothing(index_elements=keys), rows)
        return
    for row in rows:  # other databases: one savepoint per row
        try:
            with conn.begin_nested():
                conn.execute(insert(table), row)
        except IntegrityError:
            pass


def upsert(conn: Connection, table: Table, rows: list[dict], keep: Sequence[str] = ()):
    """INSERT the rows, or UPDATE the existing row with the same primary key (except the ``keep`` columns)."""
    if not rows:
        return
    keys = [c.name for c in table.primary_key.columns]
    changing = [c for c in rows[0] if c not in keys and c not in keep]
    insert_for = dialect_insert(conn)
    if insert_for is not None:
        stmt = insert_for(table)
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in changing})
        conn.execute(stmt, rows)
        return
    for row in rows:
        where = and_(*(table.c[k] == row[k] for k in keys))
        if conn.execute(update(table).where(where).values({c: row[c] for c in changing})).rowcount == 0:
            conn.execute(insert(table), row)


# --- animal rows --------------------------------------------------------------------------------------------

def free_code(conn: Connection, wanted: str) -> str:
    """``wanted``, or ``wanted-2``, ``-3`` ... : codes are unique regardless of case (ASM3 matches that way)."""
    def taken(code: str) -> bool:
        return bool(conn.scalar(select(func.count()).select_from(animals)
                                .where(func.lower(animals.c.code) == code.lower())))

    code, n = wanted, 1
    while taken(code):
        n += 1
        code = f"{wanted}-{n}"
    return code


def find_animal(conn: Connection, code: str) -> str | None:
    """The animal a code names now: codes match in any case (they are unique regardless of case: free_code), and
    a merged animal's code names the animal it went to. None for no such code."""
    found = conn.scalar(select(animals.c.code).where(func.lower(animals.c.code) == code.lower()))
    return follow_merges(conn, found) if found is not None else None


def follow_merges(conn: Connection, code: str) -> str:
    """The animal that now holds what ``code`` held (``dogcat animals merge`` leaves a pointer behind)."""
    seen = {code}
    while True:
        merged = conn.scalar(select(animals.c.merged_into).where(animals.c.code == code))
        if not merged or merged in seen:
            return code
        seen.add(merged)
        code = merged


def animal_for_key(conn: Connection, key: str, wanted: str, name: str, at: str, made: dict[str, str]) -> str:
    """The code of the animal with this grouping key (merges followed), made with a free code near ``wanted``
    if there is none yet. ``made``: key → code, this transaction's memo."""
    if key in made:
        return made[key]
    code = conn.scalar(select(animals.c.code).where(animals.c.key == key))
    if code is None:
        code = free_code(conn, wanted)
        conn.execute(insert(animals).values(code=code, name=name, key=key, merged_into=None, created_at=at))
    made[key] = code = follow_merges(conn, code)
    return code


def rename_animal(conn: Connection, old: str, new: str, name: str, key: str | None):
    """Give animal ``old`` the code ``new`` (free: see :func:`free_code`), a name and a grouping key; everything
    that names it follows: its files, its corrections (history included), animals merged into it, ASM3 rows."""
    row = conn.execute(select(animals).where(animals.c.code == old)).one()._asdict()
    if new == old:
        conn.execute(update(animals).where(animals.c.code == old).values(name=name, key=key))
        return
    conn.execute(update(animals).where(animals.c.code == old).values(key=None))  # the key is unique
    conn.execute(insert(animals).values({**row, "code": new, "name": name, "key": key}))
    conn.execute(update(animal_files).where(animal_files.c.animal == old).values(animal=new))
    conn.execute(update(corrections).where(and_(corrections.c.target_kind == "animal", corrections.c.target == old))
                 .values(target=new))
    conn.execute(update(animals).where(animals.c.merged_into == old).values(merged_into=new))
    conn.execute(update(asm3_animals).where(asm3_animals.c.animal == old).values(animal=new))
    conn.execute(update(asm3_sent).where(asm3_sent.c.animal == old).values(animal=new))
    conn.execute(delete(animals).where(animals.c.code == old))


def merge_rows(conn: Connection, into: str, other: str, grouped_by: str | None = None, at: str | None = None) -> int:
    """Animal ``other`` becomes part of ``into``: its files move (``grouped_by``: how, when given), it points to
    ``into``, as do the animals merged into it (a run that finds its key again follows the pointer), and its
    correction comes along (:func:`carry_correction`). Returns the files moved."""
    moving = update(animal_files).where(animal_files.c.animal == other).values(animal=into)
    if grouped_by is not None:
        moving = moving.values(grouped_by=grouped_by, grouped_at=at or now())
    moved = conn.execute(moving).rowcount
    conn.execute(update(animals).where(animals.c.code == other).values(merged_into=into))
    conn.execute(update(animals).where(animals.c.merged_into == other).values(merged_into=into))
    carry_correction(conn, other, into, "merged")
    return moved


def correction_in_force(conn: Connection, code: str, kind: str = "animal") -> Row | None:
    """The staff's word on animal ``code`` (or, with ``kind`` "photo", on a photo's SHA-256) now: its newest
    correction not undone."""
    c = corrections.c
    return conn.execute(select(corrections).where(and_(c.target_kind == kind, c.target == code,
                                                       c.undone_at.is_(None))).order_by(c.id.desc())).first()


def carry_correction(conn: Connection, source: str, target: str, why: str) -> bool:
    """What staff said of animal ``source`` goes with its photos to ``target`` (a merge, a regrouping), unless
    ``target`` has a correction of its own, which wins. Carried as a new row saying the same (status, breeds,
    who, when, where from) with a note "from SOURCE (why)": ``source``'s row stays as it was, in its history, and
    the read model needs no rule of its own. Returns whether it was carried."""
    said = correction_in_force(conn, source)
    if said is None or source == target or correction_in_force(conn, target) is not None:
        return False
    conn.execute(insert(corrections).values(
        target_kind="animal", target=target, status=said.status, label=said.label, label2=said.label2,
        breed=said.breed, breed2=said.breed2, source=said.source, corrected_by=said.corrected_by,
        corrected_at=said.corrected_at, note=f"from {source} ({why})"))
    return True


# --- features -----------------------------------------------------------------------------------------------

FEATURE_DTYPE = "<f2"  # how a feature vector is stored: float16, little-endian


def feature_bytes(vector) -> bytes:
    """A feature vector as stored (FEATURE_DTYPE)."""
    import numpy as np

    return np.asarray(vector, dtype=FEATURE_DTYPE).tobytes()


def feature_array(stored: Sequence[bytes]):
    """Stored feature vectors (:func:`feature_bytes`) → one float32 row each (an empty array for none)."""
    import numpy as np

    if not stored:
        return np.zeros((0, 0), np.float32)
    return np.frombuffer(b"".join(stored), FEATURE_DTYPE).reshape(len(stored), -1).astype(np.float32)


def feature_row(sha256: str, backbone: str, looks: int, vector, at: str) -> dict:
    """A row of ``features``: a photo's features made by ``backbone`` from ``looks`` looks."""
    return {"sha256": sha256, "backbone": backbone, "looks": int(looks), "vector": feature_bytes(vector),
            "computed_at": at}


def feature_backbones(conn: Connection) -> dict[str, int]:
    """Each backbone that made features in this catalog → how many photos it made them for."""
    q = select(features.c.backbone, func.count()).group_by(features.c.backbone)
    return {r[0]: r[1] for r in conn.execute(q)}


def features_of(conn: Connection, backbone: str, hashes: Iterable[str] | None = None) -> dict[str, bytes]:
    """sha256 → the stored features (:func:`feature_bytes`) made by ``backbone``, of ``hashes`` (default: all)."""
    q = select(features.c.sha256, features.c.vector).where(features.c.backbone == backbone)
    if hashes is None:
        return {r.sha256: r.vector for r in conn.execute(q)}
    out = {}
    for chunk in chunks(sorted(set(hashes))):
        out.update({r.sha256: r.vector for r in conn.execute(q.where(features.c.sha256.in_(chunk)))})
    return out
