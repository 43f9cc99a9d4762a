"""The ``dogcat`` command line. Parses arguments and prints; the work happens in the modules it calls.

Heavy modules (onnxruntime, sqlalchemy, tensorflow) are imported inside the commands that need them, so
``dogcat --help`` is instant and inference never loads TensorFlow.

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
from dogcat.helptext import Group
from dogcat.shell import failures, output_stream
from dogcat.text import json_text, percent, visible
from dogcat.version import __version__

if TYPE_CHECKING:
    from rich.console import JustifyMethod
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
    "only when the first is unsure: the model card's rule, about 1.1 looks per photo), 1, or 2 (every photo "
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
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Show the details of an unexpected failure "
                                                                      "(and, for catalog, every file with an error).")]


@contextmanager
def _catalog(db: str, create: bool = False, readonly: bool = False):
    """The catalog (the library's façade) for one command, closed at its end. ``readonly``: the command only
    reads (it then works on a catalog on read-only media)."""
    from dogcat.api import Catalog

    catalog = Catalog(db, create=create, readonly=readonly)
    try:
        yield catalog
    finally:
        catalog.close()


def _not_the_catalog(db: str, output: Path | None):
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


@app.command()
def classify(
    paths: Annotated[list[str], typer.Argument(help="Photos, folders (searched recursively, picking the files "
                                               "dogcat catalog would), quoted globs, or - to read paths from "
                                               "standard input, one per line.", show_default=False)],
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1,
                                       help="How many breeds to list per photo.")] = settings.DEFAULT_TOP_K,
    model_path: ModelOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per photo, one per line.")] = False,
    null: Annotated[bool, typer.Option("--null", "-0", help="With -: the paths on standard input are separated "
                                       "by NUL characters (find -print0), not lines.")] = False,
    unsure_below: UnsureOption = None,
    not_dog_below: NotDogOption = None,
    detector_path: DetectorOption = None,
    device: DeviceOption = Device.auto,
    looks: LooksOption = Looks.auto,
):
    """Name the breed of the dog in each photo, or say it is not a dog, or that dogcat is unsure.

    Each photo gets a status: [b]dog[/b] (a confident breed: "Beagle 99%"), [b]unsure[/b] ("probably Beagle
    (72%)", or "maybe a mix: Beagle 51% / Basset 43%" when the second breed has 25% or more),
    [b]not_a_dog[/b] (with what it looks like) or [b]error[/b]. The thresholds come with the model (see its
    model card) and can be changed with --unsure-below and --not-dog-below. Results come one per photo as the
    model answers it, in the order of the arguments: the table's rows (with a progress bar on a terminal, the
    runners-up shortened to the terminal's width; into a pipe nothing is cut), or one JSON line each.

    [b]Examples[/b]

      dogcat classify examples/golden_retriever-original.jpg

      dogcat classify intake/ --top-k 5 --json > breeds.jsonl

      find intake -name '*.jpg' -newer last-run -print0 | dogcat classify --null -

    [b]Exit codes[/b]

      0  every photo was classified (videos, such as a Live Photo's .MOV, are skipped and counted on stderr)

      1  at least one photo could not be (missing, unreadable, not an image: one line each on stderr, and an
      object with an "error" key under --json; the others are still printed), or the model is unusable

      2  bad usage
    """
    from dogcat.classifier import Result, expand
    from dogcat.classifier import classify as run_classify
    from dogcat.status import load_judge  # not through dogcat.api: that imports the catalog (a slower cold start)

    videos: list[Path] = []  # a Live Photo's .MOV beside its .HEIC: skipped, and said so
    items = expand(paths, stdin=sys.stdin.buffer if "-" in paths else None, null=null, videos=videos)
    if videos:
        error(f"skipped {len(videos)} video{'s' if len(videos) > 1 else ''} (dogcat reads photos only)",
              kind="note")
    rows = _ClassifyRows([visible(str(i.path if isinstance(i, Result) else i)) for i in items], top_k)
    failed = 0
    with failures():
        judge = load_judge(str(model_path) if model_path else None, str(detector_path) if detector_path else None,
                           device.value, unsure_below, not_dog_below, looks.value)
        model = judge.model
        if any(isinstance(i, Path) for i in items):
            for warning in judge.start():
                error(escape(warning), kind="warning")
        # One result at a time, as the model answers it (a batch at a time), in the order of the arguments: a
        # JSON line flushed at once; a table row printed above a progress bar on a terminal.
        with _classify_progress(len(items), rows, show=not as_json and out.is_terminal and err.is_terminal) as done:
            for r in run_classify(judge, items, top_k):
                if r.error:
                    failed += 1
                    error(escape(f"{visible(r.path)}: {r.error}"))
                if as_json:
                    sys.stdout.write(json.dumps(r.to_dict(model.id)) + "\n")
                    sys.stdout.flush()
                elif not r.error:
                    rows.print(r)
                done()
    if failed or not items:
        raise typer.Exit(1)


class _ClassifyRows:
    """classify's table, printed one row at a time as results come: the photo column is as wide as the longest
    path given (known before the first result), so the rows line up. Then the answer, which says the status in
    words, its confidence in it ('Beagle 99%', 'probably Beagle (72%)', 'maybe a mix: Beagle 51% / Basset 43%',
    'not a dog (tabby)'), then the runners-up: on a terminal these are shortened to keep each row one line (the
    path never is); into a file or a pipe nothing is cut."""

    STYLES = {"dog": "green", "unsure": "yellow", "not_a_dog": "magenta"}

    def __init__(self, paths: list[str], top_k: int):
        from rich.cells import cell_len

        self.photo_width = max([cell_len(p) for p in paths] + [len("photo")])
        self.top_k = top_k
        self.started = False
        self.console = out  # the progress bar's, while one is shown (rows are printed above it)
        # A person's terminal, NO_COLOR's plain one too (rich then treats it as none): rows kept to its width.
        self.width = out.width if sys.stdout.isatty() else None

    def _line(self, photo: str, answer: str, style: str = ""):
        from rich.cells import cell_len
        from rich.text import Text

        line = Text(" ")
        line.append(photo + " " * (self.photo_width - cell_len(photo)), style="bold" if style == "bold" else "")
        line.append(" ┃ " if style == "bold" else " │ ")
        line.append(answer, style=style)
        return line

    def _header(self):
        from rich.text import Text

        self.console.print(self._line("photo", "answer", "bold"), highlight=False)
        rest = max(8, self.width - self.photo_width - 3) if self.width else 8
        self.console.print(Text("━" * (self.photo_width + 2) + "╇" + "━" * rest), highlight=False)

    def print(self, r):
        from rich.cells import cell_len

        if not self.started:
            self._header()
            self.started = True
        v = r.verdict
        assert v is not None  # a Result without an error has a verdict
        best, rest = r.top_k[0], r.top_k[1:self.top_k]
        if v.status == "not_a_dog":
            assert v.dog_probability is not None  # only the dog check says not_a_dog
            answer, lead, then = v.summary(), "; dog check ", [percent(v.dog_probability)]
        else:
            answer = f"{best.breed} {percent(best.confidence)}" if v.status == "dog" else v.summary()
            named = 2 if answer.startswith("maybe a mix") else 1  # its second breed is named already
            lead, then = "; then ", [visible(f"{g.breed} {percent(g.confidence)}") for g in rest[named - 1:]]
        line = self._line(visible(r.path), visible(answer), self.STYLES[v.status])
        if self.width:  # one line at the terminal's width: as many runners-up as fit
            while then and cell_len(line.plain) + cell_len(lead + ", ".join(then)) > self.width:
                then.pop()
        if then:
            line.append(lead + ", ".join(then), style="dim")
        self.console.print(line, highlight=False)


@contextmanager
def _classify_progress(total: int, rows: _ClassifyRows, show: bool):
    """A progress bar on the terminal below classify's rows; yields what to call as each photo is done. Nothing
    when ``show`` is false (--json, a pipe, a log)."""
    if not show:
        yield lambda: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    # Shown only where stdout and stderr are both the terminal: the rows and the messages are then printed
    # through the bar's own console, above it (written past it, they would be drawn over).
    with Progress(TextColumn("classifying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, transient=True) as bar:
        task = bar.add_task("classify", total=total)
        rows.console = bar.console
        try:
            yield lambda: bar.advance(task)
        finally:
            rows.console = out


@app.command()
def evaluate(
    data_dir: Annotated[Path | None, typer.Argument(help="Folders named by class label (<wnid>-<name>/*.jpg); "
                        "with --not-dogs, any folder of photos without a dog.", show_default=False)] = None,
    model_path: ModelOption = None,
    part: Annotated[str | None, typer.Option(help="Only photos in this part of the model's own split: 'train', "
                                                  "'val', or a half of val: 'val-tune' (where the thresholds "
                                                  "were chosen) or 'val-holdout'.")] = None,
    not_dogs: Annotated[bool, typer.Option("--not-dogs", help="The photos show no dog: report how many are "
                                                             "flagged not_a_dog.")] = False,
    resize: Annotated[str | None, typer.Option(help="Serve with this resize instead of the model's: stretch, "
                                                    "letterbox or center-crop (to measure which is best).")] = None,
    unsure_below: UnsureOption = None,
    not_dog_below: NotDogOption = None,
    looks: LooksOption = Looks.auto,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    record: Annotated[bool, typer.Option("--record", help="With --part val: write the top-1/top-3 into the "
                                         "model's sidecar (metrics.val), e.g. after quantizing.")] = False,
    db: Annotated[str | None, typer.Option("--db", help="Instead of a folder: score the catalog's model "
                  "answers against the staff's corrections (dogcat correct).", show_default=False)] = None,
):
    """Accuracy and statuses of a model on a labelled folder, through exactly the path classify uses.

    Prints top-1 / top-3 of the breed model on every photo, how many photos each status took, and the
    precision of the confident ('dog') answers.

    With --db, the shelter's own figure: the model's answers in the catalog (per photo, and per animal as
    fused) against every staff correction in force.

    [b]Examples[/b]

      dogcat evaluate ../shared/data/stanford-dogs-crops-224 --part val-holdout

      dogcat evaluate ../shared/data/stanford-dogs-originals --part val --resize letterbox

      dogcat evaluate ~/not-dogs --not-dogs

      dogcat evaluate --db shelter.db
    """
    import dataclasses

    if db is not None:
        if data_dir is not None:
            fail("give a folder or --db, not both", 2)
        _evaluate_corrections(db, as_json)
        return
    if data_dir is None:
        fail("give a labelled folder to evaluate on, or --db CATALOG for the staff's corrections", 2)

    from rich.progress import Progress

    from dogcat import api
    from dogcat.evaluate import PARTS
    from dogcat.images import RESIZE_MODES

    if part not in (None, *PARTS):
        fail(f"--part must be one of {', '.join(PARTS)}", 2)
    if resize not in (None, *RESIZE_MODES):
        fail(f"--resize must be one of {', '.join(RESIZE_MODES)}", 2)
    if record and part != "val":
        fail("--record needs --part val", 2)
    if not data_dir.is_dir():
        fail(escape(f"{data_dir}: no such folder"))
    with failures():
        judge = api.evaluation_judge(model_path, resize=resize, unsure_below=unsure_below,
                                     not_dog_below=not_dog_below, looks=looks.value)
        model = judge.model
        if not_dogs:
            flagged = api.evaluate_not_dogs(judge, data_dir)
            if not flagged["n"]:
                fail(escape(f"{data_dir}: no readable photos"))
            if as_json:
                print(json.dumps({"model": model.id, "data": str(data_dir), "thresholds":
                                  dataclasses.asdict(judge.thresholds), **flagged}))
            else:
                out.print(f"{escape(visible(model.id))} on {escape(visible(str(data_dir)))}: "
                          f"{flagged['not_a_dog']} of {flagged['n']} photos "
                          f"flagged not_a_dog ({flagged['share_not_a_dog']:.1%})")
                for m in flagged["missed"]:
                    out.print(escape(f"  missed: {visible(m['path'])} ({m['status']}, dog probability "
                                     f"{m['dog_probability']:.3f})"))
            raise typer.Exit(0)
        with Progress(console=err, transient=True) as bar:
            task = bar.add_task("evaluating", total=None)
            result = api.evaluate_folder(judge, data_dir, part, on_batch=lambda n: bar.advance(task, n))
    if record:
        with failures():
            side = api.record_val_metrics(model.path, result, f"dogcat evaluate {data_dir} --part val"
                                          + (f" --resize {resize}" if resize else ""))
        err.print(f"recorded in {escape(visible(str(side)))}", highlight=False)
    if as_json:
        print(json.dumps({"model": model.id, "data": str(data_dir), "part": part,
                          "resize": model.preprocessing.resize,
                          "thresholds": dataclasses.asdict(judge.thresholds), **result.to_dict()}))
    else:
        st = result.statuses
        out.print(f"{escape(visible(model.id))} on {escape(visible(str(data_dir)))} ({part or 'all'}, "
                  f"{model.preprocessing.resize}): "
                  f"{result.n} photos, top-1 {result.top1:.4f}, top-3 {result.top3:.4f}"
                  + (f", {result.errors} unreadable" if result.errors else "")
                  + (f", {len(result.skipped_labels)} folders not in the model" if result.skipped_labels else ""))
        if result.n:
            out.print(f"statuses: dog {st['dog']}, unsure {st['unsure']}, not_a_dog {st['not_a_dog']} "
                      f"({st['not_a_dog'] / result.n:.1%}); precision of 'dog' answers "
                      + (f"{result.dog_precision:.4f}" if result.dog_precision is not None else "n/a"))
    if result.n == 0:
        raise typer.Exit(1)



def _evaluate_corrections(db: str, as_json: bool):
    from dogcat.db import describe_db

    with failures(db), _catalog(db, readonly=True) as catalog:
        result = catalog.staff_agreement()
    where = describe_db(db)  # a URL without its password
    if as_json:
        print(json.dumps({"db": where, **result}))
        return
    if not result["corrections"]:
        out.print(f"{escape(visible(where))}: no staff corrections yet (dogcat correct records them)",
                  highlight=False)
        return

    def line(what: str, r: dict) -> str:
        if not r["n"]:
            return f"{what}: no breed corrections"
        return f"{what}: {r['n']} corrected, the model's top-1 right {r['top1']:.1%}, top-3 {r['top3']:.1%}"

    out.print(f"{escape(visible(where))}: {result['corrections']} staff corrections in force", highlight=False)
    out.print(line("photos", result["photos"]), highlight=False)
    out.print(line("animals", result["animals"]), highlight=False)
    apart = result["outside_model"]
    if apart["photos"] or apart["animals"]:
        breeds = ", ".join(f"{name} {n}" for name, n in apart["breeds"].items())
        out.print(escape(visible(f"not counted: {apart['animals']} animals and {apart['photos']} photos whose breed "
                                 f"the model does not have ({breeds})")), highlight=False)
    nd = result["not_a_dog"]
    if nd["n"]:
        out.print(f"not a dog: {nd['n']} corrected, the model had flagged {nd['flagged']}", highlight=False)
    if result["dog_precision"] is not None:
        out.print(f"precision of the model's 'dog' answers: {result['dog_precision']:.1%} "
                  f"of {result['dog_answers']}", highlight=False)


def _rate_column() -> ProgressColumn:
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
                    TextColumn("cataloguing"), BarColumn(), MofNCompleteColumn(), TextColumn("files"), _rate_column(),
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
    age: Annotated[str | None, typer.Option("--age", help="asm3: the estimated age in years ASM3 needs for an "
                   "animal new to it (e.g. 2, or 0.5), for those with no age from a pull or --animals-csv.",
                   show_default=False)] = None,
    dob: Annotated[str | None, typer.Option("--dob", help="asm3: a date of birth (YYYY-MM-DD) instead of --age.",
                   show_default=False)] = None,
    animals_csv: Annotated[Path | None, typer.Option("--animals-csv", help="asm3: each new animal's name, date "
                           "of birth or age, and sex: a CSV with columns code,name,dob,age,sex (comma, semicolon "
                           "or tab).", show_default=False)] = None,
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
        _export_asm3(db, output, images, age, dob, animals_csv, everything)
        return
    if age is not None or dob is not None or animals_csv is not None or everything:
        fail("--age, --dob, --animals-csv and --all go with --format asm3", 2)
    per = per or "photo"
    if per == "animal" and errors:
        fail("--errors lists files: use it with --per photo", 2)
    filters = dict(breed=breed, min_confidence=min_confidence, model_id=model_id, status=status,
                   **({"errors": errors} if per == "photo" else {}))
    _not_the_catalog(db, output)
    with failures(db, output, writes=True), _catalog(db, readonly=True) as catalog, output_stream(output) as stream:
        written = catalog.export(stream, fmt.value, per=per, **filters)
    if output is not None:  # as report: a file written says so on stderr, in one line (stdout stays data)
        err.print(f"{escape(visible(str(output)))}: {written} {per} record{'s' if written != 1 else ''}, "
                  f"{fmt.value}", highlight=False)


def _export_asm3(db: str, output: Path | None, images: bool, age: str | None, dob: str | None,
                 animals_csv: Path | None, everything: bool):
    _not_the_catalog(db, output)
    with failures(db, output, writes=True), _catalog(db) as catalog:
        done = catalog.asm3_export(output, resend=everything, age=age, dob=dob, animals_csv=animals_csv,
                                   images=images, stdout=sys.stdout.buffer,
                                   on_wait=lambda said: err.print(escape(said), highlight=False))
    plan = done.plan
    for line in done.settled:
        error(escape(visible(line)), kind="warning")
    for warning in plan.warnings:
        error(escape(warning), kind="warning")
    _not_sent(plan.not_sent)
    _hand_off(plan.handoff)
    where = escape(visible(str(output))) if output else "stdout"
    if done.file_id is None:
        err.print(f"{where}: nothing new for ASM3 (no animal, photo or answer it has not been sent): "
                  "nothing written", highlight=False)
        return
    err.print(f"{where}: {len(plan.animals)} animals ({plan.new} new to ASM3), {plan.photos} photos, {plan.logs} "
              f"log entries; recorded as ASM3 file {done.file_id} (never imported? dogcat asm3 forget "
              f"{done.file_id})", highlight=False)
    if everything:
        error("--all: this file holds what was sent before too; importing it again attaches those photos again",
              kind="warning")


def _not_sent(lines: list[str], shown: int = 20):
    """Loose photos, each with why: the first ``shown``, then how many more."""
    for line in lines[:shown]:
        err.print(f"not sent: {escape(visible(line))}", highlight=False)
    if len(lines) > shown:
        err.print(f"not sent: {len(lines) - shown} more photos with no animal", highlight=False)


def _hand_off(handoff: list, to=err) -> None:
    """Corrections a person must make in ASM3 (its import cannot): one line each, with both words and where."""
    if handoff:
        to.print(f"{len(handoff)} staff correction(s) ASM3's import cannot make; change them in ASM3:",
                 highlight=False)
    for h in handoff:
        to.print("  " + escape(visible(h.line())), highlight=False)


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
    _not_the_catalog(db, output)
    with failures(db, output, writes=True), _catalog(db, readonly=True) as catalog:
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


# Its help is animals_list's docstring (a help= here would hide that page's examples and exit codes).
animals_app = typer.Typer(rich_markup_mode="rich", invoke_without_command=True)
app.add_typer(animals_app, name="animals")


class AnimalStatus(str, Enum):
    dog = "dog"
    unsure = "unsure"
    not_a_dog = "not_a_dog"
    error = "error"


def _print_whole(table: Table) -> None:
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


@animals_app.callback()
def animals_list(
    ctx: typer.Context,
    db: DbOption = settings.DEFAULT_DB,
    status: Annotated[AnimalStatus | None, typer.Option("--status", help="Only animals whose answer has this "
                      "status (unsure: the ones to look at).", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per animal per line (the same "
                                                         "record as export --per animal --format jsonl).")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV, the columns of export --per animal --format csv "
                                                       "(spreadsheet-safe).")] = False,
):
    """The animals in a catalog: list them, show one in full, fix how photos were grouped.

    Without a command: one line per animal, its code, name, photos, and the answer fused from its photos (or
    the staff's). Into a file or a pipe the table is as wide as it needs: codes and names are never cut.
    --json and --csv are for scripts and spreadsheets.

    [b]Examples[/b]

      dogcat animals --db shelter.db

      dogcat animals --db shelter.db --status unsure

      dogcat animals --db shelter.db --csv > animals.csv

      dogcat animals show A123 --db shelter.db

      dogcat animals merge A123 A124 --db shelter.db

      dogcat animals move intake/A124/IMG_2.jpg A123 --db shelter.db

    [b]Exit codes[/b]

      0  done;  1  the database cannot be read, or no such animal or photo;  2  bad usage (--json with --csv,
      an unknown --status)
    """
    if ctx.invoked_subcommand is not None:
        return
    if as_json and as_csv:
        fail("give --json or --csv, not both", 2)
    filters = {"status": status.value} if status is not None else {}
    with failures(db), _catalog(db, readonly=True) as catalog:
        answers = catalog.animals(include_empty=True, **filters)
    if as_json:
        for a in answers:
            print(json_text(a.to_dict()))
        return
    if as_csv:
        from dogcat.export import write_animals

        with failures(output=None, writes=True), output_stream(None) as stream:
            write_animals(answers, "csv", stream)
        return
    table = Table(show_edge=False, header_style="bold")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("animal", "left"), ("name", "left"), ("photos", "right"), ("status", "left"), ("breed", "left"),
        ("confidence", "right"), ("by", "left"))
    for column, justify in columns:
        table.add_column(column, justify=justify)
    for a in answers:
        confidence = percent(a.confidence) if a.confidence is not None else ""
        if a.source == "correction" and a.correction:
            by = f"staff ({a.correction.by})"
        elif a.votes:
            by = f"model, {a.votes} photo" + ("s" if a.votes != 1 else "")
        else:
            by = ""
        table.add_row(escape(visible(a.animal)), escape(visible(a.name)), str(len(a.photos)), a.status,
                      escape(visible(a.summary())), confidence, escape(visible(by)))
    _print_whole(table)
    err.print(f"[dim]{len(answers)} animals[/]", highlight=False)


@animals_app.command("show")
def animals_show(
    code: Annotated[str, typer.Argument(help="The animal's code (any case).")],
    db: DbOption = settings.DEFAULT_DB,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object: the export --per animal record and "
                                          "dob, age, sex, merged, photos (each the model's own guess), "
                                          "corrections, asm3, never_sent.")] = False,
):
    """One animal in full: its answer, each photo with the model's own guess, every correction of it or its
    photos (undone ones too, oldest first, the ones in force marked) and the ASM3 import files that held it.

    [b]Examples[/b]

      dogcat animals show A123 --db shelter.db

      dogcat animals show A123 --db shelter.db --json

    [b]Exit codes[/b]

      0  shown;  1  no such animal, or the database cannot be read;  2  bad usage
    """
    from dogcat.readmodel import guess_summary

    with failures(db), _catalog(db, readonly=True) as catalog:
        detail = catalog.animal(code)
    if as_json:
        print(json_text(detail.to_dict()))
        return
    a = detail.answer

    def line(text: str) -> None:
        out.print(escape(visible(text)), highlight=False)

    line(f"{a.animal}  {a.name}" if a.name != a.animal else a.animal)
    if detail.asked.lower() != a.animal.lower():
        line(f"  ({detail.asked} was merged into {a.animal})")
    facts = [f"{what} {value}" for what, value in (("born", detail.dob), ("age", detail.age), ("sex", detail.sex))
             if value]
    if facts:
        line("  " + ", ".join(facts))
    if detail.retired_at:
        line(f"  retired {detail.retired_at} by dogcat animals prune: its photos were gone from disk "
             f"(dogcat animals restore {a.animal} brings it back)")
    if a.source == "correction" and a.correction:
        by = f"staff ({a.correction.by}, {a.correction.at})"
    else:
        by = f"model, {a.votes} photo{'s' if a.votes != 1 else ''}" if a.votes else "no photo voted"
    confidence = f" {percent(a.confidence)}" if a.confidence is not None else ""
    line(f"answer: {a.summary()}{confidence}, by {by}")
    line(f"photos ({len(detail.guesses)}), each with the model's own guess:")
    for photo in detail.guesses:
        line(f"  {photo['path']}: {guess_summary(photo)}")
    line(f"corrections ({len(detail.history)}), oldest first:" if detail.history else "corrections: none")
    for h in detail.history:
        fix = h.correction
        undone = f"; undone by {h.undone_by}, {h.undone_at}" if h.undone_at else ""
        note = f"; note: {fix.note}" if fix.note else ""
        mark = "  [in force]" if h.in_force else ""
        line(f"  {fix.at}  {h.kind} {h.target}: {h.said()} (by {fix.by}, {fix.source}{note}{undone}){mark}")
    if not detail.sent:
        line("ASM3: never sent")
        return
    line("ASM3: never sent (every file that held it was forgotten)" if detail.never_sent else "ASM3:")
    for f in detail.sent:
        kinds: dict[str, list[str]] = {}
        for kind, item in f.items:
            kinds.setdefault(kind, []).append(item)
        held = "; ".join(f"{kind} {', '.join(items)}" if kind == "animal" else
                         f"{len(items)} {kind}{'s' if len(items) != 1 else ''}" for kind, items in kinds.items())
        forgotten = f" (forgotten {f.forgotten_at}: never imported)" if f.forgotten_at else ""
        line(f"  {f.written_at}  file {f.id} {f.path} by {f.written_by}: {held}{forgotten}")


@animals_app.command("merge")
def animals_merge(
    into: Annotated[str, typer.Argument(help="The animal that keeps its code and gets the photos.")],
    other: Annotated[str, typer.Argument(help="The animal whose photos move; its code then points to INTO.")],
    db: DbOption = settings.DEFAULT_DB,
):
    """Merge animal OTHER into INTO: two groups that are one dog. Staff groupings are never undone by a
    later catalog run, and photos found later in OTHER's folder go to INTO too.

    [b]Example[/b]

      dogcat animals merge A123 A124 --db shelter.db

    [b]Exit codes[/b]

      0  merged;  1  no such animal, or the database cannot be used;  2  bad usage
    """
    with failures(db), _catalog(db) as catalog:
        moved = catalog.merge(into, other)
    out.print(f"merged {escape(visible(other))} into {escape(visible(into))}: {moved} "
              f"file{'s' if moved != 1 else ''} moved", highlight=False)


@animals_app.command("prune")
def animals_prune(
    db: DbOption = settings.DEFAULT_DB,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say which animals would be retired.")] = False,
    allow_missing: Annotated[bool, typer.Option("--allow-missing", help="Retire them even when their folder is "
                                                "missing or empty: the photos are gone for good.")] = False,
):
    """Retire the animals whose photos are all gone from disk (adopted, their folder deleted or moved away): they
    stay in the catalog with their photos' records, corrections, ASM3 link and history, but are no longer listed,
    exported or shown in the report. Prints each animal retired.

    A missing or empty folder is not a gone animal: when the photos' folder is empty, or missing together with the
    folder above it (an unplugged drive, a renamed intake folder), prune names it and retires nothing.

    A renamed folder keeps its animal: the next dogcat catalog puts its photos in the same animal (by the code in
    its name, A1002-Bella -> A1002-Bella-Rose, else by the photos' content, Rex -> Rexy) and brings it back into
    care if prune retired it meanwhile; so does a new photo under its code. dogcat animals restore CODE brings
    back any other.

    [b]Examples[/b]

      dogcat animals prune --db shelter.db --dry-run

      dogcat animals prune --db shelter.db

    [b]Exit codes[/b]

      0  done (none to retire included);  1  a folder is missing or empty (nothing retired), or the database cannot
      be used;  2  bad usage
    """
    with failures(db), _catalog(db) as catalog:
        found = catalog.prune(dry_run, allow_missing)
    verb = "would retire" if dry_run else "retired"
    for code, paths in found.items():
        out.print(escape(f"{verb} {visible(code)}: its {len(paths)} photo{'s are' if len(paths) != 1 else ' is'} "
                         "gone from disk"), highlight=False)
    err.print(f"[dim]{len(found)} animal{'s' if len(found) != 1 else ''} {verb}[/]", highlight=False)


@animals_app.command("restore")
def animals_restore(
    code: Annotated[str, typer.Argument(help="The retired animal's code (any case).")],
    db: DbOption = settings.DEFAULT_DB,
):
    """Bring an animal that dogcat animals prune retired back into care: listed, exported and reported again,
    with its corrections and ASM3 link as they were. (A catalog run that finds its photos again, or a new photo
    under its code, does this by itself.)

    [b]Example[/b]

      dogcat animals restore A1002 --db shelter.db

    [b]Exit codes[/b]

      0  restored (or it was in care);  1  no such animal, or the database cannot be used;  2  bad usage
    """
    with failures(db), _catalog(db) as catalog:
        found, retired_at = catalog.restore(code)
    if retired_at is None:
        out.print(escape(f"{visible(found)} is in care (it was not retired): nothing to do"), highlight=False)
    else:
        out.print(escape(f"{visible(found)} is in care again (retired {retired_at})"), highlight=False)


@animals_app.command("move")
def animals_move(
    photo: Annotated[str, typer.Argument(help="A photo: its path as catalogued, or its SHA-256.")],
    to: Annotated[str, typer.Argument(help="The animal's code.")],
    new: Annotated[str | None, typer.Option("--new", help="TO is a new animal, with this name.",
                                            show_default=False)] = None,
    db: DbOption = settings.DEFAULT_DB,
):
    """Move one photo to another animal (or, with --new, to a new one): a photo grouped with the wrong dog.

    [b]Examples[/b]

      dogcat animals move intake/A124/IMG_2.jpg A123 --db shelter.db

      dogcat animals move intake/litter/IMG_7.jpg A130 --new "Pip" --db shelter.db

    [b]Exit codes[/b]

      0  moved;  1  no such photo or animal (or --new with a code in use);  2  bad usage
    """
    with failures(db), _catalog(db) as catalog:
        paths = catalog.move(photo, to, new)
    out.print(f"moved {len(paths)} file{'s' if len(paths) != 1 else ''} to {escape(visible(to))}", highlight=False)


@app.command()
def correct(
    target: Annotated[str | None, typer.Argument(help="An animal code, a photo path as catalogued, or a "
                                                      "photo's SHA-256.", show_default=False)] = None,
    breed: Annotated[str | None, typer.Option("--breed", help="The breed in the shelter's words, any case: "
                     "any of ASM3's 221 dog breeds ('Pit Bull Terrier', 'Mixed Breed'), a short name (lab, GSD, "
                     "yorkie, pit bull), 'X mix', or the model's name (beagle). docs/breeds.md lists them.",
                     show_default=False)] = None,
    breed2: Annotated[str | None, typer.Option("--breed2", help="A second breed: a mix.",
                                               show_default=False)] = None,
    not_a_dog: Annotated[bool, typer.Option("--not-a-dog", help="The photo (or animal) is no dog.")] = False,
    undo: Annotated[bool, typer.Option("--undo", help="Take back the correction in force (the one before it, "
                                                      "or the model, speaks again).")] = False,
    from_csv: Annotated[Path | None, typer.Option("--from", help="Apply the corrected_breed column of a CSV "
                        "staff filled in: an export of dogcat's, or one with just animal,corrected_breed (comma, "
                        "semicolon or tab): 'Beagle', 'Beagle / Pug', 'Lab mix', 'not a dog'.",
                        show_default=False)] = None,
    by: Annotated[str | None, typer.Option("--by", help="Who corrects. Default: $USER.",
                                           show_default=False)] = None,
    db: DbOption = settings.DEFAULT_DB,
):
    """Record what staff know better than the model. Corrections are kept with who and when, never
    overwritten by a later catalog run, and every output (animals, export, report, ASM3) prefers them.

    [b]Examples[/b]

      dogcat correct A123 --breed beagle --breed2 'labrador retriever' --db shelter.db

      dogcat correct A124 --breed 'lab mix' --db shelter.db

      dogcat correct A125 --breed 'Pit Bull Terrier' --db shelter.db

      dogcat correct intake/A123/IMG_1.jpg --not-a-dog --db shelter.db

      dogcat correct A123 --undo --db shelter.db

      dogcat correct --from corrected.csv --db shelter.db

    [b]Exit codes[/b]

      0  recorded;  1  unknown breed, animal or photo, a CSV row that cannot be applied, two rows saying
      different things of one animal or photo, or a CSV header naming a column twice (then nothing is applied), a
      read-only catalog, or another writer holding the catalog for more than 10 minutes (dogcat waits for it,
      saying so)

      2  bad usage
    """
    from dogcat import corrections as fixes

    if from_csv is not None:
        if target is not None or breed or breed2 or not_a_dog or undo:
            fail("--from takes its targets and breeds from the CSV: give no TARGET, --breed, --not-a-dog "
                 "or --undo with it", 2)
        with failures(db), _catalog(db) as catalog:
            counts = catalog.correct_from(from_csv, by)
        out.print(f"{escape(visible(str(from_csv)))}: {counts['corrected']} corrected, "
                  f"{counts['unchanged']} unchanged, {counts['blank']} rows left blank", highlight=False)
        return
    if target is None:
        fail("say what to correct: an animal code, a photo path or a SHA-256 (or --from FILE.csv)", 2)
    if sum([breed is not None, not_a_dog, undo]) != 1 or (breed2 is not None and breed is None):
        fail("say one of --breed NAME (and --breed2 NAME for a mix), --not-a-dog or --undo", 2)
    try:
        change = fixes.Change.parse(breed, breed2, not_a_dog, undo)
    except fixes.CorrectionError as e:  # an unknown or ambiguous breed name
        fail(escape(str(e)))
    with failures(db), _catalog(db) as catalog:
        what, shown = catalog.correct(target, change, by)
    out.print(f"{escape(visible(shown))}: {what}", highlight=False)


asm3_app = typer.Typer(
    help="Live with the shelter's records in Animal Shelter Manager 3: read them, and keep track of what was sent.",
    rich_markup_mode="rich", no_args_is_help=True)
app.add_typer(asm3_app, name="asm3")


@asm3_app.command("pull")
def asm3_pull(
    export_file: Annotated[Path, typer.Argument(help="The CSV that ASM3's \"export animals as CSV\" wrote.",
                                                show_default=False)],
    db: DbOption = settings.DEFAULT_DB,
    day_first: Annotated[bool | None, typer.Option(
        "--day-first/--month-first", show_default=False,
        help="Its DD/MM/YYYY-or-MM/DD/YYYY dates are day first (ASM3 in most locales) or month first (US "
             "English, en_CA, en_BH, en_PH). Default: told from the file's own dates; a file that cannot tell is "
             "refused, naming this option.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="What changed, as one JSON object.")] = False,
):
    """Read the shelter's animals from ASM3's own animal export into the catalog (the first pull creates it).

    For each animal the catalog also has (same code): the shelter's name, date of birth and sex become the
    animal's (each change shown old -> new), and the breed in ASM3 is what staff say the dog is (a correction
    with source asm3, unless it is what dogcat itself sent). A breed changed on one side since the last pull:
    that side wins. Changed on both (ASM3, and a correction in dogcat) to different words: the conflict is
    listed (code, both words, who and when) and neither changes; it is listed again on every pull until the two
    agree (change it in ASM3) or the correction in dogcat is undone (dogcat correct CODE --undo: ASM3's word is
    taken). From then on dogcat export --format asm3 sends that animal only new photos and a log entry, never a
    field staff own. Pulling the same file again changes nothing; codes only in the file are listed, not
    invented; matched animals that are retired (dogcat animals prune) are counted.

    Dates: every format ASM3's locales write (DD/MM/YYYY, MM/DD/YYYY, DD.MM.YYYY, DD-MM-YYYY, YYYY/MM/DD,
    YYYY.MM.DD, YYYY-MM-DD); the day/month order is decided once for the whole file.

    [b]Example[/b]

      dogcat asm3 pull asm3-animals.csv --db shelter.db

    [b]Exit codes[/b]

      0  read (conflicts are listed, not errors);  1  the file is malformed, has a date of birth no animal has,
      or its date order cannot be told (the line is named; nothing changed), or the catalog cannot be used

      2  bad usage
    """
    with failures(db), _catalog(db, create=True) as catalog:
        pulled = catalog.asm3_pull(export_file, day_first=day_first)
    if as_json:
        print(json.dumps(pulled.to_dict()))
        return
    out.print(f"{escape(visible(str(export_file)))}: {len(pulled.matched)} animals matched"
              + (f" ({len(pulled.retired)} of them retired)" if pulled.retired else "")
              + f", {len(pulled.changed)} updated, {len(pulled.corrected)} breeds taken from ASM3"
              + (f", {len(pulled.conflicts)} conflicts" if pulled.conflicts else "")
              + (f", {len(pulled.only_in_file)} only in ASM3" if pulled.only_in_file else ""), highlight=False)
    for code, fields in pulled.changed.items():
        shown = "; ".join(f"{name} {_or_none(old)} -> {_or_none(new)}" for name, (old, new) in fields.items())
        out.print(f"  {escape(visible(code))}: {escape(visible(shown))}", highlight=False)
    if pulled.retired:
        err.print(f"[dim]retired (dogcat animals prune; dogcat animals restore CODE): "
                  f"{escape(visible(_some(pulled.retired)))}[/]", highlight=False)
    for conflict in pulled.conflicts:
        err.print(f"conflict: {escape(visible(conflict.line()))}", highlight=False)
    if pulled.only_in_file:
        hint = "" if pulled.matched else "; catalog the intake folders, then pull again"
        err.print(f"[dim]only in ASM3 (no photos catalogued under these codes{hint}): "
                  f"{escape(visible(_some(pulled.only_in_file)))}[/]", highlight=False)


@asm3_app.command("sync")
def asm3_sync(
    db: DbOption = settings.DEFAULT_DB,
    url: Annotated[str, typer.Option("--url", help="ASM3's service address, e.g. "
                   "https://service.sheltermanager.com/asmservice (no query, no password in it).",
                   show_default=False)] = "",
    username: Annotated[str | None, typer.Option("--username", help="An ASM3 user (its password in the "
                        "environment variable DOGCAT_ASM3_PASSWORD). Not needed with an API key in "
                        "DOGCAT_ASM3_KEY.", show_default=False)] = None,
    account: Annotated[str | None, typer.Option("--account", help="The hosted ASM3 account (database) name.",
                       show_default=False)] = None,
    age: Annotated[str | None, typer.Option("--age", help="The estimated age in years ASM3 needs for an animal "
                   "new to it, for those with no age of their own (as export --format asm3).",
                   show_default=False)] = None,
    dob: Annotated[str | None, typer.Option("--dob", help="A date of birth (YYYY-MM-DD) instead of --age.",
                   show_default=False)] = None,
    animals_csv: Annotated[Path | None, typer.Option("--animals-csv", help="Each new animal's name, date of "
                           "birth or age, and sex: a CSV with columns code,name,dob,age,sex.",
                           show_default=False)] = None,
    allow_http: Annotated[bool, typer.Option("--allow-http", help="Allow a plain http:// address to another "
                          "machine (the password then crosses the network unencrypted).")] = False,
    timeout: Annotated[float, typer.Option("--timeout", min=1.0, help="Seconds to wait for each of ASM3's "
                       "answers.")] = 120.0,
    as_json: Annotated[bool, typer.Option("--json", help="What happened, as one JSON object.")] = False,
):
    """Read ASM3's animals and send it what it has not taken yet, over ASM3's service API, in one step.

    First, a send of an earlier sync whose answer never came (a time-out, a dropped connection, dogcat killed)
    is settled from ASM3's animals: what ASM3 took stays sent, the rest is sent again. Then ASM3's animals in
    care are read as dogcat asm3 pull reads its export. Then what dogcat export --format asm3 would write is
    imported (method csv_import) and only what ASM3's answer says it took is recorded as sent; a row ASM3
    rejects is listed with ASM3's own message and sent again next time. Files and syncs share one record
    (dogcat asm3 files), so a shelter can switch.

    The password comes from the environment variable DOGCAT_ASM3_PASSWORD (an API key from DOGCAT_ASM3_KEY),
    never from an option; it is sent in request bodies only, never printed or stored. HTTPS certificates are
    verified; plain http:// is refused except to this machine unless --allow-http. See docs/asm3.md.

    [b]Example[/b]

      DOGCAT_ASM3_PASSWORD=... dogcat asm3 sync --db shelter.db --url
      https://service.sheltermanager.com/asmservice --account myshelter --username dogcat --age 2

    [b]Exit codes[/b]

      0  synced (nothing new is fine);  1  ASM3 could not be used (unreachable, a wrong password or key, an
      ERROR answer, no answer in time: the line says whether anything may have arrived; the next sync finds
      out), or a row was rejected (listed; sent again next time), or the catalog cannot be used

      2  bad usage (no --url, no password or key in the environment, plain http to another machine, an animal
      new to ASM3 without an age): nothing sent;  130  interrupted
    """
    if not url:
        fail("--url: give ASM3's service address (e.g. https://service.sheltermanager.com/asmservice)", 2)
    with failures(db), _catalog(db, create=True) as catalog:
        synced = catalog.asm3_sync(url, username=username, account=account, allow_http=allow_http,
                                   timeout_s=timeout, age=age, dob=dob, animals_csv=animals_csv,
                                   on_wait=lambda said: err.print(escape(said), highlight=False))
    for warning in synced.plan.warnings:
        error(escape(warning), kind="warning")
    _not_sent(synced.plan.not_sent)
    _hand_off(synced.plan.handoff)
    if as_json:
        print(json.dumps({"earlier": [s.to_dict() for s in synced.earlier], "pulled": synced.pulled.to_dict(),
                          "sent": synced.sent.to_dict() if synced.sent else None}))
    else:
        for s in synced.earlier:
            out.print(f"ASM3 file {s.file} (an earlier sync, its answer lost), from ASM3's animals: "
                      f"{_kinds(s.taken)} taken" + (f", {_kinds(s.not_taken)} sent again now"
                                                    if s.not_taken else ""), highlight=False)
        p = synced.pulled
        out.print(f"ASM3: {len(p.matched)} animals matched, {len(p.changed)} updated, {len(p.corrected)} breeds "
                  "taken from ASM3" + (f", {len(p.conflicts)} conflicts" if p.conflicts else "")
                  + (f", {len(p.only_in_file)} only in ASM3" if p.only_in_file else ""), highlight=False)
        for conflict in p.conflicts:
            err.print(f"conflict: {escape(visible(conflict.line()))}", highlight=False)
        if synced.sent is None:
            out.print("nothing new for ASM3: nothing sent", highlight=False)
        else:
            s = synced.sent
            out.print(f"sent to ASM3 as file {s.file}: {_kinds(s.taken)} taken"
                      + (f", {_kinds(s.not_taken)} not taken (sent again next time)" if s.not_taken else ""),
                      highlight=False)
    if synced.sent is not None and synced.sent.rejected:
        for line in synced.sent.rejected:
            err.print(f"rejected: {escape(visible(line))}", highlight=False)
        fail(f"ASM3 rejected {len(synced.sent.rejected)} row(s) (listed above); they are sent again next time")


def _kinds(counts: dict[str, int]) -> str:
    words = {"animal": "new animals", "photo": "photos", "log": "log entries"}
    return ", ".join(f"{counts.get(k, 0)} {w}" for k, w in words.items()) if counts else "nothing"


def _some(codes: list[str], n: int = 20) -> str:
    return ", ".join(codes[:n]) + (" ..." if len(codes) > n else "")


def _or_none(value) -> str:
    return "(none)" if value in (None, "") else str(value)


@asm3_app.command("files")
def asm3_files(
    db: DbOption = settings.DEFAULT_DB,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per file per line.")] = False,
):
    """List the ASM3 import files dogcat wrote, and what each held (animals with a row, new animals, photos, log
    entries), then the staff corrections ASM3's import cannot make (a person changes them in ASM3).

    [b]Example[/b]

      dogcat asm3 files --db shelter.db

    [b]Exit codes[/b]

      0  listed;  1  the catalog cannot be read;  2  bad usage
    """
    with failures(db), _catalog(db, readonly=True) as catalog:
        written = catalog.asm3_files()
        handoff = catalog.asm3_handoffs()
    if as_json:
        for f in written:
            print(json.dumps(f))
        for h in handoff:
            print(json.dumps({"hand_off": h.to_dict()}))
        return

    def taken_back(f: dict) -> str:
        if f.get("state") == "writing" and not f["forgotten_at"]:
            return "being written (or stopped: the next export settles it)"
        return (f["forgotten_at"] or "")[:16] + (" (export stopped)" if f.get("state") == "unfinished" else "")

    _print_whole(_path_table(("id", "written", "animals", "new", "photos", "logs", "taken back", "file"), "file", [
        [str(f["id"]), f["written_at"][:16], str(f["animals"]), str(f["new_animals"]), str(f["photos"]),
         str(f["logs"]), taken_back(f), escape(visible(f["path"]))] for f in written]))
    _hand_off(handoff, out)


@asm3_app.command("forget")
def asm3_forget(
    file_id: Annotated[int, typer.Argument(help="The file's id (dogcat asm3 files lists them).",
                                           show_default=False)],
    db: DbOption = settings.DEFAULT_DB,
):
    """Take back an ASM3 file that was written but never imported: what it alone held counts as never sent, so
    the next dogcat export --format asm3 writes it again (what an earlier file also sent stays sent). (A file
    that was imported must not be taken back: its photos would be attached twice.)

    [b]Example[/b]

      dogcat asm3 forget 3 --db shelter.db

    [b]Exit codes[/b]

      0  taken back;  1  no such file, or the catalog cannot be used;  2  bad usage
    """
    with failures(db), _catalog(db) as catalog:
        row = catalog.asm3_forget(file_id)
    out.print(f"ASM3 file {row['id']} ({escape(visible(row['path']))}, written {row['written_at'][:16]}) taken "
              "back: its content goes into the next export", highlight=False)


@app.command()
def teach(
    output: Annotated[Path, typer.Option("--output", "-o", help="The taught model to write (an .onnx; its card "
                                         "goes beside it as .json). Written again by the next teach.",
                                         show_default=False)],
    db: DbOption = settings.DEFAULT_DB,
    model_path: ModelOption = None,
    min_photos: Annotated[int, typer.Option("--min-photos", min=2, help="Labelled photos a new breed word needs "
                                            "before it is taught (5: about 9 in 10 of that breed's later photos "
                                            "answered with it; docs/teach.md).")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="What was taught and measured, as one JSON object.")] = False,
    anyway: Annotated[bool, typer.Option("--teach-anyway", help="Teach a word even when it takes more than 15 % of "
                                         "other breeds' photos out of fold (refused otherwise: docs/teach.md).")]
    = False,
):
    """Teach the model the shelter's own breed words, from the photos staff labelled.

    Every breed word staff gave (dogcat correct, or the breed in ASM3 read by dogcat asm3 pull) that is not one
    of the model's 120 breeds (Pit Bull Terrier, Lab mix, Beagle x Pug ...) and has at least --min-photos
    labelled photos becomes a breed the taught model answers with: also for dogs the model names otherwise (photos staff
    call Pit Bull Terrier that the model calls American Staffordshire Terrier). The model's own breeds are kept
    as they were; the shipped model is never changed. The taught model is a small file sharing the bundled
    backbone: use it with --model in classify, catalog and evaluate. Teaching again after more corrections takes
    seconds: the catalog keeps every photo's features (photos catalogued by an older dogcat get theirs now, once).
    Words that name no look (Mixed Breed, Unknown ...) mark a mix and are never taught; a word that would take
    more than 15 % of other breeds' photos (measured out of fold) is refused unless --teach-anyway.

    [b]Example[/b]

      dogcat teach --db shelter.db -o shelter-model.onnx

      dogcat catalog ./intake --db shelter.db --model shelter-model.onnx

    [b]Exit codes[/b]

      0  taught;  1  nothing to teach yet (no word with enough photos), a word that takes other breeds' photos,
      an unusable model, or the catalog cannot be used;  2  bad usage (an output that is not .onnx, or a file
      teach did not write)
    """
    with failures(db), _catalog(db) as catalog, _teach_progress() as progress:
        taught = catalog.teach(output, model=model_path, min_photos=min_photos, progress=progress, anyway=anyway)
    if as_json:
        print(json_text(taught.to_dict()))
        return

    def line(text: str, style: str = "") -> None:
        out.print(f"[{style}]{escape(visible(text))}[/]" if style else escape(visible(text)), highlight=False)

    oof = taught.measured
    added = len(taught.added)
    line(f"{taught.path}: {added} breed word{'s' if added != 1 else ''} of the shelter's taught, from "
         f"{taught.labelled} labelled photos (of {taught.photos}); model {taught.model_id}")

    # In the shelter's words: each figure is measured on photos the check was not taught with (out of fold).
    def share(value: float | None, part: int, whole: int, what: str = "") -> str:
        shown = f"{part} of {whole}" + (f" {what}" if what else "")
        return f"{shown} ({percent(value)})" if value is not None else f"{shown} (too few photos to give a share)"

    for word, n in taught.added.items():
        got = oof["labels"][word]
        line(f"  {word}: {n} photos. Tried on photos it was not taught with, it named "
             f"{share(got['answered'], got['answered_photos'], got['photos'], word)}, and took "
             f"{share(got['taken'], got['taken_photos'], got['others'], 'photos of other breeds')} for one"
             + (" (taught anyway)" if word in taught.taught_anyway else ""))
    line(f"  photos of other breeds taken for a new word, tried the same way: "
         f"{share(oof['others_taken'], oof['others_taken_photos'], oof['others'])}")
    if taught.no_look:
        line("  not taught, words that name no look (a mix): " + ", ".join(f"{w} ({n})" for w, n in
                                                                          taught.no_look.items()), "dim")
    if taught.too_few:
        line("  waiting for more photos (" + str(min_photos) + " needed): "
             + ", ".join(f"{w} ({n})" for w, n in taught.too_few.items()), "dim")
    if taught.computed or taught.missing:
        line(f"  features computed now for {taught.computed} photos catalogued before dogcat kept them"
             + (f"; {taught.missing} photos whose files are gone were left out" if taught.missing else ""), "dim")
    line(f"use it: dogcat catalog FOLDER --db {catalog.name} --model {taught.path}", "dim")


@contextmanager
def _teach_progress():
    """Progress bars on stderr while features are computed, and while many words are fitted and measured (only
    then: a few words take seconds)."""
    from contextlib import ExitStack

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with ExitStack() as stack:
        shown: list = []

        tasks: dict[str, object] = {}

        def advance(done: int, total: int, what: str = "features of older photos"):
            if not shown:
                shown.append(stack.enter_context(Progress(TextColumn("{task.description}"), BarColumn(),
                                                          MofNCompleteColumn(), TimeRemainingColumn(), console=err)))
            bar = shown[0]
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done, total=total)

        yield advance


@app.command()
def similar(
    query: Annotated[str, typer.Argument(help="A photo (catalogued or not), or an animal's code.",
                                         show_default=False)],
    db: DbOption = settings.DEFAULT_DB,
    top: Annotated[int, typer.Option("--top", "-n", min=1, help="How many animals to list.")] = 5,
    retired: Annotated[bool, typer.Option("--retired", help="Compare the animals whose photos are gone too "
                                          "(dogcat animals prune retired them): the same dog, back again.")] = False,
    model_path: ModelOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per animal per line, best first.")] = False,
):
    """The catalogued animals that look most like a photo or an animal, best first, with a similarity (1: the
    same look; compared on the features the breed model reads, so mostly breed, coat and build).

    For a dog found outside, its photo against the animals in care; for an animal, the others that look like
    it. The query's own animal is left out.

    [b]Examples[/b]

      dogcat similar found-dog.jpg --db shelter.db

      dogcat similar A1023 --db shelter.db --top 10 --json

    [b]Exit codes[/b]

      0  listed;  1  no such photo or animal, a photo that cannot be read, no animal to compare with, or the
      catalog cannot be read;  2  bad usage
    """
    with failures(db), _catalog(db, readonly=True) as catalog:
        found = catalog.similar(query, top=top, retired=retired, model=model_path)
    if as_json:
        for m in found:
            print(json_text(m.to_dict()))
        return
    rows = [[str(i), escape(visible(m.animal)) + (" (retired)" if m.retired else ""),
             escape(visible(m.name if m.name != m.animal else "")), f"{m.similarity:.3f}",
             escape(visible(m.breed or "")), str(m.photos), escape(visible(m.photo))] for i, m in enumerate(found, 1)]
    _print_whole(_path_table(("", "animal", "name", "similarity", "breed", "photos", "most alike photo"),
                             "most alike photo", rows))


def _path_table(columns: tuple[str, ...], path_column: str, rows: list[list[str]]) -> Table:
    """A table with a column of paths, shown whole: every other column as wide as its widest cell (never cut or
    wrapped), the paths in what is left of a terminal (one line each where they fit, else folded, not cut).
    Into a file or a pipe (_print_whole) every row is one line. ``rows``: cells as rich markup."""
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


def _add_train():
    from dogcat.train.cli import app as train_app

    app.add_typer(train_app, name="train")


_add_train()


def main():
    app(prog_name="dogcat")
