"""``photocull gui [FOLDER]``: the main window (Qt is imported only here, and only when run)."""
from __future__ import annotations

from photocull.config import AppPaths


def cmd_gui(args, paths: AppPaths) -> int:
    from photocull.gui.app import run_gui

    return run_gui(getattr(args, "folder", None), paths)


def add_parsers(sub) -> None:
    g = sub.add_parser("gui", help="open the main window")
    g.add_argument("folder", nargs="?")
    g.set_defaults(func=cmd_gui)
