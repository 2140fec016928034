"""photocull's command line.  Uses only ``photocull.core`` (the GUI is imported lazily).

    photocull [gui] [FOLDER]           open the main window
    photocull score PATH...            score photos, print a ranked table / CSV / JSON
    photocull export SRC DEST ...      copy (or move) the best photos
    photocull demo [DIR]               build a demo shoot and rank it
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import sys
from pathlib import Path

from . import __version__
from .core.config import AppPaths, Settings

log = logging.getLogger("photocull")


def setup_logging(paths: AppPaths | None, verbose: bool = False) -> None:
    handlers: list[logging.Handler] = []
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(logging.DEBUG if verbose else logging.WARNING)
    handlers.append(err)
    if paths is not None:
        try:
            paths.log_dir.mkdir(parents=True, exist_ok=True)
            fh = logging.FileHandler(paths.log_dir / "photocull.log", encoding="utf-8")
            fh.setLevel(logging.INFO)
            handlers.append(fh)
        except OSError:
            pass
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=handlers,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)


def _collect(paths: list[str], recursive: bool) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Files named directly plus the photos in named folders; problems as (path, reason)."""
    from .core.images import is_supported, list_images

    files, problems = [], []
    for p in map(Path, paths):
        if p.is_dir():
            try:
                files += list_images(p, recursive)
            except OSError as exc:
                problems.append((p, f"cannot read folder: {exc.strerror or exc}"))
        elif p.exists() or p.is_symlink():
            files.append(p) if is_supported(p) else problems.append((p, f"unsupported file type {p.suffix or '(none)'}"))
        else:
            problems.append((p, "not found"))
    seen, uniq = set(), []
    for f in files:
        k = os.path.abspath(f)
        if k not in seen:
            seen.add(k)
            uniq.append(f)
    return uniq, problems


def _load_model(spec: str | None, paths: AppPaths):
    """The model, built lazily: a fully cached folder never builds the network."""
    from .core.models import resolve_lazy
    from .core.modelspec import ModelError

    try:
        return resolve_lazy(spec, paths)
    except ModelError as exc:
        raise SystemExit(f"photocull: {exc}")


def _fmt(x: float | None, nd: int = 3) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def run_scoring(files: list[Path], loaded, paths: AppPaths, *, use_cache: bool = True, batch_size: int = 8,
                progress: bool = True, backend: str | None = None):
    """Score with the catalog; returns ScoreResults in input order."""
    from tqdm import tqdm

    from .core.catalog import Catalog
    from .core.scoring import iter_scores, iter_scores_cached

    by_path = {}
    bar = tqdm(total=len(files), unit="img", file=sys.stderr, disable=not progress or None, leave=False)

    def status(msg: str) -> None:
        if progress:
            bar.write(msg, file=sys.stderr)

    kw = dict(batch_size=batch_size, backend=backend, accel_dir=paths.onnx_dir, status=status)
    try:
        if use_cache:
            cat = Catalog(paths.catalog_path)
            gen = iter_scores_cached(files, loaded, cat, **kw)
        else:
            gen = iter_scores(files, loaded, **kw)
        for prog in gen:
            for r in prog.results:
                by_path[os.path.abspath(r.path)] = r
            bar.update(len(prog.results))
    finally:
        bar.close()
    return [by_path[os.path.abspath(f)] for f in files if os.path.abspath(f) in by_path]


def rank_results(results):
    ok = sorted((r for r in results if r.probs is not None), key=lambda r: (-r.mean, str(r.path)))
    bad = [r for r in results if r.probs is None]
    return ok, bad


