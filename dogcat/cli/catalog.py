"""The catalog: ``dogcat catalog``, ``dogcat export`` and ``dogcat report``.

Layer: the command lines (docs/architecture.md).
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from dogcat import settings
from dogcat.console import err, error, fail, out
from dogcat.shell import failures, output_stream
from dogcat.text import visible

if TYPE_CHECKING:
    pass

from dogcat.cli.asm3 import export_asm3_file
from dogcat.cli.common import (
    DbOption,
    DetectorOption,
    Device,
    DeviceOption,
    ExportAgeOption,
    ExportAnimalsCsvOption,
    ExportDobOption,
    Looks,
    LooksOption,
    ModelIdOption,
    ModelOption,
    NotDogOption,
    OutputOption,
    UnsureOption,
    app,
    not_the_catalog,
    open_catalog,
    rate_column,
)


@app.command()
def catalog(
    folders: Annotated[list[Path], typer.Argument(help="Folders to catalog (a single photo also works).",
                                                  show_default=False)],
    db: Annotated[str, typer.Option("--db", help="A SQLite file, created if missing, or any SQLAlchemy URL "
                                    "(postgresql://user@host/shelter).")] = settings.DEFAULT_DB,
    model_path: ModelOption = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1,
                                       help="How many breeds to record per photo.")] = settings.DEFAULT_TOP_K,
    recursive: Annotated[bool, typer.Option("--recursive/--no-recursive",
                                            help="Walk sub-folders too.")] = True,
    follow_symlinks: Annotated[bool, typer.Option("--follow-symlinks", help="Walk into symlinked folders too "
                               "(each real folder is still walked once, so a link loop is harmless).")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Photos per model call and per "
                          "committed transaction: a crash loses at most one batch.")] = settings.DEFAULT_BATCH,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no summary (for cron); "
                                        "a run that cannot complete still prints its error.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The summary as one JSON object on stdout (new, "
                                          "skipped, duplicates, errors, not_images, seconds ...), even with "
                                          "--quiet.")] = False,
    lease: Annotated[float, typer.Option("--lease", min=1.0, help="Seconds a photo this run has claimed stays "
                                         "claimed if the run dies (kill -9, a machine switched off); then "
                                         "another run takes it over. Longer than a batch takes.")] = 120.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="List every file recorded with an error, "
                                          "and show details of an unexpected failure.")] = False,
    unsure_below: UnsureOption = None,
    not_dog_below: NotDogOption = None,
    detector_path: DetectorOption = None,
    device: DeviceOption = Device.auto,
    looks: LooksOption = Looks.auto,
    grouping_mode: Annotated[str | None, typer.Option("--animals", help="How photos are grouped into animals: "
                             "folder (each sub-folder holding photos is one animal, named after it; photos "
                             "directly in a FOLDER you name are each their own), pattern (the animal's code is "
                             "read from the file name with --pattern), or none (each photo its own animal). "
                             "Default: folder, for files not grouped yet; given explicitly, it regroups what "
                             "earlier runs grouped (never what staff moved).", show_default=False)] = None,
    pattern: Annotated[str | None, typer.Option("--pattern", help="With --animals pattern: a regular "
                       "expression whose group 'animal' (else its first group) is the animal's code in the "
                       "file name, e.g. 'A(\\d+)_' for A123456_2.jpg.", show_default=False)] = None,
    folder_pattern: Annotated[str | None, typer.Option("--folder-pattern", help="With --animals folder: a "
                              "regular expression with groups 'code' and 'name' that reads an animal's code and "
                              "name from its folder's name, for a scheme other than the default (A1023-Rex, "
                              "A1023 Rex, A1023_Rex), e.g. '(?P<name>.+) \\((?P<code>A\\d+)\\)' for 'Rex (A1023)'. "
                              "Given, it regroups what earlier runs grouped.", show_default=False)] = None,
):
    """Record every photo under FOLDERS in a database: path, SHA-256, size, mtime, width x height, status
    (dog / unsure / not_a_dog / error), breed guesses of the model, or the reason it could not be read.

    Unchanged files are skipped without being read; a photo under a second name is known by its hash. A new
    --model adds its predictions beside the old ones.

    Each batch is committed as it completes: after a crash or Ctrl-C, run the same command again to finish.

    Several runs may share one database at the same time, on one machine or on several (PostgreSQL), and
    catalog the same or overlapping folders: each photo is classified once, by the run that claimed it first;
    "new" counts what this run classified.

    [b]Examples[/b]

      dogcat catalog ./intake --db shelter.db

      dogcat catalog ./intake --db shelter.db --model new-model.onnx

      dogcat catalog /srv/photos --db postgresql://dogcat@dbhost/shelter --quiet

      dogcat catalog /srv/photos --db postgresql://dogcat@dbhost/shelter --json   (on each of N machines)

      dogcat catalog ./intake --db shelter.db --animals pattern --pattern '^(A\\d+)_'

    Photos are grouped into animals as they are catalogued (--animals); see them with dogcat animals. A folder
    named A1023-Rex (or A1023 Rex, A1023_Rex) is the animal with code A1023, named Rex.

    [b]Exit codes[/b]

      0  the run completed, files recorded with an error included (see: dogcat export --errors)

      1  it could not run or finish: missing folder, bad --db, unusable model, database failure

      2  bad usage (a --pattern that is not a regular expression, matches no file or cannot be matched within
      2 s, a --folder-pattern that is not one, has no group 'code' or is as slow: nothing is written, not even a
      new catalog file)

      130  interrupted (completed batches are saved)
    """
    import functools

    from dogcat.animals import Grouping
    from dogcat.api import Catalog

    missing = [f for f in folders if not f.exists() and not f.is_symlink()]
    if missing:
        fail(escape(f"{missing[0]}: no such folder"))
    with failures():  # a bad --animals / --pattern: exit 2 before the catalog is opened
        Grouping.parse(grouping_mode, pattern, [str(f) for f in folders], folder_pattern)
    saved = "Completed batches are saved; run the same command again to finish"
    with failures(db, verbose=verbose, then=saved):
        with Catalog(db, model=model_path, detector=detector_path, device=device.value, unsure_below=unsure_below,
                     not_dog_below=not_dog_below, looks=looks.value) as shelter:
            judge = shelter.judge()
            for warning in judge.start():
                error(escape(warning), kind="warning")
            add = functools.partial(shelter.add, *folders, animals=grouping_mode, pattern=pattern,
                                    recursive=recursive, top_k=top_k, follow_symlinks=follow_symlinks,
                                    batch_size=batch_size, lease_s=lease, folder_pattern=folder_pattern)
            if quiet:
                summary = add()
            else:
                with _catalog_progress() as advance:
                    summary = add(progress=advance)
            where = shelter.name

    if verbose:
        for path, reason in summary.error_files:
            # visible(): one line per file, whatever its name, and no control or bidi character reaches the terminal
            err.print(f"[red]error:[/] {escape(visible(path))}: {escape(visible(reason))}", highlight=False,
                      markup=True)
    if as_json:
        sys.stdout.write(json.dumps({**summary.to_dict(), "device": judge.device}) + "\n")
        return
    if quiet:
        return
    _print_summary(summary, where, judge.device)


@contextmanager
def _catalog_progress():
    """The catalog's progress bar on stderr; yields the callback catalog.run reports to. The bar appears on the
    first report, once the files are found and the catalog is open: a run refused before then shows none."""
    from contextlib import ExitStack

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with ExitStack() as stack:
        shown: list = []

        def advance(done: int, total: int, images: int):
            if not shown:
                bar = stack.enter_context(Progress(
                    TextColumn("cataloguing"), BarColumn(), MofNCompleteColumn(), TextColumn("files"), rate_column(),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=err, transient=False))
                shown.append((bar, bar.add_task("catalog", total=None, images=0)))
            bar, task = shown[0]
            bar.update(task, completed=done, total=total, images=images)

        yield advance


def _print_summary(s, database: str, device: str):
    table = Table(title=f"catalog of {escape(visible(database))}", title_justify="left", show_header=False,
                  show_edge=False,
                  box=None, pad_edge=False)
    table.add_column(justify="right", style="bold")
    table.add_column()
    rate = f", {s.images_per_second:.1f} images/s" if s.new else ""
    table.add_row(str(s.new), f"new (classified by {escape(visible(s.model_id))} on the {device}{rate})")
    table.add_row(str(s.skipped), "skipped (already catalogued, unchanged)")
    table.add_row(str(s.duplicates), "duplicates (a photo already catalogued, under another name)")
    table.add_row(str(s.errors), "errors (recorded; see: dogcat export --errors)" if s.errors else "errors")
    table.add_row(str(s.non_images), "not images (skipped)")
    if s.links_skipped:
        table.add_row(str(s.links_skipped), "symlinked folders not followed (--follow-symlinks)")
    if s.grouped:
        table.add_row(str(s.grouped), "files put in animals (see: dogcat animals)")
    if s.back:
        table.add_row(str(len(s.back)), escape(visible(
            "retired animals in care again, their photos back: " + ", ".join(sorted(s.back, key=str.lower)))))
    out.print(table)
    if s.statuses:
        out.print("photos by status: " + ", ".join(f"{name} {s.statuses.get(name, 0)}"
                                                   for name in ("dog", "unsure", "not_a_dog")), highlight=False)
    if s.breeds:
        breeds = Table(title="top breeds", title_justify="left", show_edge=False, header_style="bold")
        breeds.add_column("breed")
        breeds.add_column("photos", justify="right")
        for name, n in s.breeds.most_common(5):
            breeds.add_row(escape(visible(name)), str(n))
        out.print(breeds)
    waited = f"; {s.waited:.0f} s waiting for photos other runs had claimed" if s.waited else ""
    out.print(f"[dim]{s.files} files in {s.seconds:.1f} s, {s.batches} batches committed{waited}[/]",
              highlight=False)


class ExportFormat(str, Enum):
    csv = "csv"
    jsonl = "jsonl"
    asm3 = "asm3"


@app.command()
def export(
    db: DbOption = settings.DEFAULT_DB,
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="csv (spreadsheet-safe), jsonl (one "
                                              "JSON object per line) or asm3 (an Animal Shelter Manager import "
                                              "file: what ASM3 has not been sent yet).")] = ExportFormat.csv,
    output: OutputOption = None,
    breed: Annotated[str | None, typer.Option("--breed", help="Only photos whose best guess is this breed, by "
                     "name or label, any case: 'golden retriever', golden_retriever.", show_default=False)] = None,
    min_confidence: Annotated[float | None, typer.Option("--min-confidence", min=0.0, max=1.0, help="Only "
                              "photos whose best guess is at least this confident (0 to 1).",
                              show_default=False)] = None,
    errors: Annotated[bool, typer.Option("--errors", help="Only files recorded with an error.")] = False,
    status: Annotated[str | None, typer.Option("--status", help="Only files with this status: dog, unsure, "
                                               "not_a_dog or error.", show_default=False)] = None,
    model_id: ModelIdOption = None,
    images: Annotated[bool, typer.Option("--images/--no-images", help="asm3: attach each photo (read again, "
                      "at most 1024 pixels a side) as ANIMALIMAGE.")] = True,
    per: Annotated[str | None, typer.Option("--per", help="photo (one record per catalogued file; the default) "
                   "or animal (one per animal, its photos fused into one answer). asm3 is always per animal.",
                   show_default=False)] = None,
    age: ExportAgeOption = None,
    dob: ExportDobOption = None,
    animals_csv: ExportAnimalsCsvOption = None,
    everything: Annotated[bool, typer.Option("--all", help="asm3: every photo and answer, also what was sent "
                          "before (importing it again attaches those photos again); never a field staff own of an "
                          "animal ASM3 has.")] = False,
):
    """Write the catalog out: one record per catalogued file (--per photo), or per animal (--per animal).

    Per photo: path, sha256, size, mtime, width, height, format, status, label, breed, confidence, top_k,
    dog_probability, looks_like, model, error, catalogued_at, classified_at, animal, source.

    Per animal: animal (its code), name, photos, status, label, breed, confidence, breed2 (a mix), summary,
    top_k, source (model or correction), corrected_by, corrected_at, votes (photos fused), model.

    Staff corrections (dogcat correct) win over the model everywhere: source says which spoke. CSV has an
    empty corrected_breed column last: fill it in and apply it with dogcat correct --from FILE.csv.

    CSV quotes any odd file name, and defuses a cell that a spreadsheet would run as a formula.

    --format asm3 writes what Animal Shelter Manager's "Import a CSV file" reads, only what ASM3 has not been
    sent: a full row for an animal new to ASM3 (code, name, date of birth or age, sex, breeds in ASM3's
    spelling), and for one it has (dogcat asm3 pull tells) only its new photos and dogcat's answer as a log
    entry when it changed, never a field staff own, and never a photo ASM3 has under another animal. A loose
    photo (no folder) is listed as not sent. The catalog records what each file held; a file never imported is
    taken back with dogcat asm3 forget ID. Two exports at once: the second waits, then writes only what is
    left. Staff corrections ASM3's import cannot make are listed with where to change them in ASM3. Animals that
    are no dog are left out. See docs/asm3.md.

    [b]Examples[/b]

      dogcat export --db shelter.db -o shelter.csv

      dogcat export --db shelter.db --format jsonl --breed "golden retriever" --min-confidence 0.8

      dogcat export --db shelter.db --errors

      dogcat export --db shelter.db --status unsure

      dogcat export --db shelter.db --per animal --format jsonl

      dogcat export --db shelter.db --format asm3 --age 2 -o asm3-import.csv

      dogcat export --db shelter.db --format asm3 --animals-csv intake.csv -o asm3-import.csv

    [b]Exit codes[/b]

      0  the records were written (none matching the filters is not an error); with -o, one line on stderr
      says how many

      1  the database cannot be read, or the output cannot be written

      2  bad usage (--per photo with asm3, an animal new to ASM3 without an age, -o naming the catalog ...):
      nothing written
    """
    from dogcat import export as exp
    from dogcat.decision import STATUSES

    if status is not None and status not in STATUSES:
        fail(f"--status must be one of {', '.join(STATUSES)}", 2)
    if per not in (None, *exp.PER):
        fail(f"--per must be one of {', '.join(exp.PER)}", 2)
    if fmt is ExportFormat.asm3:
        if errors or breed or min_confidence is not None or status or model_id:
            fail("--format asm3 sends every animal with something new for ASM3: it takes no --errors, --breed, "
                 "--min-confidence, --status or --model-id", 2)
        if per == "photo":
            fail("--format asm3 is one row per animal: leave out --per photo", 2)
        export_asm3_file(db, output, images, age, dob, animals_csv, everything)
        return
    if age is not None or dob is not None or animals_csv is not None or everything:
        fail("--age, --dob, --animals-csv and --all go with --format asm3", 2)
    per = per or "photo"
    if per == "animal" and errors:
        fail("--errors lists files: use it with --per photo", 2)
    filters = dict(breed=breed, min_confidence=min_confidence, model_id=model_id, status=status,
                   **({"errors": errors} if per == "photo" else {}))
    not_the_catalog(db, output)
    with failures(db, output, writes=True), open_catalog(db, readonly=True) as catalog, output_stream(output) as stream:
        written = catalog.export(stream, fmt.value, per=per, **filters)
    if output is not None:  # as report: a file written says so on stderr, in one line (stdout stays data)
        err.print(f"{escape(visible(str(output)))}: {written} {per} record{'s' if written != 1 else ''}, "
                  f"{fmt.value}", highlight=False)


@app.command()
def report(
    db: DbOption = settings.DEFAULT_DB,
    output: OutputOption = None,
    title: Annotated[str | None, typer.Option("--title", help="The page's title. Default: 'dogcat: ' and the "
                     "database.", show_default=False)] = None,
    model_id: ModelIdOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
):
    """A picture catalog: one self-contained HTML page of the catalog, to open in any browser or mail.

    One card per animal: its name, code and answer (the model's, fused from its photos, with its confidence;
    or the staff's, marked "staff"), then a thumbnail of each photo with that photo's own guess (its breed
    named), marked "not the animal's answer" where it names another breed than its animal's. The
    animals to review (unsure) come first, then the dogs by breed (a corrected animal in its breed's
    section), then animals that are not a dog, then the files that could not be read. Counts are animals
    (files for the unreadable ones). A later copy of a photo says "duplicate of" the first. A search box
    (file names, breeds, codes, problems; the query is kept in the address, #q=...). Thumbnails are read
    from the photos again: a photo moved or changed since it was catalogued shows why it has none.

    [b]Examples[/b]

      dogcat report --db shelter.db -o report.html

      dogcat report --db postgresql://dogcat@dbhost/shelter --title "Intake, June" -o june.html

    [b]Exit codes[/b]

      0  the page was written;  1  the database cannot be read, or the page cannot be written;  2  bad usage
      (-o naming the catalog itself ...)
    """
    not_the_catalog(db, output)
    with failures(db, output, writes=True), open_catalog(db, readonly=True) as catalog:
        if quiet or not err.is_terminal:  # the bar vanishes when done: in a log it would only leave a blank line
            page, files = catalog.report(title=title, model_id=model_id)
        else:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            with Progress(TextColumn("thumbnails"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                          console=err, transient=True) as bar:
                task = bar.add_task("thumbnails", total=None)
                page, files = catalog.report(title=title, model_id=model_id, progress=lambda done, total:
                                             bar.update(task, completed=done, total=total))
        with output_stream(output) as stream:
            stream.write(page)
    if output is not None and not quiet:
        err.print(f"{escape(visible(str(output)))}: {files} files, {len(page) / 1e6:.1f} MB", highlight=False)
