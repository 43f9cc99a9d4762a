"""What an ASM3 export sends: each animal ASM3 has not been sent, its photos and log entry, what staff must
change by hand in ASM3 (the hand-off list), and what is not sent and why.

Layer: ASM3 (docs/architecture.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Connection

from dogcat import breeds, db, naming, pathkeys, readmodel
from dogcat.corrections import read_table
from dogcat.decision import status_of
from dogcat.errors import UsageError
from dogcat.text import percent

SOURCE = "asm3"  # corrections.source of a breed read from ASM3
LOG_TYPE = "History"  # ASM3's log type for dogcat's answers (matched by name; an unknown one is lost)
NOT_ANIMALS = ("not_a_dog", "error")  # answers that make no ASM3 animal


def breed_words(name: str | None) -> breeds.BreedWords | None:
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


def what_was_sent(conn: Connection) -> Sent:
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
    # Strictly fewer words: ASM3's breed is wider than the model's ("Poodle" for "Standard Poodle"); the same
    # words ("Shih Tzu" for the model's "Shih-Tzu") are ASM3's spelling, which staff search for.
    general = set(name.casefold().replace("-", " ").split()) < set(model.casefold().replace("-", " ").split())
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
        sent = what_was_sent(conn)
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
        sent = what_was_sent(conn)
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
