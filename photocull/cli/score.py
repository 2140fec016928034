"""``photocull score``, ``photocull prepare`` and ``photocull demo``."""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import sys
from pathlib import Path

from photocull.config import AppPaths
from photocull.cull import ranking
from photocull.cull.overall import reason_words

from photocull.model.losses import mean_of, std_of

from .common import (MODEL_HELP, burst_settings, collect_photos, fmt, judge, load_scorers, positive_int,
                     run_scoring)


# the table's path column is padded to its longest path up to this width (a longer path
# pushes its reason further right): the reasons, last, are always shown whole
TABLE_PATH_WIDTH = 60


def cmd_score(args, paths: AppPaths) -> int:
    from photocull.cull.catalog import Catalog, CatalogError

    engine, out_file = getattr(args, "engine", "local"), getattr(args, "out", None)
    if out_file is not None:
        check_out(out_file)
    if engine != "ray" and any(getattr(args, k, None) is not None for k in RAY_OPTIONS):
        raise SystemExit("photocull: --address, --actors, --actor-cpus and --actor-gpus go with --engine ray")
    if engine == "ray":
        from photocull.cluster import ClusterError, require_ray

        try:
            require_ray()
        except ClusterError as exc:
            raise SystemExit(f"photocull: {exc}")
    named, listed = list(args.paths), getattr(args, "files_from", None)
    if not named and not listed:
        raise SystemExit("photocull: score: give photos or folders, or --files-from LIST")
    if listed:
        named += read_file_list(listed)
    items, problems = collect_photos(named, args.recursive)
    companions = {os.path.abspath(it.primary): it.companions for it in items}
    scorers = load_scorers(args.model, paths)
    by_faces = "; listed by face sharpness (rank is still the score's)" if getattr(args, "sort", "") == "face-sharpness" else ""
    print(f"photocull: {scorers.notice}{by_faces}", file=sys.stderr)
    with contextlib.ExitStack() as stack:
        cat = None
        if not args.no_cache:
            try:
                cat = stack.enter_context(Catalog(paths.catalog_path))
            except CatalogError:
                cat = None  # run_scoring says so, and scores without it
        files = [it.primary for it in items]
        if engine == "ray":
            results = score_on_ray(files, scorers, paths, args, cat)
        else:
            results = run_scoring(files, scorers.loaded, paths, use_cache=not args.no_cache,
                                  batch_size=args.batch_size, progress=not args.quiet, backend=args.backend,
                                  catalog=cat, aesthetic=scorers.aesthetic)
        scored = [r for r in results if r.probs is not None]
        judged = dict(zip(map(id, scored), judge(scored, scorers, cat, burst_settings(paths))))
    alone_aesthetic = scorers.mode == "single" and not scorers.loaded.cfg.families  # (no severity head)
    rows = [ScoreRow(r, judged[id(r)], scorers.mode, alone_aesthetic) for r in scored]
    ok = ranking.best_first(rows)
    bad = [r for r in results if r.probs is None]
    ranks, n = ranking.rank_items(ok)  # None for a photo without an overall score (its aesthetic one failed)
    if getattr(args, "sort", "score") == "face-sharpness":  # ranks stay the score's
        order = sorted(range(len(ok)), key=lambda i: ranking.by_face_sharpness(
            ok[i].result.faces.sharpness if ok[i].result.faces is not None else None, ranks[i], str(ok[i].path)))
        ok, ranks = [ok[i] for i in order], [ranks[i] for i in order]
    out = sys.stdout

    def comps(path) -> list[Path]:
        return companions.get(os.path.abspath(path), [])

    if out_file is not None:
        write_out(out_file, ok, bad, problems, scorers)

    extra = ["aesthetic", "aesthetic_std", "technical", "technical_std", "faces", "eyes_closed"]
    if args.format == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["path", "mean", "std", *[f"p{i}" for i in range(1, 11)], "why", "error", *extra])
        for row in ok:
            dist = row.distribution
            w.writerow([row.path, fmt(row.mean, 4), fmt(row.std, 4),
                        *([f"{p:.4f}" for p in dist] if dist is not None else [""] * 10), row.why,
                        row.error or "", *[fmt(x, 4) for x in row.extra], *row.face_counts])
        for r in bad:
            w.writerow([r.path, "", "", *[""] * 10, "", r.error, *[""] * 6])
        for p, why in problems:
            w.writerow([p, "", "", *[""] * 10, "", why, *[""] * 6])
    elif args.format == "json":
        fams = list(scorers.loaded.cfg.families)
        rows = []
        for rank, row in zip(ranks, ok):
            r, dist = row.result, row.distribution
            rows.append({"path": str(r.path), "mean": _round(row.mean), "std": _round(row.std), "rank": rank,
                         "top_percent": None if rank is None else round(ranking.top_percent(rank, n), 2),
                         "top": None if rank is None else ranking.top_label(rank, n),
                         "distribution": None if dist is None else [round(float(p), 5) for p in dist],
                         "why": row.why, "faults": list(row.judged.faults),
                         **{k: _round(v) for k, v in zip(extra, row.extra)},
                         "faces": None if r.faces is None else r.faces.count,
                         "eyes_closed": None if r.faces is None else r.faces.eyes_closed_count,
                         "face_details": None if r.faces is None else [_face(f) for f in r.faces.faces],
                         "focus": None if r.focus is None else {
                             "verdict": r.focus.verdict, "reason": r.focus.reason(),
                             "subject_sharpness": _round(r.focus.subject_sharpness),
                             "best_sharpness": _round(r.focus.best_sharpness)},
                         "aesthetic_distribution": _dist(row.aesthetic_probs),
                         "technical_distribution": _dist(row.technical_probs),
                         "severities": None if r.severities is None or not scorers.loaded.trained
                         else {f: round(float(s), 4) for f, s in zip(fams, r.severities)},
                         "companions": [str(c) for c in comps(r.path)], "error": row.error})
        rows += [{"path": str(r.path), "companions": [str(c) for c in comps(r.path)], "error": r.error}
                 for r in bad]
        rows += [{"path": str(p), "error": why} for p, why in problems]
        json.dump({"model": scorers.loaded.name, "model_id": scorers.loaded.model_id,
                   "trained": scorers.loaded.trained, "mode": scorers.mode,
                   "aesthetic_model_id": None if scorers.aesthetic is None else scorers.aesthetic.model_id,
                   "photos": rows}, out, indent=2)
        out.write("\n")
    else:
        def shown(path) -> str:  # the photo, and the RAW that travels with it
            c = comps(path)
            return f"{path} (+{', '.join(x.name for x in c)})" if c else str(path)

        both = scorers.mode != "single"
        rows = [(rank or "-", "" if rank is None else ranking.top_label(rank, n), fmt(row.mean, 2),
                 fmt(row.extra[0], 2) if both else fmt(row.std, 2), fmt(row.extra[2], 2) if both else "",
                 shown(row.path), row.why or (f"ERROR: {row.error}" if row.error else ""))
                for rank, row in zip(ranks, ok)]
        rows += [("-", "", "", "", "", shown(r.path), f"ERROR: {r.error}") for r in bad]
        rows += [("-", "", "", "", "", str(p), f"ERROR: {why}") for p, why in problems]
        print_table(rows, out, ("rank", "top", "mean", "A", "T") if both else ("rank", "top", "mean", "std", ""))
    return 0


