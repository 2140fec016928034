"""Export the keepers: choose, then copy (or move) with companions and sidecars.

Never overwrite, never lose a photo: every file goes through
:func:`photocull.media.fileops.safe_copy`; a move removes the source only after its copy
has been verified; a photo already in the destination under its own name with the same bytes
(an export made again) is not copied again (only its new companions are); a name clash gets a
suffix (``IMG_1-1.jpg``), shared by the photo's
companions, the stem shortened first when the name would not fit (255 bytes); names come
from the source's base name only: nothing can escape the destination, and a photo that is
already inside the destination is never exported into it again.

A move ends, for each photo, with one step under the catalog's lock
(:meth:`photocull.cull.catalog.Catalog.exclusive`, which every save of marks holds too): a
sidecar saved since it was copied is copied again, a companion that appeared (a first
sidecar) joins, then the sources are removed and the catalog's rows follow the photo.  So a
rating given while a photo moves lands with the photo, or is refused because the photo has
gone: it is never left behind in the source.  An original that cannot be removed (a
read-only card) stops the move with that reason; its verified copy is kept and reported.

Links.  ``export`` is told the source tree (the folder being culled; by default each
photo's own folder).  A photo or companion that resolves outside it (a link such as
``IMG_1.CR2 -> ~/.ssh/id_rsa``, a path through a linked folder), a link loop and a broken
link are never copied, moved or removed through: each gets a row of its own in the report
("a link to ..., outside the source folder ...: not followed") and the rest of the photo
travels.  A link that stays inside the tree (an album folder linking to a photo of the same
shoot) is exported as a regular file with its target's bytes, once per real file (the first
of the link and its target to come carries the bytes, the other is skipped); a move removes
the link, never its target, which leaves the source only when it travels under its own name.
See :mod:`photocull.media.fileops`.

Exports start by sweeping stale ``.photocull-partial-*`` files a killed export left in the
destination (:mod:`photocull.cull.leftovers`).
"""
from __future__ import annotations

import contextlib
import csv
import errno
import filecmp
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from photocull.cull import leftovers, ranking
from photocull.cull.catalog import Catalog, CatalogError
from photocull.media.fileops import NAME_MAX, TMP_PREFIX, CopyError, fit_stem, is_within, outside_reason, safe_copy
from photocull.media.listing import companions_of

log = logging.getLogger(__name__)


class ExportError(Exception):
    """Export could not go on; ``str(exc)`` is the reason for the user, ``report`` (when
    set) what was done before it stopped."""

    def __init__(self, message: str, report: "ExportReport | None" = None):
        super().__init__(message)
        self.report = report


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
    # (photo, its copy) already in the destination with the same bytes under its own name: an
    # export made again (its new companions copied, none overwritten)
    already: list[tuple[Path, Path]] = field(default_factory=list)
    report_path: Path | None = None
    cancelled: bool = False


def _name_max(folder: Path) -> int:
    try:
        return min(NAME_MAX, os.pathconf(folder, "PC_NAME_MAX"))
    except (AttributeError, OSError, ValueError):
        return NAME_MAX


def _names_free(dest: Path, names: list[str]) -> bool:
    return not any(os.path.lexists(dest / n) for n in names)


def _renamed(photo: Path, p: Path, suffix: str, name_max: int, shared_tails: Sequence[str]) -> str:
    """``p``'s name in the destination with ``suffix`` after the photo's stem (shortened to fit)."""
    stem, n = photo.stem, p.name
    if not suffix:
        return n
    if n.lower().startswith(stem.lower()):
        return fit_stem(stem, [*shared_tails, n[len(stem):]], suffix, name_max) + suffix + n[len(stem):]
    own = Path(n)
    return fit_stem(own.stem, [own.suffix], suffix, name_max) + suffix + own.suffix


