"""What every command shares: the application, its options, one way to open the catalog and to print tables.

Heavy modules (onnxruntime, sqlalchemy, tensorflow) are imported inside the commands that need them, so
``dogcat --help`` is instant and inference never loads TensorFlow.

Layer: the command lines (docs/architecture.md).
"""

from __future__ import annotations

from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from dogcat.console import fail, out
from dogcat.helptext import Group
from dogcat.text import visible
from dogcat.version import __version__

if TYPE_CHECKING:
    from rich.progress import ProgressColumn



class Commands(Group):
    """``dogcat --help`` lists what a shelter does first, in the order of its week, and model work last."""

    order = ("catalog", "animals", "correct", "report", "export", "asm3", "similar", "classify", "teach",
             "evaluate", "train")


app = typer.Typer(
    cls=Commands, help="Name the dog breed in photos, and keep a durable record of a shelter's intake photos.",
    no_args_is_help=True, rich_markup_mode="rich", context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool):
    if value:
        out.print(f"dogcat {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
):
    pass


UnsureOption = Annotated[float | None, typer.Option(
    "--unsure-below", min=0.0, max=1.0, show_default=False,
    help="Call a photo 'unsure' when the top breed's confidence is below this (default: the model's, "
         "chosen on validation photos).")]
NotDogOption = Annotated[float | None, typer.Option(
    "--not-dog-below", min=0.0, max=1.0, show_default=False,
    help="Call a photo 'not_a_dog' when the dog detector's dog probability is below this and the breed model "
         "is not sure of any breed either (default: the model's; 0 turns the dog check off).")]
class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


# An Enum, so that click refuses any other value as bad usage (exit 2) before a model is loaded.
DeviceOption = Annotated[Device, typer.Option(
    "--device", help="auto (CUDA when onnxruntime-gpu can use it, else the CPU), cpu, or cuda (says so once "
    "if CUDA is not available, then runs on the CPU).")]
class Looks(str, Enum):
    one = "1"
    two = "2"
    auto = "auto"


LooksOption = Annotated[Looks, typer.Option(
    "--looks", help="How many looks the breed model takes at a photo: auto (a second look, at the mirror image, "
    "only when the first is unsure: the model card's rule, about 1.2 looks per photo), 1, or 2 (every photo "
    "twice: the slowest).")]
DetectorOption = Annotated[Path | None, typer.Option(
    "--detector", show_default=False, help="The dog detector (an exported ImageNet-1k model). Default: "
    "the one bundled with dogcat.")]


# --- what every command shares: options, one error policy, one way to write output ---------------------------

DbOption = Annotated[str, typer.Option("--db", help="The catalog: a SQLite file or a SQLAlchemy URL.")]
ModelOption = Annotated[Path | None, typer.Option(
    "--model", "-m", show_default=False,
    help="An exported model (.onnx with its .json sidecar). Default: the model bundled with dogcat.")]
OutputOption = Annotated[Path | None, typer.Option(
    "--output", "-o", show_default=False, help="Write to this file (replaced only once complete) instead of stdout.")]
ModelIdOption = Annotated[str | None, typer.Option(
    "--model-id", show_default=False, help="That model's predictions (its id, as in the model column) instead "
    "of the newest.")]
# What ASM3 needs of an animal new to it, given once for `export --format asm3` and `asm3 sync` (each text
# prefixed "asm3: " where the command has other formats).
AGE_HELP = ("the estimated age in years ASM3 needs for an animal new to it (e.g. 2, or 0.5), for those with no "
            "age from a pull or --animals-csv.")
DOB_HELP = "a date of birth (YYYY-MM-DD) instead of --age."
ANIMALS_CSV_HELP = ("each new animal's name, date of birth or age, and sex: a CSV with columns "
                    "code,name,dob,age,sex (comma, semicolon or tab).")


def _first_up(text: str) -> str:
    return text[:1].upper() + text[1:]


AgeOption = Annotated[str | None, typer.Option("--age", help=_first_up(AGE_HELP), show_default=False)]
DobOption = Annotated[str | None, typer.Option("--dob", help=_first_up(DOB_HELP), show_default=False)]
AnimalsCsvOption = Annotated[Path | None, typer.Option("--animals-csv", help=_first_up(ANIMALS_CSV_HELP),
                                                       show_default=False)]
ExportAgeOption = Annotated[str | None, typer.Option("--age", help="asm3: " + AGE_HELP, show_default=False)]
ExportDobOption = Annotated[str | None, typer.Option("--dob", help="asm3: " + DOB_HELP, show_default=False)]
ExportAnimalsCsvOption = Annotated[Path | None, typer.Option("--animals-csv", help="asm3: " + ANIMALS_CSV_HELP,
                                                             show_default=False)]


VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Show the details of an unexpected failure "
                                                                      "(and, for catalog, every file with an error).")]


@contextmanager
def open_catalog(db: str, create: bool = False, readonly: bool = False):
    """The catalog (the library's façade) for one command, closed at its end. ``readonly``: the command only
    reads (it then works on a catalog on read-only media)."""
    from dogcat.api import Catalog

    catalog = Catalog(db, create=create, readonly=readonly)
    try:
        yield catalog
    finally:
        catalog.close()


def not_the_catalog(db: str, output: Path | None):
    """Refuse an --output that is the catalog's own file (or its -wal, -shm, -journal): it would be replaced."""
    if output is None:
        return
    import os

    from dogcat.db import DatabaseError, describe_db, url_for

    try:
        url = url_for(db)
    except DatabaseError:
        return  # the command's own opening of --db says what is wrong with it
    database = url.database if url.get_backend_name() == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    target = os.path.realpath(output)
    base = os.path.realpath(database)
    for own in (base + suffix for suffix in ("", "-wal", "-shm", "-journal")):
        if target == own:
            fail(escape(f"{visible(str(output))}: is the catalog's own database file (--db {describe_db(db)}); "
                        "write the output elsewhere"), 2)


def rate_column() -> ProgressColumn:
    """A progress column: photos classified per second so far (skipped files do not count)."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task):
            elapsed = task.finished_time or task.elapsed
            images = task.fields.get("images", 0)
            rate = f"{images / elapsed:.1f}" if elapsed and images else "–"
            return Text(f"{rate} images/s", style="progress.data.speed")

    return RateColumn()


def print_whole(table: Table) -> None:
    """A table on stdout. Into a file or a pipe (a script reads it, or a person later) as wide as its cells need,
    so that no code, name or breed is folded or cut; a terminal gets its own width."""
    if out.is_terminal:
        out.print(table)
        return
    from rich.console import Console
    from rich.measure import Measurement

    natural = Measurement.get(out, out.options.update_width(1 << 16), table).maximum
    Console(file=out.file, width=max(out.width, natural), soft_wrap=True, color_system=None,
            force_terminal=False).print(table)


def path_table(columns: tuple[str, ...], path_column: str, rows: list[list[str]]) -> Table:
    """A table with a column of paths, shown whole: every other column as wide as its widest cell (never cut or
    wrapped), the paths in what is left of a terminal (one line each where they fit, else folded, not cut).
    Into a file or a pipe (print_whole) every row is one line. ``rows``: cells as rich markup."""
    from rich.text import Text

    table = Table(show_edge=False, header_style="bold")
    for i, column in enumerate(columns):
        if column == path_column:
            table.add_column(column, overflow="fold")
        else:
            widest = max([Text.from_markup(row[i]).cell_len for row in rows] + [len(column)])
            table.add_column(column, no_wrap=True, min_width=widest)
    for row in rows:
        table.add_row(*row)
    return table