OUT_COLUMNS = ["path", "size", "mtime", "model_id", "aesthetic_model_id", "mean", "aesthetic", "aesthetic_std",
               "technical", "technical_std", "why", "error", "faces", "eyes_closed"]
"""``--out FILE``'s columns (any engine): one row per photo, scored or not."""


def check_out(out_file: str) -> None:
    """Refuse an ``--out`` file photocull cannot write, before any scoring."""
    suffix = Path(out_file).suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise SystemExit(f"photocull: --out {out_file}: give a .csv or .parquet file")
    if suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
            import pyarrow.parquet  # noqa: F401
        except ImportError:
            raise SystemExit("photocull: --out FILE.parquet needs pyarrow: pip install pyarrow "
                             "(or pip install 'photocull[cluster]'), or write FILE.csv") from None
    if not Path(out_file).expanduser().absolute().parent.is_dir():
        raise SystemExit(f"photocull: --out {out_file}: its folder does not exist")


RAY_OPTIONS = ("address", "actors", "actor_cpus", "actor_gpus")
"""``photocull score``'s options that only ``--engine ray`` takes."""


def read_file_list(name: str) -> list[str]:
    """The paths in ``--files-from`` ``name`` (``-``: stdin): one per line, surrounding spaces
    trimmed; blank lines and lines starting with ``#`` left out.  A relative path is relative to the list's folder (a
    list made with ``find . -name '*.jpg' > list.txt`` inside the archive works from
    anywhere), or to the working folder for stdin.  Bytes that are not UTF-8 are kept as
    the file system's (surrogateescape)."""
    try:
        if name == "-":
            data, base = sys.stdin.buffer.read(), Path.cwd()
        else:
            src = Path(name).expanduser()
            data, base = src.read_bytes(), src.absolute().parent
    except OSError as exc:
        raise SystemExit(f"photocull: --files-from {name}: {exc.strerror or exc}") from None
    out = []
    for line in data.decode("utf-8", "surrogateescape").splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        p = Path(entry).expanduser()
        out.append(str(p if p.is_absolute() else base / p))
    return out


