"""Exposure and noise facts from the pixels: the evidence the "too dark", "too bright" and
"noisy" reasons must agree with.

The technical model's severity head learnt exposure and noise from clean photos darkened,
brightened and noised on purpose, so it reads a night sky, the moon, snow or brick as "too
dark", "too bright" or "noisy".  A real fault leaves marks in the pixels that a scene shot as
meant does not:

* **too dark**: the whole histogram is pushed down towards black and *nothing* is near the
  top.  A night scene, the moon, stars or city lights keep bright points: whatever the
  exposure, their light sources and highlights still reach high levels.
* **too bright**: part of the frame is clipped to white (detail lost) *and* no true black is
  left (the whole histogram pushed up); snow, a bright sky or a white wall exposed as meant
  keep the scene's blacks.
* **noisy**: noise is visible at the view's scale in the *flattest* parts of the frame (sky,
  walls, skin); fine texture (brick, foliage, fabric) is detail, not noise, and a frame always
  has flatter parts than its texture.

``analyse_exposure(image)`` takes the view the pipeline decodes for the model (448 px on the
long side) and returns an :class:`ExposureReport` of a few numbers (numpy only, ~2 ms);
:meth:`ExposureReport.supports` is the rule that says whether the pixels agree with a family
the head names (``bench/exposure.py`` chose its thresholds on half of the clean photos and
measures them on the other half).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace

import numpy as np
from PIL import Image

__all__ = ["ExposureReport", "analyse_exposure", "flat_noise"]

# -- how it measures ------------------------------------------------------------------------------
BLACK_LEVEL = 8      # a pixel is crushed to black when every channel is at most this (0..255) ...
WHITE_LEVEL = 250    # ... clipped to white when its luminance is at least this
TOP_SHARE = 0.00002  # the highlights' level: the brightest 0.002 % of pixels (3 of a 448x300 view; max channel)
BLOCK = 8            # noise is measured per 8x8 block of luminance ...
FLAT_SHARE = 0.10    # ... and read in the flattest tenth of the blocks ...
NOISE_RANGE = (24, 232)  # ... whose mean luminance is away from black and white (clipping hides noise)
MAX_SIDE = 640       # a larger view is reduced to this first (the measures are made at the model's view)

# -- when the pixels agree (``bench/exposure.py --choose``: on half A of ../shared/data/pristine and
# the copies of half-A photos, per family the threshold that silences most of the head's reasons on
# clean photos while keeping at least 90 % of its detections; measured on half B and the camera files)
DARK_TOP = 180       # too dark only when the highlights stay below this level (nothing bright; a -1.4 EV copy: <= 188)
BRIGHT_WHITE = 0.01  # too bright only when at least this share of the frame is clipped to white ...
BRIGHT_LOW = 15      # ... and the darkest 0.5 % of pixels are above this (no true black left)
NOISE_SIGMA = 1.4    # noisy only when the flattest blocks' noise is above this (grey levels, sigma)


@dataclass(frozen=True)
class ExposureReport:
    """What :func:`analyse_exposure` found (levels on 0..255, shares on 0..1).

    ``black``: share of pixels crushed to black (every channel at most ``BLACK_LEVEL``);
    ``white``: share clipped to white (luminance at least ``WHITE_LEVEL``); ``low`` / ``high``:
    the luminance's 0.5th and 99.5th percentiles (the tonal range used); ``top``: the level of
    the brightest 0.002 % of pixels, brightest channel (highlights, light sources, stars);
    ``mid``: share of the luminance between 64 and 191; ``noise``: the noise's standard
    deviation in the flattest blocks (grey levels; 0 when the frame has no block to read it)."""

    black: float
    white: float
    low: float
    high: float
    top: float
    mid: float
    noise: float

    def supports(self, family: str) -> bool:
        """Whether the pixels agree with the severity head naming ``family`` (always True
        for the families they cannot judge).  The rule, whole:

        * dark: the highlights stay below ``DARK_TOP`` (a night scene or the moon keeps
          bright points; an underexposed frame has none);
        * bright: at least ``BRIGHT_WHITE`` of the frame is clipped to white and no true
          black is left (the darkest 0.5 % above ``BRIGHT_LOW``): snow or a bright sky with
          the scene's blacks intact is exposed as meant;
        * noise: the flattest blocks' noise is above ``NOISE_SIGMA`` (texture is not noise).
        """
        if family == "dark":
            return self.top < DARK_TOP
        if family == "bright":
            return self.white >= BRIGHT_WHITE and self.low > BRIGHT_LOW
        if family == "noise":
            return self.noise > NOISE_SIGMA
        return True

    # -- storage ---------------------------------------------------------------------------
    def to_json(self) -> str:
        d = {"v": 1, **{k: round(float(v), 5) for k, v in asdict(self).items()}}  # (made rounded: exact)
        return json.dumps(d, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes | dict) -> ExposureReport:
        """The report :meth:`to_json` wrote (or its parsed object); ValueError for anything else."""
        try:
            d = text if isinstance(text, dict) else json.loads(text)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"malformed exposure report: {exc!r}") from None
        if not isinstance(d, dict) or d.get("v") != 1:
            raise ValueError("not an exposure report (version 1)")
        vals = {}
        for k, hi in (("black", 1.0), ("white", 1.0), ("low", 255.0), ("high", 255.0), ("top", 255.0),
                      ("mid", 1.0), ("noise", 255.0)):
            v = d.get(k)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0.0 <= v <= hi) or not math.isfinite(v):
                raise ValueError(f"bad exposure value {k}={v!r}")
            vals[k] = float(v)
        return cls(**vals)


def _view(image) -> Image.Image:
    """An RGB PIL image of at most MAX_SIDE px from a PIL image or an array (grey repeated)."""
    if not isinstance(image, Image.Image):
        a = np.asarray(image)
        if a.dtype != np.uint8:
            a = np.clip(np.asarray(a, dtype=np.float64), 0, 255).astype(np.uint8)
        if a.ndim == 3 and a.shape[2] == 1:
            a = a[..., 0]
        if a.ndim == 3 and a.shape[2] >= 3:
            a = a[..., :3]
        elif a.ndim != 2:
            raise ValueError(f"expected an RGB image or an HxWx3 array, got shape {a.shape}")
        image = Image.fromarray(np.ascontiguousarray(a))
    im = image if image.mode == "RGB" else image.convert("RGB")
    if max(im.size) > MAX_SIDE:
        im = im.copy()
        im.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return im


def _quantile(hist: np.ndarray, q: float) -> float:
    """The level below which a share ``q`` of the pixels lie (a 256-bin histogram)."""
    c = np.cumsum(hist)
    return float(np.searchsorted(c, q * c[-1], side="left"))


def flat_noise(y: np.ndarray) -> float:
    """The noise's standard deviation (grey levels) in the flattest blocks of a luminance map:
    per 8x8 block, Immerkaer's estimate (the mean absolute response to the 3x3 mask
    [1 -2 1; -2 4 -2; 1 -2 1], which a plane or a ramp does not answer, times
    sqrt(pi / 2) / 6), then the mean of the flattest tenth of the blocks whose luminance is
    away from black and white.  Texture answers the mask too, so reading the flattest
    blocks is what keeps brick and foliage from counting as noise."""
    h, w = y.shape
    if h < BLOCK + 2 or w < BLOCK + 2:
        return 0.0
    y = y.astype(np.int16)
    r = y[:, :-2] + y[:, 2:] - 2 * y[:, 1:-1]
    r = np.abs(r[:-2] + r[2:] - 2 * r[1:-1])
    bh, bw = r.shape[0] // BLOCK, r.shape[1] // BLOCK
    r = r[:bh * BLOCK, :bw * BLOCK].reshape(bh, BLOCK, bw, BLOCK).sum(axis=(1, 3), dtype=np.int32)
    m = y[1:1 + bh * BLOCK, 1:1 + bw * BLOCK].reshape(bh, BLOCK, bw, BLOCK).sum(axis=(1, 3), dtype=np.int32)
    s = r[(m >= NOISE_RANGE[0] * BLOCK * BLOCK) & (m <= NOISE_RANGE[1] * BLOCK * BLOCK)]
    if s.size == 0:
        return 0.0
    k = max(1, int(round(FLAT_SHARE * s.size)))
    return float(np.partition(s, k - 1)[:k].mean() / (BLOCK * BLOCK) * (math.sqrt(math.pi / 2) / 6.0))


def _top_of(large: Image.Image) -> float:
    """The highlights' level on a larger decode: per channel, the level of the brightest
    ``TOP_SHARE`` of pixels (one C pass: ``Image.histogram``), the brightest channel's."""
    if large.mode != "RGB":
        large = large.convert("RGB")
    h = np.asarray(large.histogram(), dtype=np.int64).reshape(3, 256)
    return max(_quantile(c, 1.0 - TOP_SHARE) for c in h)


