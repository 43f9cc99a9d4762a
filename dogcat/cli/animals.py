"""``dogcat animals``: one record per dog, and staff's regrouping (show, merge, move, prune, restore).

Layer: the command lines (docs/architecture.md).
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from dogcat import settings
from dogcat.console import err, fail, out
from dogcat.shell import failures, output_stream
from dogcat.text import json_text, percent, visible

if TYPE_CHECKING:
    from rich.console import JustifyMethod

from dogcat.cli.common import DbOption, app, open_catalog, print_whole

# Its help is animals_list's docstring (a help= here would hide that page's examples and exit codes).
animals_app = typer.Typer(rich_markup_mode="rich", invoke_without_command=True)
app.add_typer(animals_app, name="animals")


class AnimalStatus(str, Enum):
    dog = "dog"
    unsure = "unsure"
    not_a_dog = "not_a_dog"
    error = "error"


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
    with failures(db), open_catalog(db, readonly=True) as catalog:
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
    print_whole(table)
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

    with failures(db), open_catalog(db, readonly=True) as catalog:
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
    with failures(db), open_catalog(db) as catalog:
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
    with failures(db), open_catalog(db) as catalog:
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
    with failures(db), open_catalog(db) as catalog:
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
    with failures(db), open_catalog(db) as catalog:
        paths = catalog.move(photo, to, new)
    out.print(f"moved {len(paths)} file{'s' if len(paths) != 1 else ''} to {escape(visible(to))}", highlight=False)
