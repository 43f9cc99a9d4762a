"""Claims with a lease: how concurrent catalog runs (processes on one machine, or machines sharing one
PostgreSQL) split the work so that each photo is classified once.

Before a run decodes and classifies a batch, it claims the batch's contents (SHA-256, model) in the ``claims``
table, in one write transaction: SQLite's ``BEGIN IMMEDIATE`` or PostgreSQL's row locks of
``INSERT … ON CONFLICT DO UPDATE … WHERE`` make the claim atomic, so of two runs asking for the same photo one
gets it and the other leaves it for later. A claim is a lease: it expires ``lease_s`` seconds after it was
taken or last renewed (a heartbeat thread renews a live run's claims every third of the lease, and every committed
batch renews them too), so work claimed by a run that died
(kill -9, a machine switched off) is taken over by the next run that looks once the lease is over. The claim is
deleted in the transaction that records the prediction. Times come from the database's clock, never a
machine's: machines whose clocks disagree still agree on when a lease is over. A run that starts first ends the
leases of runs on its own machine whose process is gone (:func:`expire_dead_local`), so re-running a command
after a crash takes its work over at once.

Layer: the store (docs/architecture.md).
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterable

from sqlalchemy import and_, delete, select, text, update
from sqlalchemy.engine import Connection

from dogcat import db

DEFAULT_LEASE_S = 120.0  # a run that dies holds up the photos it had claimed for at most this long
_ROWS_PER_QUERY = 90  # 5 parameters a row: under SQLite's limit, as db.PARAMS_PER_QUERY


def new_owner() -> str:
    """A name for this run, unique across machines: host, process id and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def db_now(conn: Connection) -> float:
    """Seconds since the epoch by the database's clock (the server's, for PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        return float(conn.scalar(text("SELECT extract(epoch FROM clock_timestamp())")))
    if conn.dialect.name == "sqlite":
        return float(conn.scalar(text("SELECT (julianday('now') - 2440587.5) * 86400.0")))
    import time

    return time.time()  # another database: the local clock, good enough on one machine


def claim(conn: Connection, hashes: Iterable[str], model_id: str, owner: str, lease_s: float) -> set[str]:
    """Claim these contents for ``owner``; returns those it got: unclaimed ones and ones whose lease is over
    (taken over). A content claimed by another run, or by this one still, is not returned: it is someone's
    work in progress. Run inside a write transaction (db.writing)."""
    hashes = sorted(set(hashes))
    if not hashes:
        return set()
    now = db_now(conn)
    got: set[str] = set()
    dialect_insert = db.dialect_insert(conn)
    assert dialect_insert is not None, "claims need INSERT ... ON CONFLICT: SQLite or PostgreSQL"
    for i in range(0, len(hashes), _ROWS_PER_QUERY):
        rows = [{"sha256": h, "model_id": model_id, "owner": owner, "claimed_at": now, "expires_at": now + lease_s}
                for h in hashes[i:i + _ROWS_PER_QUERY]]
        ins = dialect_insert(db.claims).values(rows)
        stmt = ins.on_conflict_do_update(
            index_elements=["sha256", "model_id"],
            set_={c: ins.excluded[c] for c in ("owner", "claimed_at", "expires_at")},
            where=db.claims.c.expires_at < now,  # only a lease that is over can be taken
        ).returning(db.claims.c.sha256)
        got.update(conn.execute(stmt).scalars())
    return got


def release(conn: Connection, hashes: Iterable[str], model_id: str, owner: str):
    """Drop the owner's claims on these contents (done, or found done by another run)."""
    hashes = sorted(set(hashes))
    for i in range(0, len(hashes), db.PARAMS_PER_QUERY):
        conn.execute(delete(db.claims).where(and_(db.claims.c.owner == owner, db.claims.c.model_id == model_id,
                                                  db.claims.c.sha256.in_(hashes[i:i + db.PARAMS_PER_QUERY]))))


def renew(conn: Connection, owner: str, lease_s: float):
    """Extend every claim the owner holds: it is alive and working."""
    conn.execute(update(db.claims).where(db.claims.c.owner == owner)
                 .values(expires_at=db_now(conn) + lease_s))


class Heartbeat:
    """Renews the owner's claims every third of the lease, from a thread of its own, while the run lives.

    So a lease need not outlast a batch: a run on a slow or overloaded machine, whose batch takes longer than
    the lease to classify, keeps its claims; only a run that is dead (or frozen) loses them. Renewing is a small
    write transaction; one that fails (the database busy a moment) is tried again at the next beat."""

    def __init__(self, engine, owner: str, lease_s: float):
        self.engine, self.owner, self.lease_s = engine, owner, lease_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="dogcat-claims-heartbeat", daemon=True)

    def _beat(self):
        while not self._stop.wait(self.lease_s / 3):
            try:
                with db.writing(self.engine) as conn:
                    renew(conn, self.owner, self.lease_s)
            except Exception:  # noqa: BLE001 — a missed beat; the lease still has two thirds to go
                pass

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # it exists (another user's), or we cannot tell: treat as alive
        return True
    return True


def expire_dead_local(conn: Connection) -> int:
    """End at once the leases of runs on this machine whose process is gone (kill -9, a crash), so that the
    common case, running the same command again after a crash, does not wait out the lease. Runs on other
    machines cannot be checked this way: their leases run out as usual. Returns the owners expired."""
    host = socket.gethostname() + ":"
    owners = conn.execute(select(db.claims.c.owner).where(db.claims.c.owner.startswith(host, autoescape=True))
                          .distinct()).scalars().all()
    dead = []
    for owner in owners:
        pid = owner[len(host):].split(":", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            dead.append(owner)
    if dead:
        conn.execute(update(db.claims).where(db.claims.c.owner.in_(dead)).values(expires_at=0.0))
    return len(dead)


def release_all(conn: Connection, owner: str):
    """At the end of a run (or on Ctrl-C): nothing it claimed stays claimed."""
    conn.execute(delete(db.claims).where(db.claims.c.owner == owner))
