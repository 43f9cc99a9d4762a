"""The catalog database: SQLAlchemy Core tables, a schema version, and SQLite set up for several writers.

Tables (``sqlite3 shelter.db .schema`` shows them; ``SELECT * FROM catalog`` is the export, one row a file):

- ``photos``: one row per distinct content (SHA-256 of the bytes): size, format, upright width x height, and
  the decode error when the bytes are not a usable picture.
- ``files``: one row per path: the content it held when last seen (size, mtime), or an error when the file
  could not be read at all (a directory named x.jpg, a broken link ...). Two names, one photo: two rows here.
- ``predictions``: one row per (photo, model): best label and breed, confidence, top-k as JSON, and the status
  (dog / unsure / not_a_dog) with the dog detector's dog probability. A new model adds rows; nothing is
  overwritten. ``models`` names the models.
- ``claims``: the photos running catalogs are classifying now, each with a lease (schema 3; dogcat.claims).
- ``features``: one row per (photo, backbone): the pooled features a split model's head answered from, float16
  (schema 5; what ``dogcat teach`` learns from and ``dogcat similar`` compares, without the backbone again).
- ``schema_version``: one row per schema version applied, so later releases can migrate.

Times are ISO 8601 text in UTC. SQLite runs in WAL mode with a long busy timeout, and every write transaction
starts with ``BEGIN IMMEDIATE``: concurrent runs queue for the write lock instead of failing with
"database is locked", and readers never wait.

Layer: the store (docs/architecture.md).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
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
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    null,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL, Connection, Engine, Row, make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from dogcat import naming, pathkeys, settings
from dogcat.errors import DogcatError
from dogcat.text import MASK, masked_url, secret_parameter, url_secrets
from dogcat.version import __version__

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import dml as postgresql_dml
    from sqlalchemy.dialects.sqlite import dml as sqlite_dml

SCHEMA_VERSION = 7
DEFAULT_DB = settings.DEFAULT_DB
BUSY_TIMEOUT_S = 60.0  # a statement waiting for a lock (readers of a catalog not in WAL mode, the WAL switch)
WRITE_WAIT_S = settings.WRITE_WAIT_S  # a write transaction waiting for another writer (SQLite)
QUIET_WAIT_S = 2.0  # waited silently first: most waits (another run's batch) are shorter
log = logging.getLogger("dogcat")  # "waiting for another writer": the command line prints it on stderr
CONNECT_TIMEOUT_S = 10
PARAMS_PER_QUERY = 500  # stay well under SQLite's limit on bound parameters

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
    # the two is settled by the next one (dogcat.asm3_sync.settle), which finds the file complete or takes the
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
# by which a sync whose answer never came (or that was killed) finds the photos ASM3 took (dogcat.asm3_send).
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


class DatabaseError(DogcatError):
    """The database cannot be opened or used; the message says which and why, in one line."""


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def iso_from_ns(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.timezone.utc).isoformat(timespec="seconds")


def one_line(e: BaseException) -> str:
    """The first line of a driver error, without SQLAlchemy's statement dump and background link."""
    orig = getattr(e, "orig", None) or e
    first = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    return first.split(" [SQL:")[0].strip() or type(orig).__name__


def url_for(db: str) -> URL:
    """``--db``: a SQLAlchemy URL (has ``://``), else a path to a SQLite file."""
    if "://" in db:
        try:
            url = make_url(db)
        except Exception:  # ArgumentError, ValueError ... for a malformed URL
            raise DatabaseError(f"{masked_url(db)}: not a valid database URL (e.g. sqlite:///shelter.db, "
                                "postgresql://user@host/db)") from None
        if "@" in (url.host or ""):  # bob:pa@ss@host: the driver would be sent "pa" and quote "ss@host" back
            raise DatabaseError(f"{masked_url(db)}: not a valid database URL (an @ in the password is written "
                                "%40)")
        return _with_installed_driver(url)
    return URL.create("sqlite", database=str(Path(db).expanduser().absolute()))


def _with_installed_driver(url: URL) -> URL:
    """A plain ``postgresql://`` URL means psycopg2 to SQLAlchemy; dogcat's ``postgres`` extra installs psycopg
    (version 3), so use that when psycopg2 is absent: the URL people write then works as it is."""
    if url.drivername != "postgresql":
        return url
    import importlib.util

    if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg") is not None:
        return url.set(drivername="postgresql+psycopg")
    return url


