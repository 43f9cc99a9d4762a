"""`dogcat asm3 sync`'s sending: hand ASM3 an import over its service API and keep as sent only what it took.

A send is recorded before the request goes out, as an ASM3 file (asm3_files, asm3_sent: the record export's
files keep, so both paths share it) in state "sending", with (asm3_sends) the service and the highest ASM3
media id among the animals in care just before. Its items count as sent from then on (an export meanwhile
does not send them again); :func:`settle` then reduces them to what ASM3 took:

- ASM3 answered: a row without error was taken whole. A row with errors (listed with ASM3's own message): its
  photo was not taken; its new animal was made, and its log entry added, only if the animal's code is in ASM3
  now (ASM3 adds a row's log whenever it found or made the row's animal; read again after such an answer).
- No answer (a time-out, a dropped connection, a kill -9 of dogcat): the next sync decides from ASM3's animals
  before anything else. A new animal was made if its code is in ASM3; an animal's photos were taken as far as
  it has more photos with ids above the recorded one (ASM3 imports rows in order; ids only grow); its log entry
  if the animal is in ASM3 and the file was seen imported (a photo or animal of it found) or holds nothing
  else to see (the service API shows no log: such a file counts as imported, so no log entry is sent twice).
- ASM3 certainly got nothing (no connection, an ``ERROR`` answer such as a wrong password): all taken back.

What was not taken is taken back (the next sync or export sends it again), an animal made new by a file that
was not taken is new to ASM3 again, and a file of which nothing was taken is marked taken back.

Layer: ASM3. It writes the store and asks ASM3 through dogcat.asm3.service; the façade (dogcat.api) makes the CSV.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.engine import Connection

from dogcat import db
from dogcat.asm3 import plan as asm3_planning
from dogcat.asm3 import sent as asm3_sent
from dogcat.asm3.service import AnswerLost, ImportAnswer, NotSent, RemoteAnimal, Service

SENDING = "sending"
STOP_ENV = "DOGCAT_TEST_ASM3_SYNC_STOP"  # tests only: kill -9 this process at the named step (docs/asm3.md)


def checkpoint(step: str):
    """Tests of a kill set DOGCAT_TEST_ASM3_SYNC_STOP to a step: ``begun`` (recorded, not sent), ``answered``
    (ASM3 imported and answered, nothing settled); the process kills itself there as kill -9 would."""
    asm3_sent.checkpoint(step, STOP_ENV)


@dataclass
class Settled:
    """What one send came to: the file's id, items taken and not taken by kind, rejected rows as ``ROW CODE:
    ASM3's message``, and how it was told (``answer``, ``ASM3's animals`` or ``nothing reached ASM3``)."""

    file: int
    service: str
    how: str
    taken: dict[str, int] = field(default_factory=dict)
    not_taken: dict[str, int] = field(default_factory=dict)
    rejected: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"file": self.file, "service": self.service, "how": self.how, "taken": self.taken,
                "not_taken": self.not_taken, "rejected": self.rejected}


Item = tuple[str, str, str]  # (animal, kind, item) as in asm3_sent


def media_high(remote: Sequence[RemoteAnimal]) -> int:
    """The highest media id among ASM3's animals in care (0: none has a photo)."""
    return max((m for r in remote for m in r.media), default=0)


def begin(engine, plan: asm3_planning.Plan, service: str, by: str, media_before: int) -> int:
    """Record ``plan`` as a file being sent to ``service`` (one transaction); returns its id."""
    with db.writing(engine) as conn:
        file_id = asm3_sent.record_in(conn, plan, service, by, state=SENDING)
        conn.execute(insert(db.asm3_sends).values(file=file_id, service=service, media_before=media_before))
    return file_id


def row_items(rows: Sequence[dict], plan: asm3_planning.Plan, images: dict[str, str]) -> list[list[Item]]:
    """What each CSV row carries (rows as dogcat.asm3.rows makes them, in order), as asm3_sent items: its new
    animal (a row with a type), its log entry, its photo (by its ANIMALIMAGE)."""
    by_code = {a.code: a for a in plan.animals}
    sha_of = {uri: sha for sha, uri in images.items()}
    out = []
    for row in rows:
        a = by_code[row["ANIMALCODE"]]
        items: list[Item] = []
        if row.get("ANIMALTYPE") and a.new:
            items.append((a.answer.animal, "animal", asm3_planning.breeds_key(*a.breeds)))
        if row.get("LOGCOMMENTS") and a.log_key:
            items.append((a.answer.animal, "log", a.log_key))
        if row.get("ANIMALIMAGE") in sha_of:
            items.append((a.answer.animal, "photo", sha_of[row["ANIMALIMAGE"]]))
        out.append(items)
    return out


def send(engine, service: Service, plan: asm3_planning.Plan, rows: Sequence[dict], images: dict[str, str],
         content: bytes, by: str, media_before: int) -> Settled:
    """Send ``content`` (the CSV of ``rows``, made from ``plan``) to ASM3 and keep what it took. Raises the
    transport's ServiceError after taking back what certainly did not arrive (NotSent), or after settling from
    ASM3's animals what may have (AnswerLost; left "sending" for the next sync when ASM3 cannot be asked)."""
    file_id = begin(engine, plan, service.where, by, media_before)
    checkpoint("begun")
    try:
        answer = service.csv_import(content)
    except NotSent:
        with db.writing(engine) as conn:
            _take_back(conn, file_id, _items(conn, file_id))
            _settled(conn, file_id)
        raise
    except AnswerLost:
        raise  # still "sending": ASM3 may be importing it yet; the next sync settles it from ASM3's animals
    checkpoint("answered")
    remote = service.shelter_animals() if answer.errors else []
    return _settle_answer(engine, file_id, service.where, answer, row_items(rows, plan, images), remote)


