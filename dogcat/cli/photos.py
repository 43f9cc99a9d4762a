"""Photos without a catalog: ``dogcat classify`` and ``dogcat evaluate``.

Layer: the command lines (docs/architecture.md).
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from dogcat import settings
from dogcat.console import err, error, fail, out
from dogcat.shell import failures
from dogcat.text import percent, visible

if TYPE_CHECKING:
    pass

from dogcat.cli.common import (
    DetectorOption,
    Device,
    DeviceOption,
    Looks,
    LooksOption,
    ModelOption,
    NotDogOption,
    UnsureOption,
    app,
    open_catalog,
)


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

    with failures(db), open_catalog(db, readonly=True) as catalog:
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
