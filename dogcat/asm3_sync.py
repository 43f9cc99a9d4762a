"""Living with a shelter's records in Animal Shelter Manager 3 (ASM3): read what it holds, send only what is new.

- :func:`pull` takes ASM3's own animal export (read by dogcat.asm3_records). For each animal the catalog also
  has (same code, any case): the shelter's name, date of birth and sex become the animal's; ASM3's breeds are
  what staff say the dog is, kept as a correction with source ``asm3``, when ASM3 changed them since the last
  pull and dogcat did not (a staff correction made in dogcat since stays; both changed, to different words, is
  a :class:`Conflict`, listed, and neither changes; asm3_animals keeps what the last pull saw, and when). The
  animal is then known to ASM3: an export never sends its staff fields again. Codes only in the file are
  reported.
- :func:`plan` decides what an import file holds. An animal new to ASM3: a full row (code, name, date of birth
  or estimated age, sex where known, species, type, breeds) with its photos. An animal ASM3 has: only photos
  never sent (code and the name exactly as ASM3 has them, and the image), and dogcat's answer as a dated log
  entry when it changed since it was last sent. Never comments, description, date of birth, age, hidden details
  or breeds for an animal ASM3 has: its import overwrites every non-empty field it merges
  (docs/asm3-import-notes.md has what was measured).
  A photo ASM3 has (by SHA-256) is never sent under another animal; a loose photo (no folder) is no animal;
  a staff correction ASM3's import cannot take is listed for a person (:class:`Handoff`).
- :func:`record` keeps what ASM3 was handed (tables asm3_files, asm3_sent, asm3_animals); :func:`exclusive`,
  :func:`settle`, :func:`write_file` make one export at a time, and a file and its record that agree after a
  kill at any step; :func:`forget` takes a file back that was never imported, so that the next export writes
  what it alone sent again. A transport other than a file (ASM3's service API) plans the same way and records
  exactly what ASM3 took.

Layer: a job. It reads the read model (dogcat.readmodel) and writes the store; dogcat.asm3 writes the CSV.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.engine import Connection

from dogcat import asm3_records, breeds, claims, db, naming, pathkeys, readmodel
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
class Conflict:
    """An animal whose breed both sides changed since the last pull, to different words: ASM3's (as its export
    has them) and dogcat's (a staff correction: who and when). A pull changes neither; the conflict is listed
    again on every pull until the two agree, or staff undo dogcat's correction (ASM3's word is then taken)."""

    code: str
    asm3: str  # "Beagle" or "Beagle / Mixed Breed"
    asm3_since: str | None  # when the last pull saw ASM3's previous breed (None: this is the first pull of it)
    dogcat: str  # "Labrador Retriever (staff)"
    by: str
    at: str

    def to_dict(self) -> dict:
        return {"code": self.code, "asm3": self.asm3, "asm3_changed_since": self.asm3_since,
                "dogcat": self.dogcat, "by": self.by, "at": self.at}

    def line(self) -> str:
        """One line for people."""
        since = f"changed since the pull of {self.asm3_since[:16]}" if self.asm3_since else "never pulled before"
        return (f"{self.code}: ASM3 says {self.asm3} ({since}), dogcat says {self.dogcat} ({self.by}, "
                f"{self.at[:16]}); neither changed")


@dataclass
class Pulled:
    """What a pull did: animals matched (and which of them are retired: ``dogcat animals prune``), each changed
    field of each animal as [old, new] (``breed`` for a breed taken from ASM3), breeds taken as corrections,
    conflicts (both sides changed the breed) and the codes in the file that the catalog does not have
    (reported, never invented)."""

    matched: list[str] = field(default_factory=list)
    changed: dict[str, dict[str, list]] = field(default_factory=dict)
    corrected: list[str] = field(default_factory=list)
    only_in_file: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"matched": self.matched, "changed": self.changed, "corrected": self.corrected,
                "only_in_asm3": self.only_in_file, "retired": self.retired,
                "conflicts": [c.to_dict() for c in self.conflicts]}


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


def _said_in_dogcat(conn: Connection, code: str, since: str | None) -> readmodel.Correction | None:
    """The staff's correction of this animal made in dogcat (not read from ASM3) that is in force and newer than
    ``since`` (the last pull that saw the animal; None: any)."""
    row = db.correction_in_force(conn, code)
    if row is None:
        return None
    said = readmodel.correction_of(row)
    if said.source == SOURCE or (since is not None and said.at <= since):
        return None
    return said


def pull(engine, shelter: Sequence[asm3_records.ShelterAnimal]) -> Pulled:
    """Take the animals of ASM3's animal export (dogcat.asm3_records.read_animals, which refuses a malformed
    file, naming the line, before anything is opened) into the catalog (see the module's docstring), in one
    transaction. Pulling the same file again changes nothing.

    A breed: whoever changed it last since the last pull wins. ASM3's breed is "changed" when it differs from
    what the last pull saw (or dogcat sent, for an animal it made in ASM3), dogcat's when a staff correction
    made in dogcat is in force and newer than that pull. Only ASM3 changed: its breed is taken (a correction
    with source asm3). Only dogcat: it stays. Both, to different words: a :class:`Conflict`, and neither
    changes."""
    out = Pulled()
    before_answers = {a.animal: a.summary() + (" (model)" if a.source == "model" else "")
                      for a in readmodel.answers(engine)}
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
            if row.retired_at is not None:
                out.retired.append(row.code)
            facts = {"name": animal.name, "dob": animal.dob.isoformat() if animal.dob else row.dob,
                     "sex": animal.sex or row.sex}
            changed = {k: [getattr(row, k), v] for k, v in facts.items() if v != getattr(row, k)}
            if changed:
                conn.execute(update(db.animals).where(db.animals.c.code == row.code).values(**facts))
                out.changed[row.code] = changed
            before = conn.execute(select(db.asm3_animals).where(db.asm3_animals.c.animal == row.code)).first()
            seen = breeds_key(before.breed1, before.breed2) if before is not None else None
            pulled = breeds_key(animal.breed1, animal.breed2)
            asm3_changed = seen is None or pulled.casefold() != seen.casefold()
            since = (before.updated_at or None) if before is not None else None
            staff = _said_in_dogcat(conn, row.code, since)
            change = _asm3_change(animal)
            conflict = None
            if change is not None and asm3_changed and staff is not None and staff.what[0] == "dog" and \
                    breeds_key(*staff.asm3_breeds()).casefold() != pulled.casefold():
                conflict = Conflict(row.code, pulled, since, " / ".join(staff.names) + " (staff)", staff.by, staff.at)
            elif change is not None and asm3_changed and staff is not None and staff.what[0] != "dog":
                conflict = Conflict(row.code, pulled, since, "not a dog (staff)", staff.by, staff.at)
            # What the last pull saw, and when: ASM3's breeds now, and this pull's time when either side changed
            # (so that "newer than the last pull" stays true); in a conflict what it saw before, and that time
            # (no breeds and an empty time for an animal seen the first time), so the conflict stays listed.
            known = {"asm3_code": animal.code, "name": animal.name,
                     "breed1": (before.breed1 if before else None) if conflict else animal.breed1,
                     "breed2": (before.breed2 if before else None) if conflict else animal.breed2}
            if before is None or any(getattr(before, k) != v for k, v in known.items()) or \
                    before.source != "pull" or (staff is not None and not conflict):
                db.upsert(conn, db.asm3_animals, [{"animal": row.code, **known, "source": "pull",
                                                   "updated_at": (since or "") if conflict else now}])
            if conflict is not None:
                out.conflicts.append(conflict)
                continue
            if change is None or not asm3_changed or staff is not None:
                continue  # ASM3 did not change it since the last pull (or agrees with staff): dogcat's word stays
            if _last_pulled_breeds(conn, row.code) == change.what:
                continue
            if sent.last.get((row.code, "animal")) == breeds_key(animal.breed1, animal.breed2):
                continue  # dogcat's own answer, come back: not something staff said
            if apply(conn, "animal", row.code, change, "ASM3") == "corrected":
                out.corrected.append(row.code)
                out.changed.setdefault(row.code, {})["breed"] = [before_answers.get(row.code), pulled]
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


@dataclass(frozen=True)
class Handoff:
    """A staff correction ASM3's import cannot take (it never changes the breed of an animal it has): ASM3 still
    holds the breeds dogcat sent (its guess), staff said otherwise in dogcat. A person changes it in ASM3; a
    pull that reads the staff's breeds back ends it."""

    animal: str
    asm3_code: str
    in_asm3: str  # ASM3's breeds now, as dogcat sent them: "Beagle" or "Beagle / Pug"
    staff: str  # the staff's, in ASM3's spelling
    by: str
    at: str

    def line(self) -> str:
        return (f"{self.animal}: ASM3 still says {self.in_asm3} (dogcat's guess, sent before); staff said "
                f"{self.staff} ({self.by}, {self.at[:10]}). ASM3's import never changes a breed: in ASM3 open "
                f"animal {self.asm3_code}, Details, Breed, and set {self.staff} (the next dogcat asm3 pull sees it)")

    def to_dict(self) -> dict:
        return {"animal": self.animal, "asm3_code": self.asm3_code, "in_asm3": self.in_asm3, "staff": self.staff,
                "by": self.by, "at": self.at}


LOOSE = "no animal: put it in a folder or `dogcat animals move`"


@dataclass
class Plan:
    animals: list[Outgoing]
    warnings: list[str]
    resend: bool  # --all: everything, whatever was sent before (never a staff field of an animal ASM3 has)
    not_sent: list[str] = field(default_factory=list)  # "PATH: why" of photos left out on purpose (loose ones)
    handoff: list[Handoff] = field(default_factory=list)  # corrections a person must make in ASM3

    @property
    def photos(self) -> int:
        return sum(len(a.photos) for a in self.animals)

    @property
    def new(self) -> int:
        return sum(a.new for a in self.animals)

    @property
    def logs(self) -> int:
        return sum(bool(a.log) for a in self.animals)

    def drop_empty(self):
        """Leave out animals ASM3 has with nothing left to send (their photos could not be attached): the file
        gets no row for them, so the counts said and recorded are the file's."""
        self.animals = [a for a in self.animals if a.new or a.photos or a.log]


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
    """What the files not taken back sent, per (animal, kind): every item, and the newest file's; and per photo
    content, the animal it went to first (a photo ASM3 has is never sent under another animal)."""

    items: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    last: dict[tuple[str, str], str] = field(default_factory=dict)
    photo_animal: dict[str, str] = field(default_factory=dict)


def _sent(conn: Connection) -> Sent:
    """Every ASM3 file not taken back, read once, oldest first: photos sent, and the breeds of the last full row
    and the answer last logged for each animal."""
    f, s = db.asm3_files, db.asm3_sent
    out = Sent()
    for r in conn.execute(select(s.c.animal, s.c.kind, s.c.item).select_from(s.join(f, f.c.id == s.c.file))
                          .where(f.c.forgotten_at.is_(None)).order_by(f.c.id)):
        out.items.setdefault((r.animal, r.kind), set()).add(r.item)
        out.last[(r.animal, r.kind)] = r.item
        if r.kind == "photo":
            out.photo_animal.setdefault(r.item, r.animal)
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


def _asm3_spelling(guess: dict) -> str:
    """A guess's breed as ASM3's breed list spells it ("English Springer Spaniel", not the model's "English
    Springer"), so that staff find it in ASM3; a label ASM3 has no breed for keeps the model's name."""
    name, model = breeds.asm3_name(guess.get("label")), guess["breed"]
    general = set(name.casefold().replace("-", " ").split()) <= set(model.casefold().replace("-", " ").split())
    return model if name == breeds.MIXED_BREED or general else name  # "Standard Poodle", not ASM3's "Poodle"


def log_text(answer: readmodel.Answer) -> str:
    """dogcat's answer for ASM3's log, one line: 'dogcat: Beagle 97% (then Basset 2%), from 3 photos, model …' or
    'dogcat: staff said Beagle / Pug (alice, 2026-12-04)'."""
    if answer.source == "correction" and answer.correction is not None:
        c = answer.correction
        words = breeds_key(*c.asm3_breeds()) if c.status == "dog" else "not a dog"
        return naming.one_line(f"dogcat: staff said {words} ({c.by}, {c.at[:10]}).")

    def said(g: dict) -> str:
        return f"{_asm3_spelling(g)} {percent(g.get('confidence'), '?')}"

    if answer.mix:
        guess = "mix? " + ", ".join(said(g) for g in answer.top_k)
    else:
        best, rest = answer.top_k[0], answer.top_k[1:]
        then = ", ".join(said(g) for g in rest)
        guess = ("probably " if answer.status == "unsure" else "") + (  # unsure, no second breed to speak of
            said(best) + (f" (then {then})" if then else ""))
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


def _loose(row, grouped: set[str]) -> bool:
    """A photo that is an animal only because no folder holds it (intake/IMG_0042.jpg): its animal's key is the
    photo's own, and neither staff (animals move) nor --animals none made it one on purpose."""
    if row is None:
        return True
    return str(row.key or "").startswith(("photo:", "file:")) and not grouped & {db.STAFF, "none"}


def _handoff(a: readmodel.Answer, k, sent: Sent) -> Handoff | None:
    """The staff correction of an animal ASM3 has that ASM3's import cannot take (see Handoff), or None."""
    c = a.correction
    if a.source != "correction" or c is None or c.source == SOURCE or c.status != "dog":
        return None
    staff, in_asm3 = breeds_key(*c.asm3_breeds()), breeds_key(k.breed1, k.breed2)
    if staff.casefold() == in_asm3.casefold() or sent.last.get((a.animal, "animal")) != in_asm3:
        return None  # ASM3 took it, or ASM3's breed is the staff's own there (a pull's matter, not a hand-off)
    return Handoff(a.animal, k.asm3_code, in_asm3, staff, c.by, c.at)


def handoffs(engine) -> list[Handoff]:
    """Every staff correction a person must still make in ASM3 (``dogcat asm3 files`` lists them)."""
    answers = readmodel.answers(engine)
    with db.reading(engine) as conn:
        known = {r.animal: r for r in conn.execute(select(db.asm3_animals))}
        sent = _sent(conn)
    return [h for a in answers if a.animal in known and (h := _handoff(a, known[a.animal], sent)) is not None]


def plan(engine, *, resend: bool = False, age: str | None = None, dob: str | None = None,
         facts: dict[str, ShelterFacts] | None = None, codes: Sequence[str] | None = None) -> Plan:
    """What an ASM3 import file holds now (see the module's docstring). ``resend`` (--all): every photo and
    answer again, as if nothing had been sent, but still never a staff field of an animal ASM3 has, and never a
    photo under another animal than the one ASM3 got it under. ``age``/``dob``: the default for new animals
    with no age of their own (from a pull or ``facts``, the --animals-csv rows by code). Raises UsageError,
    listing them, when a new animal has no age at all: ASM3 would refuse its row."""
    default = estimated_age(age, dob)
    facts = {k.casefold(): v for k, v in (facts or {}).items()}
    answers = readmodel.answers(engine)
    with db.reading(engine) as conn:
        known = {r.animal: r for r in conn.execute(select(db.asm3_animals))}
        shelter = {r.code: r for r in conn.execute(select(db.animals))}
        grouped: dict[str, set[str]] = {}
        for r in conn.execute(select(db.animal_files.c.animal, db.animal_files.c.grouped_by).distinct()):
            grouped.setdefault(r.animal, set()).add(r.grouped_by)
        sent = _sent(conn)
    wanted = {c.casefold() for c in codes} if codes else None
    out, warnings, ageless, not_sent, handoff = [], [], [], [], []
    for a in answers:
        if a.status in NOT_ANIMALS or not a.top_k or (wanted is not None and a.animal.casefold() not in wanted):
            continue
        row = shelter.get(a.animal)
        is_known = a.animal in known
        if not is_known and _loose(row, grouped.get(a.animal, set())):
            not_sent += [f"{p['path']}: {LOOSE}" for p in a.photos]
            continue
        attach = photos_to_attach(a)
        present = [p for p in attach if pathkeys.exists(p["path"])]
        if attach and not present:
            warnings.append(f"{a.animal}: every photo is gone from disk; left out (dogcat animals prune retires it)")
            continue
        if len(present) < len(attach):
            warnings.append(f"{a.animal}: {len(attach) - len(present)} photo(s) gone from disk, not attached")
        theirs = [p for p in present if sent.photo_animal.get(p["sha256"], a.animal) != a.animal]
        elsewhere = sorted({sent.photo_animal[p["sha256"]] for p in theirs})
        if resend:
            photos = [p for p in present if sent.photo_animal.get(p["sha256"], a.animal) == a.animal]
        else:
            photos = [p for p in present if p["sha256"] not in sent.photo_animal]
        if theirs and (is_known or photos):
            warnings.append(f"{a.animal}: {len(theirs)} photo(s) ASM3 has under {', '.join(elsewhere)} already; "
                            "not sent again")
        key = a.summary()
        log = None
        if not (a.source == "correction" and a.correction and a.correction.source == SOURCE) and (
                resend or sent.last.get((a.animal, "log")) != key):
            log = log_text(a)
        if is_known:
            k = known[a.animal]
            h = _handoff(a, k, sent)
            if h is not None:
                handoff.append(h)
            if photos or log:
                out.append(Outgoing(a, k.asm3_code, k.name, False, photos, log, key if log else None))
            continue
        if present and not photos:  # a renamed folder, a moved photo: ASM3 has this dog under another animal
            warnings.append(f"{a.animal}: not made a new ASM3 animal: every photo of it is ASM3's "
                            f"{', '.join(elsewhere)}'s (dogcat animals merge, or a new photo, settles it)")
            continue
        given = facts.get(a.animal.casefold(), ShelterFacts())
        name = given.name or a.name
        born = (estimated_age(given.age, given.dob, f"{a.animal}: age") if (given.age or given.dob) else
                {"ANIMALDOB": row.dob, "ANIMALAGE": ""} if row is not None and row.dob else
                estimated_age(row.age, None) if row is not None and row.age else default)
        if not born:
            ageless.append(a.animal)
        sex = given.sex or (row.sex if row is not None else None) or ""
        out.append(Outgoing(a, a.animal, naming.one_line(name) or naming.UNNAMED, True, photos, log, key,
                            born, sex, _breeds_of(a)))
    if ageless:
        shown = ", ".join(ageless[:20]) + (f" and {len(ageless) - 20} more" if len(ageless) > 20 else "")
        raise UsageError(f"ASM3 creates an animal only with a date of birth or an estimated age, and "
                         f"{len(ageless)} animal(s) new to ASM3 have none: {shown}. Give them in --animals-csv "
                         "FILE (code,name,dob,age,sex), or a default with --age YEARS or --dob YYYY-MM-DD; nothing "
                         "was written")
    return Plan(out, warnings, resend, not_sent, handoff)


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
    """Hold the catalog's ASM3 export claim (dogcat.claims: a lease renewed while alive, ended at once when its
    process on this machine is gone): a second export, on this machine or another sharing a PostgreSQL
    catalog, waits here until the first has recorded its file, and then plans only what that one did not send.
    Whoever holds it first settles what a killed export left (:func:`settle`; its lines are what this yields).
    ``on_wait`` is told once that it waits. Raises DatabaseError after ``wait_s``."""
    owner = claims.new_owner()
    key, kind = EXPORT_CLAIM
    started, told = time.monotonic(), False
    while True:
        with db.writing(engine) as conn:
            claims.expire_dead_local(conn)
            if claims.claim(conn, [key], kind, owner, EXPORT_LEASE_S):
                break
        if not told and on_wait is not None:
            on_wait(f"another dogcat export is writing an ASM3 file; waiting for it (up to {wait_s:.0f} s)")
            told = True
        if time.monotonic() - started > wait_s:
            raise db.DatabaseError(f"another dogcat export held the ASM3 export for more than {wait_s:.0f} s; "
                                   "nothing written")
        time.sleep(0.25)
    try:
        with claims.Heartbeat(engine, owner, EXPORT_LEASE_S):
            yield settle(engine)
    finally:
        with db.writing(engine) as conn:
            claims.release_all(conn, owner)


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
    """:func:`record` inside the caller's transaction, with a state (dogcat.asm3_send: "sending", from just
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
    """Hand ``content`` (the CSV dogcat.asm3 made of ``plan``) out and record it, so that a kill at any step
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