def _items(conn: Connection, file_id: int) -> list[Item]:
    s = db.asm3_sent
    return [(r.animal, r.kind, r.item) for r in conn.execute(
        select(s.c.animal, s.c.kind, s.c.item).where(s.c.file == file_id).order_by(s.c.animal, s.c.kind, s.c.item))]


def _asm3_codes(conn: Connection, animals: set[str]) -> dict[str, str]:
    rows = conn.execute(select(db.asm3_animals.c.animal, db.asm3_animals.c.asm3_code))
    return {r.animal: r.asm3_code for r in rows if r.animal in animals}


def _count(items: list[Item]) -> dict[str, int]:
    out: dict[str, int] = {}
    for _, kind, _ in items:
        out[kind] = out.get(kind, 0) + 1
    return out


def _settle_answer(engine, file_id: int, service: str, answer: ImportAnswer, per_row: list[list[Item]],
                   remote: Sequence[RemoteAnimal]) -> Settled:
    in_asm3 = {r.animal.code.casefold() for r in remote}
    rejected, untaken = [], []
    with db.writing(engine) as conn:
        codes = _asm3_codes(conn, {animal for items in per_row for animal, _, _ in items})
        for number, items in enumerate(per_row, 1):
            messages = answer.errors.get(number)
            if not messages:
                continue
            animal = items[0][0] if items else "?"
            rejected.append(f"row {number} ({codes.get(animal, animal)}): {'; '.join(messages)}")
            present = codes.get(animal, animal).casefold() in in_asm3
            untaken += [i for i in items if i[1] == "photo" or not present]
        everything = _items(conn, file_id)
        _take_back(conn, file_id, untaken)
        _settled(conn, file_id)
    return Settled(file_id, service, "answer", _count([i for i in everything if i not in untaken]),
                   _count(untaken), rejected)


def pending(engine) -> list[int]:
    """Sends whose outcome is not settled yet (their answer never came, or dogcat was killed)."""
    f = db.asm3_files
    with db.reading(engine) as conn:
        return list(conn.scalars(select(f.c.id).where(f.c.state == SENDING, f.c.forgotten_at.is_(None))
                                 .order_by(f.c.id)))


def settle(engine, remote: Sequence[RemoteAnimal]) -> list[Settled]:
    """Settle every send still "sending" from ``remote``, ASM3's animals in care read now (see the module's
    docstring). Returns what each came to."""
    by_code = {r.animal.code.casefold(): r for r in remote}
    out = []
    with db.writing(engine) as conn:
        f, sends = db.asm3_files, db.asm3_sends
        for row in conn.execute(select(sends).select_from(sends.join(f, f.c.id == sends.c.file))
                                .where(f.c.state == SENDING, f.c.forgotten_at.is_(None))
                                .order_by(sends.c.file)).all():
            items = _items(conn, row.file)
            codes = _asm3_codes(conn, {a for a, _, _ in items})

            def there(animal: str, codes: dict[str, str] = codes) -> RemoteAnimal | None:
                return by_code.get(codes.get(animal, animal).casefold())

            untaken: list[Item] = []
            seen = False  # a photo or an animal of this file found in ASM3: it was imported
            photos: dict[str, list[Item]] = {}
            for item in items:
                if item[1] == "photo":
                    photos.setdefault(item[0], []).append(item)
            for animal, sent in photos.items():
                found = there(animal)
                arrived = sum(m > row.media_before for m in found.media) if found is not None else 0
                seen = seen or arrived > 0
                untaken += sent[arrived:]  # ASM3 imports rows in order: the first ones arrived
            new = [i for i in items if i[1] == "animal"]
            for item in new:
                if there(item[0]) is None:
                    untaken.append(item)
                else:
                    seen = True
            visible = bool(photos or new)
            for item in items:
                if item[1] == "log" and (there(item[0]) is None or (visible and not seen)):
                    untaken.append(item)
            _take_back(conn, row.file, untaken)
            _settled(conn, row.file)
            out.append(Settled(row.file, row.service, "ASM3's animals",
                               _count([i for i in items if i not in untaken]), _count(untaken)))
    return out


def _settled(conn: Connection, file_id: int):
    conn.execute(update(db.asm3_files).where(db.asm3_files.c.id == file_id).values(state=None))


def _take_back(conn: Connection, file_id: int, items: list[Item]):
    """Items of a file that ASM3 did not take count as not sent; a new animal it did not make is new to ASM3
    again (unless another file not taken back made it); a file left with nothing is marked taken back."""
    s, f = db.asm3_sent, db.asm3_files
    for animal, kind, item in items:
        conn.execute(delete(s).where(and_(s.c.file == file_id, s.c.animal == animal, s.c.kind == kind,
                                          s.c.item == item)))
        if kind == "animal":
            other = conn.scalar(select(s.c.file).select_from(s.join(f, f.c.id == s.c.file)).where(
                s.c.animal == animal, s.c.kind == "animal", f.c.forgotten_at.is_(None)).limit(1))
            if other is None:
                conn.execute(delete(db.asm3_animals).where(and_(db.asm3_animals.c.animal == animal,
                                                                db.asm3_animals.c.source == "sent")))
    if conn.scalar(select(s.c.file).where(s.c.file == file_id).limit(1)) is None:
        conn.execute(update(f).where(f.c.id == file_id).values(forgotten_at=db.now()))