def describe(url: URL) -> str:
    """A catalog as messages and files name it: a SQLite file's path, else its URL with every secret (the password,
    ?password=, ?sslpassword=) written *** (dogcat.text.masked_url)."""
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return url.database
    return masked_url(url.render_as_string(hide_password=False))


def describe_db(db: str) -> str:
    """``--db`` as messages show it: a SQLite file's path, or the URL with its secrets hidden (also when it is
    not a valid URL). Every message that names a database names it so; a path, as it was given."""
    if "://" not in db:
        return db
    try:
        return describe(url_for(db))
    except DatabaseError:
        return masked_url(db)


def without_password(message: str, db: str | None) -> str:
    """``message`` with ``--db``'s secrets, wherever they appear (a driver's error may quote its connection
    string or a password), replaced by ***: the last guard before a line is printed (dogcat.shell)."""
    if not db or "://" not in db:
        return message
    secrets = set(url_secrets(db))
    try:  # as SQLAlchemy split the URL, and as the driver was given them (decoded)
        url = make_url(db)
        secrets.add(str(url.password or ""))
        for name, value in url.query.items():
            if secret_parameter(name):
                secrets.update([value] if isinstance(value, str) else value)
    except Exception:  # noqa: BLE001 — a URL that does not parse: what masked_url finds in it is all there is
        pass
    message = message.replace(db, masked_url(db))
    for secret in sorted(secrets - {""}, key=len, reverse=True):  # the longest first: none left half-masked
        for shown in {secret, urllib.parse.unquote(secret), urllib.parse.quote(secret, safe=""),
                      urllib.parse.quote_plus(secret)}:
            message = message.replace(shown, MASK)
    return message


def own_files(url: URL) -> set[str]:
    """A SQLite catalog's files (the database, its -wal, -shm, -journal): kept inside the folder it catalogs,
    they are not photos, nor worth a count."""
    database = url.database if url.get_backend_name() == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        return set()
    base = os.path.abspath(database)
    return {base + suffix for suffix in ("", "-wal", "-shm", "-journal")}


def connect(db: str, *, create: bool = True, readonly: bool = False) -> Engine:
    """Open the catalog at ``db``; with ``create``, make or upgrade its schema, else require it to exist.

    ``readonly``: for commands that only read. A SQLite file is then opened read-only (as SQLite's
    ``mode=ro``, or ``immutable=1`` on read-only media, where SQLite cannot make the WAL index), so that a catalog
    on a read-only file, folder or disk can be read. Otherwise a SQLite catalog that cannot be written is refused
    at once, in one line. A database that holds tables but is no dogcat catalog (another program's) is refused
    before anything is written to it."""
    url = url_for(db)
    name = describe(url)
    sqlite = url.get_backend_name() == "sqlite"
    path: Path | None = None
    if sqlite and url.database not in (None, "", ":memory:") and not url.database.startswith("file:"):
        path = Path(url.database)
        if path.is_dir():
            raise DatabaseError(f"{name}: is a folder, not a database file")
        if not create and not path.exists():
            raise DatabaseError(f"{name}: no such database file (dogcat catalog creates it)")
        if create and not path.parent.is_dir():
            raise DatabaseError(f"{name}: the folder {path.parent} does not exist")
        if path.exists():
            try:
                with closing(_open_sqlite_readonly(path)) as peek:
                    refuse_a_stranger(_sqlite_tables(peek, name), name)
            except sqlite3.Error as e:
                raise DatabaseError(f"{name}: cannot open ({e})") from None
            if not readonly:
                _require_writable(path, name)
        elif not os.access(path.parent, os.W_OK):
            raise DatabaseError(f"{name}: cannot create the catalog: its folder is read-only")
    connect_args: dict = {}
    if sqlite:
        connect_args["timeout"] = BUSY_TIMEOUT_S
    elif url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S  # a server that is down: an error, not a hang
    try:
        if readonly and path is not None:
            ro_path = path  # the opener below, once per pooled connection
            engine = create_engine(url, creator=lambda: _open_sqlite_readonly(ro_path))
        else:
            engine = create_engine(url, connect_args=connect_args)
    except ImportError as e:
        hint = "; from dogcat's checkout: pip install '.[postgres]'" if url.get_backend_name() == "postgresql" else ""
        raise DatabaseError(f"{name}: the database driver is not installed ({e}{hint})") from None
    except Exception as e:  # NoSuchModuleError for an unknown dialect, ArgumentError ...
        raise DatabaseError(f"{name}: cannot use this database URL ({one_line(e)})") from None
    if sqlite:
        _setup_sqlite(engine, wal=create and not readonly)
    try:
        ensure_schema(engine, create=create and not readonly)
    except DatabaseError as e:
        engine.dispose()
        raise DatabaseError(f"{name}: {e}") from None
    except (SQLAlchemyError, OSError) as e:
        engine.dispose()
        raise DatabaseError(f"{name}: {one_line(e)}") from None
    return engine


