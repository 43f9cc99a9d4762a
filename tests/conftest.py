"""Shared fixtures: real Stanford Dogs photos and the model under test.

Two tiers (README, "Run the tests"):

- fast, ``python -m pytest -m "not slow"``: passes on a fresh clone, without ../shared and without TensorFlow.
  Its photos are tests/data/stanford-dogs/: the 205 Stanford Dogs photos (3.7 MB) that these tests read, in the
  dataset's own layout;
- full, ``python -m pytest -q`` (what .ci/run runs): everything, with the whole dataset in ../shared/data, ASM3's
  import check in ../shared/asm3 and TensorFlow. A test that needs one of these and does not find it is skipped
  with the reason on a developer's machine, and fails under CI: there a skip would hide a missing install step.

One skip rule for the whole suite: a test never skips by itself (no ``pytest.skip``, ``pytest.importorskip`` or
``skipif`` marks outside this file; tests/test_conftest.py checks it); it says what it needs through
:func:`missing` or one of its siblings here (:func:`needs_shared`, :func:`needs_module`, :func:`needs_program`,
:func:`needs_env`). "Under CI" means the environment variable ``CI`` is true-ish: ``1``, ``true`` or ``yes``, in
any case (``.ci/run`` sets ``CI=true``, as CI services do); unset, empty, ``0``, ``false`` or anything else is a
developer's machine.

A module marked ``own_process`` (the TensorFlow ones) runs in a pytest process of its own, started when the
suite reaches it; its results are reported here as if it had run in this process. A child that crashes cannot
pass: each selected test without an outcome of its own (a call, or a failed or skipped setup) fails with the end
of the child's output, and a child that ends by a signal, or with a non-zero status without reporting a
failure, fails the module (an error at its last test's teardown). TensorFlow keeps what it allocates until its
process ends, so in one process the TensorFlow modules' memory added up (the full tier peaked at about 14 GB;
see pytest_runtest_protocol below). ``DOGCAT_TESTS_ONE_PROCESS=1`` runs them here.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DATA = SHARED / "data"  # the whole Stanford Dogs copy: the lab's tests
PHOTOS = ROOT / "tests" / "data" / "stanford-dogs"  # the few photos the other tests read, checked in
CROPS = PHOTOS / "stanford-dogs-crops-224"
ORIGINALS = PHOTOS / "stanford-dogs-originals"
TRUE_ISH = ("1", "true", "yes")


def in_ci(environ=os.environ) -> bool:
    """Whether these tests run under CI: ``CI`` is ``1``, ``true`` or ``yes`` (any case, spaces ignored)."""
    return environ.get("CI", "").strip().lower() in TRUE_ISH


IN_CI = in_ci()


def missing(what: str) -> NoReturn:
    """A test's requirement is not here: skip on a developer's machine, fail under CI (the suite's one skip)."""
    if IN_CI:
        pytest.fail(f"{what} (CI must have it)", pytrace=False)
    pytest.skip(what, allow_module_level=True)


def needs_shared(path: Path, what: str) -> Path:
    """``path`` under ../shared (the dataset, ASM3's code, the tools), or skip/fail as :func:`missing`."""
    if not path.exists():
        missing(f"{path}: {what} is missing (../shared; see README, Run the tests)")
    return path


def shelter_py(*args) -> dict:
    """Run ../shared/asm3/shelter.py (a shelter that keeps its animals in ASM3: make, edit, export, import,
    show); its JSON answer (ASM3 logs a great deal on stderr)."""
    script = needs_shared(SHARED / "asm3" / "shelter.py", "ASM3's shelter")
    done = subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout) if done.stdout.strip() else {}


@contextlib.contextmanager
def new_postgres_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the PostgreSQL server at ``server_url``, dropped afterwards (with whatever still
    holds it open): its URL as a user writes it, plain postgresql://."""
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = make_url(server_url)
    name = f"dogcat_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(drivername="postgresql", database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def hold_write_lock(path: Path, release: threading.Event, longest: float = 300) -> threading.Thread:
    """Another writer: holds the catalog's write lock until ``release`` is set (at most ``longest`` s)."""
    ready = threading.Event()

    def hold():
        con = sqlite3.connect(path, isolation_level=None)
        con.execute("BEGIN IMMEDIATE")
        ready.set()
        release.wait(longest)
        con.execute("ROLLBACK")
        con.close()

    thread = threading.Thread(target=hold)
    thread.start()
    ready.wait()
    return thread


def needs_module(name: str) -> None:
    """``name`` (TensorFlow, keras ...: the train extra) is installed, or skip/fail as :func:`missing`. Found, not
    imported: importing keras takes 11 s and 650 MB, which the modules that need it spend in their own process
    (own_process, below), not in the one that collects them."""
    try:
        found = importlib.util.find_spec(name)
    except ImportError as e:
        missing(f"{name} cannot be found ({e}): pip install '.[train]'")
    if found is None:
        missing(f"{name} is not installed: pip install '.[train]'")


