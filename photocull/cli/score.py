"""``photocull score``, ``photocull prepare`` and ``photocull demo``."""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from photocull.config import AppPaths
from photocull.cull import ranking

from .common import collect, fmt, load_model, positive_int, rank_results, run_scoring


def cmd_score(args, paths: AppPaths) -> int:
    files, problems = collect(args.paths, args.recursive)
    loaded = load_model(args.model, paths)
    print(f"photocull: {loaded.notice}", file=sys.stderr)
    results = run_scoring(files, loaded, paths, use_cache=not args.no_cache, batch_size=args.batch_size,
                          progress=not args.quiet, backend=args.backend)
    ok, bad = rank_results(results)
    ranks, n = ranking.rank_items(ok)  # None for a distribution whose mean is not a number
    out = sys.stdout
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
                         "error": None})
        rows += [{"path": str(r.path), "error": r.error} for r in bad]
        rows += [{"path": str(p), "error": why} for p, why in problems]
        json.dump({"model": loaded.name, "model_id": loaded.model_id, "trained": loaded.trained,
                   "photos": rows}, out, indent=2)
        out.write("\n")
    else:
        print(f"{'rank':>4} {'top':>8} {'mean':>6} {'std':>5}  {'why':<28} path", file=out)
        for rank, r in zip(ranks, ok):
            top = "" if rank is None else ranking.top_label(rank, n)
            print(f"{rank or '-':>4} {top:>8} {fmt(r.mean, 2):>6} {fmt(r.std, 2):>5}  {r.why[:28]:<28} {r.path}", file=out)
        for r in bad:
            print(f"{'-':>4} {'':>8} {'':>6} {'':>5}  {'':<28} {r.path}  ERROR: {r.error}", file=out)
        for p, why in problems:
            print(f"{'-':>4} {'':>8} {'':>6} {'':>5}  {'':<28} {p}  ERROR: {why}", file=out)
    return 0


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
    s = sub.add_parser("score", help="score photos and print them best first")
    s.add_argument("paths", nargs="+", metavar="PATH")
    s.add_argument("-r", "--recursive", action="store_true")
    s.add_argument("--model", help='"default", a personal model name, or a .pt file')
    s.add_argument("--format", choices=("table", "csv", "json"), default="table")
    s.add_argument("--no-cache", action="store_true", help="ignore and don't update the catalog")
    s.add_argument("--batch-size", type=positive_int, default=8)
    s.add_argument("--backend", choices=("auto", "torch", "onnx"), default=None,
                   help="CPU inference engine: auto (ONNX Runtime when it pays, the default; "
                        "also PHOTOCULL_BACKEND), torch, or onnx")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_score)

    d = sub.add_parser("demo", help="build a demo shoot from bundled sample photos and rank it")
    d.add_argument("dir", nargs="?", help="where to write it (default ./demo)")
    d.add_argument("--model")
    d.add_argument("--gui", action="store_true", help="then open it in the GUI")
    d.set_defaults(func=cmd_demo)

    pp = sub.add_parser("prepare", help="export the model for ONNX Runtime now (once per model): faster "
                        "scoring on this CPU from the next run, whatever the folder size")
    pp.add_argument("--model")
    pp.add_argument("--batch-size", type=positive_int, default=8)
    pp.add_argument("-q", "--quiet", action="store_true")
    pp.set_defaults(func=cmd_prepare)
