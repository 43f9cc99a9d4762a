"""Walk folders → hash, decode and classify the photos not yet catalogued → rows in the database, one committed
transaction per batch.

Re-running is cheap: a file whose path, size and mtime match its row (and whose content this model has already
seen) is skipped without being opened; a file whose bytes are already catalogued under another name is
recognised by its SHA-256 and recorded without being decoded or classified again. Killing a run loses at most
the batch in flight; the next run picks up the rest. A bad file becomes a row with a one-line error.

Runs at the same time (processes, or machines sharing one PostgreSQL) claim each batch's photos in the database
before decoding them (:mod:`dogcat.db.leases`): a photo another run is classifying is left to it and looked at
again at the end, when it is recorded, or taken over once that run's lease is over (it died).

Layer: a job (docs/architecture.md).
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import stat
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeGuard

from sqlalchemy import Row, func, select

from dogcat import animals, db, images, settings
from dogcat.db import leases
from dogcat.model import BreedModel
from dogcat.status import Judge
from dogcat.walk import NOT_AN_IMAGE, Entry, Scan, is_image_name, reason, scan

IN_MEMORY_LIMIT = 64 << 20  # larger files are hashed in chunks and decoded from disk
DEFAULT_BATCH = settings.DEFAULT_BATCH


class _NotAnImage(Exception):
    """_read: the file is named like a photo, but its first bytes are those of no picture format (a row with
    the error NOT_AN_IMAGE, and no animal)."""


@dataclass
class Summary:
    model_id: str
    files: int = 0  # paths looked at
    new: int = 0  # photos classified by this model in this run
    skipped: int = 0  # already catalogued, unchanged: not read again
    duplicates: int = 0  # content already catalogued under another name: recorded, not classified again
    errors: int = 0  # rows recorded with an error in this run
    non_images: int = 0  # files skipped because they are not images (text, PDF, ...)
    links_skipped: int = 0
    batches: int = 0  # transactions committed
    seconds: float = 0.0
    breeds: Counter = field(default_factory=Counter)  # best breed of every dog (or unsure) photo seen in this run
    statuses: Counter = field(default_factory=Counter)  # dog / unsure / not_a_dog of every photo seen
    error_files: list[tuple[str, str]] = field(default_factory=list)
    grouped: int = 0  # files put in an animal, or moved to another, by this run
    # Retired animals (dogcat animals prune) in care again: their photos seen again, or a new one under their code;
    # code → when it had been retired.
    back: dict[str, str] = field(default_factory=dict)
    deferred: list = field(default_factory=list)  # entries another run had claimed (a batch's, in prepare)
    waited: float = 0.0  # seconds spent waiting for other runs to finish photos they had claimed

    def to_dict(self) -> dict:
        """What ``dogcat catalog --json`` prints."""
        return {"new": self.new, "skipped": self.skipped, "duplicates": self.duplicates, "errors": self.errors,
                "not_images": self.non_images, "files": self.files, "links_skipped": self.links_skipped,
                "batches": self.batches, "seconds": round(self.seconds, 3), "waited": round(self.waited, 3),
                "grouped": self.grouped, "back_in_care": sorted(self.back, key=str.lower), "model": self.model_id,
                "statuses": dict(self.statuses),
                "breeds": dict(self.breeds.most_common())}

    @property
    def images_per_second(self) -> float:
        return self.new / self.seconds if self.seconds > 0 else 0.0


def _read(entry: Entry) -> tuple[bytes | None, str, int] | None:
    """(bytes, or None when too large to hold; SHA-256; size) of a photo, or None when its first bytes show
    it is not an image and its name does not claim to be one. Never blocks on a pipe."""
    fd = os.open(entry.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):  # it changed since the walk
            raise OSError(errno.EISDIR if stat.S_ISDIR(mode) else errno.EINVAL, "not a regular file")
        head = f.read(images.SNIFF_BYTES)
        if images.sniff(head) is None:
            if not is_image_name(entry.path):
                return None
            if head:  # an empty one is a photo that failed to copy: decoding says "empty file"
                raise _NotAnImage
        digest = hashlib.sha256(head)
        if (entry.size or 0) <= IN_MEMORY_LIMIT:
            rest = f.read()
            digest.update(rest)
            return head + rest, digest.hexdigest(), len(head) + len(rest)
        size = len(head)
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
        return None, digest.hexdigest(), size


def _write_batch(conn, model_row: dict | None, photo_rows: list[dict], prediction_rows: list[dict],
                 file_rows: list[dict], feature_rows: Sequence[dict] = ()):
    """One batch, in one transaction (the caller's): a crash leaves either all of it or none."""
    if model_row is not None:
        db.insert_ignore(conn, db.models, [model_row])
    db.insert_ignore(conn, db.photos, photo_rows)
    # An upsert, not insert-or-ignore: a row from schema 1 (no status yet) gets its status now.
    db.upsert(conn, db.predictions, prediction_rows)
    # The first features of a photo stay: a photo's features are the same whichever head answered from them.
    db.insert_ignore(conn, db.features, list(feature_rows))
    db.upsert(conn, db.files, file_rows, keep=("catalogued_at",))


def _probabilities_json(probs) -> str | None:
    """The whole distribution, 6 decimals (what top_k keeps too): about 1 kB a photo for 120 breeds."""
    if probs is None:
        return None
    return json.dumps([round(float(p), 6) for p in probs], separators=(",", ":"))


def _done(photo: Row | None) -> TypeGuard[Row]:
    """A known_photos row whose content needs nothing more from this model: an error, or a prediction with a
    status (one without comes from schema 1 and is redone)."""
    return photo is not None and bool(photo.error or (photo.label and photo.status))


def _count(s: Summary, status: str | None, breed: str | None):
    if status:
        s.statuses[status] += 1
    if breed and status != "not_a_dog":
        s.breeds[breed] += 1


@dataclass
class Prepared:
    """A batch read, hashed, claimed and decoded (_Run.prepare), waiting for the models (_Run.finish)."""

    at: str  # the batch's timestamp
    file_rows: list[dict]
    photo_rows: list[dict]
    prediction_rows: list[dict]  # of photos already known; finish() adds those it classifies
    decoded: list[tuple]  # (SHA-256, images.Decoded, the entries holding it), to classify
    counted: Summary  # what prepare counted (skipped, duplicates, errors ...), merged by finish()


class _Run:
    def __init__(self, engine, judge: Judge, top_k: int, summary: Summary,
                 lease_s: float = leases.DEFAULT_LEASE_S):
        self.engine, self.judge, self.model, self.top_k, self.s = engine, judge, judge.model, top_k, summary
        self.model_recorded = False
        self.owner, self.lease_s = leases.new_owner(), lease_s
        self.deferred: list[Entry] = []  # photos another run had claimed: looked at again at the end

    def _file_row(self, e: Entry, sha256: str | None, error: str | None, now: str) -> dict:
        return {"path": e.key, "sha256": sha256, "size": e.size, "mtime_ns": e.mtime_ns,
                "mtime": db.iso_from_ns(e.mtime_ns) if e.mtime_ns is not None else None, "error": error,
                "catalogued_at": now, "updated_at": now}

    @staticmethod
    def _error(s: Summary, e: Entry, error: str):
        s.errors += 1
        s.error_files.append((e.key, error))

    def batch(self, entries: Sequence[Entry]):
        self.finish(self.prepare(entries))

    def prepare(self, entries: Sequence[Entry]) -> Prepared:
        """Everything a batch needs before the models run: database lookups, reading, hashing, decoding.
        Runs in a worker thread while the main thread classifies the previous batch (Pillow, hashlib and
        ONNX Runtime release the GIL). Its counts go to a summary of its own, merged by finish()."""
        model, now = self.model, db.now()
        s = Summary(model.id)
        file_rows: list[dict] = []
        photo_rows: list[dict] = []
        prediction_rows: list[dict] = []

        with db.reading(self.engine) as conn:
            known = db.known_paths(conn, [e.key for e in entries if e.error is None], model.id)

        hashed = []  # (entry, bytes or None, sha256, size)
        for e in entries:
            if e.error is not None:
                file_rows.append(self._file_row(e, None, e.error, now))
                self._error(s, e, e.error)
                continue
            k = known.get(e.key)
            # A prediction without a status comes from a catalog made before statuses (schema 1): redo it.
            if (k is not None and k.sha256 and k.size == e.size and k.mtime_ns == e.mtime_ns
                    and (k.photo_error or (k.label and k.status))):
                s.skipped += 1  # unchanged since this model saw it: not even opened
                _count(s, k.status, k.breed)
                continue
            if k is not None and k.error == NOT_AN_IMAGE and (k.size, k.mtime_ns) == (e.size, e.mtime_ns):
                s.skipped += 1  # a text file named .jpg, unchanged: its row already says so
                continue
            try:
                read = _read(e)
            except _NotAnImage:
                file_rows.append(self._file_row(e, None, NOT_AN_IMAGE, now))
                self._error(s, e, NOT_AN_IMAGE)
                continue
            except OSError as ex:
                file_rows.append(self._file_row(e, None, reason(ex), now))
                self._error(s, e, reason(ex))
                continue
            if read is None:
                s.non_images += 1
                continue
            hashed.append((e, *read))

        seen: dict[str, Row] = {}
        if hashed:
            with db.reading(self.engine) as conn:
                seen = db.known_photos(conn, [sha for _, _, sha, _ in hashed], model.id)
        mine, deferred, _ = self._claim({sha for _, _, sha, _ in hashed if not _done(seen.get(sha))}, seen)
        # A photo already recorded, but not under this path when the paths were looked up: another run may have
        # recorded it under this very path since (then it is "skipped" here, not a duplicate). Look again.
        again = [e.key for e, _, sha, _ in hashed
                 if _done(seen.get(sha)) and getattr(known.get(e.key), "sha256", None) != sha]
        if again:
            with db.reading(self.engine) as conn:
                known.update(db.known_paths(conn, again, model.id))

        todo: dict[str, list[tuple[Entry, bytes | None, int]]] = {}  # sha256 → the entries holding it
        for e, data, sha, size in hashed:
            if sha in deferred:
                s.deferred.append(e)  # another run is classifying it right now
                continue
            p = seen.get(sha)
            if _done(p):
                file_rows.append(self._file_row(e, sha, None, now))
                k = known.get(e.key)
                if k is not None and k.sha256 == sha:
                    s.skipped += 1  # touched, not changed
                elif p.error:
                    self._error(s, e, p.error)
                else:
                    s.duplicates += 1
                _count(s, p.status, p.breed)
                continue
            todo.setdefault(sha, []).append((e, data, size))

        decoded = []
        for sha, holders in todo.items():
            e, data, size = holders[0]
            try:
                d = images.decode(data if data is not None else e.path, *self.judge.preprocessings)
            except images.ImageError as ex:
                photo_rows.append({"sha256": sha, "size": size, "format": None, "width": None, "height": None,
                                   "error": str(ex), "first_seen_at": now})
                for h, _, _ in holders:
                    file_rows.append(self._file_row(h, sha, None, now))
                    self._error(s, h, str(ex))
                continue
            photo_rows.append({"sha256": sha, "size": size, "format": d.format, "width": d.width,
                               "height": d.height, "error": None, "first_seen_at": now})
            decoded.append((sha, d, holders))
        return Prepared(now, file_rows, photo_rows, prediction_rows, decoded, s)

    def _claim(self, wanted: set[str], seen: dict[str, Row]) -> tuple[set[str], set[str], set[str]]:
        """Claim the contents this batch would classify: (those this run got, those another run holds, those
        another run finished in the meantime). The last go into ``seen``, as if they had been done before."""
        if not wanted:
            return set(), set(), set()
        with db.writing(self.engine) as conn:
            mine = leases.claim(conn, wanted, self.model.id, self.owner, self.lease_s)
            # Read again, after the claim: a run that finished one of these just before it was claimed (and so
            # deleted its claim) must not have it classified twice.
            finished = {sha: row for sha, row in db.known_photos(conn, mine, self.model.id).items() if _done(row)}
            if finished:
                leases.release(conn, finished, self.model.id, self.owner)
        seen.update(finished)
        return mine - set(finished), wanted - mine, set(finished)

    def finish(self, prepared: Prepared):
        """Classify a prepared batch and commit it in one transaction."""
        s, model = self.s, self.model
        now, file_rows, photo_rows = prepared.at, prepared.file_rows, prepared.photo_rows
        prediction_rows, decoded, counted = prepared.prediction_rows, prepared.decoded, prepared.counted
        for name in ("skipped", "duplicates", "errors", "non_images"):
            setattr(s, name, getattr(s, name) + getattr(counted, name))
        self.deferred += counted.deferred
        s.breeds.update(counted.breeds)
        s.statuses.update(counted.statuses)
        s.error_files += counted.error_files
        feature_rows: list[dict] = []
        if decoded:
            verdicts = self.judge.judge([d.views for _, d, _ in decoded], self.top_k)
            detector_id = self.judge.detector.id if self.judge.detector else None
            for (sha, _, holders), v in zip(decoded, verdicts, strict=True):
                best = v.top_k[0]
                prediction_rows.append({"sha256": sha, "model_id": model.id, "label": best.label,
                                        "breed": best.breed, "confidence": round(float(best.confidence), 6),
                                        "top_k": db.top_k_json([g.to_dict() for g in v.top_k]),
                                        "catalogued_at": now, "status": v.status,
                                        "dog_probability": (round(v.dog_probability, 6)
                                                            if v.dog_probability is not None else None),
                                        "looks_like": v.looks_like, "detector_id": detector_id,
                                        "probabilities": _probabilities_json(v.probabilities)})
                if v.features is not None and model.backbone_id is not None:
                    feature_rows.append(db.feature_row(sha, model.backbone_id, v.looks, v.features, now))
                for i, (h, _, _) in enumerate(holders):
                    file_rows.append(self._file_row(h, sha, None, now))
                    if i == 0:
                        s.new += 1
                    else:
                        s.duplicates += 1  # the same bytes twice in this batch
                    _count(s, v.status, best.breed)

        if not (file_rows or photo_rows or prediction_rows):
            return
        model_row = None
        if prediction_rows and not self.model_recorded:
            card = model.card
            model_row = {"id": model.id, "name": card.get("name"), "sha256": card.get("sha256"),
                         "created": card.get("created"), "breeds": len(model.labels), "first_used_at": now,
                         "labels": json.dumps(list(model.labels)),
                         # the thresholds, and how many looks (--looks) the run took at its photos
                         "decision": json.dumps(dataclasses.asdict(self.judge.thresholds)
                                                | {"looks": self.judge.looks})}
        with db.writing(self.engine) as conn:
            _write_batch(conn, model_row, photo_rows, prediction_rows, file_rows, feature_rows)
            # In the same transaction: the claims on what is now recorded go, the others are renewed.
            leases.release(conn, [row["sha256"] for row in photo_rows], model.id, self.owner)
            leases.renew(conn, self.owner, self.lease_s)
        self.model_recorded = self.model_recorded or model_row is not None
        s.batches += 1


def _release_all(engine, owner: str):
    """Whatever the run still holds goes back (Ctrl-C, an error): others need not wait out the lease. Best
    effort: when the database itself is failing, the lease frees the claims instead."""
    try:
        with db.writing(engine) as conn:
            leases.release_all(conn, owner)
    except Exception:  # noqa: BLE001 — the original error, not this one, is what the caller must see
        pass


def find(roots: Sequence[str | Path], grouping: animals.Grouping, *, recursive: bool = True,
         follow_symlinks: bool = False, exclude: Iterable[str] = ()) -> Scan:
    """The files a run would catalog, with the grouping checked against their names (a pattern that matches none,
    or cannot be matched in time, raises a UsageError): all before the catalog is opened, so that a refused run
    writes nothing. ``exclude``: the catalog's own files (dogcat.db.own_files)."""
    found = scan(roots, recursive=recursive, follow_symlinks=follow_symlinks, exclude=exclude)
    grouping.check([e.key for e in found.entries])
    return found


def run(engine, roots: Sequence[str | Path], model: Judge | BreedModel, *, recursive: bool = True,
        follow_symlinks: bool = False, batch_size: int = DEFAULT_BATCH, top_k: int = settings.DEFAULT_TOP_K,
        progress: Callable[[int, int, int], None] | None = None,
        lease_s: float = leases.DEFAULT_LEASE_S, grouping: animals.Grouping | None = None,
        found: Scan | None = None) -> Summary:
    """Catalog every photo under ``roots`` into ``engine`` (see :func:`dogcat.db.connect`), then put the files
    in animals by ``grouping`` (default: :data:`dogcat.animals.DEFAULT_GROUPING`, see dogcat.animals).

    Several runs may catalog overlapping folders into one database at once, on one machine or several: each
    photo is classified by one of them (see :mod:`dogcat.db.leases`); ``new`` counts what this run classified.
    ``lease_s``: how long a claim of this run outlives it if it dies.

    ``progress(files done, files in all, photos classified)`` is called after each batch. Raises WalkError
    when a root does not exist, GroupingError (before anything is written) when the grouping matches no file,
    SQLAlchemy errors when the database fails mid-run (committed batches stay). ``found``: what :func:`find`
    returned for these roots and grouping (else the walk is done here).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    judge = model if isinstance(model, Judge) else Judge.breeds_only(model)
    start = time.perf_counter()
    if grouping is None:
        grouping = animals.Grouping.parse(None, roots=[str(r) for r in roots])
    if found is None:
        found = find(roots, grouping, recursive=recursive, follow_symlinks=follow_symlinks,
                     exclude=db.own_files(engine.url))
    summary = Summary(judge.model.id, files=len(found.entries), non_images=found.non_images,
                      links_skipped=found.links_skipped)
    worker = _Run(engine, judge, top_k, summary, lease_s)
    total = len(found.entries)
    if progress:
        progress(0, total, 0)
    try:
        with db.writing(engine) as conn:  # a crashed run on this machine: take its work over now
            leases.expire_dead_local(conn)
        with leases.Heartbeat(engine, worker.owner, lease_s):  # the claims live as long as this run
            # A two-stage pipeline: batch i+1 is read, hashed, claimed and decoded in a worker thread while batch i is
            # classified and committed. Only two batches are ever held, so memory stays flat however large the folder.
            starts = range(0, total, batch_size)
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dogcat-prepare") as pool:
                pending = pool.submit(worker.prepare, found.entries[0:batch_size]) if total else None
                for i in starts:
                    assert pending is not None  # submitted for every start: the first above, the next ones below
                    prepared = pending.result()
                    nxt = i + batch_size
                    pending = pool.submit(worker.prepare, found.entries[nxt:nxt + batch_size]) if nxt < total else None
                    worker.finish(prepared)
                    summary.seconds = time.perf_counter() - start
                    if progress:
                        progress(min(i + batch_size, total), total, summary.new)
            # Photos another run had claimed: look again until that run has recorded them (then they are skipped or
            # duplicates here) or its lease is over (it died: this run takes them over and classifies them).
            poll = min(1.0, lease_s / 4)
            while worker.deferred:
                waiting, worker.deferred = worker.deferred, []
                time.sleep(poll)
                summary.waited += poll
                for i in range(0, len(waiting), batch_size):
                    worker.batch(waiting[i:i + batch_size])
                if progress:
                    progress(total, total, summary.new)
    finally:
        _release_all(engine, worker.owner)
    summary.grouped = group(engine, grouping, [e.key for e in found.entries], summary.back)
    summary.seconds = time.perf_counter() - start
    return summary


def group(engine, grouping: animals.Grouping, keys: Sequence[str], back: dict[str, str] | None = None) -> int:
    """Put the catalogued files among ``keys`` in their animals, a transaction per chunk (short write locks);
    ``back`` gets the retired animals these files bring back into care (dogcat.animals.assign)."""
    changed = 0
    for chunk in db.chunks(list(keys)):
        with db.writing(engine) as conn:
            rows = conn.execute(select(db.files.c.path, db.files.c.sha256).where(
                db.files.c.path.in_(chunk), func.coalesce(db.files.c.error, "") != NOT_AN_IMAGE))
            changed += animals.assign(conn, grouping, [(r.path, r.sha256) for r in rows], back)
    return changed
