"""The package's shape holds: imports flow one way (no cycle among its modules, lazy imports included), the
layers declared in pyproject.toml hold, every subpackage says what it owns, and no module outgrows a screenful
of screens."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from conftest import ROOT

PACKAGE = ROOT / "tfsoftmax"
MAX_LINES = 300


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = grimp.build_graph("tfsoftmax", include_external_packages=False)
    cycles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back:
                cycles.append(f"{importer} -> {' -> '.join(back)}")
    assert cycles == []


def test_the_declared_layers_hold() -> None:
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if command is None:
        pytest.fail("lint-imports (import-linter) is not installed beside this Python")
    done = subprocess.run([command, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:]


def test_every_subpackage_states_its_job_and_public_names() -> None:
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        tree = ast.parse(init.read_text())
        assert ast.get_docstring(tree), f"{init}: no docstring"
        names = [
            node
            for node in tree.body
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets)
        ]
        assert names, f"{init}: no __all__"
        public = ast.literal_eval(names[0].value)
        modules = {p.stem for p in init.parent.glob("*.py")} | {p.name for p in init.parent.iterdir() if p.is_dir()}
        defined = {
            alias.asname or alias.name for node in tree.body if isinstance(node, ast.ImportFrom) for alias in node.names
        }
        missing = [name for name in public if name not in modules and name not in defined]
        assert missing == [], f"{init}: __all__ names what it neither holds nor imports: {missing}"


def test_no_module_is_over_300_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
