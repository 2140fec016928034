"""Focus at 100 %: how sharp the subject is at the view's own resolution, against what the frame allows.

``analyse_focus(image, faces=None)`` takes the upright RGB view the pipeline decodes for the
analyses (a JPEG at 1/2 DCT scale: a 6000x4000 file arrives as 3000x2000) and returns a
:class:`FocusReport`: a small sharpness grid (the loupe's focus map), the subject's sharpness,
the sharpest the frame gets, where the subject is, and a verdict ("missed focus / soft at
100 %", "camera shake", "subject soft, background sharp", or nothing; or "can't judge focus"
for a tiny, flat or grey frame).

How it measures (numpy, Pillow, scipy; no torch, no Qt, no OpenCV; ~11-12 ms for 3000x2000 on one core):

* Sharpness is measured at the view's resolution, never on a downscaled copy: one 48 px tile
  per grid cell (8x12 for a 3:2 frame) where the cell has the most edges (found on a 1/8
  nearest-sampled map), plus tiles on the faces when they are given (2x2 on a big face).
* A tile's blur is the width of its edges (the sigma of a Gaussian blur, in view px), from its
  gradient energy at three scales (as it is, re-blurred by a Gaussian of sigma 1, and twice):
  how fast the energy falls says how blurred the edges already were, whatever their contrast
  (grass and an eyelash read alike when equally in focus).  Two readings of the fall are kept,
  the larger: the step-edge one (which thin lines and ripples fool) and a profile-free one
  (which long smears fool).  So a burst's soft frame reads softer than its sharp twin.
* Edges are sorted by the direction of their normal (0 / 45 / 90 / 135 degrees) and each
  direction measured against its own strongest edges; a tile's blur is the root mean square of
  its directions' blurs, so the edges a shake smeared count as much as the sharp ones along it.
* A shake is the same anisotropy in every cell.  It is read from the derivative ALONG each of
  eight directions (from each tile's gradient structure tensor at the three scales), not from
  edges binned by their normal: a shake takes the fine energy out of the derivative along its
  path whatever the edges' own directions, while the binned edges mostly show the ones it left
  sharp (so shakes between the axes were read as sharp).  The median over cells of the log-ratio
  of blur along vs across, for the pairs 0/90, 45/135, 22.5/112.5 and 67.5/157.5 degrees, gives
  its strength and direction; it must stand out of the median's noise (~1/sqrt(cells)) and
  smear the frame visibly: its sharpest quarter of cells along the shake blurrier than across
  it by SHAKE_EXTENT px (sqrt(along^2 - across^2)), or a frame whose sharpest tenth is blurred.
  A sharp scene's own anisotropy (grass, a city's verticals, downscaled web photos) fails one
  of the two.
* The subject: the faces when given (each face's sharpest half of tiles; the sharpest face);
  otherwise the salient region (colours unlike the frame's top and side borders, weighted
  towards the centre), its sharpest quarter of cells -- not the sharpest cells of the frame,
  so a sharp background never decides where a portrait's subject is and the subject stays the
  same region across a burst.  ``best_sharpness`` is the frame's sharpest tenth of cells.
* Without faces, "subject soft, background sharp" needs strong evidence: the salient region
  soft (no sharp tile in it, not so blurred that it is a bokeh) inside a soft region of at least
  SUBJECT_CELLS cells of the focus map; SHARP_SHARE of the frame's cells elsewhere BG_MARGIN
  times sharper, reaching the frame's edges (a background); and that sharp part at most
  SHARP_SALIENCE as salient as the subject (else it may be the subject, in focus).

A soft background is never a fault: the verdict looks at the subject against the frame's best.
Thresholds are in pixels of blur at the view (about half the file's resolution for big
JPEGs); ``bench/focus.py`` calibrates and checks them.
"""
from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image

__all__ = ["FocusReport", "analyse_focus", "VERDICTS", "FOCUS_REASONS"]

# -- what it says ----------------------------------------------------------------------------
SHARP, SOFT, SHAKE, WRONG, UNJUDGED = "sharp", "soft", "shake", "subject_soft", "unjudged"
VERDICTS = (SHARP, SOFT, SHAKE, WRONG, UNJUDGED)
FOCUS_REASONS = {
    SOFT: "missed focus / soft at 100 %",
    SHAKE: "camera shake",
    WRONG: "subject soft, background sharp",
}

# -- how it measures ---------------------------------------------------------------------------
GRID_LONG = 12        # cells along the long side (8x12 for 3:2, 9x12 for 4:3)
TILE = 48             # measured tile side, view px (48: 13 ms for 3000x2000; 64 measures alike, costs 17)
MARGIN = 9            # two re-blurs (5 taps each) and the 2x2 gradient eat 9 px of a tile
MIN_SIDE = 128        # below this (short side) focus is not judged: "at 100 %" means little on a thumbnail-sized file
SMALL_SIDE = 48       # the saliency map's short side (about)
DETAIL = 6.0          # a tile has detail when its strongest re-blurred edge rises this many grey levels per px
MIN_DETAIL_CELLS = 3  # fewer cells with detail: can't judge focus
BEST_K = 3            # at least this many tiles pooled for the frame's best and for the subject ...
BEST_FRAC = 0.10      # ... or this share of the frame's cells for the best ...
SUBJECT_FRAC = 0.25   # ... or of the salient region's cells for the subject (a face: its sharpest half)
EDGE_SHARE = 0.2      # a tile's edge pixels: re-blurred gradient energy above this share of the peak in their direction
MAX_BLUR = 4.0        # blur (view px) beyond which a direction counts as this (smooth shading, not an edge)
SHAKE_CELLS = 6       # cells with edges both ways needed to see a shake
SHAKE_DIRS = 8        # directions the blur along is measured in, for a shake (every 22.5 degrees)
SHAKE_SHARE = 0.25    # a cell measures a direction holding this share of its strongest direction's energy
SHAKE_POOL = 0.25     # the blur along / across a shake: the frame's sharpest quarter of cells in that direction

