"""Export the keepers: choose, then copy (or move) with companions and sidecars.

Never overwrite, never lose a photo:
* every file is copied to a temporary name in the destination, flushed, verified
  (size + SHA-256 against the source), then linked to its final name with a call that
  fails if that name exists (so a clash can never overwrite), and the temporary name
  is removed;
* a move removes the source only after its copy has been verified;
* a name clash gets a suffix (``IMG_1-1.jpg``), shared by the photo's companions;
* names come from the source's base name only: nothing can escape the destination.
"""
from __future__ import annotations

import csv
import errno
import hashlib
import logging
import math
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

log = logging.getLogger(__name__)

TMP_PREFIX = ".photocull-partial-"


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
    """Keepers, best first.  Unscored photos rank last and are never picked by score rules."""
    pool = [c for c in cands if not (exclude_rejects and c.flag < 0)]
    if picks_only:
        pool = [c for c in pool if c.flag > 0]
    if min_stars is not None:
        pool = [c for c in pool if c.rating >= min_stars]
    by_score = any(v is not None for v in (top, top_percent, min_score))
    if by_score:
        pool = [c for c in pool if c.mean is not None]
    pool.sort(key=lambda c: (c.mean is None, -(c.mean or 0.0), str(c.path)))
    if min_score is not None:
        pool = [c for c in pool if c.mean >= min_score]
    if top_percent is not None:
        if not 0 < top_percent <= 100:
            raise ValueError("--top-percent must be in (0, 100]")
        n_scored = sum(1 for c in cands if c.mean is not None)
        pool = pool[: max(1, math.ceil(n_scored * top_percent / 100.0))] if pool else []
    if top is not None:
        if top < 0:
            raise ValueError("--top must be >= 0")
        pool = pool[:top]
    return pool


def companions_of(photo: Path) -> list[Path]:
    """Files that travel with a photo: same stem, other extension (RAW/JPEG twins,
    Adobe ``IMG_1.xmp``), and darktable's ``IMG_1.JPG.xmp``."""
    photo = Path(photo)
    out = []
    try:
        entries = list(photo.parent.iterdir())
    except OSError:
        return out
    stem, name = photo.stem.lower(), photo.name.lower()
    for e in entries:
        el = e.name.lower()
        if e == photo or not e.is_file():
            continue
        if Path(el).stem == stem or el.startswith(name + "."):
            out.append(e)
    return sorted(out)


def sha256_of(path: Path, bufsize: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(bufsize):
            h.update(chunk)
    return h.hexdigest()


def _safe_name(name: str) -> str:
    base = os.path.basename(name.replace("\\", "/"))
    if base in ("", ".", ".."):
        raise ExportError(f"refusing unsafe file name {name!r}")
    return base


def _inside(dest: Path, target: Path) -> bool:
    return os.path.dirname(os.path.abspath(target)) == os.path.abspath(dest)


def safe_copy(src: Path, dest_dir: Path, final_name: str) -> Path:
    """Copy ``src`` to ``dest_dir/final_name`` via a verified temporary file.

    Raises FileExistsError if the final name exists (never overwrites), ExportError
    for a verification failure, OSError for I/O trouble (disk full...).  On any failure
    the temporary file is removed and nothing sits under the final name.
    """
    final = dest_dir / _safe_name(final_name)
    if not _inside(dest_dir, final):
        raise ExportError(f"refusing to write outside the destination: {final_name!r}")
    if os.path.lexists(final):
        raise FileExistsError(errno.EEXIST, "exists", str(final))
    tmp = dest_dir / f"{TMP_PREFIX}{uuid.uuid4().hex}{src.suffix}"
    try:
        h = hashlib.sha256()
        with open(src, "rb") as fi, open(tmp, "xb") as fo:
            while chunk := fi.read(1 << 20):
                h.update(chunk)
                fo.write(chunk)
            fo.flush()
            os.fsync(fo.fileno())
        shutil.copystat(src, tmp)
        if os.path.getsize(tmp) != os.path.getsize(src) or sha256_of(tmp) != h.hexdigest():
            raise ExportError(f"verification failed for {src.name}: the copy differs from the original")
        try:
            os.link(tmp, final)  # fails if final exists: can never overwrite
            os.unlink(tmp)
        except FileExistsError:
            raise
        except OSError:
            # file systems without hard links (FAT, some network shares)
            if os.path.lexists(final):
                raise FileExistsError(errno.EEXIST, "exists", str(final))
            os.rename(tmp, final)
        return final
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


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
        except ExportError as exc:
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


def trash(paths: Iterable[os.PathLike | str]) -> list[tuple[Path, str]]:
    """Send files to the OS trash (recoverable).  photocull never deletes a photo for good.
    Returns (path, reason) for the files that could not be trashed."""
    from send2trash import send2trash

    failed = []
    for p in paths:
        try:
            send2trash(str(p))
        except Exception as exc:  # noqa: BLE001 - send2trash raises several types
            failed.append((Path(p), str(exc)))
    return failed
