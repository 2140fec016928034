"""``photocull score``, ``photocull prepare`` and ``photocull demo``."""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

from photocull.config import AppPaths
from photocull.cull import ranking

from .common import MODEL_HELP, collect_photos, fmt, load_model, positive_int, rank_results, run_scoring


# the table's path column is padded to its longest path up to this width (a longer path
# pushes its reason further right): the reasons, last, are always shown whole
TABLE_PATH_WIDTH = 60


def cmd_score(args, paths: AppPaths) -> int:
    items, problems = collect_photos(args.paths, args.recursive)
    companions = {os.path.abspath(it.primary): it.companions for it in items}
    loaded = load_model(args.model, paths)
    print(f"photocull: {loaded.notice}", file=sys.stderr)
    results = run_scoring([it.primary for it in items], loaded, paths, use_cache=not args.no_cache,
                          batch_size=args.batch_size, progress=not args.quiet, backend=args.backend)
    ok, bad = rank_results(results)
    ranks, n = ranking.rank_items(ok)  # None for a distribution whose mean is not a number
    out = sys.stdout

    def comps(path) -> list[Path]:
        return companions.get(os.path.abspath(path), [])

    if args.format == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["path", "mean", "std", *[f"p{i}" for i in range(1, 11)], "why", "error"])
        for r in ok:
            w.writerow([r.path, fmt(r.mean, 4), fmt(r.std, 4), *[f"{p:.4f}" for p in r.probs], r.why, ""])
        for r in bad:
            w.writerow([r.path, "", "", *[""] * 10, "", r.error])
        for p, why in problems:
            w.writerow([p, "", "", *[""] * 10, "", why])
    elif args.format == "json":
        fams = list(loaded.cfg.families)
        rows = []
        for rank, r in zip(ranks, ok):
            rows.append({"path": str(r.path), "mean": round(r.mean, 4), "std": round(r.std, 4), "rank": rank,
                         "top_percent": None if rank is None else round(ranking.top_percent(rank, n), 2),
                         "top": None if rank is None else ranking.top_label(rank, n),
                         "distribution": [round(float(p), 5) for p in r.probs], "why": r.why,
                         "severities": None if r.severities is None or not loaded.trained
                         else {f: round(float(s), 4) for f, s in zip(fams, r.severities)},
                         "companions": [str(c) for c in comps(r.path)], "error": None})
        rows += [{"path": str(r.path), "companions": [str(c) for c in comps(r.path)], "error": r.error}
                 for r in bad]
        rows += [{"path": str(p), "error": why} for p, why in problems]
        json.dump({"model": loaded.name, "model_id": loaded.model_id, "trained": loaded.trained,
                   "photos": rows}, out, indent=2)
        out.write("\n")
    else:
        def shown(path) -> str:  # the photo, and the RAW that travels with it
            c = comps(path)
            return f"{path} (+{', '.join(x.name for x in c)})" if c else str(path)

        rows = [(rank or "-", "" if rank is None else ranking.top_label(rank, n), fmt(r.mean, 2), fmt(r.std, 2),
                 shown(r.path), r.why) for rank, r in zip(ranks, ok)]
        rows += [("-", "", "", "", shown(r.path), f"ERROR: {r.error}") for r in bad]
        rows += [("-", "", "", "", str(p), f"ERROR: {why}") for p, why in problems]
        print_table(rows, out)
    return 0


def print_table(rows: list[tuple], out) -> None:
    """(rank, top, mean, std, path, why) rows under a header: the reason last and whole,
    after a path column as wide as its longest path (up to :data:`TABLE_PATH_WIDTH`)."""
    w = min(max((len(r[4]) for r in rows), default=0), TABLE_PATH_WIDTH)
    for rank, top, mean, std, path, why in [("rank", "top", "mean", "std", "path", "why"), *rows]:
        print(f"{rank:>4} {top:>8} {mean:>6} {std:>5}  {path:<{w}}  {why}".rstrip(), file=out)


def cmd_demo(args, paths: AppPaths) -> int:
    from photocull.training.demo import make_demo

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
        from .gui import cmd_gui

        return cmd_gui(argparse.Namespace(folder=str(folder)), paths)
    print(f"\nphotocull: open it in the GUI with: photocull gui {folder}", file=sys.stderr)
    return rc


def cmd_prepare(args, paths: AppPaths) -> int:
    from photocull.model import onnx_cache

    loaded = load_model(args.model, paths)
    try:
        path = onnx_cache.prepare(loaded, paths.onnx_dir, args.batch_size,
                                  status=None if args.quiet else (lambda m: print(f"photocull: {m}", file=sys.stderr)))
    except onnx_cache.AccelError as exc:
        print(f"photocull: cannot prepare the fast CPU model: {exc} (scoring still works, with PyTorch)",
              file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"photocull: {loaded.name} is ready for ONNX Runtime ({path})", file=sys.stderr)
    return 0


def add_parsers(sub) -> None:
    s = sub.add_parser("score", help="score photos and print them best first",
                       description="Score photos and print them best first: a table (rank, top x %, mean, "
                                   "std, path, the reasons a photo scored low), CSV or JSON.  A RAW+JPEG pair "
                                   "is one photo, as in the window: the JPEG is scored, the RAW travels with "
                                   "it; a lone RAW is a photo of its own.  A file that cannot be read gets a "
                                   "row with the reason and the rest are still scored.  Scores are kept in "
                                   "the catalog: a folder scored before answers at once.")
    s.add_argument("paths", nargs="+", metavar="PATH", help="photos, or folders of photos")
    s.add_argument("-r", "--recursive", action="store_true", help="also score the photos in subfolders")
    s.add_argument("--model", help=MODEL_HELP)
    s.add_argument("--format", choices=("table", "csv", "json"), default="table",
                   help="table (default, for reading), csv (path,mean,std,p1..p10,why,error) or json "
                        "(adds rank, top, severities, companions)")
    s.add_argument("--no-cache", action="store_true", help="ignore and don't update the catalog")
    s.add_argument("--batch-size", type=positive_int, default=8, metavar="N",
                   help="photos per model batch (default %(default)s)")
    s.add_argument("--backend", choices=("auto", "torch", "onnx"), default=None,
                   help="CPU inference engine: auto (ONNX Runtime when it pays, the default; "
                        "also PHOTOCULL_BACKEND), torch, or onnx")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_score)

    d = sub.add_parser("demo", help="build a demo shoot from bundled sample photos and rank it",
                       description="Write a demo shoot (the bundled sample photos, some degraded: blur, "
                                   "noise, exposure) into a folder and print it ranked, as photocull score "
                                   "does.  A folder that exists and was not made by demo is refused.")
    d.add_argument("dir", nargs="?", metavar="DIR", help="where to write it (default ./demo)")
    d.add_argument("--model", help=MODEL_HELP)
    d.add_argument("--gui", action="store_true", help="then open it in the GUI")
    d.set_defaults(func=cmd_demo)

    pp = sub.add_parser("prepare", help="export the model for ONNX Runtime now (once per model): faster "
                        "scoring on this CPU from the next run, whatever the folder size",
                        description="Export the model for ONNX Runtime now (about 20 s, once per model and "
                                    "batch size) and check it against PyTorch: faster scoring on this CPU "
                                    "from the next run, whatever the folder size.  Without it, an export is "
                                    "made only for big jobs (or by the window, in the background).")
    pp.add_argument("--model", help=MODEL_HELP)
    pp.add_argument("--batch-size", type=positive_int, default=8, metavar="N",
                    help="the batch size to export for: the one you score with (default %(default)s)")
    pp.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    pp.set_defaults(func=cmd_prepare)
