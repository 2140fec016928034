"""The direction of the arrows: gui -> core, cli -> core, core -> nothing of ours above it."""
from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import photocull.core

CORE_DIR = Path(photocull.core.__file__).parent
CORE_MODULES = sorted(m.name for m in pkgutil.iter_modules([str(CORE_DIR)]))


def test_core_modules_are_enumerated():
    assert {"catalog", "export", "images", "losses", "nima", "scoring"} <= set(CORE_MODULES)


def test_core_and_cli_import_without_qt():
    code = (
        "import importlib, pkgutil, sys\n"
        "import photocull.core\n"
        "names = sorted(m.name for m in pkgutil.iter_modules(photocull.core.__path__))\n"
        "for n in names:\n"
        "    importlib.import_module('photocull.core.' + n)\n"
        "import photocull.cli\n"
        "photocull.cli.build_parser()  # loads the command extensions too\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6')"
        " or m.startswith('photocull.gui'))\n"
        "assert not bad, bad\n"
        "print(' '.join(names))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=str(CORE_DIR.parent.parent))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert set(CORE_MODULES) <= set(proc.stdout.split())  # (others may be adding modules meanwhile)


def _imports(tree: ast.AST, module: str) -> set[str]:
    """Absolute names of everything imported anywhere in the module (lazy imports too)."""
    pkg = f"photocull.core.{module}".rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.rsplit(".", node.level - 1)[0] if node.level > 1 else pkg
                name = f"{base}.{node.module}" if node.module else base
                out.add(name)
                if not node.module:
                    out |= {f"{base}.{a.name}" for a in node.names}
            else:
                out.add(node.module or "")
    return out


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_never_imports_gui_cli_or_qt(module):
    tree = ast.parse((CORE_DIR / f"{module}.py").read_text(encoding="utf-8"))
    bad = sorted(n for n in _imports(tree, module)
                 if n.split(".")[0] in ("PySide6", "shiboken6", "PyQt5", "PyQt6")
                 or n.startswith(("photocull.gui", "photocull.cli")))
    assert not bad, f"photocull.core.{module} imports {bad}"


def test_import_checker_can_fail():
    tree = ast.parse("def f():\n    from ..gui import app\n    import PySide6.QtCore\n    from .. import cli\n")
    names = _imports(tree, "x")
    assert {"photocull.gui", "PySide6.QtCore", "photocull.cli"} <= names


def test_cli_help_does_not_import_torch():
    """`photocull --help` / `--version` start fast: no torch until a command needs it."""
    code = ("import sys; from photocull.cli import build_parser; build_parser(); "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "from photocull.core import datasets, learn_cli, nima; assert learn_cli.BACKBONE_CHOICES == nima.BACKBONES; "
            "assert tuple(learn_cli.DATASET_CHOICES) == tuple(datasets.DATASETS)")
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", code], check=True)