def cmd_score(args, paths: AppPaths) -> int:
    files, problems = _collect(args.paths, args.recursive)
    loaded = _load_model(args.model, paths)
    print(f"photocull: {loaded.notice}", file=sys.stderr)
    results = run_scoring(files, loaded, paths, use_cache=not args.no_cache, batch_size=args.batch_size,
                          progress=not args.quiet, backend=args.backend)
    ok, bad = rank_results(results)
    n = len(ok)
    out = sys.stdout
    if args.format == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["path", "mean", "std", *[f"p{i}" for i in range(1, 11)], "why", "error"])
        for r in ok:
            w.writerow([r.path, _fmt(r.mean, 4), _fmt(r.std, 4), *[f"{p:.4f}" for p in r.probs], r.why, ""])
        for r in bad:
            w.writerow([r.path, "", "", *[""] * 10, "", r.error])
        for p, why in problems:
            w.writerow([p, "", "", *[""] * 10, "", why])
    elif args.format == "json":
        fams = list(loaded.cfg.families)
        rows = []
        for rank, r in enumerate(ok, 1):
            rows.append({"path": str(r.path), "mean": round(r.mean, 4), "std": round(r.std, 4),
                         "rank": rank, "percentile": round(100.0 * (n - rank) / max(n - 1, 1), 1),
                         "distribution": [round(float(p), 5) for p in r.probs], "why": r.why,
                         "severities": None if r.severities is None or not loaded.trained
                         else {f: round(float(s), 4) for f, s in zip(fams, r.severities)},
                         "error": None})
        rows += [{"path": str(r.path), "error": r.error} for r in bad]
        rows += [{"path": str(p), "error": why} for p, why in problems]
        json.dump({"model": loaded.name, "model_id": loaded.model_id, "trained": loaded.trained,
                   "photos": rows}, out, indent=2)
        out.write("\n")
    else:
        print(f"{'rank':>4} {'pct':>5} {'mean':>6} {'std':>5}  {'why':<28} path", file=out)
        for rank, r in enumerate(ok, 1):
            pct = 100.0 * (n - rank) / max(n - 1, 1)
            print(f"{rank:>4} {pct:>5.0f} {r.mean:>6.2f} {r.std:>5.2f}  {r.why[:28]:<28} {r.path}", file=out)
        for r in bad:
            print(f"{'-':>4} {'':>5} {'':>6} {'':>5}  {'':<28} {r.path}  ERROR: {r.error}", file=out)
        for p, why in problems:
            print(f"{'-':>4} {'':>5} {'':>6} {'':>5}  {'':<28} {p}  ERROR: {why}", file=out)
    return 0


def cmd_export(args, paths: AppPaths) -> int:
    from .core.catalog import Catalog
    from .core.export import Candidate, ExportError, choose, export

    files, problems = _collect([args.src], args.recursive)
    for p, why in problems:
        print(f"photocull: {p}: {why}", file=sys.stderr)
    if problems and not files:
        return 2
    try:  # a bad selection is an error now, not after scoring the whole folder
        choose([], top=args.top, top_percent=args.top_percent, min_score=args.min_score,
               picks_only=args.picks, min_stars=args.min_stars)
    except ValueError as exc:
        raise SystemExit(f"photocull: {exc}")
    loaded = _load_model(args.model, paths)
    print(f"photocull: {loaded.notice}", file=sys.stderr)
    results = run_scoring(files, loaded, paths, progress=not args.quiet)
    cat = Catalog(paths.catalog_path)
    marks = cat.get_marks(files)
    cands = []
    for r in results:
        m = marks.get(os.path.abspath(r.path))
        cands.append(Candidate(Path(r.path), r.mean, r.std, m.flag if m else 0, m.rating if m else 0))
    try:
        chosen = choose(cands, top=args.top, top_percent=args.top_percent, min_score=args.min_score,
                        picks_only=args.picks, min_stars=args.min_stars)
    except ValueError as exc:
        raise SystemExit(f"photocull: {exc}")
    try:
        rep = export(chosen, args.dest, move=args.move, on_moved=cat.rename_path)
    except ExportError as exc:
        print(f"photocull: {exc}", file=sys.stderr)
        return 1
    verb = "moved" if args.move else "copied"
    for it in rep.items:
        extra = f" (+{len(it.companions)} companion{'s' * (len(it.companions) != 1)})" if it.companions else ""
        print(f"{it.rank:>4} {_fmt(it.mean, 2):>6}  {it.source} -> {it.destination}{extra}")
    for p, why in rep.errors:
        print(f"photocull: {p}: {why}", file=sys.stderr)
    print(f"photocull: {verb} {len(rep.items)} of {len(files)} photos to {args.dest}"
          + (f"; report {rep.report_path}" if rep.report_path else ""), file=sys.stderr)
    return 1 if rep.errors else 0


