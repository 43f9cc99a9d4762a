"""What both command lines (``dogcat …`` and the lab's ``dogcat train …``) share: one error policy, and one way
to write a command's data output.

Layer: the command lines. The library raises; only here do errors become a line on stderr and an exit code.
"""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, cast

import typer
from rich.markup import escape

from dogcat.console import err, error, fail
from dogcat.errors import DogcatError
from dogcat.text import visible


class _Notices(logging.Handler):
    """What the library says while it works (dogcat.db: "waiting for another writer"), as one line on stderr,
    through the same console as errors (names made visible)."""

    def emit(self, record: logging.LogRecord) -> None:
        error(escape(record.getMessage()), kind="waiting" if record.levelno < logging.ERROR else "error")


_library = logging.getLogger("dogcat")
if not any(isinstance(h, _Notices) for h in _library.handlers):
    _library.addHandler(_Notices())
    _library.propagate = False


@contextmanager
def failures(db: str | None = None, output: Path | None = None, writes: bool = False, verbose: bool = False,
             then: str = "", known: tuple[type[Exception], ...] = ()) -> Iterator[None]:
    """Every command's one error policy. A DogcatError (or one of ``known``, the lab's ValueError for a bad
    option): its line, and its exit code (1; 2 for usage). A database failing: ``DB: database error: …``, exit 1,
    the URL's password hidden. Writing the output failing: ``FILE: cannot write (…)``, exit 1 (a reader that went
    away, as with ``| head``, quietly). Ctrl-C: exit 130. Anything else: ``unexpected …``, exit 1, never a
    traceback (``--verbose`` shows it). ``then``: what to do next, added to a failure's line."""
    try:
        yield
    except (typer.Exit, typer.Abort, typer.TyperException):  # exits and usage errors already decided
        raise
    except KeyboardInterrupt:
        err.print("[yellow]dogcat: interrupted[/]" + (f": {then}" if then else ""), highlight=False)
        raise typer.Exit(130) from None
    except BrokenPipeError:  # `dogcat export | head`: the reader has gone, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(1) from None
    except Exception as e:  # noqa: BLE001 — turned into one line and an exit code, below
        _fail_with(e, db, output, writes, verbose, then, known)


def _fail_with(e: Exception, db: str | None, output: Path | None, writes: bool, verbose: bool, then: str,
               known: tuple[type[Exception], ...]):
    from sqlalchemy.exc import SQLAlchemyError

    from dogcat.db import READ_ONLY, describe_db, one_line, without_password

    def failing(message: str, code: int = 1):
        fail(escape(without_password(message, db)), code)  # whatever a driver quoted: never the password

    if writes and isinstance(e, OSError):  # before the known errors: FileNotFoundError is one of them
        failing(f"{output or 'stdout'}: cannot write ({e.strerror or e})")
    if isinstance(e, DogcatError):
        failing(str(e), e.exit_code)
    if isinstance(e, (FileNotFoundError, *known)):
        failing(str(e))
    where = describe_db(db) if db else "the database"
    if isinstance(e, SQLAlchemyError) and "readonly database" in one_line(e):
        failing(f"{where}: {READ_ONLY}: cannot write to it")
    if isinstance(e, SQLAlchemyError):
        what = f"{where}: database error: {one_line(e)}"
    else:
        if verbose:
            err.print_exception()
        what = f"unexpected {type(e).__name__}: {' '.join(str(e).split())}"
        then = then + ("" if verbose else " (--verbose shows details)")
    failing(what + (f". {then.strip()}" if then.strip() else ""))


class _OnATerminal:
    """A command's data as a terminal shows it: every control, format or bidi character (an escape sequence in an
    animal's name that ASM3 sent, U+202E ...) made visible as dogcat.text.visible does; line ends (LF, CR LF) kept.
    Only for a person's terminal: a file or a pipe gets the data exactly as it is."""

    def __init__(self, stream: IO[str]):
        self._stream = stream
        self._cr = False  # the text so far ended in CR: a line end if the next write starts with LF

    def write(self, text: str) -> int:
        parts = (("\r" if self._cr else "") + text).split("\n")
        shown = [visible(p[:-1]) + "\r" if p.endswith("\r") else visible(p) for p in parts[:-1]]
        last = parts[-1]
        self._cr = last.endswith("\r")
        shown.append(visible(last[:-1] if self._cr else last))
        self._stream.write("\n".join(shown))
        return len(text)

    def flush(self) -> None:
        if self._cr:  # a CR that no LF followed
            self._stream.write(visible("\r"))
            self._cr = False
        self._stream.flush()


@contextmanager
def output_stream(output: Path | None) -> Iterator[IO[str]]:
    """Where a command writes its data: stdout (UTF-8, line ends as written; on a terminal, with control
    characters made visible), or the file ``--output`` names, which is replaced only once the whole output is
    there."""
    if output is None:
        stream = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="", write_through=False)
        shown = _OnATerminal(stream) if sys.stdout.isatty() else stream
        try:
            yield cast(IO[str], shown)
            shown.flush()
        finally:
            stream.detach()
        return
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            yield f
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
