"""Staff's words: ``dogcat correct`` and ``dogcat teach``.

Layer: the command lines (docs/architecture.md).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from dogcat import settings
from dogcat.console import err, fail, out
from dogcat.shell import failures
from dogcat.text import json_text, percent, visible

if TYPE_CHECKING:
    pass

from dogcat.cli.common import DbOption, ModelOption, app, open_catalog


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
        with failures(db), open_catalog(db) as catalog:
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
    with failures(db), open_catalog(db) as catalog:
        what, shown = catalog.correct(target, change, by)
    out.print(f"{escape(visible(shown))}: {what}", highlight=False)


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
    with failures(db), open_catalog(db) as catalog, _teach_progress() as progress:
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