# -- when it says it (blur: Gaussian sigma in view px; calibrated by bench/focus.py) -------------
SOFT_BLUR = 1.15      # the frame's sharpest tenth blurrier than this: nothing is sharp
SUBJECT_BLUR = 1.3    # the subject blurrier than this and ...
BG_MARGIN = 1.5       # ... this many times the frame's best: the subject is soft, the frame is not;
SUBJECT_CELLS = 8     # without faces: the soft region around the salient one spans this many cells (a thin patch is not enough) ...
SHARP_SHARE = 0.08    # ... this share of the frame's detail cells outside it BG_MARGIN times sharper than it ...
SHARP_EDGE = 2        # ... at least this many of them on the frame's outer ring of cells (a background) ...
SHARP_SALIENCE = 0.4  # ... and no more than this salient (mean, against the subject's): the sharp part is not the subject
BOKEH_BLUR = 2.5      # and the salient region no blurrier than this (beyond: a background's bokeh)
SHAKE_LOG = 0.05      # median log-ratio of blur along vs across one direction (1.05x) ...
SHAKE_NOISE = 0.6     # ... plus this / sqrt(cells measured): 0.11 with 100 cells, 0.16 with 30, ...
SHAKE_EXTENT = 0.55   # ... and a smear sqrt(along^2 - across^2) of at least this (view px: a shake seen at 100 %)
SHAKE_BLUR = 0.7      # ... or the frame's sharpest tenth at least this blurred (a long smear, whose blur is underread)
BINNED_LOG, BINNED_NOISE = 0.2, 0.8  # the edges binned by their normal this anisotropic: their angle is the shake's


def sharpness_of(blur_px: float) -> float:
    """The 0..1 sharpness shown for a blur (sigma, view px): 1 / (1 + blur)."""
    return 1.0 / (1.0 + max(0.0, float(blur_px)))


def blur_of(sharpness: float) -> float:
    """The blur (sigma, view px) behind a 0..1 sharpness; inf for 0."""
    return math.inf if sharpness <= 0 else 1.0 / sharpness - 1.0


@dataclass(frozen=True, eq=False)
class FocusReport:
    """What :func:`analyse_focus` found.

    ``grid``: sharpness per cell, uint8 (0: no detail to judge; 1..255: ``sharpness * 255``),
    rows x cols of the upright frame.  ``subject_sharpness`` / ``best_sharpness``: 0..1
    (``1 / (1 + blur)``, blur the Gaussian sigma in view px; 0 when not judged).
    ``subject_box``: (x0, y0, x1, y1) fractions of the frame.  ``verdict``: one of
    :data:`VERDICTS`.  ``shake_angle``: the direction of the shake in degrees (0 = horizontal,
    counter-clockwise), None unless the verdict is shake.  ``subject_from``: "faces",
    "salient" or "frame".  ``note``: why focus was not judged ('' otherwise).
    """

    grid: np.ndarray
    subject_sharpness: float
    best_sharpness: float
    subject_box: tuple[float, float, float, float]
    verdict: str
    shake_angle: float | None = None
    subject_from: str = "frame"
    note: str = ""

    def __eq__(self, other) -> bool:
        if not isinstance(other, FocusReport):
            return NotImplemented
        return (np.array_equal(self.grid, other.grid) and self.verdict == other.verdict
                and (self.subject_sharpness, self.best_sharpness, tuple(self.subject_box), self.shake_angle,
                     self.subject_from, self.note)
                == (other.subject_sharpness, other.best_sharpness, tuple(other.subject_box), other.shake_angle,
                    other.subject_from, other.note))

    __hash__ = None

    @property
    def judged(self) -> bool:
        return self.verdict != UNJUDGED

    @property
    def is_fault(self) -> bool:
        """Missed focus, shake or the wrong thing in focus (the overall ranking's faults)."""
        return self.verdict in FOCUS_REASONS

    @property
    def subject_blur_px(self) -> float:
        return blur_of(self.subject_sharpness)

    def supports(self, family: str) -> bool:
        """Whether the technical model may name ``family`` beside this report (the rule of
        :meth:`photocull.analysis.exposure.ExposureReport.supports`): its 224 px "blurry / out
        of focus" yields to a focus judged here at half the file's resolution or more (the
        retina and the shallow depth-of-field portraits it calls blurry are sharp at 100 %).
        Its "motion blur" stays: on web-sized photos a strong shake (16 px at 512 px) smears
        one direction's edges away entirely and is then read as sharp here (57 % named, the
        model 95 %), so the model is kept for it (``python bench/focus_rule.py``: clean web
        photos with a blur, shake or focus reason 7 -> 4 of 608; blurred copies still named
        95 %, shaken ones as before)."""
        return not (family == "blur" and self.judged)

    def reason(self) -> str:
        """The fault in plain words; '' when the subject is sharp (a soft background is
        never a fault) or when focus could not be judged."""
        return FOCUS_REASONS.get(self.verdict, "")

    def describe(self) -> str:
        """One line for a tooltip: the fault, "sharp", or "can't judge focus (why)"."""
        if self.verdict == UNJUDGED:
            return f"can't judge focus ({self.note})" if self.note else "can't judge focus"
        return self.reason() or "sharp"

    def sharpness_map(self) -> np.ndarray:
        """The grid as float 0..1, NaN where a cell has no detail (drawn transparent)."""
        g = self.grid.astype(np.float32) / 255.0
        g[self.grid == 0] = np.nan
        return g

    # -- storage ---------------------------------------------------------------------------
    def to_json(self) -> str:
        rows, cols = self.grid.shape
        d = {"v": 1, "grid": [rows, cols, base64.b64encode(self.grid.astype(np.uint8).tobytes()).decode("ascii")],
             "subject": round(self.subject_sharpness, 4), "best": round(self.best_sharpness, 4),
             "box": [round(v, 4) for v in self.subject_box], "verdict": self.verdict, "from": self.subject_from}
        if self.shake_angle is not None:
            d["angle"] = round(self.shake_angle, 1)
        if self.note:
            d["note"] = self.note
        return json.dumps(d, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes | dict) -> FocusReport:
        """The report :meth:`to_json` wrote (or its parsed object); ValueError for anything else."""
        try:
            d = text if isinstance(text, dict) else json.loads(text)
            if not isinstance(d, dict) or d.get("v") != 1:
                raise ValueError("not a focus report (version 1)")
            rows, cols, b64 = d["grid"]
            if not (isinstance(rows, int) and isinstance(cols, int) and 0 <= rows <= 64 and 0 <= cols <= 64):
                raise ValueError("bad grid shape")
            raw = base64.b64decode(b64, validate=True)
            if len(raw) != rows * cols:
                raise ValueError("grid size does not match its shape")
            grid = np.frombuffer(raw, dtype=np.uint8).reshape(rows, cols).copy()
            subject, best = _unit(d["subject"]), _unit(d["best"])
            box = tuple(_unit(v) for v in d["box"])
            if len(box) != 4 or box[0] > box[2] or box[1] > box[3]:
                raise ValueError("bad subject box")
            verdict = d["verdict"]
            if verdict not in VERDICTS:
                raise ValueError(f"unknown verdict {verdict!r}")
            angle = d.get("angle")
            if angle is not None and (isinstance(angle, bool) or not isinstance(angle, (int, float))
                                      or not -180 <= angle <= 180):
                raise ValueError("bad shake angle")
            source, note = d.get("from", "frame"), d.get("note", "")
            if source not in ("faces", "salient", "frame") or not isinstance(note, str):
                raise ValueError("bad subject source or note")
        except ValueError:
            raise
        except (KeyError, TypeError, AttributeError, base64.binascii.Error) as exc:
            raise ValueError(f"malformed focus report: {exc!r}") from None
        return cls(grid, subject, best, box, verdict, None if angle is None else float(angle), source, note)


