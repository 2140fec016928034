"""Export the keepers: choose, then copy (or move) with companions and sidecars.

Never overwrite, never lose a photo: every file goes through
:func:`photocull.media.fileops.safe_copy`; a move removes the source only after its copy
has been verified; a name clash gets a suffix (``IMG_1-1.jpg``), shared by the photo's
companions; names come from the source's base name only: nothing can escape the
destination.
"""
from __future__ import annotations

import csv
import errno
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from photocull.cull import ranking
from photocull.media.fileops import TMP_PREFIX, CopyError, safe_copy
from photocull.media.listing import companions_of

log = logging.getLogger(__name__)


class ExportError(Exception):
    """Export could not go on; ``str(exc)`` is the reason for the user."""


@dataclass
class Candidate:
    path: Path
    mean: float | None = None
    std: float | None = None
    flag: int = 0
    rating: int = 0
    companions: list[Path] = field(default_factory=list)  # e.g. the RAW of a RAW+JPEG pair


def choose(cands: Sequence[Candidate], *, top: int | None = None, top_percent: float | None = None,
           min_score: float | None = None, picks_only: bool = False, min_stars: int | None = None,
           exclude_rejects: bool = True) -> list[Candidate]:
    """Keepers, best first (:func:`photocull.cull.ranking.best_first`).  Unscored photos
    rank last and are never picked by score rules; ``top_percent`` counts the scored
    photos among all of ``cands`` (:func:`photocull.cull.ranking.top_count`)."""
    if top is not None and top < 0:
        raise ValueError(f"the number of top photos must be at least 0, not {top}")
    pool = [c for c in cands if not (exclude_rejects and c.flag < 0)]
    if picks_only:
        pool = [c for c in pool if c.flag > 0]
    if min_stars is not None:
        pool = [c for c in pool if c.rating >= min_stars]
    if any(v is not None for v in (top, top_percent, min_score)):
        pool = [c for c in pool if ranking.is_scored(c.mean)]
    pool = ranking.best_first(pool)
    if min_score is not None:
        pool = [c for c in pool if c.mean >= min_score]
    if top_percent is not None:
        pool = pool[:ranking.top_count(sum(1 for c in cands if ranking.is_scored(c.mean)), top_percent)]
    if top is not None:
        pool = pool[:top]
    return pool


@dataclass
class ExportedItem:
    source: Path
    destination: Path
    companions: list[tuple[Path, Path]]
    mean: float | None
    std: float | None
    rank: int
    moved: bool


@dataclass
class ExportReport:
    items: list[ExportedItem] = field(default_factory=list)
    errors: list[tuple[Path, str]] = field(default_factory=list)
    report_path: Path | None = None
    cancelled: bool = False


def _names_free(dest: Path, names: list[str]) -> bool:
    return not any(os.path.lexists(dest / n) for n in names)


def _plan_names(dest: Path, photo: Path, comps: list[Path]) -> list[str]:
    """Final names for the photo and its companions, with one shared suffix on a clash."""
    stem = photo.stem
    def renamed(p: Path, suffix: str) -> str:
        n = p.name
        return (stem + suffix + n[len(stem):]) if n.lower().startswith(stem.lower()) else Path(n).stem + suffix + Path(n).suffix
    names = [photo.name] + [c.name for c in comps]
    i = 0
    while not _names_free(dest, names):
        i += 1
        names = [renamed(photo, f"-{i}")] + [renamed(c, f"-{i}") for c in comps]
    return names


def export(chosen: Sequence[Candidate], dest: os.PathLike | str, *, move: bool = False,
           with_companions: bool = True, write_report: bool = True,
           cancelled: Callable[[], bool] = lambda: False,
           progress: Callable[[int, int], None] | None = None,
           on_moved: Callable[[Path, Path], None] | None = None) -> ExportReport:
    """Copy (or move) ``chosen`` into ``dest``.  Per-file problems are collected in the
    report; a full or read-only destination stops the export with :class:`ExportError`
    after writing the report of what was done."""
    dest = Path(dest).expanduser()
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create destination {dest}: {exc.strerror or exc}") from None
    if not os.access(dest, os.W_OK | os.X_OK):
        raise ExportError(f"destination is not writable: {dest}")
    report = ExportReport()
    fatal: str | None = None
    exported: set[str] = set()  # real paths already copied (a RAW chosen beside its JPEG travels once)
    for rank, c in enumerate(chosen, 1):
        if cancelled():
            report.cancelled = True
            break
        src = Path(c.path)
        if os.path.realpath(src) in exported:
            if progress:
                progress(rank, len(chosen))
            continue
        comps = []
        if with_companions:
            # only regular files, never the photo itself under another spelling, never twice
            by_real: dict[str, Path] = {}
            for p in sorted({*map(Path, c.companions), *companions_of(src)}):
                if p.is_file() and os.path.realpath(p) not in exported | {os.path.realpath(src)}:
                    by_real.setdefault(os.path.realpath(p), p)
            comps = sorted(by_real.values())
        try:
            if not src.is_file():
                raise FileNotFoundError(errno.ENOENT, "source not found", str(src))
            names = _plan_names(dest, src, comps)
            done: list[tuple[Path, Path]] = []
            for s, n in zip([src] + comps, names):
                for attempt in range(100):
                    try:
                        done.append((s, safe_copy(s, dest, n)))
                        break
                    except FileExistsError:  # appeared meanwhile (another process)
                        n = f"{Path(n).stem}-x{attempt}{Path(n).suffix}"
            exported.update(os.path.realpath(s) for s, _ in done)
            if move:
                for s, d in done:
                    os.unlink(s)
                    if on_moved:
                        on_moved(s, d)
            report.items.append(ExportedItem(src, done[0][1], done[1:], c.mean, c.std, rank, move))
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EACCES):
                fatal = f"export stopped: {exc.strerror} ({dest})"
                report.errors.append((src, fatal))
                break
            report.errors.append((src, exc.strerror or str(exc)))
        except (ExportError, CopyError) as exc:
            report.errors.append((src, str(exc)))
        if progress:
            progress(rank, len(chosen))
    if write_report and report.items:
        try:
            report.report_path = write_csv_report(report, dest)
        except OSError as exc:
            log.error("could not write the export report: %s", exc)
    if fatal:
        raise ExportError(fatal)
    return report


def write_csv_report(report: ExportReport, dest: Path) -> Path:
    name = f"photocull-export-{time.strftime('%Y%m%d-%H%M%S')}.csv"
    path = dest / name
    i = 0
    while path.exists():
        i += 1
        path = dest / f"{Path(name).stem}-{i}.csv"
    tmp = dest / f"{TMP_PREFIX}{uuid.uuid4().hex}.csv"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["rank", "source", "destination", "mean", "std", "action", "companions"])
        for it in report.items:
            w.writerow([it.rank, it.source, it.destination,
                        "" if it.mean is None else f"{it.mean:.4f}", "" if it.std is None else f"{it.std:.4f}",
                        "move" if it.moved else "copy", ";".join(str(d) for _, d in it.companions)])
    os.replace(tmp, path)
    return path
