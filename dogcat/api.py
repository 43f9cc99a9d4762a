"""dogcat as a Python library: what the command line does, as functions and a class.

    import dogcat

    for result in dogcat.classify(["examples/beagle-crop.jpg"], top_k=3):
        print(result.path, result.status, result.breed, result.confidence)

    with dogcat.Catalog("shelter.db") as catalog:
        summary = catalog.add("intake")          # as `dogcat catalog intake --db shelter.db`
        for animal in catalog.animals():         # as `dogcat animals --db shelter.db`
            print(animal.animal, animal.summary())

``import dogcat`` loads none of this (dogcat/__init__.py imports it on first use), so the command line starts
fast. The models load once per process and set of options, on the first call that needs them.

Layer: the library façade. The command line (dogcat.cli) is a shell over it: each command parses, makes one
call here, and prints.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from sqlalchemy.engine import Engine

from dogcat import animals as grouping
from dogcat import catalog, classifier, corrections, evaluate, export, readmodel, report, settings, similar, teach
from dogcat import db as catdb
from dogcat.asm3 import importfile as asm3
from dogcat.asm3 import plan as asm3_planning
from dogcat.asm3 import pull as asm3_pull
from dogcat.asm3 import records as asm3_records
from dogcat.asm3 import send as asm3_send
from dogcat.asm3 import sent as asm3_sent
from dogcat.asm3 import service as asm3_service
from dogcat.db import leases
from dogcat.evaluate import Evaluation
from dogcat.model import BreedModel
from dogcat.modelcard import ModelCard
from dogcat.status import Judge, load_judge

Photo = Any  # a path (str or Path), a photo's bytes, or a PIL image


@dataclasses.dataclass
class Asm3Synced:
    """What ``dogcat asm3 sync`` did: sends of earlier syncs settled first (their answer never came), the pull
    of ASM3's animals, the plan sent (its warnings), and what ASM3 took of it (None: nothing new to send)."""

    earlier: list[asm3_send.Settled]
    pulled: asm3_pull.Pulled
    plan: asm3_planning.Plan
    sent: asm3_send.Settled | None


@dataclasses.dataclass
class Asm3Export:
    """What ``dogcat export --format asm3`` did: the plan written (its animals, warnings, loose photos not sent,
    corrections to hand to a person), the file's id (None: nothing new, no file), and files of killed exports
    it settled first."""

    plan: asm3_planning.Plan
    file_id: int | None
    settled: list[str]


class Result:
    """One photo's answer. ``to_dict()`` is exactly the record ``dogcat classify --json`` prints."""

    def __init__(self, result: classifier.Result, model_id: str):
        self._result, self.model = result, model_id

    def to_dict(self) -> dict:
        return self._result.to_dict(self.model)

    @property
    def path(self) -> str:
        return self._result.path

    @property
    def status(self) -> str:
        """dog, unsure, not_a_dog or error."""
        return self._result.status

    @property
    def breed(self) -> str | None:
        return self.to_dict()["breed"]

    @property
    def label(self) -> str | None:
        return self.to_dict()["label"]

    @property
    def confidence(self) -> float | None:
        return self.to_dict()["confidence"]

    @property
    def top_k(self) -> list[dict]:
        return self.to_dict()["top_k"]

    @property
    def error(self) -> str | None:
        return self._result.error

    def __repr__(self) -> str:
        return f"Result({self.path!r}, {self.status}, {self.breed or self.error!r})"


def _name(photo: Photo, i: int) -> str:
    if isinstance(photo, (str, Path)):
        return str(photo)
    filename = getattr(photo, "filename", None)  # a PIL image opened from a file knows it
    if filename:
        return str(filename)
    return f"<{'bytes' if isinstance(photo, (bytes, bytearray)) else 'image'} {i}>"


