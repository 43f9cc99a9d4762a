"""``dogcat asm3 pull``: the breeds staff set in ASM3, read from its animal export, taken into the catalog as
corrections, where dogcat's side did not change since the last pull (who changed it last wins; both: a
conflict, listed).

Layer: ASM3 (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from dogcat import db, readmodel
from dogcat.asm3 import records as asm3_records
from dogcat.asm3.plan import SOURCE, breed_words, breeds_key, what_was_sent
from dogcat.corrections import Change, apply
from dogcat.errors import DogcatError


class LookupFailed(DogcatError):
    """An ASM3 file id the catalog does not have; one line."""


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


def _asm3_change(animal: asm3_records.ShelterAnimal) -> Change | None:
    first = breed_words(animal.breed1)
    if first is None:
        return None
    second = breed_words(animal.breed2) if animal.breed2 and animal.breed2 != animal.breed1 else None
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
    """Take the animals of ASM3's animal export (dogcat.asm3.records.read_animals, which refuses a malformed
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
        sent = what_was_sent(conn)
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
