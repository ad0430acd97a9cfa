"""The package's shape: no import cycle, small modules, the tool without torch.

The import graph is read from the source (every ``import`` and ``from ... import``, also
inside functions), so a cycle hidden behind a lazy import is found too.
"""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "onnxdecomp"
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (a name imported from a package counts
    as the submodule when one of that name exists, else as the package itself)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolve against this module's package
                    anchor = name.split(".")[: len(name.split(".")) - node.level + is_package]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    deps.add(sub if sub in modules else base)
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert "onnxdecomp.channels.rules.dense" in graph  # the walk found the tree
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


def test_no_module_is_over_the_line_limit() -> None:
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_package_init_files_only_export() -> None:
    """``__init__.py`` files hold imports, ``__all__`` and (top level) lazy attributes."""
    for init in PACKAGE.rglob("__init__.py"):
        tree = ast.parse(init.read_text())
        for node in tree.body:
            ok = isinstance(node, (ast.Import, ast.ImportFrom, ast.Expr)) or (
                isinstance(node, ast.Assign)
                and all(isinstance(t, ast.Name) for t in node.targets))
            if init.parent == PACKAGE and isinstance(node, ast.FunctionDef):
                ok = node.name == "__getattr__"
            assert ok, f"{init.relative_to(PACKAGE)}: {ast.dump(node)[:80]}"


def test_the_tool_imports_without_torch() -> None:
    """torch is for the zoo and tests: every command's module loads with torch blocked."""
    code = ("import sys; sys.modules['torch'] = None\n"
            "import onnxdecomp.cli, onnxdecomp.decompose, onnxdecomp.link, onnxdecomp.stats\n"
            "print('ok')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


def test_api_functions_are_never_shadowed_by_their_subpackages() -> None:
    """``onnxdecomp.decompose`` is the function even after its subpackage was imported."""
    code = ("from onnxdecomp.decompose import Settings\n"
            "from onnxdecomp.link import MODES\n"
            "from onnxdecomp import decompose, link\n"
            "import sys\n"
            "print(callable(decompose), callable(link), 'onnxruntime' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.stdout.split() == ["True", "True", "False"], res.stderr
