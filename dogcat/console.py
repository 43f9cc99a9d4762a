"""The two terminals every command writes to: data on stdout, messages and progress on stderr."""

from __future__ import annotations

import typer
from rich.console import Console

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)  # soft_wrap: an error stays one line, however long the path


def error(message: str, kind: str = "error") -> None:
    colour = "red" if kind == "error" else "yellow"
    err.print(f"[bold {colour}]dogcat: {kind}:[/] {message}", highlight=False, markup=True)


def fail(message: str, code: int = 1):
    error(message)
    raise typer.Exit(code)
