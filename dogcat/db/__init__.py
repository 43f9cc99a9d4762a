"""The catalog database: SQLAlchemy Core tables, a schema version, and SQLite set up for several writers.

Tables (``sqlite3 shelter.db .schema`` shows them; ``SELECT * FROM catalog`` is the export, one row a file):

- ``photos``: one row per distinct content (SHA-256 of the bytes): size, format, upright width x height, and
  the decode error when the bytes are not a usable picture.
- ``files``: one row per path: the content it held when last seen (size, mtime), or an error when the file
  could not be read at all (a directory named x.jpg, a broken link ...). Two names, one photo: two rows here.
- ``predictions``: one row per (photo, model): best label and breed, confidence, top-k as JSON, and the status
  (dog / unsure / not_a_dog) with the dog detector's dog probability. A new model adds rows; nothing is
  overwritten. ``models`` names the models.
- ``claims``: the photos running catalogs are classifying now, each with a lease (schema 3; dogcat.db.leases).
- ``features``: one row per (photo, backbone): the pooled features a split model's head answered from, float16
  (schema 5; what ``dogcat teach`` learns from and ``dogcat similar`` compares, without the backbone again).
- ``schema_version``: one row per schema version applied, so later releases can migrate.

Times are ISO 8601 text in UTC. SQLite runs in WAL mode with a long busy timeout, and every write transaction
starts with ``BEGIN IMMEDIATE``: concurrent runs queue for the write lock instead of failing with
"database is locked", and readers never wait.

Its tables are in ``dogcat.db.tables``, each schema version's migration in ``dogcat.db.migrations``, the
leases of running catalogs and exports in ``dogcat.db.claims``; this module opens the database, keeps its
schema current and holds the queries. ``from dogcat import db`` gives all of it (``db.files``, ``db.connect``).

Layer: the store (docs/architecture.md).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path

from sqlalchemy import (
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from dogcat import settings
from dogcat.db.migrations import MIGRATIONS, create_view
from dogcat.db.queries import (  # noqa: F401  (db.FEATURE_DTYPE ... as before they had modules)
    FEATURE_DTYPE,
    PARAMS_PER_QUERY,
    animal_for_key,
    carry_correction,
    chunks,
    correction_in_force,
    dialect_insert,
    feature_array,
    feature_backbones,
    feature_bytes,
    feature_row,
    features_of,
    find_animal,
    follow_merges,
    free_code,
    insert_ignore,
    known_paths,
    known_photos,
    merge_rows,
    rename_animal,
    upsert,
)
from dogcat.db.tables import (  # noqa: F401  (db.CATALOG_VIEW ... as before they had modules)
    CATALOG_VIEW,
    SCHEMA_VERSION,
    STAFF,
    UPGRADED,
    animal_files,
    animals,
    asm3_animals,
    asm3_files,
    asm3_sends,
    asm3_sent,
    catalog_select,
    claims,
    corrections,
    features,
    files,
    iso_from_ns,
    metadata,
    models,
    now,
    photos,
    predictions,
    schema_version,
    top_k_json,
)
from dogcat.errors import DogcatError
from dogcat.text import MASK, masked_url, secret_parameter, url_secrets
from dogcat.version import __version__

DEFAULT_DB = settings.DEFAULT_DB
BUSY_TIMEOUT_S = 60.0  # a statement waiting for a lock (readers of a catalog not in WAL mode, the WAL switch)
WRITE_WAIT_S = settings.WRITE_WAIT_S  # a write transaction waiting for another writer (SQLite)
QUIET_WAIT_S = 2.0  # waited silently first: most waits (another run's batch) are shorter
log = logging.getLogger("dogcat")  # "waiting for another writer": the command line prints it on stderr
CONNECT_TIMEOUT_S = 10


class DatabaseError(DogcatError):
    """The database cannot be opened or used; the message says which and why, in one line."""


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
            create_view(conn)
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