READ_ONLY = "the catalog is read-only (a read-only file, folder or file system)"


def _require_writable(path: Path, name: str):
    """A command that writes: refuse a catalog it cannot write, in one line, before it starts. SQLite writes the
    file and, beside it, its -wal and -shm (or -journal) files."""
    beside = [Path(f"{path}{suffix}") for suffix in ("-wal", "-shm")]
    folder_ok = os.access(path.parent, os.W_OK) or all(os.access(b, os.W_OK) for b in beside)
    if not (os.access(path, os.W_OK) and folder_ok):
        raise DatabaseError(f"{name}: {READ_ONLY}: this command writes to it; the read commands (animals, export, "
                            "report, evaluate --db) still work")


def _open_sqlite_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection to a SQLite file, which writes nothing, not even a WAL switch. On read-only media a
    WAL catalog cannot be opened so (SQLite cannot make its -shm index there): then ``immutable=1``, which is true
    of such media."""
    uri = "file:" + urllib.parse.quote(str(path.absolute())) + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # SQLite opens the file on first use
        return conn
    except sqlite3.OperationalError:  # "unable to open database file": no -shm can be made beside it
        conn.close()
        if os.access(path.parent, os.W_OK):
            raise
    except sqlite3.DatabaseError:  # not a database at all: _sqlite_tables says so
        return conn
    return sqlite3.connect(uri + "&immutable=1", uri=True, timeout=BUSY_TIMEOUT_S, check_same_thread=False)


def _sqlite_tables(conn: sqlite3.Connection, name: str) -> list[str]:
    try:
        return [t for t, in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                         "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    except sqlite3.DatabaseError as e:  # "file is not a database": a photo, a text file given as --db
        raise DatabaseError(f"{name}: not a SQLite database ({e}); dogcat left it as it was") from None


def refuse_a_stranger(tables: Sequence[str], name: str | None = None):
    """Another program's database (tables, but no schema_version) is not dogcat's to change: refuse it, naming
    some of its tables, before anything is written."""
    if tables and schema_version.name not in tables:
        shown = ", ".join(tables[:5]) + (" ..." if len(tables) > 5 else "")
        raise DatabaseError(f"{name + ': ' if name else ''}not a dogcat catalog (it holds other tables: {shown}); "
                            "dogcat left it as it was: give --db a new file or an empty database")


def _setup_sqlite(engine: Engine, wal: bool):
    ms = int(BUSY_TIMEOUT_S * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Take transaction control from the sqlite3 module (which never BEGINs before a SELECT and cannot
        # BEGIN IMMEDIATE); the "begin" hook below emits BEGIN instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {ms}")
        if wal:  # persistent in the file; readers then never block writers, nor writers readers
            _switch_to_wal(cursor)
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # A deferred transaction that reads then writes can fail at once with SQLITE_BUSY when another
        # process wrote in between (no busy wait is possible then); BEGIN IMMEDIATE takes the write lock
        # first, waiting for it (_begin_writing).
        if conn.get_execution_options().get("dogcat_write", False):
            _begin_writing(conn, ms)
        else:
            conn.exec_driver_sql("BEGIN")


def _begin_writing(conn: Connection, busy_ms: int):
    """BEGIN IMMEDIATE, waiting for another writer: silently for QUIET_WAIT_S, then saying so (log, which the
    command line prints on stderr) and waiting up to WRITE_WAIT_S in all; then one line saying who held it."""
    try:
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(QUIET_WAIT_S * 1000)}")
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            return
        except SQLAlchemyError as e:
            if not _locked(e):
                raise
        name = describe(conn.engine.url)
        log.warning("%s: another program is writing to the catalog; waiting for it (up to %.0f s)", name,
                    WRITE_WAIT_S)
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {int((WRITE_WAIT_S - QUIET_WAIT_S) * 1000)}")
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except SQLAlchemyError as e:
            if not _locked(e):
                raise
            raise DatabaseError(f"{name}: another program held the catalog's write lock for more than "
                                f"{WRITE_WAIT_S:.0f} s: try again once it is done") from None
    finally:
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {busy_ms}")


def _locked(e: BaseException) -> bool:
    text = str(getattr(e, "orig", e))
    return "locked" in text or "busy" in text


def _switch_to_wal(cursor, timeout_s: float = BUSY_TIMEOUT_S):
    """PRAGMA journal_mode = WAL, waiting for other writers as every other statement does.

    SQLite answers this pragma "database is locked" at once, without the busy handler, while another
    connection writes to a database still in rollback mode: for instance a second catalog run that races the
    first to create the file (a new file only becomes WAL with its first write). So retry until the timeout."""
    deadline = time.monotonic() + timeout_s
    delay = 0.01
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A write transaction: committed when the block ends, rolled back if it raises."""
    with engine.connect() as conn:
        conn.execution_options(dogcat_write=True)
        with conn.begin():
            yield conn


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn, conn.begin():
        yield conn


