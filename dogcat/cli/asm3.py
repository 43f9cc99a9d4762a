"""``dogcat asm3``: the shelter's records in Animal Shelter Manager 3 (pull, sync, files, forget), and what
an ASM3 export prints.

Layer: the command lines (docs/architecture.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from dogcat import settings
from dogcat.console import err, error, fail, out
from dogcat.shell import failures
from dogcat.text import visible

if TYPE_CHECKING:
    pass

from dogcat.cli.common import (
    AgeOption,
    AnimalsCsvOption,
    DbOption,
    DobOption,
    app,
    not_the_catalog,
    open_catalog,
    path_table,
    print_whole,
)


def export_asm3_file(db: str, output: Path | None, images: bool, age: str | None, dob: str | None,
                 animals_csv: Path | None, everything: bool):
    not_the_catalog(db, output)
    with failures(db, output, writes=True), open_catalog(db) as catalog:
        done = catalog.asm3_export(output, resend=everything, age=age, dob=dob, animals_csv=animals_csv,
                                   images=images, stdout=sys.stdout.buffer,
                                   on_wait=lambda said: err.print(escape(said), highlight=False))
    plan = done.plan
    for line in done.settled:
        error(escape(visible(line)), kind="warning")
    for warning in plan.warnings:
        error(escape(warning), kind="warning")
    print_not_sent(plan.not_sent)
    print_hand_off(plan.handoff)
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


def print_not_sent(lines: list[str], shown: int = 20):
    """Loose photos, each with why: the first ``shown``, then how many more."""
    for line in lines[:shown]:
        err.print(f"not sent: {escape(visible(line))}", highlight=False)
    if len(lines) > shown:
        err.print(f"not sent: {len(lines) - shown} more photos with no animal", highlight=False)


def print_hand_off(handoff: list, to=err) -> None:
    """Corrections a person must make in ASM3 (its import cannot): one line each, with both words and where."""
    if handoff:
        to.print(f"{len(handoff)} staff correction(s) ASM3's import cannot make; change them in ASM3:",
                 highlight=False)
    for h in handoff:
        to.print("  " + escape(visible(h.line())), highlight=False)


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
    with failures(db), open_catalog(db, create=True) as catalog:
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
    age: AgeOption = None,
    dob: DobOption = None,
    animals_csv: AnimalsCsvOption = None,
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
    with failures(db), open_catalog(db, create=True) as catalog:
        synced = catalog.asm3_sync(url, username=username, account=account, allow_http=allow_http,
                                   timeout_s=timeout, age=age, dob=dob, animals_csv=animals_csv,
                                   on_wait=lambda said: err.print(escape(said), highlight=False))
    for warning in synced.plan.warnings:
        error(escape(warning), kind="warning")
    print_not_sent(synced.plan.not_sent)
    print_hand_off(synced.plan.handoff)
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
    with failures(db), open_catalog(db, readonly=True) as catalog:
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

    print_whole(path_table(("id", "written", "animals", "new", "photos", "logs", "taken back", "file"), "file", [
        [str(f["id"]), f["written_at"][:16], str(f["animals"]), str(f["new_animals"]), str(f["photos"]),
         str(f["logs"]), taken_back(f), escape(visible(f["path"]))] for f in written]))
    print_hand_off(handoff, out)


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
    with failures(db), open_catalog(db) as catalog:
        row = catalog.asm3_forget(file_id)
    out.print(f"ASM3 file {row['id']} ({escape(visible(row['path']))}, written {row['written_at'][:16]}) taken "
              "back: its content goes into the next export", highlight=False)
