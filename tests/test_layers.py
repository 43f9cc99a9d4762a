"""The floor plan (issue 22): dogcat's modules stand in layers, and an import never runs back up.

Read from the source with ``ast`` (every import, inside functions and ``if TYPE_CHECKING:`` blocks too), so a
circle cannot hide behind a lazy import. ``from dogcat import x`` is an import of the module ``dogcat.x`` when
there is one, else of the package's ``__init__`` (``from dogcat import __version__`` would be one).
docs/architecture.md shows the same layers with what each holds.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dogcat"

# Bottom to top. A module may import modules of its own layer or of a layer below, never above.
LAYERS: list[tuple[str, set[str]]] = [
    ("leaves: names, rules and text, no dogcat imports but each other", {
        "dogcat.version", "dogcat.settings", "dogcat.errors", "dogcat.text", "dogcat.breeds", "dogcat.decision",
        "dogcat.fusion", "dogcat.pathkeys", "dogcat.naming", "dogcat.patterns", "dogcat.helptext", "dogcat.console"}),
    ("pixels and models: model card, decoding, ONNX sessions, statuses, the file walk", {
        "dogcat.modelcard", "dogcat.images", "dogcat.model", "dogcat.status", "dogcat.walk",
        "dogcat.classifier", "dogcat.previews", "dogcat.heads"}),
    ("the store, in one folder: tables, migrations, queries, leases", {"dogcat.db"}),
    ("the read model: each photo's and animal's answer, staff corrections in force", {"dogcat.readmodel"}),
    ("jobs: catalog, grouping, corrections, evaluation, teaching, look-alikes", {
        "dogcat.animals", "dogcat.catalog", "dogcat.corrections", "dogcat.evaluate", "dogcat.teach", "dogcat.similar"}),
    ("ASM3, in one folder: its export read, what to send and what was sent, its file, its service API", {
        "dogcat.asm3"}),
    ("outputs: CSV / JSON Lines, the HTML report", {"dogcat.export", "dogcat.report"}),
    ("the lab (TensorFlow; the train extra)", {"dogcat.train"}),
    ("the library façade", {"dogcat.api", "dogcat"}),
    ("the command lines, dogcat.cli in one folder", {"dogcat.shell", "dogcat.cli", "dogcat.train.cli",
                                                     "dogcat.__main__"}),
]
# A member that is a folder (a package: dogcat.db, dogcat.asm3, dogcat.cli, dogcat.train) holds every module in it;
# a module's layer is that of its nearest member (dogcat.train.cli: the command lines, not the lab).
# Entry points may import dogcat modules inside functions, to start fast (`dogcat --help`, `import dogcat`); every
# module of the dogcat.cli folder is one.
LAZY_OK = {"dogcat", "dogcat.api", "dogcat.cli", "dogcat.train.cli", "dogcat.shell"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def member_of(module: str, members: set[str]) -> str | None:
    """The nearest of ``members`` holding ``module``: itself, else its nearest folder among them ("dogcat", the
    package itself, holds only its __init__)."""
    parts = module.split(".")
    for n in range(len(parts), 1, -1):
        if ".".join(parts[:n]) in members:
            return ".".join(parts[:n])
    return module if module in members else None


def layer_of(module: str) -> int:
    found = [(len(m), i) for i, (_, members) in enumerate(LAYERS) if (m := member_of(module, members))]
    assert found, f"{module}: in no layer of tests/test_layers.py (add it where it belongs)"
    return max(found)[1]


def imports(module: str) -> list[tuple[str, int, bool]]:
    """(dogcat module imported, line, inside a function) for every import in ``module``'s source."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []

    def visit(node: ast.AST, in_function: bool):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                out.extend((a.name, child.lineno, in_function) for a in child.names if a.name.startswith("dogcat"))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - child.level + 1] + ([base] if base
                                                                                                     else []))
                if base == "dogcat" or base.startswith("dogcat."):
                    for a in child.names:
                        sub = f"{base}.{a.name}"
                        out.append((sub if sub in MODULES else base, child.lineno, in_function))
            visit(child, inner)

    visit(tree, False)
    return [(m, line, lazy) for m, line, lazy in out if m != module]


GRAPH = {m: imports(m) for m in MODULES}


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


def test_no_import_runs_back_up():
    upward = [f"{m}:{line} imports {target} ({LAYERS[layer_of(target)][0]!r} is above "
              f"{LAYERS[layer_of(m)][0]!r})"
              for m, edges in GRAPH.items() for target, line, _ in edges if layer_of(target) > layer_of(m)]
    assert not upward, "\n".join(upward)


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for target in sorted(graph.get(m, ())):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_no_import_circle():
    circle = find_circle({m: {t for t, _, _ in edges} for m, edges in GRAPH.items()})
    assert circle is None, "import circle: " + " → ".join(circle or [])


def test_the_circle_check_finds_a_circle():
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b"}, "b": set()}) is None


def test_imports_inside_functions_only_in_entry_points():
    lazy = [f"{m}:{line} imports {target} inside a function" for m, edges in GRAPH.items()
            if member_of(m, LAZY_OK) is None
            for target, line, inner in edges if inner]
    assert not lazy, "\n".join(lazy)


@pytest.mark.parametrize("source, expected", [
    ("from dogcat import db\n", [("dogcat.db", 1, False)]),
    ("from dogcat import __version__\n", [("dogcat", 1, False)]),
    ("def f():\n    from dogcat.animals import answers\n", [("dogcat.animals", 2, True)]),
    ("from . import db\n", [("dogcat.db", 1, False)]),
])
def test_imports_are_read_as_python_reads_them(tmp_path, monkeypatch, source, expected):
    fake = PACKAGE / "fake_module_for_test.py"
    monkeypatch.setitem(MODULES, "dogcat.fake_module_for_test", fake)
    monkeypatch.setattr(Path, "read_text", lambda self, encoding=None: source)
    assert imports("dogcat.fake_module_for_test") == expected