def needs_program(found: str | None, what: str) -> str:
    """A program the test runs (``found``: its path, e.g. from shutil.which), or skip/fail as :func:`missing`."""
    if not found:
        missing(what)
    return found


def needs_env(name: str, what: str) -> str:
    """The value of the environment variable ``name`` (a service's URL ...), or skip/fail as :func:`missing`."""
    value = os.environ.get(name)
    if not value:
        missing(f"${name} is not set: {what}")
    return value


@pytest.fixture(scope="session")
def model_path() -> str | None:
    """The model the inference tests use: $DOGCAT_TEST_MODEL, or None for the bundled model."""
    return os.environ.get("DOGCAT_TEST_MODEL")


@pytest.fixture(scope="session")
def crops() -> Path:
    """Stanford Dogs crops, <wnid>-<name>/*.jpg: the few the tests use (tests/data/stanford-dogs)."""
    assert CROPS.is_dir(), f"{CROPS}: the tests' photos are missing from the checkout"
    return CROPS


@pytest.fixture(scope="session")
def originals() -> Path:
    assert ORIGINALS.is_dir(), f"{ORIGINALS}: the tests' uncropped photos are missing from the checkout"
    return ORIGINALS


@pytest.fixture(scope="session")
def xception_weights() -> str:
    """The real ImageNet Xception backbone, built offline by the shared tool (cached in ~/.cache/dogcat)."""
    import subprocess
    import sys

    tool = needs_shared(DATA.parent / "tools" / "offline_weights.py", "the offline weights tool")
    done = subprocess.run([sys.executable, str(tool), "xception"], capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def dataset() -> Path:
    """The whole Stanford Dogs copy in ../shared/data (slow tests)."""
    return needs_shared(DATA / "stanford-dogs-crops-224", "the Stanford Dogs crops").parent


@pytest.fixture(scope="session")
def make_model(model_path, tmp_path_factory):
    """make_model(id, breeds=None, swap=None) → a path to a "new" model: the model under test with another id in
    its sidecar, and optionally other human breed names. Its .onnx is linked, not copied: the same answers under
    a new id; or, with ``swap=(label_a, label_b)``, a copy whose final Dense layer has those two classes' columns
    swapped (the ``onnx`` package, the train extra): a photo the model under test calls a is called b, and back."""
    import hashlib
    import json

    from dogcat.model import BreedModel, sidecar_path

    source = BreedModel(model_path).path

    def make(model_id: str, breeds: list[str] | None = None, swap: tuple[str, str] | None = None) -> Path:
        folder = tmp_path_factory.mktemp("model")
        card = json.loads(sidecar_path(source).read_text())
        if swap is None:
            (folder / "model.onnx").symlink_to(source.resolve())
        else:
            needs_module("onnx")
            columns = [card["labels"].index(label) for label in swap]
            (folder / "model.onnx").write_bytes(_swap_classes(source, card["output"], *columns))
            card["sha256"] = hashlib.sha256((folder / "model.onnx").read_bytes()).hexdigest()
        if card.get("backbone"):  # a split model: the backbone its card names goes beside it (linked)
            backbone = card["backbone"]["file"]
            (folder / backbone).symlink_to((source.parent / backbone).resolve())
        card["id"] = model_id
        if breeds is not None:
            card["breeds"] = breeds
        (folder / "model.json").write_text(json.dumps(card))
        return folder / "model.onnx"

    return make


def _swap_classes(path: Path, output: str, a: int, b: int) -> bytes:
    """The ONNX graph at ``path`` with classes a and b swapped in the Dense layer (Gemm, or MatMul + Add) that
    feeds the Softmax giving ``output``: its weight columns and its biases."""
    import onnx
    from onnx import numpy_helper

    graph = (model := onnx.load(str(path))).graph
    producer = {name: node for node in graph.node for name in node.output}
    softmax = producer[output]
    assert softmax.op_type == "Softmax", f"{path}: {output} comes from {softmax.op_type}, not a Softmax"
    dense = producer[softmax.input[0]]
    if dense.op_type == "Gemm":
        trans_b = next((attr.i for attr in dense.attribute if attr.name == "transB"), 0)
        swaps = [(dense.input[1], 0 if trans_b else 1), *([(dense.input[2], -1)] if len(dense.input) > 2 else [])]
    else:
        assert dense.op_type == "Add", f"{path}: the Softmax's input comes from {dense.op_type}"
        inits = {i.name for i in graph.initializer}
        [matmul] = [producer[i] for i in dense.input if i in producer and producer[i].op_type == "MatMul"]
        swaps = [(matmul.input[1], 1), *[(i, -1) for i in dense.input if i in inits]]
    initializers = {i.name: i for i in graph.initializer}
    for name, axis in swaps:
        values = numpy_helper.to_array(initializers[name]).copy()
        index = [slice(None)] * values.ndim
        index[axis] = [a, b]
        swapped = list(index)
        swapped[axis] = [b, a]
        values[tuple(index)] = values[tuple(swapped)]
        initializers[name].CopyFrom(numpy_helper.from_array(values, name))
    return model.SerializeToString()


# --- own_process: a module's tests in a child pytest, reported by this one -----------------------------------

REPORTS = "DOGCAT_TESTS_REPORTS"  # set in the child: the file it appends its reports to, pickled (tuples stay tuples)
_CHILD_RESULTS = pytest.StashKey[dict]()
_config: pytest.Config | None = None


def pytest_configure(config):
    global _config
    _config = config


def pytest_runtest_protocol(item, nextitem):
    """An own_process module: when its first test comes, run all of its selected tests in a child pytest, then
    report each test's results from the child's in turn."""
    if item.get_closest_marker("own_process") is None or os.environ.get(REPORTS) \
            or os.environ.get("DOGCAT_TESTS_ONE_PROCESS"):
        return None
    module = item.nodeid.split("::", 1)[0]
    done = item.config.stash.setdefault(_CHILD_RESULTS, {})
    if module not in done:
        items = [i for i in item.session.items if i.nodeid.split("::", 1)[0] == module]
        done[module] = _child_reports(item.config, module, items)
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    for report in done[module][item.nodeid]:
        item.ihook.pytest_runtest_logreport(report=report)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def _has_outcome(reports: list) -> bool:
    """A test's own outcome: its call ran (passed, failed, skipped, xfailed), or its setup failed or skipped."""
    return any(r.when == "call" or (r.when == "setup" and not r.passed) for r in reports)


def _child_reports(config, module: str, items) -> dict[str, list]:
    """Each selected test's reports from the child, and a failure wherever the child did not finish: a test
    without an outcome (the child crashed at it or before it, or never ran it) fails, and a child that ended
    by a signal or with a non-zero status without a failure to show for it fails the module at its last test's
    teardown (a crash in a module fixture's teardown, at exit ...)."""
    reports, log, status = _run_child(config, module, items)
    ended = (f"was killed by {signal.Signals(-status).name}" if status < 0 and -status in signal.valid_signals()
             else f"exited with status {status}")

    def failure(item, when: str, what: str) -> pytest.TestReport:
        tail = log.read_text(errors="replace")[-5000:]
        return pytest.TestReport(item.nodeid, item.location, {}, "failed", f"{what}: the child pytest that ran "
                                 f"{module} {ended}; the end of its output ({log}):\n{tail}", when)

    out, made = {}, False
    for item in items:
        mine = reports.get(item.nodeid, [])
        if not _has_outcome(mine):
            mine = [*mine, failure(item, "call", "no outcome from the child for this test (it crashed here, or "
                                                 "before it, or never ran it)")]
            made = True
        out[item.nodeid] = mine
    failed = any(r.failed for rs in out.values() for r in rs)
    if (status < 0 and not made) or (status != 0 and not failed):
        last = items[-1]
        out[last.nodeid] = [*out[last.nodeid], failure(last, "teardown", f"{module} did not end cleanly")]
    return out


def _run_child(config, module: str, items) -> tuple[dict[str, list], Path, int]:
    folder = config._tmp_path_factory.mktemp(f"own-process-{Path(module).stem}")
    reports_file, log = folder / "reports.pickle", folder / "output.txt"
    # -n 0: the child runs its module's tests itself, not on pytest-xdist's workers (pyproject's addopts: -n 2)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0",
               f"--basetemp={folder / 'tmp'}", f"--tb={config.option.tbstyle}", *(i.nodeid for i in items)]
    with log.open("w") as output:
        child = subprocess.run(command, cwd=config.rootpath, env=os.environ | {REPORTS: str(reports_file)},
                               stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
    reports: dict[str, list] = {}
    if reports_file.exists():
        with reports_file.open("rb") as f:
            while f.peek(1):
                try:
                    data = pickle.load(f)
                except (EOFError, pickle.UnpicklingError):  # the child died while writing its last report
                    break
                report = config.hook.pytest_report_from_serializable(config=config, data=data)
                reports.setdefault(report.nodeid, []).append(report)
    return reports, log, child.returncode


def pytest_runtest_logreport(report):
    """In the child: each test's reports (setup, call, teardown), for the parent."""
    if os.environ.get(REPORTS) and _config is not None:
        data = _config.hook.pytest_report_to_serializable(config=_config, report=report)
        with open(os.environ[REPORTS], "ab") as f:
            pickle.dump(data, f)
