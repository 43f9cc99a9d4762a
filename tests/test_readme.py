"""README's sample outputs, and those of the docs/ pages they moved to, are the program's: cog runs every
command they show (docs/readme_examples.py) and fails when one prints something else than the page says.

Since issue 32 the outputs are the same on every x86-64 CPU (ONNX Runtime computes the same features on AVX2,
AVX-512 VNNI and AMX: tests/test_same_answer.py), so they are compared exactly wherever the tests run.

cog itself runs in this process (each command it shows still runs as a process of its own, as a person runs it):
docs/readme_examples is then imported once for all the pages, so the demo shelter they share is catalogued once,
as `cog -r` over all of them does."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def with_cog_blocks() -> list[str]:
    """README.md and every page of docs/ that holds cog blocks (its outputs made by docs/readme_examples.py)."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return [str(p.relative_to(ROOT)) for p in pages if "[[[cog" in p.read_text(encoding="utf-8")]


def regenerate(page: str) -> str:
    return f"\n(regenerate: cog -I docs -r {page})"


def commands(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("$ ")]


def cog(*args: str) -> tuple[int, str]:
    """``cog ARGS`` from the checkout's root, in this process: its exit status and what it said."""
    import os

    from cogapp import Cog

    said = io.StringIO()
    cog = Cog()
    cog.set_output(stdout=said, stderr=said)
    here = Path.cwd()
    os.chdir(ROOT)
    try:
        return cog.main(["cog", *args]), said.getvalue()
    finally:
        os.chdir(here)


def test_the_pages_with_outputs_are_readme_and_the_reference():
    """The outputs moved out of README stay checked: a page that loses its cog blocks, or a new page that gains
    some, is noticed here."""
    assert with_cog_blocks() == ["README.md", "docs/asm3.md", "docs/classify.md", "docs/reference.md"]


@pytest.mark.parametrize("page", with_cog_blocks())
def test_outputs_are_what_the_commands_print(page):
    status, said = cog("--check", "--diff", "-I", "docs", page)
    assert status == 0, said[-3000:] + regenerate(page)
