"""``photocull export``, ``photocull rate`` and ``photocull trash-rejects``."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from photocull.config import AppPaths, Settings

from .common import MODEL_HELP, burst_settings, collect_photos, fmt, judge_and_group, load_scorers, run_scoring


def cmd_export(args, paths: AppPaths) -> int:
    from photocull.cull.catalog import Catalog, CatalogError
    from photocull.cull.export import Candidate, ExportError, choose, export
    from photocull.cull.marks import load_marks

    src, dest = Path(args.src).expanduser(), Path(args.dest).expanduser()
    if src.is_dir() and os.path.realpath(src) == os.path.realpath(dest):
        print(f"photocull: the destination is the source folder ({src}): choose another", file=sys.stderr)
        return 2
    # the destination (a subfolder of the source, say) holds earlier exports: never collected again
    # a RAW+JPEG pair is one photo, as in the window: the JPEG is scored, the RAW travels with it
    items, problems = collect_photos([args.src], args.recursive, exclude=dest)
    for p, why in problems:
        print(f"photocull: {p}: {why}", file=sys.stderr)
    if problems and not items:
        return 2
    selection = dict(top=args.top, top_percent=args.top_percent, min_score=args.min_score,
                     picks_only=args.picks, min_stars=args.min_stars)
    _check_selection(args, selection)  # a bad selection is an error now, not after scoring the whole folder
    try:
        cat = Catalog(paths.catalog_path)
    except CatalogError as exc:
        print(f"photocull: {exc}; nothing was exported", file=sys.stderr)
        return 2
    with cat:
        scorers = load_scorers(args.model, paths)
        print(f"photocull: {scorers.notice}", file=sys.stderr)
        results = run_scoring([it.primary for it in items], scorers.loaded, paths, progress=not args.quiet,
                              catalog=cat, aesthetic=scorers.aesthetic)
        # the overall score, as photocull score and the window rank (and the burst groups it used)
        bursts = burst_settings(paths)
        judged, grouped = judge_and_group(results, scorers, cat, bursts)
        marks = load_marks([r.path for r in results], cat)  # the catalog's, else the sidecars' (as everywhere)
        companions = {os.path.abspath(it.primary): it.companions for it in items}
        cands = []
        keep = _one_per_burst(results, judged, grouped, cat, bursts) if args.one_per_burst else None
        for r, j in zip(results, judged):
            if keep is not None and id(r) not in keep:
                continue
            m = marks.get(os.path.abspath(r.path))
            cands.append(Candidate(Path(r.path), j.score if r.probs is not None else None, r.std,
                                   m.flag if m else 0, m.rating if m else 0,
                                   list(companions.get(os.path.abspath(r.path), []))))
        chosen = choose(cands, **selection)
        stopped = None
        try:
            # nothing that resolves outside SRC (a linked companion, say) is exported: a row says so
            rep = export(chosen, args.dest, move=args.move, catalog=cat, source=src if src.is_dir() else src.parent)
        except ExportError as exc:
            if exc.report is None:
                print(f"photocull: {exc}", file=sys.stderr)
                return 1
            rep, stopped = exc.report, exc
    verb = "moved" if args.move else "copied"
    for it in rep.items:
        extra = f" (+{len(it.companions)} companion{'s' * (len(it.companions) != 1)})" if it.companions else ""
        print(f"{it.rank:>4} {fmt(it.mean, 2):>6}  {it.source} -> {it.destination}"
              + ("" if it.moved or not args.move else " (copied, original kept)") + extra)
    for p, why in rep.errors:
        print(f"photocull: {p}: {why}", file=sys.stderr)
    if stopped is not None:
        print(f"photocull: {stopped}", file=sys.stderr)
    n_moved = sum(1 for it in rep.items if it.moved)
    done = (f"moved {n_moved}" + (f" and copied {len(rep.items) - n_moved}" if n_moved < len(rep.items) else "")
            if args.move else f"{verb} {len(rep.items)}")
    there = f" ({len(rep.already)} already there, the same bytes: not copied again)" if rep.already else ""
    print(f"photocull: {done} of {len(items)} photos to {args.dest}{there}"
          + (f"; report {rep.report_path}" if rep.report_path else ""), file=sys.stderr)
    return 1 if rep.errors or stopped is not None else 0


def _one_per_burst(results, judged, grouped, catalog, bursts: dict | None = None) -> set[int]:
    """The ids of the results ``--one-per-burst`` keeps: every photo, but of each burst group
    (not brackets or panoramas: their frames are needed together) only the best by the
    overall score, as the window shows on top.  ``grouped``: the groups the overall rule used
    (None when one model ran alone: found here)."""
    from photocull.cull import ranking
    from photocull.cull.bursts import groups_of_results

    scored = [(r, j) for r, j in zip(results, judged) if r.probs is not None]
    groups = ([g for r, g in zip(results, grouped) if r.probs is not None] if grouped is not None
              else groups_of_results([r for r, _ in scored], catalog, **(bursts or {})))
    keep = {id(r) for r in results if r.probs is None}
    best: dict[int, list] = {}
    for (r, j), g in zip(scored, groups):
        if g.group is None or g.kind != "burst":
            keep.add(id(r))
        else:
            best.setdefault(g.group, []).append((r, j))
    for frames in best.values():
        top = ranking.best_first(frames, mean=lambda f: f[1].score, path=lambda f: f[0].path)[0]
        keep.add(id(top[0]))
    return keep


def _check_selection(args, selection: dict) -> None:
    """Exit with the option's name when ``choose`` refuses the selection."""
    from photocull.cull.export import choose

    try:
        choose([], **selection)
    except ValueError as exc:
        flag = "--top-percent" if args.top_percent is not None else "--top" if args.top is not None else None
        raise SystemExit(f"photocull: {flag + ': ' if flag else ''}{exc}") from None


