"""README's sample outputs, and those of the docs/ pages they moved to, are the program's: cog runs every
command they show (docs/readme_examples.py) and fails when one prints something else than the page says.

The outputs depend on the CPU: ONNX Runtime's int8 kernels with VNNI and without it (AVX2) give probabilities
that differ by up to 0.13 (dogcat.model.int8_kernels), enough to turn a borderline photo from `unsure` to `dog`.
Each page says which kernels made its outputs; on a CPU with those, every output must be the same; on a CPU with
the others, cog must still run every command, and the page must show the same commands."""

from __future__ import annotations

import re
import subprocess
import sys
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
        done = subprocess.run([sys.executable, "-m", "cogapp", "--check", "-I", "docs", page], cwd=ROOT,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:] + regenerate(page)
        return
    again = tmp_path / Path(page).name
    done = subprocess.run([sys.executable, "-m", "cogapp", "-I", "docs", "-o", str(again), page], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert commands(again.read_text(encoding="utf-8")) == commands(text), regenerate(page)