# --- schema -------------------------------------------------------------------------------------------------

def _create_view(conn: Connection):
    compiled = catalog_select().compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    conn.execute(text(f"CREATE VIEW {CATALOG_VIEW} AS {compiled}"))


def _to_2(conn: Connection):
    """Statuses (issue 5): four nullable columns on predictions, and the view that shows them."""
    for column in ("status TEXT", "dog_probability FLOAT", "looks_like TEXT", "detector_id TEXT"):
        conn.execute(text(f"ALTER TABLE predictions ADD COLUMN {column}"))
    conn.execute(text(f"DROP VIEW IF EXISTS {CATALOG_VIEW}"))
    _create_view(conn)


def _to_3_path_keys(conn: Connection):
    """Issue 13: path keys that cannot collide (dogcat.pathkeys). Schema 2 wrote a byte that is not UTF-8 as
    \\xNN but left a literal backslash alone, so a key holding a backslash may need rewriting, and one holding
    \\xNN may mean either of two names. Decided by the file system where it can: the candidate that exists
    with the row's size and mtime, else the one that exists, else the non-UTF-8 name (a literal \\xNN in a name is
    far rarer than an old camera's Latin-1 name). Keys without a backslash, nearly all, are unchanged."""
    def stat(raw: bytes):
        try:
            return os.lstat(raw)
        except (OSError, ValueError):
            return None

    moves = []
    rows = conn.execute(select(files.c.path, files.c.size, files.c.mtime_ns)
                        .where(files.c.path.contains("\\", autoescape=True))).all()
    for row in rows:
        candidates = pathkeys.old_key_candidates(row.path)
        stats = [stat(c) for c in candidates]
        same = [c for c, st in zip(candidates, stats, strict=True)
                if st is not None and (st.st_size, st.st_mtime_ns) == (row.size, row.mtime_ns)]
        there = [c for c, st in zip(candidates, stats, strict=True) if st is not None]
        chosen = (same or there or candidates[-1:])[0]
        new = pathkeys.key_of_bytes(chosen)
        if new != row.path:
            moves.append((row.path, new))
    # Two steps, through keys no path can have (a key is absolute), so that no rename meets a key not yet moved.
    for i, (old, _) in enumerate(moves):
        conn.execute(update(files).where(files.c.path == old).values(path=f"dogcat-schema-3:{i}"))
    for i, (_, new) in enumerate(moves):
        if conn.execute(select(files.c.path).where(files.c.path == new)).first() is not None:
            conn.execute(files.delete().where(files.c.path == f"dogcat-schema-3:{i}"))  # kept: the exact row
        else:
            conn.execute(update(files).where(files.c.path == f"dogcat-schema-3:{i}").values(path=new))