def cmd_rate(args, paths: AppPaths) -> int:
    """Flag, rate or label photos; written to the catalog and to XMP sidecars, with
    photocull's figures for the photos the active model has scored (as the window does);
    with ``--embed`` also into the XMP inside JPEG, TIFF and DNG files."""
    from photocull.cull.catalog import Catalog, CatalogError, Marks, path_key
    from photocull.cull.marks import (
        embed_marks,
        load_marks,
        normalise_label,
        save_marks,
        stored_figures,
    )
    from photocull.media import embedded
    from photocull.media.listing import companions_of
    from photocull.media.loaders import RAW_EXTENSIONS, is_supported

    try:
        label = normalise_label(args.label) if args.label is not None else None
    except ValueError as exc:
        raise SystemExit(f"photocull: --label: {exc}")
    if args.stars is not None and not 0 <= args.stars <= 5:
        raise SystemExit("photocull: --stars must be 0..5")
    if args.stars is None and args.label is None and not (args.pick or args.reject or args.unflag):
        raise SystemExit("photocull: say what to set: --stars N, --pick, --reject, --unflag or --label COLOUR")
    settings = Settings.load(paths.settings_path)
    pick_as = embedded.PickAs()
    if args.pick_as is not None and not args.embed:
        raise SystemExit("photocull: --pick-as goes with --embed (the sidecars keep photocull's pick flag)")
    if args.pick_as is not None:
        try:
            pick_as = embedded.parse_pick_as(args.pick_as)
        except ValueError as exc:
            raise SystemExit(f"photocull: --pick-as: {exc}")
    elif args.embed:
        try:
            pick_as = embedded.parse_pick_as(settings.pick_as)
        except ValueError as exc:
            print(f"photocull: settings: {exc}; picks are written as \"none\"", file=sys.stderr)
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
    embed_rep = None
    try:
        with Catalog(paths.catalog_path) as cat:
            figures = {}
            if files and not (args.no_sidecar and not args.embed):
                model_id = _active_model_id(settings, paths)
                if model_id is not None:
                    figures = stored_figures(cat, files, model_id)
            with cat.exclusive():  # read and write the marks as one step: a window or another rate can't interleave
                current = load_marks(files, cat)
                writes = []
                for f in files:
                    m = current.get(path_key(f)) or Marks()
                    flag = 1 if args.pick else -1 if args.reject else 0 if args.unflag else m.flag
                    new = Marks(flag, m.rating if args.stars is None else args.stars,
                                m.label if args.label is None else label)
                    comps = [c for c in companions_of(f) if c.suffix.lower() in RAW_EXTENSIONS and c.is_file()]
                    writes.append((f, new, comps, figures.get(path_key(f))))
                # --no-sidecar --embed: in the file instead of the sidecar, where the file can hold it
                with_sidecar = [w for w in writes if not args.no_sidecar
                                or (args.embed and not all(embedded.can_embed(t) for t in [w[0], *w[2]]))]
                without = [w for w in writes if not any(w is x for x in with_sidecar)]
                problems = []
                for group, sidecars in ((with_sidecar, True), (without, False)):
                    if group:
                        problems += save_marks(cat, group, write_sidecars=sidecars, style=settings.sidecar_style)
                unsaved = {Path(p) for p, why in problems if not Path(p).is_file()}
                if args.embed:
                    embed_rep = embed_marks(cat, [(f, m, comps) for f, m, comps, _ in writes
                                                  if Path(f) not in unsaved], pick_as=pick_as)
    except CatalogError as exc:
        # the catalog is written first: when it cannot be, no sidecar is touched either, so
        # the two never disagree (a sidecar-only rating would lose to the catalog's next time)
        print(f"photocull: {exc}", file=sys.stderr)
        print("photocull: no marks were saved, neither in the catalog nor in the sidecars", file=sys.stderr)
        return 2
    for f, m, comps, _ in writes:
        if Path(f) in unsaved:
            continue
        state = {1: "pick", -1: "reject", 0: "unflagged"}[m.flag]
        print(f"{f}: {state}, {m.rating} star{'s' * (m.rating != 1)}" + (f", {m.label}" if m.label else "")
              + (f" (+{', '.join(c.name for c in comps)})" if comps else ""))
    for p, why in problems:
        if Path(p) in unsaved:
            print(f"photocull: {p}: {why}", file=sys.stderr)
        else:
            print(f"photocull: sidecar of {p}: {why} (the catalog has the marks)", file=sys.stderr)
        rc = 1
    if embed_rep is not None:
        primaries = {Path(w[0]) for w in writes}
        for p, why in embed_rep.skipped:
            if p in primaries:  # a RAW twin's place is its sidecar: no note for it
                print(f"photocull: {p}: not written into the file ({why}); its marks are in the sidecar",
                      file=sys.stderr)
        for p, why in embed_rep.problems:
            print(f"photocull: {p}: XMP not written into the file, which is as it was: {why} "
                  "(the catalog has the marks)", file=sys.stderr)
            rc = 1
        n, same = len(embed_rep.written), len(embed_rep.unchanged)
        print(f"photocull: wrote XMP into {n} file{'s' * (n != 1)}"
              + (f" ({same} already up to date)" if same else ""), file=sys.stderr)
    return rc


