"""The Python API (dogcat/api.py): README's example, run for real, and its results against the command line's."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def readme_example() -> tuple[str, str]:
    """The ```python block of README's "Use it from Python" and the ```text block it says it prints."""
    section = (ROOT / "README.md").read_text().split("## Use it from Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    printed = re.search(r"```text\n(.*?)```", section, re.S).group(1)
    return code, printed


def test_the_readme_example_runs_and_prints_what_readme_shows(tmp_path):
    code, printed = readme_example()
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    (tmp_path / "example.py").write_text(code)
    done = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout == printed
    assert (tmp_path / "shelter.db").is_file()


def test_results_are_the_command_lines_records_for_paths_bytes_and_images():
    import dogcat

    photos = sorted((ROOT / "examples").glob("*.jpg"))
    cli = subprocess.run([sys.executable, "-m", "dogcat", "classify", "--json", *map(str, photos)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr
    expected = [json.loads(line) for line in cli.stdout.splitlines()]
    assert [r.to_dict() for r in dogcat.classify([str(p) for p in photos])] == expected

    pug = ROOT / "examples" / "pug-crop.jpg"
    [from_bytes] = dogcat.classify(pug.read_bytes())
    [from_image] = dogcat.classify(Image.open(pug))
    record = next(r for r in expected if r["path"].endswith("pug-crop.jpg"))
    assert {**from_bytes.to_dict(), "path": record["path"]} == record and from_bytes.path == "<bytes 0>"
    assert {**from_image.to_dict(), "path": record["path"]} == record and from_image.path == str(pug)
    [broken] = dogcat.classify(b"not a photo")
    assert broken.status == "error" and broken.error.startswith("not a photo dogcat can read: no picture format")


def test_import_dogcat_loads_nothing_heavy():
    code = ("import sys, dogcat; heavy = [m for m in ('numpy', 'onnxruntime', 'sqlalchemy', 'PIL', 'tensorflow') "
            "if m in sys.modules]; print(heavy); dogcat.classify; print('numpy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.stdout.split("\n")[:2] == ["[]", "True"], done.stderr
