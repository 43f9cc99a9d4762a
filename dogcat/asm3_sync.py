"""Living with a shelter's records in Animal Shelter Manager 3 (ASM3): read what it holds, send only what is new.

- :func:`pull` reads ASM3's own animal export (dogcat.asm3_records). For each animal the catalog also has (same
  code, any case): the shelter's name, date of birth and sex become the animal's; ASM3's breeds are what staff
  say the dog is, kept as a correction with source ``asm3`` (unless they are what dogcat itself sent, or what
  the last pull already read: so a pull never undoes a correction staff made in dogcat since). The animal is
  then known to ASM3: an export never sends its staff fields again. Codes only in the file are reported.
- :func:`plan` decides what an import file holds. An animal new to ASM3: a full row (code, name, date of birth
  or estimated age, sex where known, species, type, breeds) with its photos. An animal ASM3 has: only photos
  never sent (code and the name exactly as ASM3 has them, and the image), and dogcat's answer as a dated log
  entry when it changed since it was last sent. Never comments, description, date of birth, age, hidden details
  or breeds for an animal ASM3 has: its import overwrites every non-empty field it merges
  (docs/asm3-import-notes.md has what was measured).
- :func:`record` keeps what a written file held (tables asm3_files, asm3_sent, asm3_animals), and
  :func:`forget` takes a file back that was never imported, so that the next export writes its content again.

Layer: a job. It reads the read model (dogcat.readmodel) and writes the store; dogcat.asm3 writes the CSV.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.engine import Connection

from dogcat import asm3_records, breeds, db, naming, pathkeys, readmodel
from dogcat.corrections import Change, apply, read_table
from dogcat.decision import status_of
from dogcat.errors import DogcatError, UsageError
from dogcat.text import percent


class LookupFailed(DogcatError):
    """An ASM3 file id the catalog does not have; one line."""


SOURCE = "asm3"  # corrections.source of a breed read from ASM3
LOG_TYPE = "History"  # ASM3's log type for dogcat's answers (matched by name; an unknown one is lost)
NOT_ANIMALS = ("not_a_dog", "error")  # answers that make no ASM3 animal


# --- pull ------------------------------------------------------------------------------------------------------

@dataclass
class Pulled:
    """What a pull did: animals matched, fields changed per animal, breeds taken as corrections, and the codes
    in the file that the catalog does not have (reported, never invented)."""

    matched: list[str] = field(default_factory=list)
    changed: dict[str, list[str]] = field(default_factory=dict)
    corrected: list[str] = field(default_factory=list)
    only_in_file: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"matched": self.matched, "changed": self.changed, "corrected": self.corrected,
                "only_in_asm3": self.only_in_file}


def _words(name: str | None) -> breeds.BreedWords | None:
    """An ASM3 breed name as breed words; one dogcat does not know (a shelter's own breed) stays as written."""
    if not name:
        return None
    try:
        return breeds.resolve(name)
    except breeds.UnknownBreed:
        return breeds.BreedWords(name, None, name, None)


def breeds_key(breed1: str | None, breed2: str | None) -> str:
    """One text for a pair of ASM3 breeds, a purebred's twice-given breed once: how sent and pulled breeds compare."""
    first = (breed1 or "").strip()
    second = (breed2 or "").strip() or first
    return first if second.casefold() == first.casefold() else f"{first} / {second}"


def _asm3_change(animal: asm3_records.ShelterAnimal) -> Change | None:
    first = _words(animal.breed1)
    if first is None:
        return None
    second = _words(animal.breed2) if animal.breed2 and animal.breed2 != animal.breed1 else None
    return Change.of_words(first, second, source=SOURCE)


def _last_pulled_breeds(conn: Connection, code: str) -> tuple | None:
    """What the newest correction read from ASM3 for this animal said (in force or not)."""
    c = db.corrections
    row = conn.execute(select(c).where(c.c.target_kind == "animal", c.c.target == code, c.c.source == SOURCE)
                       .order_by(c.c.id.desc()).limit(1)).first()
    return readmodel.correction_of(row).what if row is not None else None


def pull(engine, path: str | Path, *, day_first: bool = False) -> Pulled:
    """Read ASM3's animal export into the catalog (see the module's docstring), in one transaction: a malformed
    file (ShelterFileError, naming the line) changes nothing. Pulling the same file again changes nothing."""
    shelter = asm3_records.read_animals(path, day_first=day_first)
    out = Pulled()
    now = db.now()
    with db.writing(engine) as conn:
        live = select(db.animals).where(db.animals.c.merged_into.is_(None))
        ours = {r.code.casefold(): r for r in conn.execute(live)}
        sent = _sent(conn)
        for animal in shelter:
            row = ours.get(animal.code.casefold())
            if row is None:
                out.only_in_file.append(animal.code)
                continue
            out.matched.append(row.code)
            facts = {"name": animal.name, "dob": animal.dob.isoformat() if animal.dob else row.dob,
                     "sex": animal.sex or row.sex}
            changed = [k for k, v in facts.items() if v != getattr(row, k)]
            if changed:
                conn.execute(update(db.animals).where(db.animals.c.code == row.code).values(**facts))
                out.changed[row.code] = changed
            known = {"asm3_code": animal.code, "name": animal.name, "breed1": animal.breed1, "breed2": animal.breed2}
            before = conn.execute(select(db.asm3_animals).where(db.asm3_animals.c.animal == row.code)).first()
            if before is None or any(getattr(before, k) != v for k, v in known.items()) or before.source != "pull":
                db.upsert(conn, db.asm3_animals, [{"animal": row.code, **known, "source": "pull",
                                                   "updated_at": now}])
            change = _asm3_change(animal)
            if change is None or _last_pulled_breeds(conn, row.code) == change.what:
                continue
            if sent.last.get((row.code, "animal")) == breeds_key(animal.breed1, animal.breed2):
                continue  # dogcat's own answer, come back: not something staff said
            if apply(conn, "animal", row.code, change, "ASM3") == "corrected":
                out.corrected.append(row.code)
    return out


# --- what to send -------------------------------------------------------------------------------------------

@dataclass
class Outgoing:
    """One animal's part of an import file. ``new``: ASM3 does not have it (a full row); else ``name`` is the
    name exactly as ASM3 has it and ``code`` its code as ASM3 spells it. ``photos``: the photo records to
    attach; ``log``: dogcat's answer to log (None: unchanged since it was last sent)."""

    answer: readmodel.Answer
    code: str
    name: str
    new: bool
    photos: list[dict]
    log: str | None
    log_key: str | None
    born: dict[str, str] = field(default_factory=dict)  # ANIMALAGE / ANIMALDOB of a new animal
    sex: str = ""
    breeds: tuple[str, str] = ("", "")


@dataclass
class Plan:
    animals: list[Outgoing]
    warnings: list[str]
    resend: bool  # --all: everything, whatever was sent before

    @property
    def photos(self) -> int:
        return sum(len(a.photos) for a in self.animals)


@dataclass(frozen=True)
class ShelterFacts:
    """What --animals-csv says of one animal: name, date of birth or estimated age, sex."""

    name: str | None = None
    dob: str | None = None
    age: str | None = None
    sex: str | None = None


def estimated_age(age: str | float | None = None, dob: str | None = None, what: str = "--age") -> dict[str, str]:
    """ANIMALAGE or ANIMALDOB, as ASM3 requires one of them for a new animal (empty dict: neither given). ASM3
    refuses an estimated age outside (0, 100] years (asm3/animal.py, insert_animal_from_form); a date of birth
    must be a real date, not in the future. Raises UsageError for one that is not."""
    if age is not None and dob is not None:
        raise UsageError(f"{what}: give an age or a date of birth, not both")
    if age is not None:
        try:
            years = float(age)
        except ValueError:
            raise UsageError(f"{what} {age!r}: not a number of years") from None
        if not 0 < years <= 100:
            raise UsageError(f"{what} {age}: ASM3 accepts an estimated age above 0 and at most 100 years")
        return {"ANIMALAGE": f"{years:g}", "ANIMALDOB": ""}
    if dob is not None:
        try:
            born = dt.date.fromisoformat(str(dob))
        except ValueError:
            raise UsageError(f"{what.replace('age', 'dob')} {dob!r}: not a date as YYYY-MM-DD") from None
        if born > dt.date.today():
            raise UsageError(f"{what.replace('age', 'dob')} {dob}: in the future")
        return {"ANIMALAGE": "", "ANIMALDOB": born.isoformat()}
    return {}


@dataclass
class Sent:
    """What the files not taken back sent, per (animal, kind): every item, and the newest file's."""

    items: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    last: dict[tuple[str, str], str] = field(default_factory=dict)


def _sent(conn: Connection) -> Sent:
    """Every ASM3 file not taken back, read once, oldest first: photos sent, and the breeds of the last full row
    and the answer last logged for each animal."""
    f, s = db.asm3_files, db.asm3_sent
    out = Sent()
    for r in conn.execute(select(s.c.animal, s.c.kind, s.c.item).select_from(s.join(f, f.c.id == s.c.file))
                          .where(f.c.forgotten_at.is_(None)).order_by(f.c.id)):
        out.items.setdefault((r.animal, r.kind), set()).add(r.item)
        out.last[(r.animal, r.kind)] = r.item
    return out


def photos_to_attach(answer: readmodel.Answer) -> list[dict]:
    """The animal's readable dog photos, each content once, the most confident first (ASM3 makes the first
    attached photo the animal's preferred one)."""
    seen, out = set(), []
    usable = [p for p in answer.photos if status_of(p) not in NOT_ANIMALS]
    usable.sort(key=lambda p: -(p.get("confidence") or 0.0))
    for p in usable:
        if p.get("sha256") not in seen:
            seen.add(p.get("sha256"))
            out.append(p)
    return out


def log_text(answer: readmodel.Answer) -> str:
    """dogcat's answer for ASM3's log, one line: 'dogcat: Beagle 97% (then Basset 2%), from 3 photos, model …' or
    'dogcat: staff said Beagle / Pug (alice, 2026-12-04)'."""
    if answer.source == "correction" and answer.correction is not None:
        c = answer.correction
        said = " / ".join(c.names) if c.status == "dog" else "not a dog"
        return naming.one_line(f"dogcat: staff said {said} ({c.by}, {c.at[:10]}).")
    if answer.mix:
        guess = "mix? " + ", ".join(f"{g['breed']} {percent(g.get('confidence'), '?')}" for g in answer.top_k)
    else:
        best, rest = answer.top_k[0], answer.top_k[1:]
        then = ", ".join(f"{g['breed']} {percent(g.get('confidence'), '?')}" for g in rest)
        guess = ("probably " if answer.status == "unsure" else "") + (  # unsure, no second breed to speak of
            f"{best['breed']} {percent(best.get('confidence'), '?')}" + (f" (then {then})" if then else ""))
    photos = f"{answer.votes} photo{'s' if answer.votes != 1 else ''}"
    return naming.one_line(f"dogcat: {guess}; from {photos}" + (f"; model {answer.model}" if answer.model else "")
                           + ".")


def _breeds_of(answer: readmodel.Answer) -> tuple[str, str]:
    """ANIMALBREED1/2 for a new animal: a purebred is the same breed twice (ASM3 ticks Crossbreed when they
    differ)."""
    if answer.source == "correction" and answer.correction is not None:
        return answer.correction.asm3_breeds()
    first, second = breeds.asm3_pair(answer.top_k[0]["label"])
    if answer.mix:
        return first, breeds.asm3_name(answer.top_k[1]["label"])
    return first, second


def plan(engine, *, resend: bool = False, age: str | None = None, dob: str | None = None,
         facts: dict[str, ShelterFacts] | None = None, codes: Sequence[str] | None = None) -> Plan:
    """What an ASM3 import file holds now (see the module's docstring). ``resend`` (--all): everything, as if
    nothing had been sent. ``age``/``dob``: the default for new animals with no age of their own (from a
    pull or ``facts``, the --animals-csv rows by code). Raises UsageError, listing them, when a new animal has
    no age at all: ASM3 would refuse its row."""
    default = estimated_age(age, dob)
    facts = {k.casefold(): v for k, v in (facts or {}).items()}
    answers = readmodel.answers(engine)
    with db.reading(engine) as conn:
        known = {r.animal: r for r in conn.execute(select(db.asm3_animals))}
        shelter = {r.code: r for r in conn.execute(select(db.animals))}
        sent = Sent() if resend else _sent(conn)
    wanted = {c.casefold() for c in codes} if codes else None
    out, warnings, ageless = [], [], []
    for a in answers:
        if a.status in NOT_ANIMALS or not a.top_k or (wanted is not None and a.animal.casefold() not in wanted):
            continue
        attach = photos_to_attach(a)
        present = [p for p in attach if pathkeys.exists(p["path"])]
        if attach and not present:
            warnings.append(f"{a.animal}: every photo is gone from disk; left out (dogcat animals prune retires it)")
            continue
        if len(present) < len(attach):
            warnings.append(f"{a.animal}: {len(attach) - len(present)} photo(s) gone from disk, not attached")
        photos = [p for p in present if p["sha256"] not in sent.items.get((a.animal, "photo"), set())]
        is_known = not resend and a.animal in known
        key = a.summary()
        log = None
        if not (a.source == "correction" and a.correction and a.correction.source == SOURCE) and (
                sent.last.get((a.animal, "log")) != key):
            log = log_text(a)
        if is_known:
            k = known[a.animal]
            if photos or log:
                out.append(Outgoing(a, k.asm3_code, k.name, False, photos, log, key if log else None))
            continue
        row = shelter.get(a.animal)
        given = facts.get(a.animal.casefold(), ShelterFacts())
        name = given.name or a.name
        born = (estimated_age(given.age, given.dob, f"{a.animal}: age") if (given.age or given.dob) else
                {"ANIMALDOB": row.dob, "ANIMALAGE": ""} if row is not None and row.dob else
                estimated_age(row.age, None) if row is not None and row.age else default)
        if not born:
            ageless.append(a.animal)
        sex = given.sex or (row.sex if row is not None else None) or ""
        out.append(Outgoing(a, a.animal, naming.one_line(name) or naming.UNNAMED, True, present, log, key,
                            born, sex, _breeds_of(a)))
    if ageless:
        shown = ", ".join(ageless[:20]) + (f" and {len(ageless) - 20} more" if len(ageless) > 20 else "")
        raise UsageError(f"ASM3 creates an animal only with a date of birth or an estimated age, and "
                         f"{len(ageless)} animal(s) new to ASM3 have none: {shown}. Give them in --animals-csv "
                         "FILE (code,name,dob,age,sex), or a default with --age YEARS or --dob YYYY-MM-DD; nothing "
                         "was written")
    return Plan(out, warnings, resend)


def read_facts(path: str | Path) -> dict[str, ShelterFacts]:
    """--animals-csv: a CSV (comma, semicolon or tab) with a header naming ``code`` and any of ``name``, ``dob``
    (YYYY-MM-DD), ``age`` (years) and ``sex``; ASM3's own column names (ANIMALCODE, ANIMALNAME, ANIMALDOB,
    ANIMALAGE, ANIMALSEX) work too. Raises UsageError naming the file and line of a bad row."""
    header, rows = read_table(Path(path))
    columns = {h.strip().lower().removeprefix("animal"): h for h in header}
    if "code" not in columns:
        raise UsageError(f"{path}: --animals-csv needs a code column (code,name,dob,age,sex)")
    out = {}
    def cell(row: dict[str, str], name: str) -> str | None:
        return (row.get(columns[name]) or "").strip() or None if name in columns else None

    for line, row in rows:
        def get(name: str, row: dict[str, str] = row) -> str | None:
            return cell(row, name)

        code = get("code")
        if not code:
            continue
        sex = get("sex")
        if sex is not None:
            sex = {"m": "Male", "f": "Female", "u": "Unknown"}.get(sex[:1].lower())
            if sex is None:
                raise UsageError(f"{path}:{line}: sex {get('sex')!r} is not Male, Female or Unknown")
        facts = ShelterFacts(get("name"), get("dob"), get("age"), sex)
        estimated_age(facts.age, facts.dob, f"{path}:{line}: age")  # checked now, with the line
        out[code] = facts
    return out


# --- what was sent ------------------------------------------------------------------------------------------

def record(engine, plan: Plan, path: str, by: str) -> int:
    """Keep what a written file holds (after it is complete); returns the file's id (dogcat asm3 forget ID)."""
    now = db.now()
    with db.writing(engine) as conn:
        inserted = conn.execute(insert(db.asm3_files).values(path=path, written_at=now, written_by=by))
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


def forget(engine, file_id: int) -> dict:
    """Take back a file that was never imported: what it held counts as not sent, and the animals it introduced
    as new to ASM3 again (unless a pull has seen them in ASM3 since). Returns the file's row as a dict."""
    f = db.asm3_files
    with db.writing(engine) as conn:
        row = conn.execute(select(f).where(f.c.id == file_id)).first()
        if row is None:
            raise LookupFailed(f"{file_id}: no such ASM3 file (dogcat asm3 files lists them)")
        if row.forgotten_at is None:
            conn.execute(update(f).where(f.c.id == file_id).values(forgotten_at=db.now()))
            introduced = list(conn.scalars(select(db.asm3_sent.c.animal).where(
                db.asm3_sent.c.file == file_id, db.asm3_sent.c.kind == "animal")))
            for chunk in db.chunks(introduced):
                conn.execute(delete(db.asm3_animals).where(and_(db.asm3_animals.c.animal.in_(chunk),
                                                                db.asm3_animals.c.source == "sent")))
        return dict(conn.execute(select(f).where(f.c.id == file_id)).one()._mapping)


def files(engine) -> list[dict]:
    """Every ASM3 file written, oldest first, with how many animals, photos and log entries it held."""
    f, s = db.asm3_files, db.asm3_sent
    counts: dict[tuple[int, str], int] = {}
    with db.reading(engine) as conn:
        for file, kind, n in conn.execute(select(s.c.file, s.c.kind, func.count()).group_by(s.c.file, s.c.kind)):
            counts[(file, kind)] = n
        written = [dict(r._mapping) for r in conn.execute(select(f).order_by(f.c.id))]
    for w in written:
        w.update({kind + "s": counts.get((w["id"], kind), 0) for kind in ("animal", "photo", "log")})
    return written


def sent_history(conn: Connection, codes: Iterable[str]) -> list[dict]:
    """What was sent to ASM3 for these animals: file, when, kind, item; oldest first."""
    f, s = db.asm3_files, db.asm3_sent
    return [dict(r._mapping) for r in conn.execute(
        select(s.c.animal, s.c.kind, s.c.item, f.c.id.label("file"), f.c.path, f.c.written_at, f.c.forgotten_at)
        .select_from(s.join(f, f.c.id == s.c.file)).where(s.c.animal.in_(list(codes))).order_by(f.c.id))]
