"""README's sample outputs are the program's: cog runs every command README shows (docs/readme_examples.py)
and fails when one prints something else than README says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_outputs_are_what_the_commands_print():
    done = subprocess.run([sys.executable, "-m", "cogapp", "--check", "-I", "docs", "README.md"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:] + "\n(regenerate: cog -I docs -r README.md)"