def classify(photos: Photo | Iterable[Photo], top_k: int = 3, *, model: str | Path | None = None,
             detector: str | Path | None = None, device: str = "auto", unsure_below: float | None = None,
             not_dog_below: float | None = None, looks: str = "auto") -> list[Result]:
    """Name the breed in each photo (paths, bytes or PIL images; one photo or several), in order.

    A photo that cannot be read is a Result with status ``error`` and the reason in ``error``: never an
    exception. ``model``/``detector``: exported models (default: the bundled ones); the thresholds default to
    the model's. ``looks``: "auto" (a second look at the mirror image only where the first is unsure: the
    model card's rule), "1" or "2". Raises dogcat.model.ModelError for a model that cannot be used."""
    if isinstance(photos, (str, Path, bytes, bytearray)) or hasattr(photos, "getpixel"):
        photos = [photos]
    photos = list(photos)
    judge = load_judge(str(model) if model else None, str(detector) if detector else None, device, unsure_below,
                       not_dog_below, str(looks))
    judge.start()
    sources = [Path(p) if isinstance(p, str) else bytes(p) if isinstance(p, bytearray) else p for p in photos]
    names = [_name(p, i) for i, p in enumerate(photos)]
    return [Result(r, judge.model.id) for r in classifier.classify(judge, sources, top_k, names=names)]


def evaluation_judge(model: str | Path | None = None, *, resize: str | None = None, unsure_below: float | None = None,
                     not_dog_below: float | None = None, looks: str = "auto") -> Judge:
    """The models ``dogcat evaluate`` measures: loaded afresh, not the cached ones (``resize`` changes how this
    one serves its photos, to measure which resize is best)."""
    judge = Judge.load(model, None, not_dog_below, unsure_below, looks=looks)
    if resize:
        judge.model.preprocessing = dataclasses.replace(judge.model.preprocessing, resize=resize)
    return judge


def evaluate_folder(judge: Judge, data_dir: str | Path, part: str | None = None, on_batch=None) -> Evaluation:
    """Top-1 / top-3 and statuses on a labelled folder (<wnid>-<name>/*.jpg), through the path classify uses."""
    return evaluate.evaluate(judge, Path(data_dir), part, on_batch=on_batch)


def evaluate_not_dogs(judge: Judge, folder: str | Path) -> dict:
    """Photos without a dog: how many the judge flags not_a_dog (n is 0 for a folder without photos)."""
    photos = evaluate.not_dog_photos(Path(folder))
    return evaluate.evaluate_not_dogs(judge, photos) if photos else {"n": 0}


def record_val_metrics(model_path: str | Path, result: Evaluation, measured_by: str) -> Path:
    """Write a --part val evaluation into the model's sidecar (metrics.val); returns the sidecar's path. Read
    again first: what else was written into the card since the model was loaded is kept."""
    return ModelCard.read(Path(model_path)).with_metrics(val={
        "n": result.n, "top1": round(result.top1, 4), "top3": round(result.top3, 4), "measured_by": measured_by}
    ).write()


