"""The shape of the house (../shared/STYLE.md), enforced.

* the arrows point down: no import cycles inside ``photocull`` (lazy imports count);
* ``media/`` and ``cull/`` import neither torch nor Qt; nothing outside ``gui/`` imports
  Qt except the ``gui`` command, which imports the GUI lazily;
* ``argparse`` lives only under ``cli/``;
* no module imports a ``_private`` name from another module;
* ``photocull.core`` is gone (no compatibility shims).
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import photocull

PKG = Path(photocull.__file__).parent
QT = ("PySide6", "shiboken6", "PyQt5", "PyQt6")


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def imports_of(tree: ast.AST, module: str, is_package: bool = False) -> list[tuple[str, list[str]]]:
    """(absolute module, [imported names]) for every import anywhere in the module (lazy ones too)."""
    pkg = module if is_package else module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg
                for _ in range(node.level - 1):
                    base = base.rsplit(".", 1)[0]
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            out.append((name, [a.name for a in node.names]))
    return out


def _resolve(name: str, names: list[str]) -> set[str]:
    """The photocull modules an import statement brings in (``from pkg import mod`` counts as mod)."""
    found = set()
    if name in MODULES:
        found.add(name)
    for n in names:
        if f"{name}.{n}" in MODULES:
            found.add(f"{name}.{n}")
    return found


def graph() -> dict[str, set[str]]:
    g = {}
    for mod, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        deps = set()
        for name, names in imports_of(tree, mod, path.name == "__init__.py"):
            if name.split(".")[0] == "photocull":
                deps |= _resolve(name, names)
        # importing a submodule runs its package's __init__ first: that is not an arrow back
        g[mod] = {d for d in deps if d != mod and not mod.startswith(d + ".")}
    return g


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(g.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                c = visit(m)
                if c:
                    return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(g):
        if n not in state:
            c = visit(n)
            if c:
                return c
    return None


def test_rooms_exist_and_core_is_gone():
    rooms = {m.split(".")[1] for m in MODULES if m.count(".") >= 1}
    assert {"media", "model", "cull", "training", "cli", "gui", "scoring", "config"} <= rooms
    assert not (PKG / "core").exists()


def test_no_import_cycles():
    assert find_cycle(graph()) is None, f"import cycle: {' -> '.join(find_cycle(graph()))}"


def test_cycle_finder_can_fail():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("module", [m for m in MODULES if m.startswith(("photocull.media", "photocull.cull"))])
def test_media_and_cull_import_neither_torch_nor_qt(module):
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    bad = sorted(n for n, _ in imports_of(tree, module) if n.split(".")[0] in (*QT, "torch", "torchvision", "timm")
                 or n.startswith(("photocull.gui", "photocull.cli", "photocull.model.nima",
                                  "photocull.model.runtime", "photocull.model.checkpoint", "photocull.training")))
    assert not bad, f"{module} imports {bad}"


@pytest.mark.parametrize("module", [m for m in MODULES if not m.startswith(("photocull.gui", "photocull.cli"))])
def test_nothing_below_the_views_imports_qt_gui_or_cli(module):
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    bad = sorted(n for n, _ in imports_of(tree, module)
                 if n.split(".")[0] in QT or n.startswith(("photocull.gui", "photocull.cli")))
    assert not bad, f"{module} imports {bad}"


@pytest.mark.parametrize("module", list(MODULES))
def test_argparse_only_under_cli(module):
    if module.startswith("photocull.cli"):
        return
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    assert "argparse" not in {n for n, _ in imports_of(tree, module)}, f"{module} imports argparse"


@pytest.mark.parametrize("module", list(MODULES))
def test_no_private_names_across_modules(module):
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bad = []
    for name, names in imports_of(tree, module, path.name == "__init__.py"):
        if name.split(".")[0] == "photocull" and name != module:
            bad += [f"{name}.{n}" for n in names if n.startswith("_") and not n.startswith("__")]
    for node in ast.walk(tree):  # mod._private through an imported module object
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name) and node.value.id in _imported_modules(tree, module)):
            bad.append(f"{node.value.id}.{node.attr}")
    assert not bad, f"{module} uses private names of other modules: {bad}"


def _imported_modules(tree: ast.AST, module: str) -> set[str]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("photocull"):
            for a in node.names:
                if f"{node.module}.{a.name}" in MODULES:
                    out.add(a.asname or a.name)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("photocull") and a.asname:
                    out.add(a.asname)
    return out


def test_checkers_can_fail():
    tree = ast.parse("def f():\n    from ..gui import app\n    import PySide6.QtCore\n    from .catalog import _key\n")
    names = imports_of(tree, "photocull.cull.marks")
    assert ("photocull.gui", ["app"]) in names and ("PySide6.QtCore", []) in names
    assert ("photocull.cull.catalog", ["_key"]) in names


def test_media_cull_and_cli_import_without_qt_or_torch():
    """The core rooms and the whole command line (its parsers) load without Qt; the CLI's
    ``--help`` and ``--version`` don't load torch either."""
    code = (
        "import importlib, sys\n"
        f"mods = {sorted(m for m in MODULES if m.startswith(('photocull.media', 'photocull.cull', 'photocull.cli')) and not m.endswith('__main__'))!r}\n"
        "for m in mods:\n"
        "    importlib.import_module(m)\n"
        "import photocull.cli\n"
        "photocull.cli.build_parser()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'torch')"
        " or m.startswith('photocull.gui'))\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=str(PKG.parent))
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_cli_help_does_not_import_torch():
    """``photocull --help`` / ``--version`` start fast: the parsers take their choices from
    torch-free modules (model.spec, training.datasets)."""
    code = ("import sys; from photocull.cli import build_parser; build_parser(); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(PKG.parent))


@pytest.mark.parametrize("module", list(MODULES))
def test_ray_only_in_the_cluster_module(module):
    """Ray (``photocull[cluster]``) is optional: one module, photocull/cluster.py, imports it."""
    if module == "photocull.cluster":
        return
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    bad = sorted(n for n, _ in imports_of(tree, module) if n.split(".")[0] == "ray")
    assert not bad, f"{module} imports {bad}: only photocull/cluster.py may"
