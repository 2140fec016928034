"""Public aesthetic/quality datasets as lists of (image path, 10-bucket target).

Every loader returns a :class:`LabelledSet`: the items, plus how many labelled rows
were skipped (image missing on disk, unreadable row) so the caller can say so.
A target is always a distribution over the scores 1..10 (numpy float64, sums to 1).

How each source becomes a 10-bucket target:

* **AVA** (``AVA.txt``): the ten vote counts, normalised.
* **KonIQ-10k** (``koniq10k_distributions_sets.csv`` or
  ``koniq10k_scores_and_distributions.csv``): five-point votes.  Vote ``k`` (1..5) stands
  for ``1 + (k-1) * 9/4`` on 1..10 (1, 3.25, 5.5, 7.75, 10) and is split linearly
  between the two neighbouring buckets (3.25 -> 0.75 on 3, 0.25 on 4).  The mean is the
  rescaled MOS exactly, the shape of the real votes (skew, two peaks) is kept, and the
  std grows a little (at most +0.43 in variance).  Rows without counts fall back to the
  maximum-entropy distribution with the rescaled MOS and SD.
* **LIVE In the Wild** (``AllMOS_release.mat`` etc., MOS on 0..100): the MOS and std are
  rescaled to 1..10 (``1 + mos*9/100``, ``std*9/100``) and turned into the
  maximum-entropy distribution with that mean and std, as the MATLAB NIMA example does.
  In the original release the first 7 entries (``t1.bmp`` .. ``t7.bmp``, under
  ``Images/trainingImages``) are the images shown to raters for training; they are
  kept (their scores are real) but ``drop_training_images=True`` leaves them out.
* **generic CSV**: ``path,mean[,std]`` (mean on 1..10, or 1..5 with ``scale=5``) or
  ``path,c1..c10`` vote counts; a header row is optional.
"""
from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from photocull.model.losses import (
    N_BUCKETS,
    RATING_STD,
    dist_mean,
    maxent_distribution,
    rescale,
    votes_to_distribution,
)

log = logging.getLogger(__name__)

Item = tuple[Path, np.ndarray]
DATASETS = ("ava", "koniq", "livec", "csv")


class DatasetError(Exception):
    """A label file that cannot be used; ``str(exc)`` says why."""


@dataclass
class LabelledSet:
    name: str
    items: list[Item] = field(default_factory=list)
    missing: int = 0  # labelled, but the image is not on disk
    bad_rows: int = 0  # rows that could not be parsed
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    def __getitem__(self, i):
        return self.items[i]

    @property
    def paths(self) -> list[Path]:
        return [p for p, _ in self.items]

    @property
    def targets(self) -> np.ndarray:
        return np.stack([t for _, t in self.items]) if self.items else np.zeros((0, N_BUCKETS))

    def summary(self) -> str:
        s = f"{self.name}: {len(self.items)} images"
        if self.missing:
            s += f", {self.missing} labelled images missing on disk (skipped)"
        if self.bad_rows:
            s += f", {self.bad_rows} unreadable label rows (skipped)"
        return s


# --- helpers ----------------------------------------------------------------------------

def _find(candidates: Iterable[Path]) -> Path | None:
    for c in candidates:
        if c.is_file():
            return c
    return None


def _finish(ds: LabelledSet) -> LabelledSet:
    if ds.missing:
        log.warning("%s: %d labelled images not found on disk, skipped", ds.name, ds.missing)
    if ds.bad_rows:
        log.warning("%s: %d label rows unreadable, skipped", ds.name, ds.bad_rows)
    return ds


def five_point_votes_to_distribution(votes: Sequence[float]) -> np.ndarray:
    """Five vote counts on 1..5 -> 10-bucket distribution (linear split, see module doc)."""
    v = np.asarray(votes, dtype=np.float64)
    if v.shape != (5,) or v.sum() <= 0 or (v < 0).any():
        raise ValueError("need five non-negative vote counts with a positive sum")
    out = np.zeros(N_BUCKETS)
    for k, n in enumerate(v):
        pos = k * 9.0 / 4.0  # 0-based bucket position of 1 + k*9/4
        lo = math.floor(pos)
        frac = pos - lo
        out[lo] += n * (1.0 - frac)
        if frac > 0:
            out[lo + 1] += n * frac
    return out / out.sum()


def mean_std_to_distribution(mean: float, std: float | None, scale: int = 10) -> np.ndarray:
    """A mean (and std) on 1..scale -> maximum-entropy distribution on 1..10."""
    if scale == 5:
        mean = float(rescale(mean, 1, 5))
        std = None if std is None else std * 9.0 / 4.0
    elif scale != 10:
        raise ValueError("scale must be 5 or 10")
    if not 1.0 <= mean <= 10.0:
        raise ValueError(f"mean {mean} outside 1..10")
    return maxent_distribution(mean, RATING_STD if std is None else std)


# --- AVA --------------------------------------------------------------------------------