def _unit(v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
        raise ValueError(f"expected a number in 0..1, got {v!r}")
    return float(v)


def _unjudged(note: str, shape=(0, 0)) -> FocusReport:
    return FocusReport(np.zeros(shape, np.uint8), 0.0, 0.0, (0.0, 0.0, 1.0, 1.0), UNJUDGED, None, "frame", note)


# -- the input -----------------------------------------------------------------------------------
HALF_MIN_SIDE = 1000  # a file is judged at half its resolution when that keeps this much (short side)


def half_factor(im: Image.Image) -> int:
    """By how much to reduce the decode ``im`` so that focus is judged on the file at **half**
    its resolution, the scale every threshold here was set at (bench/focus.py), whatever
    decode the pipeline made: a 24 MP JPEG comes at 1/2 (3000 x 2000): 1; a 12 MP phone file
    comes whole (its short side is under the 2000 px the decode keeps at 1/2): 2 (judged
    whole, a sharp phone photo read ~1.1 px soft at its finest, at the "missed focus" limit,
    where the same photo at 1/2 reads ~0.55).  1 when the half would be under
    :data:`HALF_MIN_SIDE` px (a web photo is judged at its own size).  The file's size is the
    decode's record of it (``photocull.media.loaders.FILE_SIZE`` in ``im.info``), else the
    decode's own size (HEIF, a RAW's preview: decoded whole)."""
    from photocull.media.loaders import FILE_SIZE

    size = im.info.get(FILE_SIZE) or im.size
    k = int(2 * min(im.size) / max(1, min(size)) + 1e-6)  # 2: the decode is the file's size; 1: its half
    return k if k >= 2 and min(im.size) // k >= HALF_MIN_SIDE else 1


def _as_image(image) -> Image.Image:
    if isinstance(image, Image.Image):
        if image.mode in ("RGB", "L"):
            return image
        if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            a = np.asarray(image, dtype=np.float64)
            top = a.max() if a.size else 0.0
            return Image.fromarray((a * (255.0 / top) if top > 255 else a).clip(0, 255).astype(np.uint8))
        return image.convert("RGB")
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 3 and a.shape[2] >= 3:
        a = a[..., :3]
    elif a.ndim != 2:
        raise ValueError(f"expected an RGB image or an HxWx3 array, got shape {a.shape}")
    if a.dtype != np.uint8:
        a = np.asarray(a, dtype=np.float64)
        a = np.nan_to_num(a)
        if a.size and a.max() <= 1.0:
            a = a * 255.0
        a = a.clip(0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(a))


def _grid_shape(w: int, h: int) -> tuple[int, int]:
    long_cells = int(min(GRID_LONG, max(1, max(w, h) // 32)))
    short = int(min(long_cells, max(1, round(long_cells * min(w, h) / max(w, h)))))
    return (short, long_cells) if w >= h else (long_cells, short)


def _edges(lo: np.ndarray) -> np.ndarray:
    """Gradient energy of a small grey map (same shape)."""
    e = np.zeros_like(lo)
    dx = np.diff(lo, axis=1)
    dy = np.diff(lo, axis=0)
    e[:, :-1] += dx * dx
    e[:-1, :] += dy * dy
    return e


# -- the measure ---------------------------------------------------------------------------------
def _blur5(t: np.ndarray) -> np.ndarray:
    """The binomial 1-4-6-4-1 / 16 each way (a Gaussian of sigma 1) of a tile stack, 'valid',
    as float32.  uint8 tiles are summed exactly in uint16 (at most 256 * 255)."""
    if t.dtype == np.uint8:
        t = t.astype(np.uint16)
        six, four, scale = np.uint16(6), np.uint16(4), np.float32(1 / 256)
    else:
        six, four, scale = np.float32(6), np.float32(4), None
    hx = t[:, :, 2:-2] * six
    hx += t[:, :, :-4]
    hx += t[:, :, 4:]
    tmp = t[:, :, 1:-3] + t[:, :, 3:-1]
    tmp *= four
    hx += tmp
    out = hx[:, 2:-2] * six
    out += hx[:, :-4]
    out += hx[:, 4:]
    tmp = hx[:, 1:-3] + hx[:, 3:-1]
    tmp *= four
    out += tmp
    if scale is not None:
        return out.astype(np.float32) * scale
    out *= np.float32(1 / 256)
    return out


def _tile_energies(tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For a stack of uint8 (or float32) tiles (n, m, m), by the direction of the edge normal in
    four bins (0 / 45 / 90 / 135 degrees from the x axis, counter-clockwise with y up):

    * ``E`` (3 x n x 4): the gradient energy at three scales -- the pixels as they are, and
      re-blurred once and twice by a Gaussian of sigma 1 (sigma^2 = 0, 1, 2) -- over the edges
      of each direction: the pixels whose re-blurred gradient energy is above EDGE_SHARE of the
      strongest of that direction in the tile (per direction, so that the edges a shake smeared
      are measured beside the sharp ones that run along it);
    * ``bin_peak`` (n x 4): each direction's strongest re-blurred gradient (grey levels per px);
    * ``peak`` (n): the tile's strongest; ``count`` (n x 4): the edge pixels used per direction;
    * ``T`` (3 x n x 3): at the three scales, the sums of p^2, q^2 and pq over the tile's
      strongest edges (re-blurred energy above EDGE_SHARE of its peak), whatever their
      direction: the gradient's structure tensor, from which :func:`_along` gets the energy of
      the derivative along any direction (for the shake).

    The measured grid is the central (m - 9)^2 pixel corners.  Gradients are the 2x2 Roberts
    pair (p along the down-right diagonal, q along the up-right one), isotropic, at pixel
    corners.  Every other candidate pixel is used (the sums are ratios: half the pixels measure
    the same and cost half)."""
    n, m, _ = tiles.shape
    bl = _blur5(tiles)          # offset 2
    bl2 = _blur5(bl)            # offset 4
    mm = m - 9                  # corners at offset 4 .. m - 5
    p1 = bl[:, 3:3 + mm, 3:3 + mm] - bl[:, 2:2 + mm, 2:2 + mm]
    q1 = bl[:, 2:2 + mm, 3:3 + mm] - bl[:, 3:3 + mm, 2:2 + mm]
    m1 = p1 * p1
    m1 += q1 * q1
    peak = m1.reshape(n, -1).max(axis=1)
    # candidates: anything above 1/50 of the tile's peak energy (1/7 of its gradient), every other
    sel = np.flatnonzero(m1 > (np.float32(0.02) * peak)[:, None, None])[::2]
    k = sel // (mm * mm)
    p1, q1, e1 = p1.ravel()[sel], q1.ravel()[sel], m1.ravel()[sel]
    # the bin of the edge normal, from the doubled angle of the re-blurred gradient: with the
    # normal at phi (y up), 2pq = |g|^2 cos 2phi and q^2 - p^2 = |g|^2 sin 2phi
    cos2, sin2 = 2.0 * p1 * q1, q1 * q1 - p1 * p1
    key = k * 4 + np.where(np.abs(cos2) >= np.abs(sin2), np.where(cos2 > 0, 0, 2), np.where(sin2 > 0, 1, 3))
    # each direction's peak, as an 8-norm (a smooth maximum: a lone noisy pixel weighs less)
    e64 = e1.astype(np.float64) * (1.0 / max(float(peak.max()), 1e-12))
    e64 *= e64
    e64 *= e64
    e64 *= e64
    bpk = (np.bincount(key, weights=e64, minlength=4 * n) ** 0.125) * max(float(peak.max()), 1e-12)
    keep = np.flatnonzero(e1 > np.float32(EDGE_SHARE) * bpk[key])
    sel, key, e1, p1, q1 = sel[keep], key[keep], e1[keep], p1[keep], q1[keep]
    k = key >> 2
    # the tile's strongest edges, whatever their direction (every one of them was kept above)
    strong = np.flatnonzero(e1 > np.float32(EDGE_SHARE) * peak[k])
    r = sel % (mm * mm)
    i, j = r // mm, r % mm

    def roberts(arr: np.ndarray, off: int) -> tuple[np.ndarray, np.ndarray]:
        s = arr.shape[1]
        f = arr.ravel()
        base = k * (s * s) + (i + off) * s + (j + off)
        return f[base + s + 1].astype(np.float32) - f[base], f[base + 1].astype(np.float32) - f[base + s]

    (p0, q0), (p2, q2) = roberts(tiles, 4), roberts(bl2, 0)
    e0, e2 = p0 * p0 + q0 * q0, p2 * p2 + q2 * q2
    E = np.stack([np.bincount(key, weights=e, minlength=4 * n).reshape(n, 4) for e in (e0, e1, e2)])
    # p^2, q^2, pq at the three scales, summed per tile in one pass (the pixels come tile by tile)
    prod = np.empty((9, strong.size), np.float32)
    for c, (p, q) in enumerate(((p0, q0), (p1, q1), (p2, q2))):
        p, q = p[strong], q[strong]
        np.multiply(p, p, out=prod[3 * c])
        np.multiply(q, q, out=prod[3 * c + 1])
        np.multiply(p, q, out=prod[3 * c + 2])
    T = np.zeros((9, n))
    ks = k[strong]
    if ks.size:
        starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
        T[:, ks[starts]] = np.add.reduceat(prod, starts, axis=1)
    T = T.reshape(3, 3, n).transpose(0, 2, 1)
    return (np.sqrt(peak / 2.0), E, np.bincount(key, minlength=4 * n).reshape(n, 4),
            np.sqrt(bpk.reshape(n, 4) / 2.0), T)


# Two estimates of the blur, each wrong in its own way, so the larger is kept:
# * a step edge blurred by sigma has gradient energy ~ 1 / sqrt(sigma^2 + s^2) after a re-blur of
#   s, so the fine / once re-blurred ratio gives sigma; a thin line (energy ~ (sigma^2 + s^2)^-1.5:
#   water ripples, hair, fine texture) reads far too sharp;
# * with a = 1 for an edge and 3 for a line, energy ~ (sigma^2 + s^2)^(-a/2), and the ratio of the
#   log drops from s^2 = 0 to 1 and from 1 to 2 depends on sigma alone, whatever the profile; but
#   a long straight smear (a shake's ramp, which hardly changes under a small re-blur) reads too
#   sharp there, while the edge model sees it.
_SIG = np.linspace(0.02, 8.0, 4000)
_LOGR = np.log((_SIG ** 2 + 2) / (_SIG ** 2 + 1)) / np.log((_SIG ** 2 + 1) / _SIG ** 2)


def _blur_edge(e0, e1) -> np.ndarray:
    """Gaussian sigma (view px) of a step edge from its fine / once re-blurred energy ratio."""
    rho = np.asarray(e0, dtype=np.float64) / np.maximum(np.asarray(e1, dtype=np.float64), 1e-12)
    return 1.0 / np.sqrt(np.maximum(rho * rho - 1.0, 1e-4))


def _blur_profile(e0, e1, e2) -> np.ndarray:
    """Gaussian sigma (view px) from gradient energies at three scales, whatever the profile."""
    e0, e1, e2 = (np.maximum(np.asarray(e, dtype=np.float64), 1e-12) for e in (e0, e1, e2))
    drop01, drop12 = np.log(e0 / e1), np.log(e1 / e2)
    ratio = np.where(drop01 > 1e-6, drop12 / np.maximum(drop01, 1e-6), np.inf)
    return np.interp(ratio, _LOGR, _SIG)


def _balanced_blur(E: np.ndarray, use: np.ndarray) -> np.ndarray:
    """Per tile (E: 3 x n x 4 energies by edge direction; ``use``: n x 4, the directions with
    edges), the blur with every direction counting alike (the root mean square of their blurs):
    a shake smears one direction, which would otherwise be outvoted by the sharp ones."""
    b = np.minimum(_blur(E[0], E[1], E[2]), MAX_BLUR)
    return np.sqrt((b * b * use).sum(axis=1) / np.maximum(use.sum(axis=1), 1))


def _blur(e0, e1, e2) -> np.ndarray:
    """The blur (Gaussian sigma, view px) behind gradient energies at re-blurs sigma^2 = 0, 1, 2."""
    return np.maximum(_blur_edge(e0, e1), _blur_profile(e0, e1, e2))


# -- the subject -----------------------------------------------------------------------------------
def _salient_box(rgb: np.ndarray) -> tuple[tuple[float, float, float, float] | None, np.ndarray | None]:
    """The salient region of a small float RGB map: colours unlike the top and side borders,
    weighted towards the centre, and the saliency map itself (same shape as the map; None when
    the map is too small).  The box is None when nothing stands out."""
    from scipy import ndimage  # (not on import: parsing a stored report needs no scipy)
    h, w, _ = rgb.shape
    if h < 8 or w < 8:
        return None, None
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    feat = np.stack([(r + g + b) * (1 / 3), 1.5 * (r - g), 1.5 * (0.5 * (r + g) - b)], -1)
    feat = ndimage.uniform_filter1d(feat, 3, axis=0, mode="nearest")
    feat = ndimage.uniform_filter1d(feat, 3, axis=1, mode="nearest")
    e = max(1, min(h, w) // 10)
    sal = None
    for border in (feat[:e], feat[:, :e], feat[:, -e:]):
        px = border.reshape(-1, 3)
        d = feat - px.mean(axis=0)
        d = np.sqrt(np.einsum("ijk,ijk->ij", d, d)) * (1.0 / (px.std(axis=0).mean() + 4.0))
        sal = d if sal is None else np.minimum(sal, d)
    # the centre prior (separable): a Gaussian a little below the middle
    gx = np.exp(-((np.arange(w) + 0.5) / w - 0.5) ** 2 / (2 * 0.28 ** 2))
    gy = np.exp(-((np.arange(h) + 0.5) / h - 0.55) ** 2 / (2 * 0.32 ** 2))
    sal = sal * np.outer(gy, gx)
    top = sal.max()
    if top < 1.5:
        return None, sal
    lab, _ = ndimage.label(sal >= 0.5 * top)
    ys, xs = np.nonzero(lab == lab[np.unravel_index(np.argmax(sal), sal.shape)])
    x0, x1, y0, y1 = xs.min() / w, (xs.max() + 1) / w, ys.min() / h, (ys.max() + 1) / h
    # at least a sixth of the frame each way, around the region's centre
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    hw, hh = max((x1 - x0) / 2, 1 / 12), max((y1 - y0) / 2, 1 / 12)
    return (max(0.0, cx - hw), max(0.0, cy - hh), min(1.0, cx + hw), min(1.0, cy + hh)), sal


def _cell_means(a: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """A small map's mean over each grid cell (flattened, rows x cols)."""
    return np.asarray(Image.fromarray(np.ascontiguousarray(a, dtype=np.float32)).resize(
        (cols, rows), Image.Resampling.BOX), dtype=np.float64).ravel()


def _face_boxes(faces) -> list[tuple[float, float, float, float]]:
    out = []
    for f in faces or ():
        box = getattr(f, "box", f)
        try:
            x0, y0, x1, y1 = (float(v) for v in box)
        except (TypeError, ValueError):
            continue
        x0, x1 = sorted((min(max(x0, 0.0), 1.0), min(max(x1, 0.0), 1.0)))
        y0, y1 = sorted((min(max(y0, 0.0), 1.0), min(max(y1, 0.0), 1.0)))
        if x1 - x0 > 0 and y1 - y0 > 0 and all(map(math.isfinite, (x0, y0, x1, y1))):
            out.append((x0, y0, x1, y1))
    return out


# -- the analysis ------------------------------------------------------------------------------------
@dataclass
class Measures:
    """What the verdict is decided from (blurs: Gaussian sigma in view px)."""

    grid: np.ndarray
    best_blur: float          # the frame's sharpest tenth of cells, pooled
    subject_blur: float       # the subject's sharpest tiles, pooled
    box: tuple
    subject_from: str
    sharp_elsewhere: float    # share of the frame's detail cells outside the subject BG_MARGIN times sharper than it
    subject_sharpest: float   # the subject's single sharpest tile
    shake: np.ndarray         # the blur's anisotropy: median log-ratio along / across, at twice the shake's angle
    shake_cells: int          # cells behind it (0: too few to tell)
    cell_blur: np.ndarray     # rows x cols, NaN where no detail
    shake_extent: float = 0.0  # the smear along the shake, sqrt(along^2 - across^2), view px
    subject_cells: int = 0     # without faces: the soft region holding the salient one (4-connected cells blurrier than SUBJECT_BLUR)
    sharp_on_edge: int = 0     # of the sharp cells outside the subject, those on the frame's outer ring
    sharp_salience: float = math.inf  # their mean saliency against the salient region's (without faces)


def _grey_tiles(im: Image.Image, centres, n: int, r: int = 1) -> np.ndarray:
    """The n x n grey (ITU-R 601 luma) tiles around ``centres`` (row, col), as uint8 (k, n, n):
    cropped into one mosaic that is converted once (converting the whole view costs more).
    ``r``: the tiles of ``im.reduce(r)`` (positions in its pixels), each reduced from its own
    box of ``im``: the same pixels without reducing the whole view."""
    w, h = im.size[0] // r, im.size[1] // r
    per_row = max(1, 4096 // n)
    rows = -(-len(centres) // per_row)
    mosaic = Image.new(im.mode, (per_row * n, rows * n))
    for k, (cy, cx) in enumerate(centres):
        y = int(min(max(cy - n // 2, 0), h - n))
        x = int(min(max(cx - n // 2, 0), w - n))
        box = (x * r, y * r, (x + n) * r, (y + n) * r)
        mosaic.paste(im.reduce(r, box=box) if r > 1 else im.crop(box), ((k % per_row) * n, (k // per_row) * n))
    a = np.asarray(mosaic if mosaic.mode == "L" else mosaic.convert("L"))
    return a.reshape(rows, n, per_row, n).transpose(0, 2, 1, 3).reshape(-1, n, n)[:len(centres)]


def _tile_centres(e: np.ndarray, f: int, rows: int, cols: int) -> list[tuple[int, int]]:
    """Per cell, the view position of the most edges (``e``: edge energy summed over a tile's
    footprint on the map sampled every ``f`` px; the last partial row and column of map pixels
    belong to no cell)."""
    lh, lw = e.shape
    ch, cw = max(1, lh // rows), max(1, lw // cols)
    if ch * rows > lh or cw * cols > lw:            # a map smaller than the grid: pad it
        e = np.pad(e, ((0, max(0, ch * rows - lh)), (0, max(0, cw * cols - lw))))
    blocks = e[:rows * ch, :cols * cw].reshape(rows, ch, cols, cw).transpose(0, 2, 1, 3).reshape(rows, cols, -1)
    p = blocks.argmax(axis=2)
    y = (np.arange(rows)[:, None] * ch + p // cw) * f + f // 2
    x = (np.arange(cols)[None, :] * cw + p % cw) * f + f // 2
    return list(zip(y.ravel().tolist(), x.ravel().tolist()))


def _face_centres(e: np.ndarray, f: int, w: int, h: int, boxes, tile: int) -> tuple[list, list]:
    """Tiles on the faces: 2x2 on a face of 1.5 tiles or more (each on its quarter's edges), else
    one on its centre.  Returns the centres and, for each, the face it belongs to."""
    lh, lw = e.shape
    centres, owner = [], []
    for fi, (x0, y0, x1, y1) in enumerate(boxes):
        bx0, by0, bx1, by1 = x0 * w, y0 * h, x1 * w, y1 * h
        split = 2 if min(bx1 - bx0, by1 - by0) >= 1.5 * tile else 1
        for gy in range(split):
            for gx in range(split):
                sx0, sx1 = bx0 + (bx1 - bx0) * gx / split, bx0 + (bx1 - bx0) * (gx + 1) / split
                sy0, sy1 = by0 + (by1 - by0) * gy / split, by0 + (by1 - by0) * (gy + 1) / split
                lx0, ly0 = min(int(sx0 // f), lw - 1), min(int(sy0 // f), lh - 1)
                blk = e[ly0:max(ly0 + 1, min(lh, int(math.ceil(sy1 / f)))),
                        lx0:max(lx0 + 1, min(lw, int(math.ceil(sx1 / f))))]
                if split == 1:
                    centres.append((int((sy0 + sy1) / 2), int((sx0 + sx1) / 2)))
                else:
                    p = int(np.argmax(blk))
                    centres.append(((ly0 + p // blk.shape[1]) * f + f // 2, (lx0 + p % blk.shape[1]) * f + f // 2))
                owner.append(fi)
    return centres, owner


def measure(image, faces: Sequence | None = None, reduce: int = 1) -> Measures | FocusReport:
    """The measures behind :func:`analyse_focus`, or its report when focus can't be judged."""
    from scipy import ndimage  # (not on import: parsing a stored report needs no scipy)
    im = _as_image(image)
    r = max(1, int(reduce))
    w, h = im.size[0] // r, im.size[1] // r  # the view judged: ``im.reduce(r)``, never made whole
    if min(w, h) < MIN_SIDE:
        return _unjudged(f"too small: {w}x{h}")
    rows, cols = _grid_shape(w, h)
    tile = int(min(TILE, min(w, h) - MARGIN))
    n = tile + MARGIN
    # where the edges are: a map sampled every f px (nearest: cheap, and enough to place tiles)
    f = max(1, min(min(w, h) // 250, tile // 4))
    lw, lh = max(1, w // f), max(1, h // f)
    small = im.resize((lw, lh), Image.Resampling.NEAREST) if f > 1 or r > 1 else im
    lo = np.asarray(small if small.mode == "L" else small.convert("L"), dtype=np.float32)
    e = ndimage.uniform_filter(_edges(lo), max(1, tile // f), mode="constant")
    centres = _tile_centres(e, f, rows, cols)
    face_boxes = _face_boxes(faces)
    more, owner = _face_centres(e, f, w, h, face_boxes, tile)
    centres += more
    tiles = _grey_tiles(im, centres, n, r)
    peak, E, count, bin_peak, T = _tile_energies(tiles)
    dirs = (bin_peak >= DETAIL) & (count >= 4)             # n x 4: directions with edges
    blur = _balanced_blur(E, dirs)
    detail = dirs.any(axis=1)

    ncell = rows * cols
    ok = detail[:ncell]
    cell_blur = np.where(ok, blur[:ncell], np.nan).reshape(rows, cols)
    grid = np.zeros(ncell, np.uint8)
    grid[ok] = np.clip(np.round(255.0 / (1.0 + blur[:ncell][ok])), 1, 255).astype(np.uint8)
    grid = grid.reshape(rows, cols)
    if ok.sum() < min(MIN_DETAIL_CELLS, ncell):
        return FocusReport(grid, 0.0, 0.0, (0.0, 0.0, 1.0, 1.0), UNJUDGED, None, "frame",
                           "too little detail" if ok.any() else "no detail (flat or empty frame)")

    def pooled(idx, frac: float, least: int = BEST_K) -> float:
        """The mean blur of the sharpest ``frac`` of these tiles (at least ``least``)."""
        idx = np.asarray(idx, dtype=int)
        if idx.size == 0:
            return math.nan
        b = np.sort(blur[idx])
        return float(b[:max(min(least, idx.size), int(round(frac * idx.size)))].mean())

    cells = np.flatnonzero(ok)
    best = pooled(cells, BEST_FRAC)

    # the subject: the faces, else the salient region, else the sharpest cells
    subject_from, box, subj = "frame", (0.0, 0.0, 1.0, 1.0), math.nan
    inside = np.zeros(ncell, bool)
    subject_tiles = np.zeros(0, int)
    if face_boxes:
        owner = np.array(owner)
        # a face's sharpest half (its eyes, not the hair against a blurred background)
        per_face = [pooled(ncell + np.flatnonzero((owner == fi) & detail[ncell:]), 0.5, least=1)
                    for fi in range(len(face_boxes))]
        per_face = [b for b in per_face if math.isfinite(b)]
        if per_face:
            subj, subject_from = min(per_face), "faces"
            subject_tiles = ncell + np.flatnonzero(detail[ncell:])
            box = (min(b[0] for b in face_boxes), min(b[1] for b in face_boxes),
                   max(b[2] for b in face_boxes), max(b[3] for b in face_boxes))
            for fb in face_boxes:
                inside |= _cells_in(fb, rows, cols, grow=0.5)
    if subject_from == "frame":
        step = max(1, min(lw, lh) // SMALL_SIDE)
        rgb = np.asarray(small.reduce(step) if step > 1 else small, dtype=np.float32)
        sbox, sal = _salient_box(np.repeat(rgb[..., None], 3, 2) if rgb.ndim == 2 else rgb[..., :3])
        if sbox is not None:
            sin = _cells_in(sbox, rows, cols)
            sel = np.flatnonzero(sin & ok)
            if sel.size >= 2:
                subj, box, subject_from, inside = pooled(sel, SUBJECT_FRAC), sbox, "salient", sin
                subject_tiles = sel
    if not math.isfinite(subj):
        subj = best
        top = cells[np.argsort(blur[cells])][:BEST_K]
        r, c = top // cols, top % cols
        box = (c.min() / cols, r.min() / rows, (c.max() + 1) / cols, (r.max() + 1) / rows)
    # the rest of the frame, against the subject: how much of it is clearly sharper, whether that
    # sharp part reaches the frame's edges (a background does; a small sharp subject the salient
    # region missed mostly does not) and, without faces, how salient it is against the subject
    out = np.flatnonzero(ok & ~inside)
    sharp_out = out[blur[out] * BG_MARGIN <= subj] if math.isfinite(subj) else out[:0]
    sharp_elsewhere = sharp_out.size / max(1, cells.size)
    r_, c_ = sharp_out // cols, sharp_out % cols
    on_edge = int(np.sum((r_ == 0) | (r_ == rows - 1) | (c_ == 0) | (c_ == cols - 1)))
    sharp_salience, soft_cells = math.inf, 0
    if subject_from == "salient":
        # how far the soft region around the salient one spreads (the focus map's structure: a
        # soft subject is a soft region of some size, not a thin patch of the salient box)
        soft = (ok & (blur[:ncell] > SUBJECT_BLUR)).reshape(rows, cols)
        lab, _ = ndimage.label(soft)
        seeds = np.unique(lab.ravel()[subject_tiles])
        soft_cells = int(np.isin(lab, seeds[seeds > 0]).sum())
        cell_sal = _cell_means(sal, rows, cols)
        s_in = float(cell_sal[subject_tiles].mean())
        if sharp_out.size and s_in > 0:
            sharp_salience = float(cell_sal[sharp_out].mean()) / s_in

    shake, used, extent = _shake(T[:, cells])
    # a long smear (several px at the view) can turn the angle read from the derivatives; the
    # edges binned by their normal then show it plainly: their anisotropy's angle is kept when
    # it is this clear (per cell, the log-ratio of blur across 0 vs 90 and 45 vs 135 degree edges)
    lg = np.log(np.maximum(_blur(E[0, cells], E[1, cells], E[2, cells]), 0.05))
    has = dirs[cells]
    binned, nb = [], 0
    for u, v in ((0, 2), (1, 3)):
        both = has[:, u] & has[:, v]
        binned.append(float(np.median(lg[both, u] - lg[both, v])) if both.sum() >= SHAKE_CELLS else 0.0)
        nb = max(nb, int(both.sum()) if both.sum() >= SHAKE_CELLS else 0)
    if nb and math.hypot(*binned) >= BINNED_LOG + BINNED_NOISE / math.sqrt(nb):
        shake = np.hypot(*shake) * np.array(binned) / math.hypot(*binned)
    sharpest = float(blur[subject_tiles].min()) if subject_tiles.size else subj
    return Measures(grid, best, subj, box, subject_from, sharp_elsewhere, sharpest, shake, used, cell_blur, extent,
                    soft_cells, on_edge, sharp_salience)


_THETA = np.arange(SHAKE_DIRS) * (math.pi / SHAKE_DIRS)


def _along(T: np.ndarray) -> np.ndarray:
    """The energy of the derivative along each of SHAKE_DIRS directions (counter-clockwise from
    x, y up) from structure tensors ``T`` (..., 3: sums of p^2, q^2, pq; p and q the Roberts
    differences along the down-right and up-right diagonals): (..., SHAKE_DIRS)."""
    a, b = np.cos(_THETA - math.pi / 4), np.cos(_THETA - 3 * math.pi / 4)
    return T[..., 1:2] * (a * a) + T[..., 0:1] * (b * b) - T[..., 2:3] * (2 * a * b)


def _shake(T: np.ndarray) -> tuple[np.ndarray, int, float]:
    """The shake behind a frame's cells (``T``: 3 x cells x 3, their structure tensors at the
    three scales).

    Per cell, the blur along each of SHAKE_DIRS directions, from the derivative along it: a
    shake takes the fine energy out of the derivative along its path whatever the edges' own
    directions (binning edges by their normal, as the tile's blur does, mostly sees the edges
    the shake left sharp); measured where the cell has SHAKE_SHARE of its strongest
    direction's energy.  Per pair of perpendicular directions, the median over the cells of
    their log-ratio (a shake is the same everywhere, a scene's own anisotropy is not); the two
    sets of pairs (0/90 and 45/135 degrees; 22.5/112.5 and 67.5/157.5) each give the doubled
    angle of the anisotropy, and are averaged.

    Returns that vector (its length: the median log-ratio of blur along / across the shake;
    its angle: twice the shake's direction), the cells behind it (0: too few to tell) and the
    smear the shake adds, sqrt(along^2 - across^2), from the frame's sharpest quarter of cells
    along and across it (view px)."""
    e = _along(T)                                         # 3 x cells x dirs
    b = np.minimum(_blur(e[0], e[1], e[2]), MAX_BLUR)
    use = e[1] >= SHAKE_SHARE * e[1].max(axis=1, keepdims=True)
    lg = np.log(np.maximum(b, 0.05))
    q = SHAKE_DIRS // 4
    vec, used = np.zeros(2), 0
    for off in range(q):
        comps = []
        for u in (off, off + q):
            v = u + 2 * q
            both = use[:, u] & use[:, v]
            ok = int(both.sum()) >= SHAKE_CELLS
            comps.append(float(np.median(lg[both, u] - lg[both, v])) if ok else 0.0)
            used = max(used, int(both.sum()) if ok else 0)
        rot = 2.0 * float(_THETA[off])                    # these pairs measure twice (angle - theta): turn back
        vec += (comps[0] * math.cos(rot) - comps[1] * math.sin(rot),
                comps[0] * math.sin(rot) + comps[1] * math.cos(rot))
    vec /= q
    if not used:
        return vec, 0, 0.0
    sharpest = np.zeros(SHAKE_DIRS)
    for d in range(SHAKE_DIRS):
        x = np.sort(b[use[:, d], d])
        sharpest[d] = x[:max(min(BEST_K, x.size), int(round(SHAKE_POOL * x.size)))].mean() if x.size else 0.0
    # the smear: the most a direction's sharpest cells are blurrier than those across it (not
    # read at the angle found, which a long smear's blur estimates can turn by a bin or so)
    smear = sharpest ** 2 - np.roll(sharpest, -2 * q) ** 2
    return vec, used, math.sqrt(max(0.0, float(smear.max())))


def _cells_in(box, rows: int, cols: int, grow: float = 0.0) -> np.ndarray:
    """Which cells (flattened) have their centre in ``box`` (fractions), grown by ``grow`` of its size."""
    x0, y0, x1, y1 = box
    gx, gy = grow * (x1 - x0) / 2, grow * (y1 - y0) / 2
    ccx = (np.arange(cols) + 0.5) / cols
    ccy = (np.arange(rows) + 0.5) / rows
    return ((ccx[None, :] >= x0 - gx) & (ccx[None, :] <= x1 + gx)
            & (ccy[:, None] >= y0 - gy) & (ccy[:, None] <= y1 + gy)).ravel()


def decide(m: Measures) -> tuple[str, float | None]:
    """The verdict, and the shake's direction (degrees, the blur's direction) when it is one."""
    strength = float(np.hypot(*m.shake))
    # the median of n noisy per-cell log-ratios wanders by ~1/sqrt(n): a few cells need more
    if (m.shake_cells and strength >= SHAKE_LOG + SHAKE_NOISE / math.sqrt(m.shake_cells)
            and (m.shake_extent >= SHAKE_EXTENT or m.best_blur >= SHAKE_BLUR)):
        # the doubled angle points to the most blurred edge normal: the direction of the motion
        return SHAKE, float(np.degrees(np.arctan2(m.shake[1], m.shake[0])) / 2.0 % 180.0)
    if m.best_blur > SOFT_BLUR and not (m.subject_from == "faces" and m.subject_blur <= SUBJECT_BLUR):
        return SOFT, None
    if m.subject_blur > SUBJECT_BLUR and m.subject_blur >= BG_MARGIN * m.best_blur:
        if m.subject_from == "faces":
            return WRONG, None
        # no faces: the salient region is soft; it is the subject out of focus only when the
        # evidence is strong: the region is measured in several cells and none of them is sharp
        # (a smooth subject with one sharp eye is in focus); it is not so blurred that it is a
        # background's bokeh; a real part of the frame elsewhere is clearly sharper and reaches
        # the frame's edges (a sharp background, not a small sharp subject the salient region
        # missed); and that sharp part is clearly less salient than the region (else it is the
        # subject, in focus, and the soft salient region is what lies behind or before it)
        if (m.subject_cells >= SUBJECT_CELLS and m.subject_sharpest > SUBJECT_BLUR
                and m.subject_blur <= BOKEH_BLUR and m.sharp_elsewhere >= SHARP_SHARE
                and m.sharp_on_edge >= SHARP_EDGE and m.sharp_salience <= SHARP_SALIENCE):
            return WRONG, None
    return SHARP, None


def analyse_focus(image, *, faces: Sequence | None = None, reduce: int = 1) -> FocusReport:
    """Judge focus on ``image``, the upright view the pipeline decodes (a PIL image or an
    HxWx3 uint8 array; half the file's resolution, the scale the thresholds were set at:
    ``reduce`` (:func:`half_factor`) says by how much the image is larger than that; it is
    judged as ``image.reduce(reduce)`` would be, without making that whole).  ``faces``: face
    boxes (x0, y0, x1, y1 fractions of the frame, or objects with such a ``box``); when given
    they are the subject.  Never raises on odd images: a tiny, flat or empty one gets the
    verdict "unjudged" with a note."""
    m = measure(image, faces, reduce)
    if isinstance(m, FocusReport):
        return m
    verdict, angle = decide(m)
    # rounded as stored, so that a report read back from the catalog equals the one made
    return FocusReport(m.grid, round(sharpness_of(m.subject_blur), 4), round(sharpness_of(m.best_blur), 4),
                       tuple(float(round(v, 4)) for v in m.box), verdict,
                       None if angle is None else round(angle, 1), m.subject_from, "")