class Catalog:
    """A shelter's catalog (a SQLite file or any SQLAlchemy URL): everything ``dogcat catalog``, ``export``,
    ``report``, ``animals`` and ``correct`` do, as methods. Use it in a ``with`` block, or call ``close()``.

    ``create=False`` opens an existing catalog only (the read commands: a typo in ``--db`` is then an error,
    not a new empty file); ``readonly=True`` opens it for reading only, which works on read-only media too (a
    write then fails). ``model``, ``detector``, ``device`` and the thresholds are used by :meth:`add`."""

    def __init__(self, db: str | Path = settings.DEFAULT_DB, *, model: str | Path | None = None,
                 detector: str | Path | None = None, device: str = "auto", create: bool = True,
                 unsure_below: float | None = None, not_dog_below: float | None = None, readonly: bool = False,
                 looks: str = "auto"):
        self.db = str(db)
        self._options = (str(model) if model else None, str(detector) if detector else None, device, unsure_below,
                         not_dog_below, str(looks))
        self.url = catdb.url_for(self.db)  # a malformed URL: an error now
        # A catalog that may be created is opened on first use: a run refused for bad usage (add's pattern that
        # matches nothing) leaves no new file behind. One that must exist is opened now: a typo is an error.
        self._engine = None if create and not readonly else catdb.connect(self.db, create=False, readonly=readonly)

    @property
    def engine(self) -> Engine:
        """The open catalog (created, or its schema upgraded, on first use when ``create``)."""
        if self._engine is None:
            self._engine = catdb.connect(self.db, create=True)
        return self._engine

    @property
    def name(self) -> str:
        """The catalog as messages show it: a file's path, or the URL without its password."""
        return catdb.describe(self.url)

    def judge(self) -> Judge:
        """The models :meth:`add` classifies with (loaded on first use)."""
        return load_judge(*self._options)

    def add(self, *folders: str | Path, animals: str | None = None, pattern: str | None = None, top_k: int = 3,
            recursive: bool = True, follow_symlinks: bool = False, batch_size: int = settings.DEFAULT_BATCH,
            lease_s: float = leases.DEFAULT_LEASE_S, progress=None,
            folder_pattern: str | None = None) -> catalog.Summary:
        """Catalog the photos under ``folders`` and group them into animals (``animals``: folder, pattern or
        none; ``folder_pattern``: how folder names hold codes and names; see dogcat.animals); returns the run's
        dogcat.catalog.Summary (``.new``, ``.skipped`` ...; ``.back``: retired animals whose photos came back, in
        care again). Raises GroupingError (exit 2) for a bad pattern,
        before anything is written."""
        how = grouping.Grouping.parse(animals, pattern, [str(f) for f in folders], folder_pattern)
        found = catalog.find(list(folders), how, recursive=recursive, follow_symlinks=follow_symlinks,
                             exclude=catdb.own_files(self.url))
        return catalog.run(self.engine, list(folders), self.judge(), recursive=recursive, top_k=top_k,
                           follow_symlinks=follow_symlinks, batch_size=batch_size, lease_s=lease_s,
                           progress=progress, grouping=how, found=found)

    def records(self, **filters) -> list[dict]:
        """One dict per catalogued file (dogcat.readmodel.records: the --per photo export's records)."""
        return list(readmodel.records(self.engine, **filters))

    def animals(self, *, include_empty: bool = False, **filters) -> list[readmodel.Answer]:
        """Every animal with its answer (dogcat.readmodel.Answer; ``to_dict()`` is the --per animal record).
        ``filters``: breed, min_confidence, model_id, status, as for :meth:`records`."""
        if filters:
            return readmodel.animal_answers(self.engine, include_empty=include_empty, **filters)
        return readmodel.answers(self.engine, include_empty=include_empty)

    def animal(self, code: str) -> readmodel.AnimalDetail:
        """One animal in full (``dogcat animals show``): its answer, each photo's own guess, every correction
        of it and its photos, the ASM3 files that held it. Raises readmodel.NoSuchAnimal (exit 1)."""
        return readmodel.animal_detail(self.engine, code)

    def merge(self, into: str, other: str) -> int:
        """Animal ``other``'s photos go to ``into`` (``dogcat animals merge``); returns the files moved."""
        with catdb.writing(self.engine) as conn:
            return grouping.merge(conn, into, other)

    def move(self, photo: str, to: str, new_name: str | None = None) -> list[str]:
        """One photo (path or SHA-256) to animal ``to``, a new one named ``new_name`` if given."""
        with catdb.writing(self.engine) as conn:
            return grouping.move(conn, photo, to, new_name)

    def prune(self, dry_run: bool = False, allow_missing: bool = False) -> dict[str, list[str]]:
        """Retire the animals whose photos are all gone from disk (``dogcat animals prune``): code → its paths.
        Raises dogcat.animals.FolderMissing (exit 1, nothing retired) when their folder is missing or empty (an
        unplugged drive, a renamed intake folder), unless ``allow_missing``."""
        with catdb.writing(self.engine) as conn:
            return grouping.prune(conn, dry_run, allow_missing)

    def restore(self, code: str) -> tuple[str, str | None]:
        """Bring a retired animal back into care (``dogcat animals restore``): (its code, when it had been
        retired, or None when it was in care)."""
        with catdb.writing(self.engine) as conn:
            return grouping.restore(conn, code)

    def correct(self, target: str, change: corrections.Change, by: str | None = None) -> tuple[str, str]:
        """Record what staff say of an animal or photo: (what happened, the target as people read it)."""
        return corrections.correct(self.engine, target, change, corrections.who(by))

    def correct_from(self, csv_path: str | Path, by: str | None = None) -> dict[str, int]:
        """Apply a CSV's corrected_breed column (``dogcat correct --from``): counts corrected/unchanged/blank."""
        return corrections.from_csv(self.engine, Path(csv_path), corrections.who(by))

    def staff_agreement(self) -> dict:
        """The model's answers against every staff correction in force (``dogcat evaluate --db``)."""
        return corrections.evaluate(self.engine)

    def export(self, stream: IO[str], fmt: str = "csv", *, per: str = "photo", **filters) -> int:
        """Write the catalog to ``stream`` as CSV or JSON Lines (``dogcat export``), per photo or per animal;
        returns how many records were written."""
        if per == "photo":
            return export.write(readmodel.records(self.engine, **filters), fmt, stream)
        return export.write_animals(readmodel.animal_answers(self.engine, **filters), fmt, stream)

    def asm3_plan(self, *, resend: bool = False, age: str | None = None, dob: str | None = None,
                  animals_csv: str | Path | None = None, codes: list[str] | None = None) -> asm3_planning.Plan:
        """What an ASM3 import file would hold now (dogcat.asm3_planning.plan): only what ASM3 has not been sent,
        or everything with ``resend``. Raises UsageError when an animal new to ASM3 has no age."""
        facts = asm3_planning.read_facts(animals_csv) if animals_csv is not None else None
        return asm3_planning.plan(self.engine, resend=resend, age=age, dob=dob, facts=facts, codes=codes)

    def asm3_export(self, output: Path | None, *, resend: bool = False, age: str | None = None,
                    dob: str | None = None, animals_csv: str | Path | None = None, images: bool = True,
                    by: str | None = None, stdout: IO[bytes] | None = None,
                    on_wait: Callable[[str], None] | None = None) -> Asm3Export:
        """``dogcat export --format asm3``: one export at a time (a second waits, then writes only what the first
        did not), what ASM3 has not been sent yet written to ``output`` (None: ``stdout``) and recorded so that a
        kill at any step leaves the file and the record agreeing (dogcat.asm3.sent). No file when there is
        nothing new. Raises UsageError when an animal new to ASM3 has no age (nothing written)."""
        facts = asm3_planning.read_facts(animals_csv) if animals_csv is not None else None
        with asm3_sent.exclusive(self.engine, on_wait) as settled:
            plan = asm3_planning.plan(self.engine, resend=resend, age=age, dob=dob, facts=facts)
            asm3_sent.checkpoint("planned")
            pictures = asm3.attach_images(plan, asm3.image_for if images else None)
            plan.drop_empty()
            file_id = None
            if plan.animals:  # nothing new: no file at all (ASM3's import fails on one without rows)
                content = asm3.content(plan, pictures)
                file_id = asm3_sent.write_file(self.engine, plan, content, output, corrections.who(by), stdout)
        return Asm3Export(plan, file_id, settled)

    def asm3_handoffs(self) -> list[asm3_planning.Handoff]:
        """Staff corrections a person must still make in ASM3 (its import cannot change a breed)."""
        return asm3_planning.handoffs(self.engine)

    def asm3_pull(self, path: str | Path, *, day_first: bool | None = None) -> asm3_pull.Pulled:
        """Read ASM3's animal export (``dogcat asm3 pull``); the first pull of a new shelter creates the catalog
        (a file that cannot be read creates nothing). ``day_first``: whether its DD/MM/YYYY-or-MM/DD/YYYY dates
        are day first; None: told from the file's own dates (ShelterFileError when they cannot tell)."""
        shelter = asm3_records.read_animals(path, day_first=day_first)
        return asm3_pull.pull(self.engine, shelter)

    def asm3_sync(self, url: str, *, username: str | None = None, account: str | None = None,
                  environ: dict[str, str] | None = None, allow_http: bool = False,
                  timeout_s: float = asm3_service.DEFAULT_TIMEOUT_S, age: str | None = None, dob: str | None = None,
                  animals_csv: str | Path | None = None, by: str | None = None,
                  on_wait: Callable[[str], None] | None = None) -> Asm3Synced:
        """``dogcat asm3 sync``: over ASM3's service API, settle earlier sends whose answer never came, pull
        ASM3's animals (as :meth:`asm3_pull` does its export), then send what ASM3 has not taken yet (the rows
        ``export --format asm3`` would write) and keep as sent only what ASM3's answer says it took
        (dogcat.asm3.send). Raises asm3_service.ServiceError (exit 1) when ASM3 cannot be used, UsageError when an
        animal new to ASM3 has no age, for a bad URL and for missing credentials (DOGCAT_ASM3_PASSWORD with
        ``username``, or DOGCAT_ASM3_KEY, read from ``environ``, default os.environ): nothing sent."""
        auth = asm3_service.credentials(username, dict(os.environ if environ is None else environ))
        service = asm3_service.Service(url, auth, account, allow_http=allow_http, timeout_s=timeout_s)
        facts = asm3_planning.read_facts(animals_csv) if animals_csv is not None else None
        asm3_planning.estimated_age(age, dob)  # bad usage before ASM3 is asked
        # One export or sync at a time, as export does (a file export killed while writing settled first).
        with asm3_sent.exclusive(self.engine, on_wait):
            remote = service.shelter_animals()
            earlier = asm3_send.settle(self.engine, remote)
            pulled = asm3_pull.pull(self.engine, [r.animal for r in remote])
            plan = asm3_planning.plan(self.engine, age=age, dob=dob, facts=facts)
            pictures = asm3.attach_images(plan, asm3.image_for)
            plan.drop_empty()
            rows = list(asm3.rows(plan, pictures))
            if not rows:
                return Asm3Synced(earlier, pulled, plan, None)
            content = io.StringIO(newline="")
            asm3.write(iter(rows), content)
            sent = asm3_send.send(self.engine, service, plan, rows, pictures, content.getvalue().encode("utf-8"),
                                  corrections.who(by), asm3_send.media_high(remote))
        return Asm3Synced(earlier, pulled, plan, sent)

    def asm3_files(self) -> list[dict]:
        """The ASM3 import files written, with what each held (``dogcat asm3 files``)."""
        return asm3_sent.files(self.engine)

    def asm3_forget(self, file_id: int) -> dict:
        """Take back an ASM3 file that was never imported (``dogcat asm3 forget ID``), once no export is writing
        one and what a killed export left is settled."""
        with asm3_sent.exclusive(self.engine):  # settles what a killed export left first
            return asm3_sent.forget(self.engine, file_id)

    def teach(self, output: str | Path, *, model: str | Path | None = None, min_photos: int = teach.MIN_PHOTOS,
              progress=None, anyway: bool = False) -> teach.Taught:
        """A shelter model (``dogcat teach``): ``model`` (default: the bundled one) plus the staff's own breed
        words, written to ``output`` (an .onnx and its card) as a new head on the same backbone. ``progress(done,
        total, what)`` is called while features of photos catalogued before dogcat kept them are computed, and
        while many words are fitted. Raises teach.TeachError when there is nothing to teach, or a word takes more
        than teach.MAX_TAKEN of other breeds' photos (unless ``anyway``)."""
        base = BreedModel(model or None, self._options[2])
        return teach.teach(self.engine, base, Path(output), min_photos=min_photos,
                           catalog=catdb.describe_db(self.db), progress=progress, anyway=anyway)

    def similar(self, query: str | Path, *, top: int = 5, retired: bool = False,
                model: str | Path | None = None) -> list[similar.Match]:
        """The animals that look most like ``query`` (``dogcat similar``), best first: a photo's path (catalogued
        or not), else an animal's code. ``retired``: animals whose photos are gone are compared too."""
        base = BreedModel(model or None, self._options[2])
        if Path(query).is_file():
            return similar.by_photo(self.engine, base, query, top, retired, answers=True)
        try:
            return similar.by_animal(self.engine, base.split_backbone("dogcat similar"), str(query), top, retired,
                                     answers=True)
        except readmodel.NoSuchAnimal:
            raise readmodel.NoSuchAnimal(f"{query}: no such photo, nor an animal code in the catalog") from None

    def report(self, *, title: str | None = None, model_id: str | None = None, progress=None) -> tuple[str, int]:
        """The HTML page of ``dogcat report`` and the number of files it shows."""
        records = list(readmodel.records(self.engine, model_id=model_id, probabilities=True))
        # Each photo's own guess, shown under it where staff's word covers it.
        covered = {r["path"] for r in records if r["source"] == "correction"}
        guesses = {r["path"]: r for r in readmodel.records(self.engine, model_id=model_id, corrected=False)
                   if r["path"] in covered} if covered else {}
        generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        page = report.render(records, title=title or f"dogcat: {self.name}", source=self.name, generated=generated,
                             animals=readmodel.answers(self.engine, records), progress=progress, guesses=guesses)
        return page, len(records)

    def close(self):
        if self._engine is not None:
            self._engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