def score_on_ray(files, scorers, paths: AppPaths, args, catalog):
    """``--engine ray``: the same results list as :func:`run_scoring` gives, scored on Ray."""
    from photocull.cluster import ClusterError, RayJob, run_on_ray

    backend = args.backend or os.environ.get("PHOTOCULL_BACKEND")
    job = RayJob(args.model, paths, address=args.address, batch_size=args.batch_size, backend=backend,
                 concurrency=getattr(args, "actors", None), actor_cpus=getattr(args, "actor_cpus", None),
                 actor_gpus=getattr(args, "actor_gpus", None),
                 status=None if args.quiet else (lambda m: print(f"photocull: {m}", file=sys.stderr)))
    where = f"the Ray cluster at {args.address}" if args.address else "a local Ray on this machine"
    if not args.quiet:
        print(f"photocull: scoring on {where}", file=sys.stderr)
    try:
        return run_on_ray(files, scorers, job, catalog=catalog, progress=not args.quiet)
    except ClusterError as exc:
        raise SystemExit(f"photocull: {exc}")


def write_out(out_file: str, ok: list, bad: list, problems: list, scorers) -> None:
    """The results table for the archive (:data:`OUT_COLUMNS`) as CSV or Parquet, written
    atomically; paths absolute (the table is read elsewhere, not from the folder it was made in)."""
    from photocull.media.fileops import atomic_write

    ids = (scorers.loaded.model_id, None if scorers.aesthetic is None else scorers.aesthetic.model_id)

    def stat(p):
        try:
            st = os.stat(p)
            return st.st_size, st.st_mtime
        except OSError:
            return None, None

    def num(x):
        return None if x is None else round(float(x), 4)

    records = []
    for row in ok:
        a, a_std, t, t_std = row.extra
        faces = row.result.faces
        records.append([os.path.abspath(row.path), *stat(row.path), *ids, num(row.mean), num(a), num(a_std), num(t),
                        num(t_std), row.why, row.error, None if faces is None else faces.count,
                        None if faces is None else faces.eyes_closed_count])
    for r in bad:
        records.append([os.path.abspath(r.path), *stat(r.path), *ids, None, None, None, None, None, "", r.error, None, None])
    for p, why in problems:
        records.append([os.path.abspath(p), *stat(p), *ids, None, None, None, None, None, "", why, None, None])
    if Path(out_file).suffix.lower() == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist([dict(zip(OUT_COLUMNS, rec)) for rec in records]), sink)
        data = sink.getvalue().to_pybytes()
    else:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(OUT_COLUMNS)
        w.writerows([["" if v is None else v for v in rec] for rec in records])
        data = buf.getvalue().encode("utf-8")
    atomic_write(Path(out_file).expanduser(), data)


