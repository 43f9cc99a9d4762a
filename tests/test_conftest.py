"""The suite's own machinery (tests/conftest.py): own_process cannot turn a crash into a pass, and there is one
skip rule, whose ``CI`` means CI only when it is true-ish."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

# Small own_process modules, each run in a child pytest by the real conftest: the ways a child can end.
FAKE_MODULES = {
    "test_kill_last.py": """
        def test_first():
            pass

        def test_killed():
            os.kill(os.getpid(), signal.SIGKILL)
        """,
    "test_segfault_only.py": """
        def test_segfault():
            ctypes.string_at(0)
        """,
    "test_teardown_killed.py": """
        @pytest.fixture(scope="module")
        def resource():
            yield 1
            os.kill(os.getpid(), signal.SIGKILL)

        def test_uses(resource):
            assert resource == 1
        """,
    "test_abort_midway.py": """
        def test_before():
            pass

        def test_aborts():
            os.abort()

        def test_after():
            pass
        """,
    "test_runs_nothing.py": """
        if os.environ.get("DOGCAT_TESTS_REPORTS"):  # in the child: gone before running anything, status 0
            os._exit(0)

        def test_never():
            pass
        """,
    "test_ordinary.py": """
        def test_passes():
            pass

        def test_fails():
            assert 1 == 2

        def test_skips():
            pytest.skip("not here")

        @pytest.mark.xfail(reason="known")
        def test_xfails():
            assert 0
        """,
}
HEADER = "import ctypes, os, signal\nimport pytest\npytestmark = pytest.mark.own_process\n"

EXPECTED = {
    "test_abort_midway.py::test_before": ["PASSED"],
    "test_abort_midway.py::test_aborts": ["FAILED"],  # blamed on the test that crashed ...
    "test_abort_midway.py::test_after": ["FAILED"],  # ... and the one it never reached has no outcome either
    "test_kill_last.py::test_first": ["PASSED"],
    "test_kill_last.py::test_killed": ["FAILED"],
    "test_ordinary.py::test_fails": ["FAILED"],
    "test_ordinary.py::test_passes": ["PASSED"],
    "test_ordinary.py::test_xfails": ["XFAIL"],
    "test_runs_nothing.py::test_never": ["FAILED"],
    "test_segfault_only.py::test_segfault": ["FAILED"],
    "test_teardown_killed.py::test_uses": ["ERROR", "PASSED"],  # passed, then the module's teardown crashed
}


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory) -> tuple[int, str]:
    """The fake modules, run by a pytest whose conftest is this suite's: (its exit status, its output)."""
    folder = tmp_path_factory.mktemp("own-process")
    shutil.copy(TESTS / "conftest.py", folder / "conftest.py")
    (folder / "pytest.ini").write_text("[pytest]\nmarkers =\n    own_process: a child pytest\n    slow: slow\n")
    for name, body in FAKE_MODULES.items():
        (folder / name).write_text(HEADER + textwrap.dedent(body))
    env = {k: v for k, v in os.environ.items() if k not in ("DOGCAT_TESTS_REPORTS", "DOGCAT_TESTS_ONE_PROCESS")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", "--tb=short",
                           f"--basetemp={folder / 'tmp'}"], cwd=folder, env=env | {"COLUMNS": "200"},
                          capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout + done.stderr


def test_a_crashed_child_never_passes(fake_run):
    status, output = fake_run
    outcomes: dict[str, list[str]] = {}
    for line in output.splitlines():
        found = re.match(r"(PASSED|FAILED|ERROR|XFAIL) (test_\w+\.py::\w+)", line)
        if found:
            outcomes.setdefault(found[2], []).append(found[1])
    summary = output.strip().splitlines()[-1]
    assert {k: sorted(v) for k, v in outcomes.items()} == EXPECTED, summary
    assert status == 1 and " 6 failed, 4 passed, 1 skipped, 1 xfailed, 1 error in " in summary, output[-3000:]
    for why in ("killed by SIGKILL", "killed by SIGSEGV", "killed by SIGABRT", "exited with status 0"):
        assert why in output, why


# --- one skip rule -------------------------------------------------------------------------------------------

def test_ci_counts_only_when_true_ish():
    """``CI=false`` is not CI; ``missing`` skips on a developer's machine and fails under CI."""
    script = textwrap.dedent("""
        import importlib, os
        import tests.conftest as c
        for value in ("1", "true", "TRUE", "Yes", " true ", "", "0", "false", "False", "no", "off", "ci", None):
            os.environ.pop("CI", None)
            if value is not None:
                os.environ["CI"] = value
            importlib.reload(c)
            try:
                c.missing("a thing")
            except BaseException as e:
                print(repr(value), c.IN_CI, type(e).__name__)
        """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env=os.environ | {"PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    seen = dict(line.rsplit(" ", 2)[0:1] + [" ".join(line.rsplit(" ", 2)[1:])] for line in done.stdout.splitlines())
    true_ish = ("'1'", "'true'", "'TRUE'", "'Yes'", "' true '")
    for value, result in seen.items():
        assert result == ("True Failed" if value in true_ish else "False Skipped"), (value, result)
    assert len(seen) == 13


def _skips(path: Path) -> list[str]:
    """Where a test module skips by itself: a skip/skipif mark, importorskip, or a skip call."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("skip", "skipif", "importorskip"):
            found.append(f"{path.name}:{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("pytest", "_pytest")):
            found += [f"{path.name}:{node.lineno}: import {a.name}" for a in node.names
                      if a.name in ("skip", "skipif", "importorskip", "mark")]
    return found


def test_every_skip_goes_through_conftest():
    """A plain skip would stay a skip under CI; conftest's missing() and its siblings fail there instead."""
    modules = sorted(p for p in TESTS.rglob("*.py") if p.name != "conftest.py")
    assert len(modules) > 15
    assert [s for p in modules for s in _skips(p)] == []


def test_the_skip_check_sees_every_form(tmp_path):
    sample = tmp_path / "test_sample.py"
    sample.write_text(textwrap.dedent("""
        import pytest
        from pytest import importorskip
        needs = pytest.mark.skipif(True, reason="x")
        @pytest.mark.skip
        def test_a():
            pytest.importorskip("numpy")
            pytest.skip("y")
        """))
    assert sorted(s.split(": ", 1)[1] for s in _skips(sample)) == [
        ".importorskip", ".skip", ".skip", ".skipif", "import importorskip"]
