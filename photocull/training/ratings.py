"""A photographer's ratings, as the learners take them: from marks (stars, picks,
rejects) or from a ``path,rating`` CSV.  No torch: the window's Learn My Taste dialog
gathers ratings on its own thread before any training starts."""
from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from pathlib import Path

MAX_CSV_BYTES = 64 * 1024 * 1024  # a ratings file for a million photos is ~100 MB; refuse what is not one
MAX_REASONS = 20


class TrainingError(Exception):
    """Training cannot start or go on; ``str(exc)`` is the reason shown to the user."""


def ratings_from_marks(marks: Mapping, pick_stars: int, reject_stars: int) -> dict:
    """{path: Marks} -> {path: stars}: stars as given; an unrated pick counts as
    ``pick_stars``, a reject as ``reject_stars``; unmarked photos are left out."""
    out = {}
    for path, m in marks.items():
        if m.flag < 0:
            out[path] = reject_stars
        elif m.rating > 0:
            out[path] = m.rating
        elif m.flag > 0:
            out[path] = pick_stars
    return out


def read_ratings_csv(path: str | Path, pick_rating: int = 5, reject_rating: int = 1,
                     scale: int = 5) -> tuple[dict[Path, float], list[str]]:
    """``path,rating`` rows (header optional) -> ({photo: rating} in the file's order,
    [why each skipped row was skipped]).

    A rating is a number from 1 to ``scale``, or ``pick`` / ``reject`` (mapped to
    ``pick_rating`` / ``reject_rating`` stars).  Relative paths are relative to the CSV's
    folder.  A photo listed twice keeps its last rating.  Any bad row (too few fields, a
    rating that is not a number or out of range, a field too long, a broken quote) is
    skipped with its reason; the file is read as UTF-8 (with or without a BOM), bytes that
    are not UTF-8 kept as they are in file names (as the file system has them).
    Raises :class:`TrainingError` only for a file that cannot be read at all.
    """
    path = Path(path)
    try:
        if path.stat().st_size > MAX_CSV_BYTES:
            raise TrainingError(f"{path} is {path.stat().st_size / 1e6:.0f} MB: not a ratings file "
                                f"(at most {MAX_CSV_BYTES // (1024 * 1024)} MB)")
        data = path.read_bytes()
    except OSError as exc:
        raise TrainingError(f"cannot read {path}: {exc.strerror or exc}") from None
    text = data.decode("utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "utf-8", errors="surrogateescape")
    words = {"pick": float(pick_rating), "reject": float(reject_rating)}
    out: dict[Path, float] = {}
    skipped: list[str] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    row_no = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # a field over csv's limit, a NUL byte, a broken quote
            skipped.append(f"line {reader.line_num}: {exc}")
            continue
        if not row or not any(c.strip() for c in row):
            continue
        row_no += 1
        if len(row) < 2:
            skipped.append(f"line {reader.line_num}: no rating")
            continue
        p, v = row[0].strip(), row[1].strip().lower()
        try:
            r = words[v] if v in words else float(v)
        except ValueError:
            if row_no > 1:
                skipped.append(f"line {reader.line_num}: rating {v[:20]!r} is not a number")
            continue  # (the first row: a header)
        if not math.isfinite(r) or not 1 <= r <= scale:
            skipped.append(f"line {reader.line_num}: rating {v[:20]} is outside 1..{scale}")
            continue
        q = Path(p).expanduser()
        out[q if q.is_absolute() else path.parent / q] = r
    return out, skipped
