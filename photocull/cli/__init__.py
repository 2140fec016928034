"""photocull's command line: argparse lives here only, one module per command group.

    photocull [gui] [FOLDER]           open the main window           (cli.gui)
    photocull score PATH...            score photos, print a ranked table / CSV / JSON
    photocull prepare / demo           (cli.score)
    photocull export / rate / trash-rejects                           (cli.cull)
    photocull learn / train / evaluate / train-technical              (cli.learn)

Both entry points are here: :func:`main` (``photocull``) and :func:`gui_main`
(``photocull-gui``); they set up paths and logging once and pass them down.
"""
from __future__ import annotations

import argparse
import sys

from photocull import __version__
from photocull.config import AppPaths, setup_logging

from . import cull, gui, learn, score

COMMAND_MODULES = (gui, score, cull, learn)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="photocull", description="Cull a photo shoot: score, rank, flag, export.")
    ap.add_argument("--version", action="version", version=f"photocull {__version__}")
    _common_options(ap)
    sub = ap.add_subparsers(dest="command", title="commands", metavar="COMMAND",
                            description="photocull COMMAND --help describes each one; no command opens the window")
    for mod in COMMAND_MODULES:
        mod.add_parsers(sub)
    for p in sub.choices.values():  # also after the command: `photocull score DIR --home H`
        _common_options(p, argparse.SUPPRESS)
    return ap


def _common_options(p: argparse.ArgumentParser, default=None) -> None:
    """--home and -v, before the command (``default`` None / False) and after it (SUPPRESS:
    not given there, the value given before the command stays)."""
    p.add_argument("--home", default=default,
                   help="keep catalog, models and logs under this folder (env PHOTOCULL_HOME)")
    p.add_argument("-v", "--verbose", action="store_true", default=False if default is None else default,
                   help="log everything (debug messages too) on stderr, not only warnings")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    for stream in (sys.stdout, sys.stderr):
        # a file name that is not valid UTF-8 (or an emoji on a legacy console) must print, not crash
        try:
            stream.reconfigure(errors="surrogateescape" if (stream.encoding or "").lower().replace("-", "") == "utf8"
                               else "backslashreplace")
        except (AttributeError, ValueError, OSError):
            pass
    ap = build_parser()
    args = ap.parse_args(argv)
    paths = AppPaths.default(args.home).ensure()
    setup_logging(paths, args.verbose)
    if args.command is None:
        return gui.cmd_gui(argparse.Namespace(folder=None), paths)
    from photocull.cull.catalog import CatalogError
    from photocull.model.spec import ModelError

    try:
        return args.func(args, paths) or 0
    except (ModelError, CatalogError) as exc:
        print(f"photocull: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("photocull: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def gui_main(argv: list[str] | None = None) -> int:
    """Entry point of the ``photocull-gui`` script: ``photocull gui [ARGS]``."""
    argv = sys.argv[1:] if argv is None else argv
    return main(["gui", *argv])