def load_ava(labels: os.PathLike | str, images: os.PathLike | str, *, check_exists: bool = True) -> LabelledSet:
    """``AVA.txt``: ``index image_id c1..c10 tag1 tag2 challenge_id``; ``<images>/<id>.jpg``."""
    labels, images = Path(labels), Path(images)
    ds = LabelledSet("AVA")
    try:
        fh = labels.open(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DatasetError(f"cannot read {labels}: {exc.strerror or exc}") from None
    with fh:
        for line in fh:
            parts = line.split()
            if not parts:
                continue
            try:
                image_id = parts[1]
                dist = votes_to_distribution([float(x) for x in parts[2:12]])
            except (IndexError, ValueError):
                ds.bad_rows += 1
                continue
            path = images / f"{image_id}.jpg"
            if check_exists and not path.is_file():
                ds.missing += 1
                continue
            ds.items.append((path, dist))
    return _finish(ds)


# --- KonIQ-10k --------------------------------------------------------------------------

def load_koniq(labels: os.PathLike | str, images: os.PathLike | str, *, check_exists: bool = True) -> LabelledSet:
    """KonIQ-10k from either of its CSV files (the ``set`` column is kept in ``notes`` only).

    Images are looked for as ``<images>/<image_name>`` and ``<images>/1024x768/<image_name>``.
    """
    labels, images = Path(labels), Path(images)
    ds = LabelledSet("KonIQ-10k")
    rows = _read_csv_dicts(labels)
    if rows and not {"image_name", "MOS"} <= set(rows[0]):
        raise DatasetError(f"{labels.name}: not a KonIQ-10k file (needs image_name and MOS columns)")
    sets: dict[str, int] = {}
    for row in rows:
        name = (row.get("image_name") or "").strip()
        try:
            counts = [float(row[f"c{k}"]) for k in range(1, 6)] if "c1" in row else None
            if counts is not None and sum(counts) > 0:
                dist = five_point_votes_to_distribution(counts)
            else:
                dist = mean_std_to_distribution(float(row["MOS"]), float(row.get("SD") or 0.6), scale=5)
        except (KeyError, TypeError, ValueError):
            ds.bad_rows += 1
            continue
        if not name:
            ds.bad_rows += 1
            continue
        path = images / name
        if check_exists:
            found = _find([path, images / "1024x768" / name])
            if found is None:
                ds.missing += 1
                continue
            path = found
        if row.get("set"):
            sets[row["set"]] = sets.get(row["set"], 0) + 1
        ds.items.append((path, dist))
    if sets:
        ds.notes.append("official sets: " + ", ".join(f"{k} {v}" for k, v in sorted(sets.items())))
    return _finish(ds)


def _read_csv_dicts(path: Path) -> list[dict]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            return [{(k or "").strip(): (v.strip() if isinstance(v, str) else v) for k, v in r.items()}
                    for r in csv.DictReader(fh)]
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from None
    except csv.Error as exc:
        raise DatasetError(f"{path.name}: not a readable CSV file ({exc})") from None


# --- LIVE In the Wild (CLIVE) -----------------------------------------------------------

LIVEC_TRAINING_IMAGES = 7


def _mat_vector(path: Path, key: str) -> np.ndarray:
    from scipy.io import loadmat

    try:
        m = loadmat(path)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None
    if key not in m:
        keys = [k for k in m if not k.startswith("__")]
        if len(keys) != 1:
            raise DatasetError(f"{path.name}: no variable {key!r}")
        key = keys[0]
    return np.asarray(m[key]).ravel()


def load_livec(labels: os.PathLike | str, images: os.PathLike | str, *, drop_training_images: bool = False,
               check_exists: bool = True) -> LabelledSet:
    """LIVE In the Wild.  ``labels`` is the folder with the three ``All*_release.mat``
    files (or one of them); images are looked for under ``<images>/Images/<name>``,
    ``<images>/<name>`` and their ``trainingImages/`` subfolders."""
    labels, images = Path(labels), Path(images)
    folder = labels if labels.is_dir() else labels.parent
    mos = _mat_vector(folder / "AllMOS_release.mat", "AllMOS_release").astype(np.float64)
    std = _mat_vector(folder / "AllStdDev_release.mat", "AllStdDev_release").astype(np.float64)
    names_raw = _mat_vector(folder / "AllImages_release.mat", "AllImages_release")
    names = [str(np.asarray(n).ravel()[0]) if np.asarray(n).size else "" for n in names_raw]
    if not (len(mos) == len(std) == len(names)):
        raise DatasetError(f"LIVE files disagree: {len(names)} names, {len(mos)} MOS, {len(std)} std")
    ds = LabelledSet("LIVE In the Wild")
    start = LIVEC_TRAINING_IMAGES if drop_training_images else 0
    for name, m, s in zip(names[start:], mos[start:], std[start:]):
        if not name or not np.isfinite(m) or not np.isfinite(s):
            ds.bad_rows += 1
            continue
        dist = maxent_distribution(float(rescale(m, 0, 100)), float(s) * 9.0 / 100.0)
        cands = [images / "Images" / name, images / name,
                 images / "Images" / "trainingImages" / name, images / "trainingImages" / name]
        path = _find(cands) if check_exists else cands[0]
        if path is None:
            ds.missing += 1
            continue
        ds.items.append((path, dist))
    if not drop_training_images:
        ds.notes.append(f"the first {LIVEC_TRAINING_IMAGES} entries are the raters' training images")
    return _finish(ds)


# --- generic CSV ------------------------------------------------------------------------

def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def load_csv(labels: os.PathLike | str, images: os.PathLike | str | None = None, *, scale: int = 10,
             check_exists: bool = True) -> LabelledSet:
    """``path,mean[,std]`` or ``path,c1..c10`` rows; a header row is optional.

    Relative paths are resolved against ``images`` (default: the CSV's folder).
    ``scale`` says what the mean/std are on: 10 (1..10) or 5 (1..5, rescaled).
    """
    labels = Path(labels)
    root = Path(images) if images is not None else labels.parent
    if scale not in (5, 10):
        raise DatasetError("scale must be 5 or 10")
    ds = LabelledSet(labels.stem)
    try:
        with labels.open(newline="", encoding="utf-8-sig") as fh:
            rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    except OSError as exc:
        raise DatasetError(f"cannot read {labels}: {exc.strerror or exc}") from None
    if rows and len(rows[0]) > 1 and not _is_number(rows[0][1].strip()):
        rows = rows[1:]  # header
    for row in rows:
        row = [c.strip() for c in row]
        try:
            nums = [float(x) for x in row[1:]]
            if len(nums) == N_BUCKETS:
                dist = votes_to_distribution(nums)
            elif len(nums) in (1, 2):
                dist = mean_std_to_distribution(nums[0], nums[1] if len(nums) == 2 else None, scale)
            else:
                raise ValueError("wrong number of columns")
        except ValueError:
            ds.bad_rows += 1
            continue
        path = Path(row[0]).expanduser()
        if not path.is_absolute():
            path = root / path
        if check_exists and not path.is_file():
            ds.missing += 1
            continue
        ds.items.append((path, dist))
    return _finish(ds)


def load_dataset(kind: str, labels: os.PathLike | str, images: os.PathLike | str | None, *,
                 scale: int = 10) -> LabelledSet:
    """Dispatch on ``kind`` (one of :data:`DATASETS`)."""
    if kind == "ava":
        return load_ava(labels, images or Path(labels).parent / "images")
    if kind == "koniq":
        return load_koniq(labels, images or Path(labels).parent)
    if kind == "livec":
        return load_livec(labels, images or Path(labels).parent.parent)
    if kind == "csv":
        return load_csv(labels, images, scale=scale)
    raise DatasetError(f"unknown dataset {kind!r}; choose from {', '.join(DATASETS)}")


# --- splits -----------------------------------------------------------------------------

def stratified_indices(keys: Sequence, fractions: Sequence[float], seed: int = 0) -> list[np.ndarray]:
    """Split ``range(len(keys))`` into ``len(fractions)`` parts, stratified by ``keys``.

    Items are ordered by (key, random tiebreak) and dealt out one by one to the part
    furthest behind its share, so every part gets its share of every stratum (up to
    one item) and the overall sizes match the fractions.  Deterministic for a seed.
    """
    f = np.asarray(fractions, dtype=np.float64)
    if (f < 0).any() or f.sum() <= 0:
        raise ValueError("fractions must be non-negative with a positive sum")
    f = f / f.sum()
    n = len(keys)
    rng = np.random.default_rng(seed)
    tiebreak = rng.permutation(n)
    order = sorted(range(n), key=lambda i: (keys[i], tiebreak[i]))
    counts = np.zeros(len(f))
    parts: list[list[int]] = [[] for _ in f]
    # a random phase so that part 0 is not always served first in each stratum
    phase = rng.random(len(f)) * 1e-6
    for j, i in enumerate(order):
        deficit = f * (j + 1) - counts + phase
        k = int(np.argmax(deficit))
        parts[k].append(i)
        counts[k] += 1
    return [np.array(sorted(p), dtype=np.int64) for p in parts]


def mean_bucket(target: np.ndarray) -> int:
    return int(np.clip(np.rint(dist_mean(target)), 1, 10))


def split(items: Sequence[Item] | LabelledSet, fractions: Sequence[float] = (0.7, 0.15, 0.15),
          seed: int = 0) -> list[list[Item]]:
    """Deterministic train/val/test (or any number of parts) split, stratified by the
    rounded mean score of each item."""
    items = list(items)
    keys = [mean_bucket(t) for _, t in items]
    return [[items[i] for i in idx] for idx in stratified_indices(keys, fractions, seed)]
