"""What was sent to ASM3: the record of each file written (planned, begun, written, placed, finished), one
export at a time (a lease in the claims table), a killed export settled by the next, and a file never
imported taken back (``dogcat asm3 forget``).

Layer: ASM3 (docs/architecture.md).
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.engine import Connection

from dogcat import db
from dogcat.asm3.plan import Plan, breeds_key
from dogcat.asm3.pull import LookupFailed
from dogcat.db import leases

# --- what was sent ------------------------------------------------------------------------------------------
#
# One export at a time (exclusive), and a file and its record that agree whenever the process stops:
#   settle (a file a killed export left) → plan → begin (the record, state "writing", with the content's SHA-256)
#   → the file written beside its place and moved into it (write_file) → finish (state written).
# A stop before begin leaves nothing; after it, the next export's settle finds the file in place with that
# content (then it is recorded as written) or takes the record back and removes the half-written file.
# A second transport (ASM3's service API) plans the same way and records exactly what ASM3 took (record).

EXPORT_CLAIM = ("asm3-export", "asm3-export")  # claims (sha256, model_id): held by the export writing a file
EXPORT_LEASE_S = 60.0
STOP_ENV = "DOGCAT_TEST_ASM3_STOP"  # tests only: kill -9 this process at the named step (docs/asm3.md)
WRITING = "writing"


def checkpoint(step: str, env: str = STOP_ENV):
    """Tests of a kill at every step set DOGCAT_TEST_ASM3_STOP (``env``: the sync's own variable) to a step's
    name: the process kills itself there, as kill -9 would (no cleanup, no finally); ``STEP:pause=SECONDS``
    sleeps there instead (two exports that really overlap). Steps: planned, begun, half-written, written,
    placed, finished (the sync's: begun, answered). Unset: nothing."""
    wanted = os.environ.get(env)
    if not wanted or wanted.split(":", 1)[0] != step:
        return
    if wanted.startswith(f"{step}:pause="):
        time.sleep(float(wanted.split("=", 1)[1]))
    else:
        os.kill(os.getpid(), signal.SIGKILL)


@contextmanager
def exclusive(engine, on_wait: Callable[[str], None] | None = None, wait_s: float = 600.0) -> Iterator[list[str]]:
    """Hold the catalog's ASM3 export claim (dogcat.db.leases: a lease renewed while alive, ended at once when its
    process on this machine is gone): a second export, on this machine or another sharing a PostgreSQL
    catalog, waits here until the first has recorded its file, and then plans only what that one did not send.
    Whoever holds it first settles what a killed export left (:func:`settle`; its lines are what this yields).
    ``on_wait`` is told once that it waits. Raises DatabaseError after ``wait_s``."""
    owner = leases.new_owner()
    key, kind = EXPORT_CLAIM
    started, told = time.monotonic(), False
    while True:
        with db.writing(engine) as conn:
            leases.expire_dead_local(conn)
            if leases.claim(conn, [key], kind, owner, EXPORT_LEASE_S):
                break
        if not told and on_wait is not None:
            on_wait(f"another dogcat export is writing an ASM3 file; waiting for it (up to {wait_s:.0f} s)")
            told = True
        if time.monotonic() - started > wait_s:
            raise db.DatabaseError(f"another dogcat export held the ASM3 export for more than {wait_s:.0f} s; "
                                   "nothing written")
        time.sleep(0.25)
    try:
        with leases.Heartbeat(engine, owner, EXPORT_LEASE_S):
            yield settle(engine)
    finally:
        with db.writing(engine) as conn:
            leases.release_all(conn, owner)


def _record(conn: Connection, plan: Plan, path: str, by: str, sha256: str | None, state: str | None) -> int:
    now = db.now()
    inserted = conn.execute(insert(db.asm3_files).values(path=path, written_at=now, written_by=by, state=state,
                                                         sha256=sha256))
    file_id = inserted.inserted_primary_key[0]  # type: ignore[index]  # one row inserted: its key is there
    rows = []
    for a in plan.animals:
        rows += [{"file": file_id, "animal": a.answer.animal, "kind": "photo", "item": p["sha256"]}
                 for p in a.photos]
        if a.log_key:
            rows.append({"file": file_id, "animal": a.answer.animal, "kind": "log", "item": a.log_key})
        if a.new:
            rows.append({"file": file_id, "animal": a.answer.animal, "kind": "animal",
                         "item": breeds_key(*a.breeds)})
            db.upsert(conn, db.asm3_animals, [{"animal": a.answer.animal, "asm3_code": a.code, "name": a.name,
                                               "breed1": a.breeds[0], "breed2": a.breeds[1], "source": "sent",
                                               "updated_at": now}])
    db.insert_ignore(conn, db.asm3_sent, rows)
    return int(file_id)


def record_in(conn: Connection, plan: Plan, path: str, by: str, *, sha256: str | None = None,
              state: str | None = None) -> int:
    """:func:`record` inside the caller's transaction, with a state (dogcat.asm3.send: "sending", from just
    before its request until what ASM3 took is settled); returns the file's id."""
    return _record(conn, plan, path, by, sha256, state)


def record(engine, plan: Plan, path: str, by: str) -> int:
    """Keep what ASM3 was handed (a file written, or what a transport's answer says ASM3 took: pass a plan
    holding exactly that), as sent; returns its id (dogcat asm3 forget ID)."""
    with db.writing(engine) as conn:
        return _record(conn, plan, path, by, None, None)


def begin(engine, plan: Plan, path: str, by: str, sha256: str) -> int:
    """Record a file about to be put in place (state "writing", its content's SHA-256); :func:`finish` once it
    is there. Until then the next export's :func:`settle` decides from the file itself."""
    with db.writing(engine) as conn:
        return _record(conn, plan, path, by, sha256, WRITING)


def finish(engine, file_id: int):
    with db.writing(engine) as conn:
        conn.execute(update(db.asm3_files).where(db.asm3_files.c.id == file_id).values(state=None))


def temporary_path(output: Path, file_id: int) -> Path:
    """Where file ``file_id`` is written before it is moved into place: beside it, hidden, named by the id (so
    that settle finds it from the record alone)."""
    return output.with_name(f".{output.name}.asm3-{file_id}.tmp")


def write_file(engine, plan: Plan, content: bytes, output: Path | None, by: str, stdout: IO[bytes] | None = None
               ) -> int:
    """Hand ``content`` (the CSV dogcat.asm3.importfile made of ``plan``) out and record it, so that a kill at any step
    leaves a file and a record that agree (see above); ``output`` None: to ``stdout``. Returns the file's id."""
    sha = hashlib.sha256(content).hexdigest()
    file_id = begin(engine, plan, str(output.absolute()) if output else "stdout", by, sha)
    checkpoint("begun")
    try:
        if output is None:
            assert stdout is not None
            stdout.write(content)
            stdout.flush()
        else:
            tmp = temporary_path(output.absolute(), file_id)
            try:
                with open(tmp, "wb") as f:
                    half = len(content) // 2
                    f.write(content[:half])
                    f.flush()
                    checkpoint("half-written")
                    f.write(content[half:])
                    f.flush()
                    os.fsync(f.fileno())
                checkpoint("written")
                os.replace(tmp, output)
            finally:
                tmp.unlink(missing_ok=True)
    except BaseException:  # a disk full, Ctrl-C: the file is not in place, so its record is taken back now
        with db.writing(engine) as conn:
            _take_back(conn, file_id, "unfinished")
        raise
    checkpoint("placed")
    finish(engine, file_id)
    checkpoint("finished")
    return file_id


def _file_sha256(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return None


def settle(engine) -> list[str]:
    """Files an export stopped while writing (kill -9, a machine off): one found in place with the content
    recorded is written; any other is taken back (its content goes into the next export) and its temporary file
    removed. Run while holding :func:`exclusive`, so that no export is writing. Returns a line per file."""
    f = db.asm3_files
    said = []
    with db.writing(engine) as conn:
        for row in conn.execute(select(f).where(f.c.state == WRITING, f.c.forgotten_at.is_(None))).all():
            if row.path != "stdout":
                temporary_path(Path(row.path), row.id).unlink(missing_ok=True)
                if _file_sha256(Path(row.path)) == row.sha256:
                    conn.execute(update(f).where(f.c.id == row.id).values(state=None))
                    said.append(f"ASM3 file {row.id} ({row.path}): its export stopped after the file was complete; "
                                "recorded as written")
                    continue
            _take_back(conn, row.id, "unfinished")
            said.append(f"ASM3 file {row.id} ({row.path}): its export stopped before the file was complete; "
                        "taken back (its content goes into this export)")
    return said


MAX_FILE_ID = 2**63 - 1  # the databases' integer: a larger id is no file's


def _take_back(conn: Connection, file_id: int, state: str | None = None):
    """What the file held counts as not sent; an animal it introduced is new to ASM3 again unless another file
    not taken back introduced it too, or a pull has seen it in ASM3 since."""
    f, s = db.asm3_files, db.asm3_sent
    conn.execute(update(f).where(f.c.id == file_id).values(forgotten_at=db.now(), state=state))
    introduced = set(conn.scalars(select(s.c.animal).where(s.c.file == file_id, s.c.kind == "animal")))
    for chunk in db.chunks(sorted(introduced)):
        still = set(conn.scalars(select(s.c.animal).select_from(s.join(f, f.c.id == s.c.file)).where(
            s.c.kind == "animal", s.c.animal.in_(chunk), f.c.forgotten_at.is_(None))))
        gone = [a for a in chunk if a not in still]
        if gone:
            conn.execute(delete(db.asm3_animals).where(and_(db.asm3_animals.c.animal.in_(gone),
                                                            db.asm3_animals.c.source == "sent")))


def forget(engine, file_id: int) -> dict:
    """Take back a file that was never imported: what it alone held counts as not sent (a photo or log entry an
    earlier file not taken back sent too stays sent), and the animals only it introduced are new to ASM3 again
    (unless a pull has seen them in ASM3 since). Returns the file's row as a dict."""
    f = db.asm3_files
    if not 0 < file_id <= MAX_FILE_ID:
        raise LookupFailed(f"{file_id}: no such ASM3 file (dogcat asm3 files lists them)")
    with db.writing(engine) as conn:
        row = conn.execute(select(f).where(f.c.id == file_id)).first()
        if row is None:
            raise LookupFailed(f"{file_id}: no such ASM3 file (dogcat asm3 files lists them)")
        if row.forgotten_at is None:
            _take_back(conn, file_id)
        return dict(conn.execute(select(f).where(f.c.id == file_id)).one()._mapping)


def files(engine) -> list[dict]:
    """Every ASM3 file written, oldest first, with what it held as its export said: animals (each with a row),
    new animals (a full row), photos and log entries."""
    f, s = db.asm3_files, db.asm3_sent
    counts: dict[tuple[int, str], int] = {}
    animals: dict[int, int] = {}
    with db.reading(engine) as conn:
        for file, kind, n in conn.execute(select(s.c.file, s.c.kind, func.count()).group_by(s.c.file, s.c.kind)):
            counts[(file, kind)] = n
        for file, n in conn.execute(select(s.c.file, func.count(s.c.animal.distinct())).group_by(s.c.file)):
            animals[file] = n
        written = [dict(r._mapping) for r in conn.execute(select(f).order_by(f.c.id))]
    for w in written:
        w.update({"animals": animals.get(w["id"], 0), "new_animals": counts.get((w["id"], "animal"), 0),
                  "photos": counts.get((w["id"], "photo"), 0), "logs": counts.get((w["id"], "log"), 0)})
    return written


def sent_history(conn: Connection, codes: Iterable[str]) -> list[dict]:
    """What was sent to ASM3 for these animals: file, when, kind, item; oldest first."""
    f, s = db.asm3_files, db.asm3_sent
    return [dict(r._mapping) for r in conn.execute(
        select(s.c.animal, s.c.kind, s.c.item, f.c.id.label("file"), f.c.path, f.c.written_at, f.c.forgotten_at)
        .select_from(s.join(f, f.c.id == s.c.file)).where(s.c.animal.in_(list(codes))).order_by(f.c.id))]