def _to_3_claims(conn: Connection):
    """Issue 13: the claims table (see ``claims``)."""
    claims.create(conn)  # with its index


def _to_3(conn: Connection):
    """Issue 13: path keys that cannot collide, and claims with a lease for concurrent runs; issue 12: animals.
    Path keys first, so that the animals made from the files see their new keys."""
    _to_3_path_keys(conn)
    _to_3_claims(conn)
    _to_3_animals(conn)


def _to_3_animals(conn: Connection):
    """Animals (issue 12): three new tables, the full distribution on predictions, and every file already
    catalogued put in an animal of its own (one per distinct photo), as exports grouped them before."""
    conn.execute(text("ALTER TABLE predictions ADD COLUMN probabilities TEXT"))
    for column in ("labels TEXT", "decision TEXT"):
        conn.execute(text(f"ALTER TABLE models ADD COLUMN {column}"))
    for table in (animals, animal_files, corrections):
        table.create(conn)
    # Every file already catalogued becomes an animal of its own (one per distinct photo), as the exports
    # grouped them before; the next catalog run groups them as asked.
    rows = conn.execute(select(files.c.path, files.c.sha256).order_by(files.c.path)).all()
    at = now()
    made: dict[str, str] = {}
    for path, sha256 in rows:
        key, wanted, name = naming.single(path, sha256)
        code = animal_for_key(conn, key, wanted, name, at, made)
        conn.execute(insert(animal_files).values(path=path, animal=code, grouped_by=UPGRADED, grouped_at=at))


def _to_4(conn: Connection):
    """Issue 23: what the shelter knows of each animal, breeds in the shelter's words, and the ASM3 tables."""
    # A schema 2 catalog got its animals tables from _to_3 as this release defines them: with these columns.
    for table, columns in ((animals, ("dob", "age", "sex", "retired_at")),
                           (corrections, ("breed", "breed2", "source", "note"))):
        present = {c["name"] for c in inspect(conn).get_columns(table.name)}
        for column in columns:
            if column not in present:
                conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {column} TEXT"))
    for table in (asm3_animals, asm3_files, asm3_sent):
        table.create(conn, checkfirst=True)
    _to_4_codes(conn)


def _to_4_codes(conn: Connection):
    """Issue 23: folders named ``A1023-Rex`` mean code A1023, name Rex (dogcat.naming.split_folder); animals
    grouped by such a folder take that code, its key (``code:A1023``) and that name, as a catalog run of this
    release would have made them, and every reference follows (photos, corrections, merges, ASM3 rows).

    A code already taken by another animal (a folder named just ``A1023``, a staff-made animal) is not taken
    over: the free-code rule gives ``A1023-2``, as a catalog run would. Two folders holding one code
    (``A1023-Rex`` and ``other/A1023_Rex``) become one animal, as a run of this release groups them: the first by
    code is renamed, the others are merged into it (``dogcat animals merge``'s rule: its own correction wins, the
    other's stays in the history and applies when it has none). Animals merged by staff keep their code."""
    rows = conn.execute(select(animals.c.code, animals.c.key)
                        .where(and_(animals.c.key.like("folder:%"), animals.c.merged_into.is_(None)))
                        .order_by(animals.c.code)).all()
    for row in rows:
        split = naming.split_folder(os.path.basename(row.key[len("folder:"):]))
        if split is None:
            continue
        code, name = split
        key = naming.code_key(code)
        owner = conn.scalar(select(animals.c.code).where(animals.c.key == key))
        if owner is not None:
            merge_rows(conn, follow_merges(conn, owner), row.code)
            continue
        rename_animal(conn, row.code, code if code == row.code else free_code(conn, code), name, key)


def _to_5(conn: Connection):
    """Issue 21: each photo's features (``features``), for teaching and for finding animals that look alike.
    Photos catalogued before get theirs from ``dogcat teach`` or ``dogcat similar``, once."""
    features.create(conn, checkfirst=True)


def _to_6(conn: Connection):
    """Issue 29: an ASM3 file's state and content hash (asm3_files.state, .sha256), so that a killed export's
    file and record agree. A catalog made before schema 4 got them already from _to_4's create."""
    present = {c["name"] for c in inspect(conn).get_columns(asm3_files.name)}
    for column in ("state", "sha256"):
        if column not in present:
            conn.execute(text(f"ALTER TABLE {asm3_files.name} ADD COLUMN {column} TEXT"))