def cmd_demo(args, paths: AppPaths) -> int:
    from .core.demo import make_demo

    folder = Path(args.dir or "demo").expanduser()
    if folder.exists() and any(folder.iterdir()) and not (folder / ".photocull-demo").exists():
        raise SystemExit(f"photocull: {folder} exists and is not a photocull demo folder; choose another")
    files = make_demo(folder)
    (folder / ".photocull-demo").write_text("made by photocull demo\n")
    print(f"photocull: demo shoot of {len(files)} photos in {folder}", file=sys.stderr)
    ns = argparse.Namespace(paths=[str(folder)], recursive=False, model=args.model, format="table",
                            no_cache=False, batch_size=8, quiet=False, backend=None)
    rc = cmd_score(ns, paths)
    if args.gui:
        return cmd_gui(argparse.Namespace(folder=str(folder)), paths)
    print(f"\nphotocull: open it in the GUI with: photocull gui {folder}", file=sys.stderr)
    return rc


def cmd_rate(args, paths: AppPaths) -> int:
    """Flag, rate or label photos; written to the catalog and to XMP sidecars."""
    from .core.catalog import Catalog, Marks
    from .core.export import companions_of
    from .core.images import is_supported
    from .core.marks import load_marks, normalise_label, save_marks

    try:
        label = normalise_label(args.label) if args.label is not None else None
    except ValueError as exc:
        raise SystemExit(f"photocull: {exc}")
    if args.stars is not None and not 0 <= args.stars <= 5:
        raise SystemExit("photocull: --stars must be 0..5")
    if args.stars is None and args.label is None and not (args.pick or args.reject or args.unflag):
        raise SystemExit("photocull: say what to set: --stars N, --pick, --reject, --unflag or --label COLOUR")
    settings = Settings.load(paths.settings_path)
    cat = Catalog(paths.catalog_path)
    files, rc = [], 0
    for f in map(Path, args.files):
        if not f.is_file():
            print(f"photocull: {f}: not found", file=sys.stderr)
            rc = 1
        elif not is_supported(f):
            print(f"photocull: {f}: unsupported file type", file=sys.stderr)
            rc = 1
        else:
            files.append(f)
    current = load_marks(files, cat)
    writes = []
    from .core.formats import RAW_EXTENSIONS

    for f in files:
        m = current.get(os.path.abspath(f)) or Marks()
        flag = 1 if args.pick else -1 if args.reject else 0 if args.unflag else m.flag
        new = Marks(flag, m.rating if args.stars is None else args.stars,
                    m.label if args.label is None else label)
        comps = [c for c in companions_of(f) if c.suffix.lower() in RAW_EXTENSIONS]
        writes.append((f, new, comps, None))
    problems = save_marks(cat, writes, write_sidecars=not args.no_sidecar, style=settings.sidecar_style)
    for f, m, comps, _ in writes:
        state = {1: "pick", -1: "reject", 0: "unflagged"}[m.flag]
        print(f"{f}: {state}, {m.rating} star{'s' * (m.rating != 1)}" + (f", {m.label}" if m.label else "")
              + (f" (+{', '.join(c.name for c in comps)})" if comps else ""))
    for p, why in problems:
        print(f"photocull: sidecar of {p}: {why}", file=sys.stderr)
        rc = 1
    return rc


def cmd_train_technical(args, paths: AppPaths) -> int:
    from .core.technical import run_train_technical

    return run_train_technical(args.extra)


def cmd_prepare(args, paths: AppPaths) -> int:
    from .core import accel

    loaded = _load_model(args.model, paths)
    try:
        path = accel.prepare(loaded, paths.onnx_dir, args.batch_size,
                             status=None if args.quiet else (lambda m: print(f"photocull: {m}", file=sys.stderr)))
    except accel.AccelError as exc:
        print(f"photocull: cannot prepare the fast CPU model: {exc} (scoring still works, with PyTorch)",
              file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"photocull: {loaded.name} is ready for ONNX Runtime ({path})", file=sys.stderr)
    return 0


