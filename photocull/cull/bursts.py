"""Bursts and near-duplicates: which frames are "the same shot", and which one is best.

Two frames are linked when they were taken close together in time *and* look alike.
"Look alike" has two parts, because neither is enough alone:

* the backbone's pooled features (cosine similarity) say "same scene"; but a frame
  shifted by a third of its width (a panorama step) still scores 0.9+, so
* a pixel check on tiny (64x64) greyscale versions says "same framing": the frames are
  aligned by phase correlation first, then compared with SSIM on the overlap, so a
  burst with a few pixels of camera shake still matches while a panorama step shows
  up as a large shift with well-correlated overlap.

Kinds of group: ``"burst"`` (same framing, same exposure), ``"bracket"`` (exposure
bias differs inside the group: frames meant to be merged), ``"panorama"`` (shifted,
overlapping frames), ``"single"``.  Brackets and panoramas are never auto-rejected, and
*Pick best of each burst* (:func:`best_of_groups_changes`) never changes a frame the user
marked.

Thresholds (calibrated on 108 distinct photos from kodak24/pixabay640/waterloo/mcmaster,
5778 pairs, and generated bursts/brackets/panoramas from 20 of them; efficientnet_lite0
multilevel features):

==================  ==========================  =================================
measure             same shot                   different photos
==================  ==========================  =================================
feature cosine      bursts >= 0.90              max 0.889, 99th pct 0.81
aligned SSIM        bursts >= 0.84              max 0.48 (shift <= 15 %)
aligned NCC         brackets +-2 EV >= 0.80     (brightness-invariant)
==================  ==========================  =================================

So a burst link needs cosine >= 0.85 and aligned SSIM >= 0.65 (each alone would let
some distinct pairs through; together none did).  Frames without a capture time have
no time evidence, so they need 0.05/0.10 more.
"""
from __future__ import annotations

import hashlib
import logging
import os
import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import numpy as np
from PIL import Image

from photocull.cull import ranking

log = logging.getLogger(__name__)

TINY_SIDE = 64

FEATURE_THRESHOLD = 0.85   # cosine: same scene
SSIM_THRESHOLD = 0.65      # aligned SSIM of the tiny greys: same framing
COSINE_FLOOR = 0.6         # below this, never the same shot (+-2 EV brackets stay above 0.68)
MAX_BURST_SHIFT = 0.15     # a burst moves less than 15 % of the frame; panorama steps more
BRACKET_NCC = 0.6          # brightness-invariant correlation of bracketed frames
BRACKET_MIN_EV = 0.3       # exposure biases this far apart are a bracket
PANO_COSINE = 0.8
PANO_NCC = 0.6
PANO_MIN_OVERLAP = 0.25
UNTIMED_EXTRA_COSINE = 0.05
UNTIMED_EXTRA_SSIM = 0.10
PREPARED_LRU = 64          # frames kept blurred + transformed while grouping (48 KB each)

PROTECTED_KINDS = frozenset({"bracket", "panorama"})
# how alike two frames must look to be one burst (the Preferences' burst similarity):
# (feature cosine, aligned SSIM of the tiny greys); "normal" is what the thresholds above were calibrated as
SIMILARITY = {"strict": (0.90, 0.75), "normal": (FEATURE_THRESHOLD, SSIM_THRESHOLD), "loose": (0.78, 0.55)}


def similarity_thresholds(similarity: str) -> tuple[float, float]:
    """(feature cosine, SSIM) thresholds for a :data:`SIMILARITY` name (unknown: "normal")."""
    return SIMILARITY.get(similarity, SIMILARITY["normal"])


# --- inputs and outputs ---------------------------------------------------------------