class ScoreRow:
    """One scored photo as ``photocull score`` prints it (see the CLI contract in README):
    ``mean`` is the overall score; ``std`` and the distribution are the taste model's (the
    aesthetic one, or a personal model's) in the overall rule, the model's own alone."""

    def __init__(self, result, judged, mode: str, alone_aesthetic: bool = False):
        self.result, self.judged, self.mode = result, judged, mode
        self.path = result.path
        self.mean = judged.score
        r = result
        taste = r.aesthetic if mode == "overall" else r.probs
        self.distribution = taste
        self.std = std_of(taste)
        self.aesthetic_probs = r.aesthetic if mode != "single" else (r.probs if alone_aesthetic else None)
        self.technical_probs = r.probs if mode == "overall" or (mode == "single" and not alone_aesthetic) else None
        self.extra = [mean_of(self.aesthetic_probs), std_of(self.aesthetic_probs),
                      mean_of(self.technical_probs), std_of(self.technical_probs)]
        faces = getattr(r, "faces", None)
        self.face_counts = ["", ""] if faces is None else [str(faces.count), str(faces.eyes_closed_count)]
        self.why = reason_words(r.why, faces, getattr(r, "focus", None), judged.faults)
        self.error = None if mode == "single" or r.aesthetic is not None else (
            r.error or "the aesthetic model did not score this photo")


def _face(f) -> dict:
    """One face for the JSON output: geometry and eyes, no identity."""
    def num(v, nd=4):
        return None if v is None else round(float(v), nd)

    return {"box": [num(v) for v in f.box], "confidence": num(f.confidence, 3), "left_eye": num(f.left_eye),
            "right_eye": num(f.right_eye), "eyes_closed": bool(f.eyes_closed), "yaw": num(f.yaw, 1),
            "looking_away": bool(f.looking_away), "sharpness": num(f.sharpness), "height_px": int(f.size_px)}


def _round(x, nd: int = 4):
    return None if x is None else round(float(x), nd)


def _dist(p):
    return None if p is None else [round(float(x), 5) for x in p]


def print_table(rows: list[tuple], out, header=("rank", "top", "mean", "std", "")) -> None:
    """(rank, top, score, a, b, path, why) rows under ``header``: the reason last and whole,
    after a path column as wide as its longest path (up to :data:`TABLE_PATH_WIDTH`)."""
    w = min(max((len(r[5]) for r in rows), default=0), TABLE_PATH_WIDTH)
    for rank, top, mean, a, b, path, why in [(*header, "path", "why"), *rows]:
        print(f"{rank:>4} {top:>8} {mean:>6} {a:>5} {b:>5}  {path:<{w}}  {why}".rstrip(), file=out)


def cmd_demo(args, paths: AppPaths) -> int:
    from photocull.training.demo import make_demo

    folder = Path(args.dir or "demo").expanduser()
    if folder.exists() and any(folder.iterdir()) and not (folder / ".photocull-demo").exists():
        raise SystemExit(f"photocull: {folder} exists and is not a photocull demo folder; choose another")
    files = make_demo(folder)
    (folder / ".photocull-demo").write_text("made by photocull demo\n")
    print(f"photocull: demo shoot of {len(files)} photos in {folder}", file=sys.stderr)
    ns = argparse.Namespace(paths=[str(folder)], recursive=False, model=args.model, format="table",
                            no_cache=False, batch_size=8, quiet=False, backend=None, engine="local", out=None)
    rc = cmd_score(ns, paths)
    if args.gui:
        from .gui import cmd_gui

        return cmd_gui(argparse.Namespace(folder=str(folder)), paths)
    print(f"\nphotocull: open it in the GUI with: photocull gui {folder}", file=sys.stderr)
    return rc