def cmd_gui(args, paths: AppPaths) -> int:
    from .gui.app import run_gui

    return run_gui(getattr(args, "folder", None), paths)


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {n}")
    return n


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="photocull", description="Cull a photo shoot: score, rank, flag, export.")
    ap.add_argument("--version", action="version", version=f"photocull {__version__}")
    ap.add_argument("--home", help="keep catalog, models and logs under this folder (env PHOTOCULL_HOME)")
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="command")

    g = sub.add_parser("gui", help="open the main window")
    g.add_argument("folder", nargs="?")
    g.set_defaults(func=cmd_gui)

    s = sub.add_parser("score", help="score photos and print them best first")
    s.add_argument("paths", nargs="+", metavar="PATH")
    s.add_argument("-r", "--recursive", action="store_true")
    s.add_argument("--model", help='"default", a personal model name, or a .pt file')
    s.add_argument("--format", choices=("table", "csv", "json"), default="table")
    s.add_argument("--no-cache", action="store_true", help="ignore and don't update the catalog")
    s.add_argument("--batch-size", type=_positive_int, default=8)
    s.add_argument("--backend", choices=("auto", "torch", "onnx"), default=None,
                   help="CPU inference engine: auto (ONNX Runtime when it pays, the default; "
                        "also PHOTOCULL_BACKEND), torch, or onnx")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_score)

    e = sub.add_parser("export", help="copy (or move) the best photos to a folder")
    e.add_argument("src")
    e.add_argument("dest")
    sel = e.add_mutually_exclusive_group(required=True)
    sel.add_argument("--top", type=int, metavar="N")
    sel.add_argument("--top-percent", type=float, metavar="P")
    sel.add_argument("--min-score", type=float, metavar="S")
    sel.add_argument("--picks", action="store_true", help="picked photos only")
    sel.add_argument("--min-stars", type=int, metavar="N", help="photos with at least N stars")
    e.add_argument("--move", action="store_true", help="move instead of copy (sources removed after a verified copy)")
    e.add_argument("-r", "--recursive", action="store_true")
    e.add_argument("--model")
    e.add_argument("-q", "--quiet", action="store_true")
    e.set_defaults(func=cmd_export)

    d = sub.add_parser("demo", help="build a demo shoot from bundled sample photos and rank it")
    d.add_argument("dir", nargs="?", help="where to write it (default ./demo)")
    d.add_argument("--model")
    d.add_argument("--gui", action="store_true", help="then open it in the GUI")
    d.set_defaults(func=cmd_demo)

    pp = sub.add_parser("prepare", help="export the model for ONNX Runtime now (once per model): faster "
                        "scoring on this CPU from the next run, whatever the folder size")
    pp.add_argument("--model")
    pp.add_argument("--batch-size", type=_positive_int, default=8)
    pp.add_argument("-q", "--quiet", action="store_true")
    pp.set_defaults(func=cmd_prepare)

    rt = sub.add_parser("rate", help="flag, rate or colour-label photos (catalog + XMP sidecars)")
    rt.add_argument("files", nargs="+", metavar="FILE")
    fl = rt.add_mutually_exclusive_group()
    fl.add_argument("--pick", action="store_true")
    fl.add_argument("--reject", action="store_true")
    fl.add_argument("--unflag", action="store_true")
    rt.add_argument("--stars", type=int, metavar="N", help="0..5")
    rt.add_argument("--label", metavar="COLOUR", help="Red, Yellow, Green, Blue, Purple, or none")
    rt.add_argument("--no-sidecar", action="store_true", help="catalog only, don't write XMP")
    rt.set_defaults(func=cmd_rate)

    tt = sub.add_parser("train-technical", add_help=False,
                        help="rebuild the default technical-quality model from a folder of clean photos")
    tt.set_defaults(func=cmd_train_technical, passthrough=True)

    for mod in _extensions():
        mod.add_parsers(sub)
    return ap


def _extensions():
    """Command modules living in core (plain imports: PyInstaller must see them)."""
    from .core import learn_cli, safety_cli

    return [learn_cli, safety_cli]


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
    args, extra = ap.parse_known_args(argv)
    if extra and not getattr(args, "passthrough", False):
        ap.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    paths = AppPaths.default(args.home).ensure()
    setup_logging(paths, args.verbose)
    if args.command is None:
        return cmd_gui(argparse.Namespace(folder=None), paths)
    from .core.modelspec import ModelError

    try:
        return args.func(args, paths) or 0
    except ModelError as exc:
        print(f"photocull: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("photocull: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
