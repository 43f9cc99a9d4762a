"""README's sample outputs, and those of the docs/ pages they moved to, are the program's: cog runs every
command they show (docs/readme_examples.py) and fails when one prints something else than the page says.

The outputs depend on the CPU: ONNX Runtime's int8 kernels with VNNI and without it (AVX2) give probabilities
that differ by up to 0.13 (dogcat.model.int8_kernels), enough to turn a borderline photo from `unsure` to `dog`.
Each page says which kernels made its outputs; on a CPU with those, every output must be the same; on a CPU with
the others, cog must still run every command, and the page must show the same commands.

cog itself runs in this process (each command it shows still runs as a process of its own, as a person runs it):
docs/readme_examples is then imported once for all the pages, so the demo shelter they share is catalogued once,
as `cog -r` over all of them does."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from dogcat.model import int8_kernels

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
def test_outputs_are_what_the_commands_print(page, tmp_path):
    text = (ROOT / page).read_text(encoding="utf-8")
    made_on = re.search(r"ONNX Runtime int8 kernels: (\w+)", text)
    assert made_on, f"{page} does not say which int8 kernels made its outputs" + regenerate(page)
    if made_on.group(1) == int8_kernels():
        status, said = cog("--check", "--diff", "-I", "docs", page)
        assert status == 0, said[-3000:] + regenerate(page)
        return
    again = tmp_path / Path(page).name
    status, said = cog("-I", "docs", "-o", str(again), page)
    assert status == 0, said[-3000:]
    assert commands(again.read_text(encoding="utf-8")) == commands(text), regenerate(page)
