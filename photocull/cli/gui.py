"""``photocull gui [FOLDER]``: the main window (Qt is imported only here, and only when run)."""
from __future__ import annotations

from photocull.config import AppPaths


def cmd_gui(args, paths: AppPaths) -> int:
    from photocull.gui.app import run_gui

    return run_gui(getattr(args, "folder", None), paths)


def add_parsers(sub) -> None:
    g = sub.add_parser("gui", help="open the main window",
                       description="Open photocull's window: a grid of the shoot scored and ranked as it "
                                   "loads, with flags, stars, colour labels, bursts, compare and export. "
                                   "The same as running photocull with no command.")
    g.add_argument("folder", nargs="?", metavar="FOLDER",
                   help="the folder to open (default: none; open one, or a recent one, from the File menu)")
    g.set_defaults(func=cmd_gui)
