"""The catalog's tables (SQLAlchemy Core), its schema version and the ``catalog`` view's query.

Layer: the store (docs/architecture.md).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    and_,
    case,
    func,
    null,
    select,
)

if TYPE_CHECKING:
    pass


SCHEMA_VERSION = 7

metadata = MetaData()

schema_version = Table(
    "schema_version", metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_at", Text, nullable=False),
    Column("dogcat", Text, nullable=False),  # the dogcat release that applied it
)

models = Table(
    "models", metadata,
    Column("id", Text, primary_key=True),  # name@sha256-prefix, from the model's sidecar
    Column("name", Text),
    Column("sha256", Text),
    Column("created", Text),
    Column("breeds", Integer),
    Column("first_used_at", Text, nullable=False),
    # Schema 3, from the sidecar: the labels in output order (JSON), what predictions.probabilities index,
    # and the decision block (JSON: thresholds), so that animals are judged as their photos were.
    Column("labels", Text),
    Column("decision", Text),
)

photos = Table(
    "photos", metadata,
    Column("sha256", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("format", Text),
    Column("width", Integer),
    Column("height", Integer),
    Column("error", Text),  # set when the bytes cannot be decoded: then there is no prediction
    Column("first_seen_at", Text, nullable=False),
)

files = Table(
    "files", metadata,
    Column("path", Text, primary_key=True),  # absolute, as dogcat.pathkeys writes it (odd bytes as \\xNN)
    Column("sha256", String(64), ForeignKey("photos.sha256")),  # NULL when the file could not be read
    Column("size", BigInteger),
    Column("mtime_ns", BigInteger),  # exact, to tell an unchanged file without reading it
    Column("mtime", Text),  # the same, for people
    Column("error", Text),  # set when the file could not be read at all
    Column("catalogued_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
)
Index("files_sha256", files.c.sha256)

predictions = Table(
    "predictions", metadata,
    Column("sha256", String(64), ForeignKey("photos.sha256"), primary_key=True),
    Column("model_id", Text, ForeignKey("models.id"), primary_key=True),
    Column("label", Text, nullable=False),
    Column("breed", Text, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("top_k", Text, nullable=False),  # JSON: [{"label", "breed", "confidence"}, ...]
    Column("catalogued_at", Text, nullable=False),
    # Schema 2: what dogcat concluded (dog / unsure / not_a_dog; NULL for rows from schema 1 until the next run
    # fills it in), the dog detector's dog probability and, for not_a_dog, what the photo looks like.
    # label/breed/confidence above stay the breed model's raw best guess; the catalog view hides them for
    # not_a_dog.
    Column("status", Text),
    Column("dog_probability", Float),
    Column("looks_like", Text),
    Column("detector_id", Text),
    # Schema 3: the breed model's whole distribution (JSON list in the model's label order), so that an
    # animal's photos can be fused into one answer (dogcat.fusion). NULL for rows written before schema 3.
    Column("probabilities", Text),
)

# Schema 3: animals. A shelter works in animals, each with several photos; dogcat groups files into animals
# (dogcat.animals) and staff can regroup them and correct answers.
animals = Table(
    "animals", metadata,
    Column("code", Text, primary_key=True),  # ANIMALCODE in ASM3: stable once given
    Column("name", Text, nullable=False),
    # What made it: "folder:/abs/path", "pattern:CODE", "photo:SHA256" (or "file:/abs/path" for a file that
    # could not be read); NULL for one staff made. Unique, so two runs grouping the same folder agree.
    Column("key", Text, unique=True),
    Column("merged_into", Text),  # set by `dogcat animals merge`: its photos went to that animal
    Column("created_at", Text, nullable=False),
    # Schema 4 (issue 23): what the shelter knows of the animal, from `dogcat asm3 pull` or --animals-csv: date
    # of birth (ISO), else an estimated age in years, and sex (Male / Female / Unknown). NULL: not known.
    Column("dob", Text),
    Column("age", Text),
    Column("sex", Text),
    # Set by `dogcat animals prune`: every photo of the animal is gone from disk; kept, with its history, but no
    # longer listed or exported.
    Column("retired_at", Text),
)

animal_files = Table(
    "animal_files", metadata,
    Column("path", Text, ForeignKey("files.path"), primary_key=True),  # a file belongs to one animal
    Column("animal", Text, ForeignKey("animals.code"), nullable=False),
    # folder / pattern / none: the catalog grouping that put it there; staff: `dogcat animals move/merge`
    # (a later catalog run never moves it back); upgrade: the schema 2 → 3 migration (one animal per photo).
    Column("grouped_by", Text, nullable=False),
    Column("grouped_at", Text, nullable=False),
)
Index("animal_files_animal", animal_files.c.animal)

corrections = Table(
    "corrections", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("target_kind", Text, nullable=False),  # "animal" (target: its code) or "photo" (target: SHA-256)
    Column("target", Text, nullable=False),
    Column("status", Text, nullable=False),  # dog or not_a_dog
    Column("label", Text),  # the staff's breed (a model label); NULL for not_a_dog
    Column("label2", Text),  # a second breed: a mix
    Column("corrected_by", Text, nullable=False),
    Column("corrected_at", Text, nullable=False),
    # A correction is never overwritten nor deleted: --undo marks it, a new one is a new row. The newest row
    # not undone is the one in force.
    Column("undone_by", Text),
    Column("undone_at", Text),
    # Schema 4 (issue 23): the breeds in the shelter's words (ASM3's spelling: "Pit Bull Terrier", "Mixed
    # Breed"), which label/label2 name when the model has the breed and leave NULL when it has not; where the
    # correction came from (staff: `dogcat correct`; asm3: the breed ASM3 holds, read by `dogcat asm3 pull`);
    # and, for one carried over to another animal (merge, regrouping), why.
    Column("breed", Text),
    Column("breed2", Text),
    Column("source", Text),
    Column("note", Text),
)
Index("corrections_target", corrections.c.target_kind, corrections.c.target)

# Schema 4 (issue 23): the shelter's records in ASM3, and what dogcat sent there.
# asm3_animals: an animal ASM3 has (code as ASM3 spells it, name exactly as ASM3 has it, and the breeds it
# holds), learnt from ASM3's own animal export (`dogcat asm3 pull`, source "pull") or from a full row dogcat
# wrote for a new animal (source "sent"). A row here means: never send this animal's staff fields again.
asm3_animals = Table(
    "asm3_animals", metadata,
    Column("animal", Text, ForeignKey("animals.code"), primary_key=True),
    Column("asm3_code", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("breed1", Text),
    Column("breed2", Text),
    Column("source", Text, nullable=False),  # pull / sent
    Column("updated_at", Text, nullable=False),
)
# asm3_files: each ASM3 import file dogcat wrote (export --format asm3), and asm3_sent what each held: an animal
# row ("animal", its breeds as sent), a photo ("photo", SHA-256) or a log entry ("log", the answer's text).
# `dogcat asm3 forget ID` marks a file that was never imported: what it held counts as not sent.
asm3_files = Table(
    "asm3_files", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("path", Text, nullable=False),  # the file written, or "stdout"
    Column("written_at", Text, nullable=False),
    Column("written_by", Text, nullable=False),
    Column("forgotten_at", Text),
    # Schema 6 (issue 29): "writing" from the moment the file's content is recorded until it is in place under
    # ``path`` (NULL: written, as every file before), and the SHA-256 of its bytes: an export killed between
    # the two is settled by the next one (dogcat.asm3_sent.settle), which finds the file complete or takes the
    # record back.
    Column("state", Text),
    Column("sha256", Text),
)
asm3_sent = Table(
    "asm3_sent", metadata,
    Column("file", Integer, ForeignKey("asm3_files.id"), primary_key=True),
    Column("animal", Text, primary_key=True),
    Column("kind", Text, primary_key=True),  # animal / photo / log
    Column("item", Text, primary_key=True),  # animal: "breed1 / breed2"; photo: SHA-256; log: the text
)
Index("asm3_sent_animal", asm3_sent.c.animal)
# Schema 7 (issue 34): an ASM3 file sent over ASM3's service API (`dogcat asm3 sync`) rather than written (its
# asm3_files.state is "sending" from just before the request until what ASM3 took is settled): the service (its
# address, never a secret), and the highest ASM3 media id among the animals in care just before it was sent,
# by which a sync whose answer never came (or that was killed) finds the photos ASM3 took (dogcat.asm3.send).
asm3_sends = Table(
    "asm3_sends", metadata,
    Column("file", Integer, ForeignKey("asm3_files.id"), primary_key=True),
    Column("service", Text, nullable=False),
    Column("media_before", Integer, nullable=False),
)

# Schema 3 (issue 13): work claimed by a running catalog, so that concurrent runs (processes, machines sharing
# one PostgreSQL) classify each photo once. A row says "run `owner` is classifying this content with this model
# until `expires_at`"; it is deleted in the transaction that records the prediction. A run killed with -9 leaves
# its rows behind; once they expire another run takes the work over. Times are seconds since the epoch by the
# database's clock, so machines whose clocks disagree still agree on when a lease is over.
features = Table(
    "features", metadata,
    Column("sha256", String(64), ForeignKey("photos.sha256"), primary_key=True),
    Column("backbone", Text, primary_key=True),  # the backbone that made them: its file's name@sha256 prefix
    Column("looks", Integer, nullable=False),  # 1: the photo's own; 2: the mean of it and its mirror image's
    Column("vector", LargeBinary, nullable=False),  # float16, little-endian (2,048 of them: 4 kB)
    Column("computed_at", Text, nullable=False),
)

claims = Table(
    "claims", metadata,
    Column("sha256", String(64), primary_key=True),
    Column("model_id", Text, primary_key=True),
    Column("owner", Text, nullable=False),  # the run: host, pid and a random part
    Column("claimed_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)
Index("claims_owner", claims.c.owner)

CATALOG_VIEW = "catalog"
# animal_files.grouped_by of a file that staff placed (no catalog run moves it), and of one placed by the
# schema 2 → 3 migration (the next run regroups it).
STAFF = "staff"
UPGRADED = "upgrade"


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def iso_from_ns(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.timezone.utc).isoformat(timespec="seconds")


def catalog_select(model_id: str | None = None, probabilities: bool = False):
    """One row per file with the newest prediction for its content (or ``model_id``'s): the export."""
    rank = func.row_number().over(partition_by=predictions.c.sha256,
                                  order_by=(predictions.c.catalogued_at.desc(), predictions.c.model_id.desc()))
    newest = select(predictions, rank.label("rank"))
    if model_id is not None:
        newest = newest.where(predictions.c.model_id == model_id)
    latest = newest.subquery("latest")
    error = func.coalesce(files.c.error, photos.c.error)
    not_a_dog = latest.c.status == "not_a_dog"
    hidden = lambda column: case((not_a_dog, null()), else_=column)  # noqa: E731 — no breed for a non-dog
    return (select(files.c.path, files.c.sha256, files.c.size, files.c.mtime, photos.c.width, photos.c.height,
                   photos.c.format,
                   case((error.is_not(None), "error"), else_=latest.c.status).label("status"),
                   hidden(latest.c.label).label("label"), hidden(latest.c.breed).label("breed"),
                   hidden(latest.c.confidence).label("confidence"), latest.c.top_k,
                   latest.c.dog_probability, latest.c.looks_like,
                   latest.c.model_id.label("model"), error.label("error"),
                   files.c.catalogued_at, latest.c.catalogued_at.label("classified_at"),
                   *([latest.c.probabilities] if probabilities else []))
            .select_from(files.outerjoin(photos, photos.c.sha256 == files.c.sha256)
                         .outerjoin(latest, and_(latest.c.sha256 == files.c.sha256, latest.c.rank == 1)))
            .order_by(files.c.path))


def top_k_json(guesses: list[dict]) -> str:
    return json.dumps(guesses, ensure_ascii=False)
