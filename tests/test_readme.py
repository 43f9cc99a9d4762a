"""README's sample outputs are the program's: cog runs every command README shows (docs/readme_examples.py)
and fails when one prints something else than README says.

The outputs depend on the CPU: ONNX Runtime's int8 kernels with VNNI and without it (AVX2) give probabilities
that differ by up to 0.13 (dogcat.model.int8_kernels), enough to turn a borderline photo from `unsure` to `dog`.
README says which kernels made its outputs; on a CPU with those, every output must be the same; on a CPU with the
others, cog must still run every command, and README must show the same commands."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from dogcat.model import int8_kernels

ROOT = Path(__file__).resolve().parents[1]
REGENERATE = "\n(regenerate: cog -I docs -r README.md)"


def commands(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("$ ")]


def test_readme_outputs_are_what_the_commands_print(tmp_path):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    made_on = re.search(r"ONNX Runtime int8 kernels: (\w+)", readme)
    assert made_on, "README does not say which int8 kernels made its outputs" + REGENERATE
    if made_on.group(1) == int8_kernels():
        done = subprocess.run([sys.executable, "-m", "cogapp", "--check", "-I", "docs", "README.md"], cwd=ROOT,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:] + REGENERATE
        return
    again = tmp_path / "README.md"
    done = subprocess.run([sys.executable, "-m", "cogapp", "-I", "docs", "-o", str(again), "README.md"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert commands(again.read_text(encoding="utf-8")) == commands(readme), REGENERATE