def cmd_prepare(args, paths: AppPaths) -> int:
    from photocull.model import onnx_cache

    scorers = load_scorers(args.model, paths)
    for loaded in (scorers.loaded, scorers.aesthetic):
        if loaded is None:
            continue
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


def non_negative_float(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text}") from None
    if not x >= 0 or x == float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text}")
    return x


def add_parsers(sub) -> None:
    s = sub.add_parser("score", help="score photos and print them best first",
                       description="Score photos and print them best first: a table (rank, top x %, mean, "
                                   "std, path, the reasons a photo scored low), CSV or JSON.  A RAW+JPEG pair "
                                   "is one photo, as in the window: the JPEG is scored, the RAW travels with "
                                   "it; a lone RAW is a photo of its own.  A file that cannot be read gets a "
                                   "row with the reason and the rest are still scored.  Scores are kept in "
                                   "the catalog: a folder scored before answers at once.")
    s.add_argument("paths", nargs="*", metavar="PATH", help="photos, or folders of photos")
    s.add_argument("--files-from", metavar="LIST", help="also the photos (or folders) named in LIST, one per "
                   "line ('-': stdin); blank lines and lines starting with # are skipped; a relative path is "
                   "relative to LIST's folder (to the working folder for stdin)")
    s.add_argument("-r", "--recursive", action="store_true", help="also score the photos in subfolders")
    s.add_argument("--model", help=MODEL_HELP)
    s.add_argument("--format", choices=("table", "csv", "json"), default="table",
                   help="table (default, for reading), csv (path,mean,std,p1..p10,why,error) or json "
                        "(adds rank, top, severities, companions)")
    s.add_argument("--sort", choices=("score", "face-sharpness"), default="score",
                   help="the order of the rows: best score first (default), or the photos whose softest face "
                        "is sharpest first, then those without faces (ranks stay the score's)")
    s.add_argument("--no-cache", action="store_true", help="ignore and don't update the catalog")
    s.add_argument("--batch-size", type=positive_int, default=8, metavar="N",
                   help="photos per model batch (default %(default)s)")
    s.add_argument("--backend", choices=("auto", "torch", "onnx"), default=None,
                   help="CPU inference engine: auto (ONNX Runtime when it pays, the default; "
                        "also PHOTOCULL_BACKEND), torch, or onnx")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.add_argument("--out", metavar="FILE", help="also write the results table (path, size, mtime, model ids, "
                   "overall, aesthetic and technical means and std, why, error, faces) to FILE.csv or "
                   "FILE.parquet (Parquet needs pyarrow)")
    s.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local (default: this process) or ray (Ray Data actors, on a local Ray or the "
                        "cluster at --address; needs pip install 'photocull[cluster]')")
    s.add_argument("--address", metavar="ADDR", help="with --engine ray: the cluster, 'auto' (the one this "
                   "node belongs to) or ray://HOST:10001 (default: start a local Ray on this machine)")
    s.add_argument("--actors", type=positive_int, metavar="N", help="with --engine ray: scoring actors at most "
                   "(default: as many as the cluster holds: one per GPU, else one per --actor-cpus CPUs)")
    s.add_argument("--actor-cpus", type=positive_int, metavar="N", help="with --engine ray: each actor's CPUs "
                   "(default: 4 on CPU nodes, or the cluster's CPUs shared among --actors; on GPU nodes, the "
                   "node's CPUs shared among its GPUs)")
    s.add_argument("--actor-gpus", type=non_negative_float, metavar="X", help="with --engine ray: each actor's "
                   "GPUs, its models then on CUDA (default 1 when the cluster has GPUs: one actor per GPU; "
                   "0.5: two per GPU; 0: CPU actors only)")
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
