"""``photocull trash-rejects FOLDER``: send rejected photos (and their companions) to the OS trash.

A photo is rejected when the catalog flags it (-1) or its XMP sidecar says
``xmp:Rating=-1`` (Lightroom, darktable, digiKam agree).  Its companions travel with
it: the RAW or JPEG twin and the sidecars.  Without ``--yes`` nothing is touched: the
command only prints what it would do.  photocull never deletes a photo for good: the
files go to the operating system's trash, from where they can be restored.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from .catalog import FLAG_REJECT, Catalog
from .config import AppPaths
from .export import companions_of, trash
from .images import list_images
from .marks import load_marks


def find_rejects(files: list[Path], catalog: Catalog) -> list[tuple[Path, list[Path]]]:
    """(photo, companions) for every rejected photo among ``files``, in path order."""
    from .formats import HEIF_EXTENSIONS, JPEG_EXTENSIONS, RAW_EXTENSIONS

    marks = load_marks(files, catalog)
    in_catalog = catalog.get_marks(files)
    by_stem: dict[tuple[str, str], list[Path]] = {}
    for f in files:
        by_stem.setdefault((str(f.parent), f.stem.lower()), []).append(f)
    out = []
    for f in files:
        m = marks.get(os.path.abspath(f))
        if m is None or m.flag != FLAG_REJECT:
            continue
        known = in_catalog.get(os.path.abspath(f))
        if known is None or known.is_empty:
            # rejected by a sidecar only: ``IMG_1.xmp`` is shared by every photo named IMG_1.*;
            # when another photo (not a RAW/JPEG twin) shares the stem, whose reject is it?  Keep both.
            others = [g for g in by_stem[(str(f.parent), f.stem.lower())] if g != f
                      and f.suffix.lower() not in RAW_EXTENSIONS and g.suffix.lower() not in RAW_EXTENSIONS]
            if others:
                continue
        twins = set(RAW_EXTENSIONS) | ({*JPEG_EXTENSIONS, *HEIF_EXTENSIONS} if f.suffix.lower() in RAW_EXTENSIONS else set())
        comps = []
        for c in companions_of(f):
            ext = c.suffix.lower()
            if ext != ".xmp" and ext not in twins:
                continue  # IMG_1.png beside IMG_1.jpg is another photo, not a companion
            own = load_marks([c], catalog).get(os.path.abspath(c)) if ext != ".xmp" else None
            if own is not None and own.flag != FLAG_REJECT and (own.flag > 0 or own.rating > 0):
                continue  # the twin was picked or starred on its own: keep it
            comps.append(c)
        out.append((f, comps))
    return out


def cmd_trash_rejects(args, paths: AppPaths) -> int:
    folder = Path(args.folder).expanduser()
    try:
        files = list_images(folder, args.recursive)
    except OSError as exc:
        print(f"photocull: cannot read folder {folder}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    cat = Catalog(paths.catalog_path)
    try:
        rejects = find_rejects(files, cat)
    finally:
        cat.close()
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


def add_parsers(subparsers) -> None:
    t = subparsers.add_parser("trash-rejects",
                              help="send rejected photos and their companions to the OS trash (asks for --yes)")
    t.add_argument("folder")
    t.add_argument("-r", "--recursive", action="store_true")
    t.add_argument("--yes", action="store_true", help="really move them (default: only list what would be moved)")
    t.set_defaults(func=cmd_trash_rejects)