def tiny_gray_u8(im: Image.Image | np.ndarray, side: int = TINY_SIDE) -> np.ndarray:
    """A ``side`` x ``side`` uint8 greyscale version: what :func:`tiny_gray` is made of,
    and how greys are kept (4 KB each at 64 px; 16 KB as float32) and cached."""
    if isinstance(im, np.ndarray):
        a = im
        if a.dtype != np.uint8:
            a = (np.clip(a, 0, 1) * 255).astype(np.uint8) if a.dtype.kind == "f" else a.astype(np.uint8)
        im = Image.fromarray(a)
    g = im.convert("L").resize((side, side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(g, dtype=np.uint8)


def gray_as_float(g: np.ndarray) -> np.ndarray:
    """A tiny grey as float32 0..1 (uint8 greys are scaled; float ones are taken as they are)."""
    g = np.asarray(g)
    if g.dtype == np.uint8:
        return g.astype(np.float32) / 255.0
    return g.astype(np.float32, copy=False)


def tiny_gray(im: Image.Image | np.ndarray, side: int = TINY_SIDE) -> np.ndarray:
    """A ``side`` x ``side`` float32 greyscale version (0..1) for pixel comparisons.

    Aspect ratio is not kept: both frames of a pair are squashed the same way.
    """
    return gray_as_float(tiny_gray_u8(im, side))


def load_tiny_gray_u8(path: os.PathLike | str) -> np.ndarray | None:
    """Decode ``path`` small (JPEG DCT scaling, RAW preview) and make its uint8 tiny grey;
    None if unreadable."""
    from photocull.media.loaders import ImageError, open_image

    try:
        return tiny_gray_u8(open_image(path, max_side=4 * TINY_SIDE))
    except ImageError as exc:
        log.debug("no pixels for %s: %s", path, exc)
        return None


def load_tiny_gray(path: os.PathLike | str) -> np.ndarray | None:
    """Like :func:`load_tiny_gray_u8`, as float32 0..1 (:func:`tiny_gray`)."""
    g = load_tiny_gray_u8(path)
    return None if g is None else gray_as_float(g)


class CachedGrayLoader:
    """A ``gray_loader`` for :func:`group_bursts` that remembers tiny greys in the
    catalog (keyed like scores: path + size + mtime), so that reopening a folder
    decodes nothing for its burst grouping.  New greys are written in batches of
    ``flush_every`` and by :meth:`flush` (call it when done: a cancelled run keeps what
    it decoded).  Use it from one thread (the catalog's connections are per thread)."""

    def __init__(self, catalog, flush_every: int = 256,
                 decode: Callable[[Path], np.ndarray | None] = load_tiny_gray_u8):
        self.catalog = catalog
        self.flush_every = flush_every
        self.decode = decode
        self._new: list[tuple[str, np.ndarray]] = []
        self.hits = self.decoded = 0

    def __call__(self, path) -> np.ndarray | None:
        g = self.catalog.tiny_gray(path, TINY_SIDE)
        if g is not None:
            self.hits += 1
            return g
        g = self.decode(path)
        self.decoded += 1
        if g is not None:
            g = np.asarray(g)
            if g.dtype != np.uint8:
                g = tiny_gray_u8(g)
            self._new.append((os.fspath(path), g))
            if len(self._new) >= self.flush_every:
                self.flush()
        return g

    def flush(self) -> None:
        new, self._new = self._new, []
        if new:
            try:
                self.catalog.store_tiny_grays(new)
            except Exception as exc:  # noqa: BLE001 - a cache: never the reason grouping fails
                log.warning("could not remember tiny greys: %s", exc)


@dataclass
class BurstInput:
    path: Path
    capture_time: float | None = None   # seconds, DateTimeOriginal + SubSecTimeOriginal
    exposure_bias: float | None = None  # EV
    features: np.ndarray | None = None  # pooled backbone features (any float dtype)
    gray: np.ndarray | None = None      # tiny_gray() or tiny_gray_u8(); loaded from path when None
    score: float | None = None          # predicted mean score; the best frame ranks first


@dataclass
class BurstGroup:
    members: list[int]          # indices into the input, in shooting order
    kind: str = "single"        # "burst" | "bracket" | "panorama" | "single"
    best: int = -1              # the member that ranks first (photocull.cull.ranking); the first if none scored

    @property
    def protected(self) -> bool:
        """Brackets and panoramas: every frame is needed, never auto-reject."""
        return self.kind in PROTECTED_KINDS

    def __len__(self) -> int:
        return len(self.members)

    def __iter__(self):
        return iter(self.members)


# --- comparing two frames ---------------------------------------------------------------

@dataclass(frozen=True)
class Likeness:
    ssim: float      # SSIM of the aligned overlap
    ncc: float       # normalised cross-correlation of the aligned overlap (brightness-invariant)
    shift: float     # largest shift component, as a fraction of the side
    overlap: float   # overlap area fraction after alignment


_NO_MATCH = Likeness(0.0, 0.0, 1.0, 0.0)


def _standardise(a: np.ndarray) -> np.ndarray:
    return (a - a.mean()) / (a.std() + 1e-3)


def _prepare(g: np.ndarray, blur: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A tiny grey ready for :func:`_likeness`: (blurred, its 2-D FFT).  Done once per
    frame, not once per pair it is in."""
    from scipy import ndimage
    from scipy.fft import fftn

    g = np.asarray(g)
    if g.dtype == np.uint8:
        g = gray_as_float(g)
    if blur:
        g = ndimage.gaussian_filter(g, blur)
    return g, fftn(g)


def likeness(g1: np.ndarray, g2: np.ndarray, blur: float = 1.0) -> Likeness:
    """Align two tiny greys by phase correlation and compare their overlap."""
    if g1.shape != g2.shape:
        return _NO_MATCH
    return _likeness(_prepare(g1, blur), _prepare(g2, blur))


def _likeness(p1: tuple[np.ndarray, np.ndarray], p2: tuple[np.ndarray, np.ndarray]) -> Likeness:
    (g1, f1), (g2, f2) = p1, p2
    if g1.shape != g2.shape:
        return _NO_MATCH
    h, w = g1.shape
    # the FFTs it would take of the blurred greys, taken once per frame (_prepare)
    dy, dx = _shift(f1, f2)
    a = g1[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)]
    b = g2[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    if min(a.shape) < 16:
        return _NO_MATCH
    ncc = float((_standardise(a) * _standardise(b)).mean())
    return Likeness(_ssim7(a, b), ncc, max(abs(dy) / h, abs(dx) / w), a.size / (h * w))


# Frames are compared pair after pair (a few per photo: ~1 ms each, most of grouping a shoot;
# on a cluster's driver, 1M photos' worth): the two measures below are scikit-image's
# ``phase_cross_correlation(f1, f2, normalization=None, space="fourier")`` (integer shift) and
# ``structural_similarity(a, b, data_range=1.0, win_size=7)``, the same arithmetic without their
# argument handling, the five filters of SSIM as one call (tests/test_bursts.py: equal results).

def _shift(f1: np.ndarray, f2: np.ndarray) -> tuple[int, int]:
    """The whole-pixel shift of the second frame onto the first, from their 2-D FFTs."""
    from scipy.fft import ifftn

    cc = ifftn(f1 * f2.conj())
    peak = np.unravel_index(int(np.argmax(np.abs(cc))), cc.shape)
    return tuple(int(m - n) if m > int(n / 2) else int(m) for m, n in zip(peak, cc.shape))


def _ssim7(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two same-shape 2-D images in 0..1, 7x7 uniform windows, sample covariance."""
    from scipy.ndimage import uniform_filter

    ft = np.float32 if a.dtype in (np.float16, np.float32) else np.float64  # (as scikit-image chooses)
    a, b = a.astype(ft, copy=False), b.astype(ft, copy=False)
    ux, uy, uxx, uyy, uxy = uniform_filter(np.stack([a, b, a * a, b * b, a * b]), size=(1, 7, 7))
    cov = 49 / 48
    vx, vy, vxy = cov * (uxx - ux * ux), cov * (uyy - uy * uy), cov * (uxy - ux * uy)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
    return float(s[3:-3, 3:-3].mean(dtype=np.float64))


def _flat_norm(f: np.ndarray | None) -> tuple[np.ndarray | None, float]:
    """(a feature vector as a flat float array in its own dtype, no copy when it is one;
    its length, computed in float32), or (None, 0) when it has no usable direction."""
    if f is None:
        return None, 0.0
    f = np.asarray(f)
    if f.dtype.kind != "f":
        f = f.astype(np.float32)
    f = f.ravel()
    n = float(np.linalg.norm(f.astype(np.float32, copy=False)))
    return (f, n) if n > 0 and np.isfinite(n) else (None, 0.0)


# --- grouping -------------------------------------------------------------------------------

class _Sets:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            self.parent[max(ri, rj)] = min(ri, rj)


def group_bursts(items: Sequence[BurstInput], gap_seconds: float = 2.0,
                 feature_threshold: float = FEATURE_THRESHOLD, ssim_threshold: float = SSIM_THRESHOLD,
                 *, pano_gap_seconds: float = 6.0, neighbours: int = 4, max_all_pairs: int = 3000,
                 gray_loader: Callable[[Path], np.ndarray | None] | None = load_tiny_gray_u8) -> list[BurstGroup]:
    """Group frames of one shot; every input index is in exactly one group.

    Timed frames (sorted by time) are compared with up to ``neighbours`` earlier frames
    taken at most ``pano_gap_seconds`` before; bursts and brackets need at most
    ``gap_seconds``.  Frames without a capture time are compared by look alone, with
    stricter thresholds: with their ``neighbours`` in file-name order, and, when they
    have features and there are at most ``max_all_pairs`` of them, with every other
    untimed frame whose features are close.  Tiny greys missing from the inputs are
    loaded with ``gray_loader`` only for pairs that need them (None: never load).

    Groups come out in order of their first input index; members in shooting order.
    """
    n = len(items)
    # features stay as given (float16 from the catalog: 4.4 KB a photo, not 8.9 KB twice
    # over as float32 unit vectors); their norms are computed once
    feats: list[np.ndarray | None] = []
    norms: list[float] = []
    for it in items:
        f, nf = _flat_norm(it.features)
        feats.append(f)
        norms.append(nf)
    # greys are kept as given (uint8 from a loader: 4 KB a photo, not 16 KB as float32);
    # blurred and transformed for comparing (48 KB) only in a small LRU: frames are
    # compared with their neighbours, so each is prepared about once
    grays: dict[int, np.ndarray | None] = {}
    prepared: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def gray(i: int) -> tuple[np.ndarray, np.ndarray] | None:
        if i not in grays:
            g = items[i].gray
            if g is None and gray_loader is not None:
                g = gray_loader(items[i].path)
            grays[i] = None if g is None else np.asarray(g)
        g = grays[i]
        if g is None:
            return None
        p = prepared.get(i)
        if p is None:
            p = prepared[i] = _prepare(g if g.dtype == np.uint8 else gray_as_float(g))
            if len(prepared) > PREPARED_LRU:
                prepared.popitem(last=False)
        else:
            prepared.move_to_end(i)
        return p

    def cosine(i: int, j: int) -> float | None:
        a, b = feats[i], feats[j]
        if a is None or b is None or a.shape != b.shape:
            return None
        return float(a.astype(np.float32, copy=False) @ b.astype(np.float32, copy=False)) / (norms[i] * norms[j])

    def link(i: int, j: int, dt: float | None) -> str | None:
        c = cosine(i, j)
        bi, bj = items[i].exposure_bias, items[j].exposure_bias
        bracketed = bi is not None and bj is not None and abs(bi - bj) >= BRACKET_MIN_EV
        if c is not None:  # cheap rejections before any pixels are looked at
            if dt is None:
                floor = feature_threshold + UNTIMED_EXTRA_COSINE
            else:
                floor = COSINE_FLOOR if bracketed else min(feature_threshold, PANO_COSINE)
            if c < floor:
                return None
        if bracketed and dt is not None and dt > gap_seconds:
            return None
        gi, gj = gray(i), gray(j)
        if gi is None or gj is None:
            return None  # no pixels, no proof: a panorama step looks "the same scene" too
        like = _likeness(gi, gj)
        if dt is None:  # look alone: near-duplicates only
            ok = like.shift <= MAX_BURST_SHIFT and like.ssim >= ssim_threshold + UNTIMED_EXTRA_SSIM
            return "burst" if ok and (c is None or c >= feature_threshold + UNTIMED_EXTRA_COSINE) else None
        if bracketed:
            if dt <= gap_seconds and like.shift <= MAX_BURST_SHIFT and like.ncc >= BRACKET_NCC:
                return "bracket"
            return None
        if (dt <= gap_seconds and like.shift <= MAX_BURST_SHIFT and like.ssim >= ssim_threshold
                and (c is None or c >= feature_threshold)):
            return "burst"
        if (dt <= pano_gap_seconds and like.shift > MAX_BURST_SHIFT and like.overlap >= PANO_MIN_OVERLAP
                and like.ncc >= PANO_NCC and (c is None or c >= PANO_COSINE)):
            return "panorama"
        return None

    sets = _Sets(n)
    edges: list[tuple[int, int, str]] = []

    def consider(i: int, j: int, dt: float | None) -> None:
        kind = link(i, j, dt)
        if kind:
            edges.append((i, j, kind))
            sets.union(i, j)

    # 1. timed frames: time neighbours
    timed = sorted((i for i in range(n) if items[i].capture_time is not None),
                   key=lambda i: (items[i].capture_time, str(items[i].path)))
    window = max(gap_seconds, pano_gap_seconds)
    for pos, j in enumerate(timed):
        tj = items[j].capture_time
        for i in reversed(timed[max(0, pos - neighbours):pos]):
            dt = tj - items[i].capture_time
            if dt > window:
                break
            consider(i, j, dt)

    # 2. frames without a time: by look alone
    untimed = {i for i in range(n) if items[i].capture_time is None}
    if untimed:
        pairs: set[tuple[int, int]] = set()
        by_name = sorted(range(n), key=lambda i: str(items[i].path))
        for pos, j in enumerate(by_name):
            for i in by_name[max(0, pos - neighbours):pos]:
                if i in untimed or j in untimed:
                    pairs.add((min(i, j), max(i, j)))
        with_feats = sorted(i for i in untimed if feats[i] is not None)
        if 1 < len(with_feats) <= max_all_pairs and len({feats[i].shape for i in with_feats}) == 1:
            m = np.stack([feats[i] for i in with_feats]).astype(np.float32, copy=False)
            m /= np.asarray([norms[i] for i in with_feats], dtype=np.float32)[:, None]
            for start in range(0, len(with_feats), 512):
                sims = m[start:start + 512] @ m.T
                for a, b in zip(*np.nonzero(sims >= feature_threshold + UNTIMED_EXTRA_COSINE)):
                    i, j = with_feats[start + a], with_feats[b]
                    if i < j:
                        pairs.add((i, j))
        for i, j in sorted(pairs):
            if sets.find(i) != sets.find(j):
                consider(i, j, None)

    # 3. components -> groups
    comps: dict[int, list[int]] = {}
    for i in range(n):
        comps.setdefault(sets.find(i), []).append(i)
    edge_kinds: dict[int, set[str]] = {}
    for i, _, kind in edges:
        edge_kinds.setdefault(sets.find(i), set()).add(kind)
    order = {i: k for k, i in enumerate(timed)}
    groups = []
    for root, members in sorted(comps.items(), key=lambda kv: min(kv[1])):
        members.sort(key=lambda i: (order.get(i, len(order)), str(items[i].path)))
        groups.append(BurstGroup(members, _kind(members, edge_kinds.get(root, set()), items),
                                 _best(members, items)))
    return groups


def _kind(members: list[int], kinds: set[str], items: Sequence[BurstInput]) -> str:
    if len(members) == 1:
        return "single"
    biases = [items[i].exposure_bias for i in members if items[i].exposure_bias is not None]
    if "bracket" in kinds or (biases and max(biases) - min(biases) >= BRACKET_MIN_EV):
        return "bracket"
    if "panorama" in kinds:
        return "panorama"
    return "burst"


def _best(members: list[int], items: Sequence[BurstInput]) -> int:
    """The member that ranks first (best score, ties by path); the first when none is scored."""
    return ranking.best_first(members, mean=lambda i: items[i].score, path=lambda i: items[i].path)[0]


# --- a folder's photos ------------------------------------------------------------------------

class ItemGroup(NamedTuple):
    """Where one photo stands after grouping (what the window shows)."""
    group: int | None  # the group's number among the folder's groups of two or more; None when alone
    size: int          # frames in its group (1 when alone)
    kind: str          # "burst" | "bracket" | "panorama"; "" when alone
    best: bool         # the group's best frame (always True when alone)


def find_groups_for_items(items: Sequence, features: dict[str, np.ndarray], gap_seconds: float = 2.0,
                          gray_loader: Callable[[Path], np.ndarray | None] | None = None,
                          grays: dict[str, np.ndarray] | None = None, similarity: str = "normal") -> list[ItemGroup]:
    """Group photo items (duck-typed, read only: ``path``, ``capture_time``,
    ``exposure_bias``, ``mean``); one :class:`ItemGroup` per item, in the order given.
    ``features`` and ``grays`` map absolute paths to feature vectors and :func:`tiny_gray`
    arrays.

    Nothing is decoded unless ``gray_loader`` is given (e.g. :func:`load_tiny_gray`,
    from a worker thread: it decodes small versions of the frames that need a pixel
    check).  Without pixels two frames are never linked, so with neither ``grays`` nor
    a loader every item ends up alone.
    """
    grays = grays or {}
    inputs = [BurstInput(Path(it.path), getattr(it, "capture_time", None), getattr(it, "exposure_bias", None),
                         features.get(os.path.abspath(it.path)), grays.get(os.path.abspath(it.path)),
                         getattr(it, "mean", None))
              for it in items]
    out: list[ItemGroup | None] = [None] * len(items)
    gid = 0
    for g in group_bursts(inputs, gap_seconds, *similarity_thresholds(similarity), gray_loader=gray_loader):
        multi = len(g.members) > 1
        for i in g.members:
            out[i] = ItemGroup(gid if multi else None, len(g.members), g.kind if multi else "", i == g.best)
        gid += multi
    return out


def grouping_signature(items: Sequence, features: dict[str, np.ndarray], gap_seconds: float,
                       similarity: str = "normal") -> str:
    """A digest of everything :func:`find_groups_for_items` links frames by: the thresholds,
    ``gap_seconds``, and per item (in order) its path, the file's size and mtime (which
    stand for its pixels), capture time, exposure bias and features.  Equal digests give
    equal groups, so a reopened folder can take them from the catalog.  Not the scores:
    they only choose each group's best frame, which is chosen again from the scores of the
    day (a folder scored by ``photocull score`` opens in the window with its groups)."""
    h = hashlib.sha256()
    h.update(repr((TINY_SIDE, FEATURE_THRESHOLD, SSIM_THRESHOLD, COSINE_FLOOR, MAX_BURST_SHIFT, BRACKET_NCC,
                   BRACKET_MIN_EV, PANO_COSINE, PANO_NCC, PANO_MIN_OVERLAP, UNTIMED_EXTRA_COSINE,
                   UNTIMED_EXTRA_SSIM, float(gap_seconds), len(items))).encode())
    if similarity_thresholds(similarity) != SIMILARITY["normal"]:  # (the digests of "normal" as they were)
        h.update(repr(similarity_thresholds(similarity)).encode())
    for it in items:
        key = os.path.abspath(it.path)
        try:
            st = os.stat(key)
            ident = (st.st_size, st.st_mtime_ns)
        except OSError:
            ident = None
        h.update(os.fsencode(key) + b"\0")
        h.update(repr((ident, getattr(it, "capture_time", None), getattr(it, "exposure_bias", None))).encode())
        f = features.get(key)
        h.update(b"-" if f is None else struct.pack("<q", f.size) + str(f.dtype).encode() + np.ascontiguousarray(f).tobytes())
    return h.hexdigest()


class _Cancelled(Exception):
    pass


def groups_of_results(results: Sequence, catalog=None, gap_seconds: float = 2.0,
                      similarity: str = "normal") -> list[ItemGroup]:
    """Per scoring result (``path``, ``exif``, ``features``, ``tiny_gray``), its
    :class:`ItemGroup`: with ``catalog``, :func:`find_groups_cached` (features and tiny greys
    from it); without, from the results' own features and greys (decoding those missing)."""
    items = [_GroupItem(str(r.path), r.exif.capture_time, r.exif.exposure_bias, getattr(r, "mean", None))
             for r in results]
    if catalog is not None:
        found = find_groups_cached(items, catalog, gap_seconds, similarity=similarity)
    else:
        feats = {os.path.abspath(r.path): r.features for r in results if getattr(r, "features", None) is not None}
        grays = {os.path.abspath(r.path): r.tiny_gray for r in results
                 if getattr(r, "tiny_gray", None) is not None}
        found = find_groups_for_items(items, feats, gap_seconds, gray_loader=load_tiny_gray, grays=grays,
                                      similarity=similarity)
    return list(found) if found else [ItemGroup(None, 1, "", True) for _ in items]


class _GroupItem(NamedTuple):
    path: str
    capture_time: float | None
    exposure_bias: float | None
    mean: float | None


# The features the thresholds were calibrated on (efficientnet_lite0, multilevel + centre-
# surround statistics: every photocull technical or personal model stores them); the
# aesthetic network's 1024 pooled features, stored beside them, are not these.
FEATURE_DIM = 2224


def find_groups_cached(items: Sequence, catalog, gap_seconds: float = 2.0,
                       cancelled: Callable[[], bool] = lambda: False,
                       similarity: str = "normal") -> list[ItemGroup] | None:
    """:func:`find_groups_for_items` for a folder's photos, with ``catalog``
    (a :class:`~photocull.cull.catalog.Catalog`) as its cache: features are read from it;
    an unchanged folder (same :func:`grouping_signature`) gets the groups stored last
    time, without comparing a frame; otherwise the tiny greys of the frames that need a
    pixel check come from it (those it lacks are decoded, then remembered) and the groups
    found are stored.  Returns None as soon as ``cancelled()`` says so.  Use it from one
    thread (the catalog's connections are per thread)."""
    # as stored (float16): half the memory of float32 for a whole folder
    paths = [it.path for it in items]
    feats = catalog.any_features(paths, dtype=np.float16, dim=FEATURE_DIM) or catalog.any_features(paths, dtype=np.float16)
    if cancelled():
        return None
    # one order whoever asks (the window lists a folder by name, the command line as given)
    order = sorted(range(len(items)), key=lambda i: os.path.abspath(items[i].path))
    canon = [items[i] for i in order]
    found = _find_groups_canon(canon, feats, catalog, gap_seconds, cancelled, similarity)
    if found is None:
        return None
    out: list[ItemGroup] = [None] * len(items)  # type: ignore[list-item]
    for pos, i in enumerate(order):
        out[i] = found[pos]
    return out


def _find_groups_canon(items: Sequence, feats, catalog, gap_seconds: float, cancelled, similarity: str):
    signature = grouping_signature(items, feats, gap_seconds, similarity)
    known = _valid_grouping(catalog.grouping(signature), len(items))
    if known is not None:  # an unchanged folder: its groups as found last time, best by today's scores
        return _best_again(known, items)
    cached = CachedGrayLoader(catalog)

    def loader(path):
        if cancelled():
            raise _Cancelled
        return cached(path)

    try:
        result = find_groups_for_items(items, feats, gap_seconds, gray_loader=loader, similarity=similarity)
    except _Cancelled:
        return None
    finally:
        cached.flush()
    try:
        catalog.store_grouping(signature, [list(r) for r in result])
    except Exception as exc:  # noqa: BLE001 - a cache: never the reason grouping fails
        log.warning("could not remember the burst groups: %s", exc)
    return result


def _best_again(groups: list[ItemGroup], items: Sequence) -> list[ItemGroup]:
    """``groups`` with each group's best frame chosen from the items' ``mean`` as
    :func:`find_groups_for_items` chooses it."""
    members: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        if g.group is not None:
            members.setdefault(g.group, []).append(i)
    best = {gid: ranking.best_first(ms, mean=lambda i: getattr(items[i], "mean", None),
                                    path=lambda i: items[i].path)[0] for gid, ms in members.items()}
    return [g if g.group is None else g._replace(best=best[g.group] == i) for i, g in enumerate(groups)]


def _valid_grouping(rows, n: int) -> list[ItemGroup] | None:
    """Stored groups as :func:`find_groups_cached` returns them, or None if they are not
    ``n`` well-formed rows."""
    if not isinstance(rows, list) or len(rows) != n:
        return None
    out = []
    for r in rows:
        if not (isinstance(r, list) and len(r) == 4):
            return None
        g, size, kind, best = r
        if not ((g is None or isinstance(g, int)) and isinstance(size, int) and isinstance(kind, str)):
            return None
        out.append(ItemGroup(g, size, kind, bool(best)))
    return out


# --- pick the best of each burst ---------------------------------------------------------------

def marked_by_user(item) -> bool:
    """Whether ``item`` (duck-typed: ``flag``, ``rating``, ``label``) carries a mark, which
    automatic actions treat as the user's and never change: a flag (pick or reject), any
    stars, or a colour label.  photocull does not know who set a mark (the user, Lightroom,
    an earlier run of an automatic action): every mark counts; undo takes a run back."""
    return bool(getattr(item, "flag", 0) or getattr(item, "rating", 0) or getattr(item, "label", None))


def _settles_the_pick(item) -> bool:
    """A pick or stars: the user has said which frame of the group to keep.  A reject or a
    colour label alone does not (a label is often a workflow tag)."""
    return getattr(item, "flag", 0) == 1 or (getattr(item, "flag", 0) != -1 and getattr(item, "rating", 0) > 0)


@dataclass
class BestOfGroups:
    """What *Pick best of each burst* would do; nothing is changed until the caller applies
    it.  ``changes``: ``(item, flag)`` pairs (1 pick, -1 reject); ``picks`` and ``rejects``:
    the same items; ``left``: the marked frames of the bursts, left as they are.  All in
    the order the items were given.  Iterating gives ``changes``; its length is theirs."""
    changes: list[tuple[object, int]] = field(default_factory=list)
    left: list = field(default_factory=list)

    @property
    def picks(self) -> list:
        return [it for it, flag in self.changes if flag > 0]

    @property
    def rejects(self) -> list:
        return [it for it, flag in self.changes if flag < 0]

    def __iter__(self):
        return iter(self.changes)

    def __len__(self) -> int:
        return len(self.changes)

    @property
    def summary(self) -> str:
        """"1 pick, 5 rejects; 1 photo you marked is left as it is" (no full stop)."""
        def n(k: int, word: str) -> str:
            return f"{k} {word}{'s' * (k != 1)}"

        m = len(self.left)
        kept = f"{n(m, 'photo')} you marked {'is' if m == 1 else 'are'} left as {'it is' if m == 1 else 'they are'}"
        return f"{n(len(self.picks), 'pick')}, {n(len(self.rejects), 'reject')}; {kept}"


def best_of_groups_changes(items: Sequence) -> BestOfGroups:
    """What picking the best frame of each burst and rejecting the rest would change, for
    items carrying their :class:`ItemGroup` as ``group``, ``group_kind`` and
    ``group_best`` and their marks as ``flag``, ``rating``, ``label`` (the window's photo
    items; only read).

    Your marks rule: a frame with any mark (:func:`marked_by_user`) is never changed.
    In each burst:

    * when a frame has a pick or stars, the user has chosen: no pick is added, and only
      the unmarked frames are rejected;
    * otherwise the best unmarked frame is picked (the group's best or, when the user
      rejected or labelled that one, the unmarked frame that ranks first) and the other
      unmarked frames are rejected;
    * a burst whose frames are all marked is left alone.

    Brackets and panoramas (every frame is needed) and single photos are never touched.
    """
    bursts: dict[object, list[int]] = {}
    for i, it in enumerate(items):
        if getattr(it, "group", None) is not None and getattr(it, "group_kind", "") == "burst":
            bursts.setdefault(it.group, []).append(i)
    flags: dict[int, int] = {}
    left: set[int] = set()
    for frames in bursts.values():
        free = [i for i in frames if not marked_by_user(items[i])]
        left.update(i for i in frames if marked_by_user(items[i]))
        if not free:
            continue
        if not any(_settles_the_pick(items[i]) for i in frames):
            best = next((i for i in free if getattr(items[i], "group_best", False)), None)
            if best is None:
                best = ranking.best_first(free, mean=lambda i: getattr(items[i], "mean", None),
                                          path=lambda i: items[i].path)[0]
            flags[best] = 1
        for i in free:
            flags.setdefault(i, -1)
    return BestOfGroups([(items[i], flags[i]) for i in sorted(flags)], [items[i] for i in sorted(left)])