def analyse_exposure(image, large=None) -> ExposureReport:
    """The exposure and noise facts of ``image`` (a PIL image or an HxWx3 uint8 array; the
    pipeline gives its 448 px view).  Never raises on an odd image (an empty one reads as
    black); ValueError for an array that is no image.

    ``large``: the same photo decoded larger (the pipeline's decode for faces and focus, up
    to 3000x2000 for a 24 MP JPEG).  When the view shows no highlight (``top`` below
    ``DARK_TOP``) the highlights are looked for there too: stars a few pixels wide on a
    24 MP night shot are averaged into the sky at 448 px, and would read as "nothing bright"
    (~5-9 ms for 6 MP, paid by dark frames only)."""
    report = _analyse(image)
    if (report.top < DARK_TOP and isinstance(large, Image.Image) and large.width * large.height
            > 1.5 * MAX_SIDE * MAX_SIDE):
        try:
            top = _top_of(large)
        except (OSError, ValueError):
            return report
        if top > report.top:
            report = replace(report, top=round(float(top), 5))
    return report


def _analyse(image) -> ExposureReport:
    im = _view(image)
    if im.width == 0 or im.height == 0:
        return ExposureReport(1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    a = np.asarray(im)
    y = np.asarray(im.convert("L"))  # ITU-R 601 luma
    hist_y = np.bincount(y.ravel(), minlength=256)
    hist_top = np.bincount(np.maximum(np.maximum(a[..., 0], a[..., 1]), a[..., 2]).ravel(), minlength=256)
    n = float(y.size)
    found = dict(black=hist_top[:BLACK_LEVEL + 1].sum() / n, white=hist_y[WHITE_LEVEL:].sum() / n,
                 low=_quantile(hist_y, 0.005), high=_quantile(hist_y, 0.995),
                 top=_quantile(hist_top, 1.0 - TOP_SHARE), mid=hist_y[64:192].sum() / n, noise=flat_noise(y))
    # rounded as stored, so that a report read back from the catalog equals (and rules as) the one made
    return ExposureReport(**{k: round(float(v), 5) for k, v in found.items()})