def _to_7(conn: Connection):
    """Issue 34: ASM3 files sent over its service API (asm3_sends)."""
    asm3_sends.create(conn, checkfirst=True)


# MIGRATIONS[n] upgrades a database from schema n to n + 1, inside the schema transaction.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _to_2, 2: _to_3, 3: _to_4, 4: _to_5, 5: _to_6,
                                                   6: _to_7}


def _version(conn: Connection) -> int | None:
    if not inspect(conn).has_table(schema_version.name):
        return None
    return conn.scalar(select(func.max(schema_version.c.version))) or 0


def ensure_schema(engine: Engine, create: bool = True) -> int:
    with reading(engine) as conn:
        version = _version(conn)
    if version == SCHEMA_VERSION:
        return version
    if version is not None and version > SCHEMA_VERSION:
        raise DatabaseError(f"written by a newer dogcat (schema version {version}; this dogcat {__version__} "
                            f"knows up to {SCHEMA_VERSION}): upgrade dogcat")
    if not create:
        if version is None:
            raise DatabaseError("not a dogcat catalog (it has no schema_version table)")
        raise DatabaseError(f"schema version {version} is older than {SCHEMA_VERSION}: run dogcat catalog "
                            "once to upgrade it")
    with writing(engine) as conn:
        if conn.dialect.name == "postgresql":  # serialise concurrent first runs
            conn.execute(text(f"SELECT pg_advisory_xact_lock({settings.LOCK_SCHEMA})"))
        version = _version(conn)  # again, under the write lock: another run may have just done it
        if version is None:
            refuse_a_stranger(inspect(conn).get_table_names())
            metadata.create_all(conn)
            _create_view(conn)
            version = SCHEMA_VERSION
            conn.execute(insert(schema_version).values(version=version, applied_at=now(),
                                                       dogcat=__version__))
        while version < SCHEMA_VERSION:
            MIGRATIONS[version](conn)
            version += 1
            conn.execute(insert(schema_version).values(version=version, applied_at=now(),
                                                       dogcat=__version__))
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(f"PRAGMA user_version = {version}")
    return version


# --- queries ------------------------------------------------------------------------------------------------

def chunks(items: Sequence, n: int = PARAMS_PER_QUERY) -> Iterator[Sequence]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def known_paths(conn: Connection, paths: Sequence[str], model_id: str) -> dict[str, Row]:
    """path → row(sha256, size, mtime_ns, error, photo_error, label, breed, status) for paths already in
    ``files``; label/breed/status are this model's prediction, if any."""
    pred = predictions.alias("p")
    q = (select(files.c.path, files.c.sha256, files.c.size, files.c.mtime_ns, files.c.error,
                photos.c.error.label("photo_error"), pred.c.label, pred.c.breed, pred.c.status)
         .select_from(files.outerjoin(photos, photos.c.sha256 == files.c.sha256)
                      .outerjoin(pred, and_(pred.c.sha256 == files.c.sha256, pred.c.model_id == model_id))))
    out = {}
    for chunk in chunks(list(paths)):
        for row in conn.execute(q.where(files.c.path.in_(chunk))):
            out[row.path] = row
    return out


def known_photos(conn: Connection, hashes: Iterable[str], model_id: str) -> dict[str, Row]:
    """sha256 → row(sha256, error, label, breed, status) for contents already in ``photos``."""
    pred = predictions.alias("p")
    q = (select(photos.c.sha256, photos.c.error, pred.c.label, pred.c.breed, pred.c.status)
         .select_from(photos.outerjoin(pred, and_(pred.c.sha256 == photos.c.sha256,
                                                  pred.c.model_id == model_id))))
    out = {}
    for chunk in chunks(sorted(set(hashes))):
        for row in conn.execute(q.where(photos.c.sha256.in_(chunk))):
            out[row.sha256] = row
    return out


def dialect_insert(conn: Connection) -> Callable[[Table], sqlite_dml.Insert | postgresql_dml.Insert] | None:
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert
    return None