def _plan_names(dest: Path, photo: Path, comps: list[Path], name_max: int = NAME_MAX) -> tuple[list[str], str]:
    """Final names for the photo and its companions, with one shared suffix on a clash (the
    photo's stem shortened the same way for all of them when a name would not fit);
    and that suffix."""
    files = [photo, *comps]
    shared = [p.name[len(photo.stem):] for p in files if p.name.lower().startswith(photo.stem.lower())]
    i, suffix = 0, ""
    names = [p.name for p in files]
    while not _names_free(dest, names):
        i += 1
        suffix = f"-{i}"
        names = [_renamed(photo, p, suffix, name_max, shared) for p in files]
    return names, suffix


def _copy_new(src: Path, dest: Path, name: str, name_max: int, tree: os.PathLike | str) -> Path:
    """safe_copy under ``name``, or a free variant of it when another process took the name."""
    n = name
    for attempt in range(100):
        try:
            return safe_copy(src, dest, n, within=tree)
        except FileExistsError:  # appeared meanwhile (another process)
            tail = Path(name).suffix
            n = fit_stem(Path(name).stem, [tail], f"-x{attempt}", name_max) + f"-x{attempt}" + tail
    raise ExportError(f"no free name for {src.name} in {dest}")


def _same_file_in(dest: Path, src: Path) -> Path | None:
    """``dest``'s file of ``src``'s name when it holds the same bytes (a regular file, not a link)."""
    there = dest / src.name
    try:
        if os.path.islink(there) or not there.is_file() or there.stat().st_size != src.stat().st_size:
            return None
        return there if filecmp.cmp(src, there, shallow=False) else None
    except OSError:
        return None


def _companion_again(comp: Path, dest: Path, name_max: int, tree: os.PathLike | str, report: ExportReport) -> None:
    """A companion of a photo exported before: copied when it is new (a first sidecar), left
    when the same, and said when a different one is there (never overwritten)."""
    if not os.path.lexists(dest / comp.name):
        try:
            _copy_new(comp, dest, comp.name, name_max, tree)
        except (OSError, CopyError, ExportError) as exc:
            report.errors.append((comp, getattr(exc, "strerror", None) or str(exc)))
    elif _same_file_in(dest, comp) is None:
        report.errors.append((comp, f"a different {comp.name} is already in {dest} (changed since the photo was "
                                    "exported there?): not overwritten"))


def _identity(p: Path) -> tuple | None:
    try:
        st = os.stat(p)
    except OSError:
        return None
    return st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns


def _companions(c: Candidate, src: Path, exported: set[str], tree: os.PathLike | str
                ) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Files that travel with ``src``: never the photo itself under another spelling, never
    one already exported; and the links refused (outside ``tree``, loops, broken), with why."""
    by_real: dict[str, Path] = {}
    refused = []
    for p in sorted({*map(Path, c.companions), *companions_of(src)}):
        if not os.path.islink(p) and not p.is_file():
            continue  # gone, a folder, a FIFO: not a companion
        why = outside_reason(p, tree)
        if why:
            refused.append((p, why))
        elif p.is_file() and os.path.realpath(p) not in exported | {os.path.realpath(src)}:
            by_real.setdefault(os.path.realpath(p), p)
    return sorted(by_real.values()), refused


_SOURCE_LOCKED = (errno.EACCES, errno.EPERM, errno.EROFS)


def export(chosen: Sequence[Candidate], dest: os.PathLike | str, *, move: bool = False,
           with_companions: bool = True, write_report: bool = True,
           cancelled: Callable[[], bool] = lambda: False,
           progress: Callable[[int, int], None] | None = None,
           on_moved: Callable[[Path, Path], None] | None = None,
           catalog: Catalog | None = None, source: os.PathLike | str | None = None) -> ExportReport:
    """Copy (or move) ``chosen`` into ``dest``.  Per-file problems are collected in the
    report; a full or read-only destination, or originals that cannot be removed, stop the
    export with :class:`ExportError` after writing the report of what was done.

    ``source``: the folder tree the photos come from; a photo or companion that resolves
    outside it is not exported (a row in the report says why).  None: each photo's own folder.

    ``catalog``: its lock guards the last step of each move and its rows follow each moved
    file (what ``on_moved`` is also told)."""
    dest = Path(dest).expanduser()
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create destination {dest}: {exc.strerror or exc}") from None
    if not os.access(dest, os.W_OK | os.X_OK):
        raise ExportError(f"destination is not writable: {dest}")
    leftovers.remove_stale(dest, leftovers.PARTIAL_COPY)
    name_max = _name_max(dest)
    hooks = [h for h in (catalog.rename_path if catalog is not None else None, on_moved) if h is not None]
    lock = catalog.exclusive if catalog is not None else contextlib.nullcontext
    report = ExportReport()
    fatal: str | None = None
    exported: set[str] = set()  # real paths already copied (a RAW chosen beside its JPEG travels once)
    refusals: set[Path] = set()  # links refused (one row each, however many photos they go with)

    def refuse(found: list[tuple[Path, str]]) -> None:
        for p, why in found:
            if p not in refusals:
                refusals.add(p)
                report.errors.append((p, why))
    for rank, c in enumerate(chosen, 1):
        if cancelled():
            report.cancelled = True
            break
        src = Path(c.path)
        tree = Path(source).expanduser() if source is not None else src.parent
        why = outside_reason(src, tree)
        if why:
            refuse([(src, why)])
            if progress:
                progress(rank, len(chosen))
            continue
        if os.path.realpath(src) in exported:
            if progress:
                progress(rank, len(chosen))
            continue
        if is_within(src, dest):
            report.errors.append((src, "already in the destination folder: not exported into it again"))
            if progress:
                progress(rank, len(chosen))
            continue
        comps, refused = _companions(c, src, exported, tree) if with_companions else ([], [])
        refuse(refused)
        there = None if move else _same_file_in(dest, src)
        if there is not None:  # exported before: not copied again as IMG_1-1.jpg
            report.already.append((src, there))
            for comp in comps:
                _companion_again(comp, dest, name_max, tree, report)
            exported.update(os.path.realpath(p) for p in (src, *comps))
            if progress:
                progress(rank, len(chosen))
            continue
        try:
            if not src.is_file():
                raise FileNotFoundError(errno.ENOENT, "source not found", str(src))
            names, suffix = _plan_names(dest, src, comps, name_max)
            done: list[tuple[Path, Path, tuple | None]] = []  # (source, copy, source's identity when copied)
            for s, n in zip([src] + comps, names):
                before = _identity(s)
                done.append((s, _copy_new(s, dest, n, name_max, tree), before))
            kept: list[tuple[Path, OSError]] = []
            if move:
                try:
                    with lock():
                        new, late = _catch_up(src, done, suffix, dest, name_max, with_companions, exported, tree)
                        done += new
                        refuse(late)
                        removed, kept = _remove_sources(done)
                        for s, d in removed:
                            for hook in hooks:
                                try:
                                    hook(s, d)
                                except CatalogError as exc:
                                    report.errors.append((s, f"moved to {d}, but the catalog did not follow: {exc}"))
                except CatalogError as exc:  # the lock could not be taken: nothing was removed
                    kept = [(s, OSError(errno.ENOLCK, str(exc))) for s, _, _ in done]
                    fatal = f"export stopped: {exc}; the copies in {dest} are kept, the originals untouched"
            exported.update(os.path.realpath(s) for s, _, _ in done)
            pairs = [(s, d) for s, d, _ in done]
            report.items.append(ExportedItem(src, pairs[0][1], pairs[1:], c.mean, c.std, rank,
                                             move and not any(s == src for s, _ in kept)))
            if fatal:
                break
            if move and kept:
                for s, exc in kept:
                    report.errors.append((s, f"copied, but the original could not be removed: {exc.strerror or exc}"))
                if any(exc.errno in _SOURCE_LOCKED for _, exc in kept):
                    fatal = (f"export stopped: the originals cannot be removed from {src.parent} "
                             f"({kept[0][1].strerror}); their verified copies are kept in {dest}, "
                             "the originals that were not removed are untouched")
                    break
        except OSError as exc:
            where = exc.filename or ""
            if exc.errno in (errno.ENOSPC, errno.EDQUOT) or (
                    exc.errno in (errno.EROFS, errno.EACCES) and (not where or is_within(where, dest))):
                fatal = f"export stopped: {exc.strerror} ({dest})"
                report.errors.append((src, fatal))
                break
            report.errors.append((src, exc.strerror or str(exc)))
        except (ExportError, CopyError) as exc:
            report.errors.append((src, str(exc)))
        if progress:
            progress(rank, len(chosen))
    if write_report and (report.items or refusals or report.already):  # a refused link gets its row even when nothing was exported
        try:
            report.report_path = write_csv_report(report, dest)
        except OSError as exc:
            log.error("could not write the export report: %s", exc)
    if fatal:
        raise ExportError(fatal, report)
    return report


def _catch_up(src: Path, done: list[tuple[Path, Path, tuple | None]], suffix: str, dest: Path, name_max: int,
              with_companions: bool, exported: set[str], tree: os.PathLike | str
              ) -> tuple[list[tuple[Path, Path, tuple | None]], list[tuple[Path, str]]]:
    """Before the sources of a move go (lock held): copy again a companion that changed since
    it was copied (a sidecar saved meanwhile), and copy a companion that appeared.  Returns
    the new (source, copy, identity), and the links refused among the new companions."""
    for i, (s, d, before) in enumerate(done):
        now = _identity(s)
        if s != src and now is not None and now != before:
            fresh = _copy_new(s, dest, f"{TMP_PREFIX}{uuid.uuid4().hex}{s.suffix}", name_max, tree)
            os.replace(fresh, d)  # our own copy, made moments ago
            done[i] = (s, d, now)
    if not with_companions:
        return [], []
    known = {os.path.realpath(s) for s, _, _ in done}
    photo = Path(src)
    shared = [s.name[len(photo.stem):] for s, _, _ in done if s.name.lower().startswith(photo.stem.lower())]
    new, refused = [], []
    for p in companions_of(src):
        if os.path.islink(p) and (why := outside_reason(p, tree)):
            refused.append((p, why))
        elif p.is_file() and os.path.realpath(p) not in known | exported:
            before = _identity(p)
            new.append((p, _copy_new(p, dest, _renamed(photo, p, suffix, name_max, shared), name_max, tree), before))
    return new, refused


def _remove_sources(done: list[tuple[Path, Path, tuple | None]]) -> tuple[list[tuple[Path, Path]], list[tuple[Path, OSError]]]:
    """Remove the sources of verified copies, the photo first; when the photo cannot be
    removed, its companions stay with it.  Returns (removed (source, copy), kept (source, why))."""
    removed, kept = [], []
    for i, (s, d, _) in enumerate(done):
        if i > 0 and kept and kept[0][0] == done[0][0]:
            kept.append((s, kept[0][1]))
            continue
        try:
            os.unlink(s)
        except FileNotFoundError:
            pass  # gone meanwhile: its copy is all there is
        except OSError as exc:
            kept.append((s, exc))
            continue
        removed.append((s, d))
    return removed, kept


def write_csv_report(report: ExportReport, dest: Path) -> Path:
    """The export's CSV in ``dest``: a row per exported photo (``action`` copy or move, its
    companions' copies), a row per photo that was there already (``action`` "already there"),
    then a row per file with a problem (``action`` "problem", the reason in ``note``: a link
    refused, an original that could not be removed...)."""
    name = f"photocull-export-{time.strftime('%Y%m%d-%H%M%S')}.csv"
    path = dest / name
    i = 0
    while path.exists():
        i += 1
        path = dest / f"{Path(name).stem}-{i}.csv"
    tmp = dest / f"{TMP_PREFIX}{uuid.uuid4().hex}.csv"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["rank", "source", "destination", "mean", "std", "action", "companions", "note"])
        for it in report.items:
            w.writerow([it.rank, it.source, it.destination,
                        "" if it.mean is None else f"{it.mean:.4f}", "" if it.std is None else f"{it.std:.4f}",
                        "move" if it.moved else "copy", ";".join(str(d) for _, d in it.companions), ""])
        for p, there in report.already:
            w.writerow(["", p, there, "", "", "already there", "", "the same bytes were in the destination: not copied again"])
        for p, why in report.errors:
            w.writerow(["", p, "", "", "", "problem", "", why])
    os.replace(tmp, path)
    return path
