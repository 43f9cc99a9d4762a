"""The two terminals every command writes to: data on stdout, messages and progress on stderr.

NO_COLOR (https://no-color.org): rich alone only drops colours and still sends bold, dim and the cursor
movements of a live progress bar. Set, it means plain text here: no style codes (``color_system=None``) and no
live display (the console is not treated as a terminal, so a progress bar is printed once, when it is done).
Typer's own help pages are told the same.

Layer: a leaf (names and rules; no dogcat imports but other leaves) (docs/architecture.md).
"""

from __future__ import annotations

import os
from typing import NoReturn

import typer
from rich.console import Console

from dogcat.text import visible

PLAIN = bool(os.environ.get("NO_COLOR"))  # no-color.org: set and not empty


def _console(stderr: bool) -> Console:
    # soft_wrap: an error stays one line, however long the path
    if PLAIN:
        return Console(stderr=stderr, soft_wrap=True, color_system=None, force_terminal=False)
    return Console(stderr=stderr, soft_wrap=True)


out = _console(stderr=False)
err = _console(stderr=True)

if PLAIN:
    from typer import rich_utils

    rich_utils.COLOR_SYSTEM = None
    rich_utils.FORCE_TERMINAL = False


def error(message: str, kind: str = "error") -> None:
    colour = "red" if kind == "error" else "yellow"
    # visible(): a file name in the message cannot move the cursor, recolour the terminal or reorder the line.
    err.print(f"[bold {colour}]dogcat: {kind}:[/] {visible(message)}", highlight=False, markup=True)


def fail(message: str, code: int = 1) -> NoReturn:
    error(message)
    raise typer.Exit(code)