def insert_ignore(conn: Connection, table: Table, rows: list[dict]):
    """INSERT the rows, leaving alone any whose primary key is already there (another run wrote it)."""
    if not rows:
        return
    keys = [c.name for c in table.primary_key.columns]
    insert_for = dialect_insert(conn)
    if insert_for is not None:
        conn.execute(insert_for(table).on_conflict_do_nothing(index_elements=keys), rows)
        return
    for row in rows:  # other databases: one savepoint per row
        try:
            with conn.begin_nested():
                conn.execute(insert(table), row)
        except IntegrityError:
            pass


def upsert(conn: Connection, table: Table, rows: list[dict], keep: Sequence[str] = ()):
    """INSERT the rows, or UPDATE the existing row with the same primary key (except the ``keep`` columns)."""
    if not rows:
        return
    keys = [c.name for c in table.primary_key.columns]
    changing = [c for c in rows[0] if c not in keys and c not in keep]
    insert_for = dialect_insert(conn)
    if insert_for is not None:
        stmt = insert_for(table)
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in changing})
        conn.execute(stmt, rows)
        return
    for row in rows:
        where = and_(*(table.c[k] == row[k] for k in keys))
        if conn.execute(update(table).where(where).values({c: row[c] for c in changing})).rowcount == 0:
            conn.execute(insert(table), row)


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


# --- animal rows --------------------------------------------------------------------------------------------

def free_code(conn: Connection, wanted: str) -> str:
    """``wanted``, or ``wanted-2``, ``-3`` ... : codes are unique regardless of case (ASM3 matches that way)."""
    def taken(code: str) -> bool:
        return bool(conn.scalar(select(func.count()).select_from(animals)
                                .where(func.lower(animals.c.code) == code.lower())))

    code, n = wanted, 1
    while taken(code):
        n += 1
        code = f"{wanted}-{n}"
    return code


def find_animal(conn: Connection, code: str) -> str | None:
    """The animal a code names now: codes match in any case (they are unique regardless of case: free_code), and
    a merged animal's code names the animal it went to. None for no such code."""
    found = conn.scalar(select(animals.c.code).where(func.lower(animals.c.code) == code.lower()))
    return follow_merges(conn, found) if found is not None else None


def follow_merges(conn: Connection, code: str) -> str:
    """The animal that now holds what ``code`` held (``dogcat animals merge`` leaves a pointer behind)."""
    seen = {code}
    while True:
        merged = conn.scalar(select(animals.c.merged_into).where(animals.c.code == code))
        if not merged or merged in seen:
            return code
        seen.add(merged)
        code = merged


def animal_for_key(conn: Connection, key: str, wanted: str, name: str, at: str, made: dict[str, str]) -> str:
    """The code of the animal with this grouping key (merges followed), made with a free code near ``wanted``
    if there is none yet. ``made``: key → code, this transaction's memo."""
    if key in made:
        return made[key]
    code = conn.scalar(select(animals.c.code).where(animals.c.key == key))
    if code is None:
        code = free_code(conn, wanted)
        conn.execute(insert(animals).values(code=code, name=name, key=key, merged_into=None, created_at=at))
    made[key] = code = follow_merges(conn, code)
    return code


def rename_animal(conn: Connection, old: str, new: str, name: str, key: str | None):
    """Give animal ``old`` the code ``new`` (free: see :func:`free_code`), a name and a grouping key; everything
    that names it follows: its files, its corrections (history included), animals merged into it, ASM3 rows."""
    row = conn.execute(select(animals).where(animals.c.code == old)).one()._asdict()
    if new == old:
        conn.execute(update(animals).where(animals.c.code == old).values(name=name, key=key))
        return
    conn.execute(update(animals).where(animals.c.code == old).values(key=None))  # the key is unique
    conn.execute(insert(animals).values({**row, "code": new, "name": name, "key": key}))
    conn.execute(update(animal_files).where(animal_files.c.animal == old).values(animal=new))
    conn.execute(update(corrections).where(and_(corrections.c.target_kind == "animal", corrections.c.target == old))
                 .values(target=new))
    conn.execute(update(animals).where(animals.c.merged_into == old).values(merged_into=new))
    conn.execute(update(asm3_animals).where(asm3_animals.c.animal == old).values(animal=new))
    conn.execute(update(asm3_sent).where(asm3_sent.c.animal == old).values(animal=new))
    conn.execute(delete(animals).where(animals.c.code == old))