def _active_model_id(settings: Settings, paths: AppPaths) -> str | None:
    """The id of the model the window scores with (its checkpoint header is cached: torch
    is imported only the first time a model file is seen); None, with a warning, when
    that model cannot be found."""
    from photocull.model.registry import resolve_scorers
    from photocull.model.spec import ModelError

    spec = "overall" if settings.active_model == "default" else settings.active_model  # (as the window reads it)
    try:
        return resolve_scorers(spec, paths).loaded.model_id
    except ModelError as exc:
        print(f"photocull: the sidecars get no scores: {exc}", file=sys.stderr)
        return None


def cmd_trash_rejects(args, paths: AppPaths) -> int:
    """Send rejected photos (and their companions) to the OS trash.  Without ``--yes``
    nothing is touched: the command only prints what it would do.  photocull never
    deletes a photo for good: the files can be restored from the trash."""
    from photocull.cull.catalog import Catalog, CatalogError
    from photocull.cull.rejects import find_rejects
    from photocull.media.fileops import trash
    from photocull.media.listing import list_images

    folder = Path(args.folder).expanduser()
    try:
        files = list_images(folder, args.recursive)
    except OSError as exc:
        print(f"photocull: cannot read folder {folder}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        with Catalog(paths.catalog_path) as cat:
            rejects = find_rejects(files, cat)
    except CatalogError as exc:
        print(f"photocull: {exc}; nothing was moved", file=sys.stderr)
        return 2
    if not rejects:
        print(f"photocull: no rejected photos in {folder}", file=sys.stderr)
        return 0
    # a companion shared by two rejects (IMG_1.xmp of IMG_1.CR2 and IMG_1.JPG) is trashed once
    seen: set[str] = set()
    targets: list[Path] = []
    for photo, comps in rejects:
        for p in [photo, *comps]:
            k = os.path.realpath(p) if not os.path.islink(p) else os.path.abspath(p)
            if k not in seen:
                seen.add(k)
                targets.append(p)
    verb = "moving to the trash" if args.yes else "would move to the trash"
    for photo, comps in rejects:
        extra = f" (+ {', '.join(c.name for c in comps)})" if comps else ""
        print(f"{verb}: {photo}{extra}")
        for p in [photo, *comps]:  # the link goes to the trash, never what it points to
            if os.path.islink(p):
                print(f"  ({p.name} is a link to {os.path.realpath(p)}: only the link goes to the trash)")
    if not args.yes:
        print(f"photocull: {len(rejects)} rejected photo{'s' * (len(rejects) != 1)}, {len(targets)} files; "
              "nothing was moved (add --yes to move them to the trash)", file=sys.stderr)
        return 0
    failed = trash(targets)
    for p, why in failed:
        print(f"photocull: {p}: not moved to the trash: {why}", file=sys.stderr)
    print(f"photocull: moved {len(targets) - len(failed)} of {len(targets)} files to the trash "
          "(restore them from there)", file=sys.stderr)
    return 1 if failed else 0


def add_parsers(sub) -> None:
    from photocull.media.embedded import PICK_AS_HELP

    e = sub.add_parser("export", help="copy (or move) the best photos to a folder",
                       description="Score the photos in SRC (the catalog's scores when it has them) and copy "
                                   "(or move) those chosen, best first, to DEST with what travels with them "
                                   "(the RAW of a RAW+JPEG pair, XMP sidecars), plus a CSV report.  Choose "
                                   "with exactly one of --top, --top-percent, --min-score, --picks or "
                                   "--min-stars; rejected photos are never exported.  A RAW+JPEG pair counts "
                                   "as one photo, as in the window.  Nothing in DEST is overwritten: a "
                                   "name taken there gets a suffix.")
    e.add_argument("src", metavar="SRC", help="the folder of photos (or one photo)")
    e.add_argument("dest", metavar="DEST", help="the folder to export to (made if missing; never SRC itself)")
    sel = e.add_mutually_exclusive_group(required=True)
    sel.add_argument("--top", type=int, metavar="N", help="the N best-scored photos")
    sel.add_argument("--top-percent", type=float, metavar="P",
                     help="the best P %% of the scored photos (0 < P <= 100; the window's \"top P %%\")")
    sel.add_argument("--min-score", type=float, metavar="S", help="photos whose mean score is at least S (1..10)")
    sel.add_argument("--picks", action="store_true", help="picked photos only")
    sel.add_argument("--min-stars", type=int, metavar="N", help="photos with at least N stars")
    e.add_argument("--one-per-burst", action="store_true",
                   help="of each burst, only its best frame (by the overall score) can be exported; brackets and "
                        "panoramas keep all their frames")
    e.add_argument("--move", action="store_true", help="move instead of copy (sources removed after a verified copy)")
    e.add_argument("-r", "--recursive", action="store_true", help="also the photos in SRC's subfolders")
    e.add_argument("--model", help=MODEL_HELP)
    e.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    e.set_defaults(func=cmd_export)

    rt = sub.add_parser("rate", help="flag, rate or colour-label photos (catalog + XMP sidecars)",
                        description="Set the marks the window's keys set, from a script: a flag (pick, reject "
                                    "or none), stars and a colour label, written to the catalog and to XMP "
                                    "sidecars (the RAW twin's too, for a RAW+JPEG pair).  Marks not named "
                                    "are kept.  With --embed they are also written into the XMP inside "
                                    "JPEG, TIFF and DNG files, where Lightroom Classic reads them for these "
                                    "(it ignores their sidecars).")
    rt.add_argument("files", nargs="+", metavar="FILE", help="the photos to mark")
    fl = rt.add_mutually_exclusive_group()
    fl.add_argument("--pick", action="store_true", help="flag as a pick")
    fl.add_argument("--reject", action="store_true", help="flag as a reject")
    fl.add_argument("--unflag", action="store_true", help="remove the pick or reject flag")
    rt.add_argument("--stars", type=int, metavar="N", help="star rating, 0..5 (0: none)")
    rt.add_argument("--label", metavar="COLOUR", help="colour label: Red, Yellow, Green, Blue, Purple, or none")
    rt.add_argument("--no-sidecar", action="store_true",
                    help="don't write XMP sidecars: catalog only (with --embed: in the file instead of the "
                         "sidecar, where the file can hold it)")
    rt.add_argument("--embed", action="store_true",
                    help="also write the marks into the XMP inside JPEG, TIFF and DNG files (as Lightroom, "
                         "Bridge and Photo Mechanic do).  This CHANGES THE ORIGINAL FILE: its metadata only, "
                         "never its pixels (the image data is copied byte for byte), through a verified copy "
                         "that replaces it atomically; its modification time becomes now.  Other files "
                         "(HEIC, PNG, RAW) keep their marks in the sidecar")
    rt.add_argument("--pick-as", metavar="SPEC",
                    help="with --embed, how a pick shows to programs that cannot read photocull's pick flag: "
                         + PICK_AS_HELP + " (default: the pick_as setting, \"none\")")
    rt.set_defaults(func=cmd_rate)

    t = sub.add_parser("trash-rejects",
                       help="send rejected photos and their companions to the OS trash (asks for --yes)",
                       description="List the rejected photos in FOLDER (flagged in the catalog, or rejected "
                                   "in their XMP sidecar) with their companions (RAW/JPEG twin, sidecars); "
                                   "with --yes, send them to the OS trash, from where they can be restored. "
                                   "photocull never deletes a photo for good.")
    t.add_argument("folder", metavar="FOLDER", help="the folder whose rejects go")
    t.add_argument("-r", "--recursive", action="store_true", help="also the rejects in subfolders")
    t.add_argument("--yes", action="store_true", help="really move them (default: only list what would be moved)")
    t.set_defaults(func=cmd_trash_rejects)