def merge_rows(conn: Connection, into: str, other: str, grouped_by: str | None = None, at: str | None = None) -> int:
    """Animal ``other`` becomes part of ``into``: its files move (``grouped_by``: how, when given), it points to
    ``into``, as do the animals merged into it (a run that finds its key again follows the pointer), and its
    correction comes along (:func:`carry_correction`). Returns the files moved."""
    moving = update(animal_files).where(animal_files.c.animal == other).values(animal=into)
    if grouped_by is not None:
        moving = moving.values(grouped_by=grouped_by, grouped_at=at or now())
    moved = conn.execute(moving).rowcount
    conn.execute(update(animals).where(animals.c.code == other).values(merged_into=into))
    conn.execute(update(animals).where(animals.c.merged_into == other).values(merged_into=into))
    carry_correction(conn, other, into, "merged")
    return moved


def correction_in_force(conn: Connection, code: str, kind: str = "animal") -> Row | None:
    """The staff's word on animal ``code`` (or, with ``kind`` "photo", on a photo's SHA-256) now: its newest
    correction not undone."""
    c = corrections.c
    return conn.execute(select(corrections).where(and_(c.target_kind == kind, c.target == code,
                                                       c.undone_at.is_(None))).order_by(c.id.desc())).first()


def carry_correction(conn: Connection, source: str, target: str, why: str) -> bool:
    """What staff said of animal ``source`` goes with its photos to ``target`` (a merge, a regrouping), unless
    ``target`` has a correction of its own, which wins. Carried as a new row saying the same (status, breeds,
    who, when, where from) with a note "from SOURCE (why)": ``source``'s row stays as it was, in its history, and
    the read model needs no rule of its own. Returns whether it was carried."""
    said = correction_in_force(conn, source)
    if said is None or source == target or correction_in_force(conn, target) is not None:
        return False
    conn.execute(insert(corrections).values(
        target_kind="animal", target=target, status=said.status, label=said.label, label2=said.label2,
        breed=said.breed, breed2=said.breed2, source=said.source, corrected_by=said.corrected_by,
        corrected_at=said.corrected_at, note=f"from {source} ({why})"))
    return True


# --- features -----------------------------------------------------------------------------------------------

FEATURE_DTYPE = "<f2"  # how a feature vector is stored: float16, little-endian


def feature_bytes(vector) -> bytes:
    """A feature vector as stored (FEATURE_DTYPE)."""
    import numpy as np

    return np.asarray(vector, dtype=FEATURE_DTYPE).tobytes()


def feature_array(stored: Sequence[bytes]):
    """Stored feature vectors (:func:`feature_bytes`) → one float32 row each (an empty array for none)."""
    import numpy as np

    if not stored:
        return np.zeros((0, 0), np.float32)
    return np.frombuffer(b"".join(stored), FEATURE_DTYPE).reshape(len(stored), -1).astype(np.float32)


def feature_row(sha256: str, backbone: str, looks: int, vector, at: str) -> dict:
    """A row of ``features``: a photo's features made by ``backbone`` from ``looks`` looks."""
    return {"sha256": sha256, "backbone": backbone, "looks": int(looks), "vector": feature_bytes(vector),
            "computed_at": at}


def feature_backbones(conn: Connection) -> dict[str, int]:
    """Each backbone that made features in this catalog → how many photos it made them for."""
    q = select(features.c.backbone, func.count()).group_by(features.c.backbone)
    return {r[0]: r[1] for r in conn.execute(q)}


def features_of(conn: Connection, backbone: str, hashes: Iterable[str] | None = None) -> dict[str, bytes]:
    """sha256 → the stored features (:func:`feature_bytes`) made by ``backbone``, of ``hashes`` (default: all)."""
    q = select(features.c.sha256, features.c.vector).where(features.c.backbone == backbone)
    if hashes is None:
        return {r.sha256: r.vector for r in conn.execute(q)}
    out = {}
    for chunk in chunks(sorted(set(hashes))):
        out.update({r.sha256: r.vector for r in conn.execute(q.where(features.c.sha256.in_(chunk)))})
    return out
