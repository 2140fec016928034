"""Synthetic degradations of clean photos, for training the technical-quality model.

Every function takes an RGB image as a float32 array in [0, 1] (H x W x 3) and returns a
new one.  Strengths are given as a *severity* ``s`` in [0, 1] (0: untouched, 1: the
worst level we train on); :data:`LEVELS` are the five discrete severities used for
evaluation.  Sizes (blur radii, motion length, down-sampling) are relative to the long
side of the image, in units of a 512 px frame, so a degradation looks the same whatever
the resolution it is applied at.

Anything random (motion angle, blur kind, colour direction, noise pattern) comes from a
``seed``: the same (image, family, severity, seed) always gives the same result, and one
seed with rising severities gives a consistent, ever stronger version of one defect.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage, signal

from photocull.model.spec import FAMILIES

LEVELS = (0.2, 0.4, 0.6, 0.8, 1.0)  # the five evaluation severities

# Families that must not be mixed with each other (they undo each other).
_EXCLUSIVE = ({"dark", "bright"},)
# Order in which a mixture is applied: optics, then exposure/colour, then sensor, then codec.
_PIPELINE = ("blur", "motion", "lowres", "dark", "bright", "contrast", "colour", "noise", "compression")


# --- colour helpers -------------------------------------------------------------------------

def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


def to_float(im) -> np.ndarray:
    """PIL image or uint8 array -> float32 [0, 1] RGB array."""
    a = np.asarray(im.convert("RGB") if isinstance(im, Image.Image) else im)
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    return np.clip(a.astype(np.float32), 0.0, 1.0)


def to_uint8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _unit(x: np.ndarray) -> float:
    """Pixels per 512-px-frame pixel for this image."""
    return max(x.shape[:2]) / 512.0


def _rng(seed: int, salt: int = 0) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, salt])


def _filter_rgb(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve each channel with ``kernel`` (reflecting the borders)."""
    kh, kw = kernel.shape
    ph, pw = kh // 2, kw // 2
    pad = np.pad(x, ((ph, kh - 1 - ph), (pw, kw - 1 - pw), (0, 0)), mode="reflect")
    out = np.stack([signal.fftconvolve(pad[..., c], kernel, mode="valid") for c in range(3)], axis=-1)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


# --- the families ---------------------------------------------------------------------------

def gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return x.copy()
    return ndimage.gaussian_filter(x, sigma=(sigma, sigma, 0), mode="reflect").astype(np.float32)


def disk_kernel(radius: float) -> np.ndarray:
    """Defocus point-spread function: a uniform disk, anti-aliased at its edge."""
    r = max(radius, 0.5)
    n = int(np.ceil(r)) + 1
    yy, xx = np.mgrid[-n:n + 1, -n:n + 1].astype(np.float64)
    k = np.clip(r + 0.5 - np.hypot(yy, xx), 0.0, 1.0)
    return k / k.sum()


def defocus_blur(x: np.ndarray, radius: float) -> np.ndarray:
    if radius <= 0:
        return x.copy()
    # blur in linear light, as a lens does
    return linear_to_srgb(_filter_rgb(srgb_to_linear(x), disk_kernel(radius)))


def motion_kernel(length: float, angle_deg: float) -> np.ndarray:
    """A straight-line motion PSF of ``length`` pixels at ``angle_deg`` (anti-aliased)."""
    length = max(length, 1.0)
    n = int(np.ceil(length / 2)) + 1
    size = 2 * n + 1
    k = np.zeros((size, size), np.float64)
    t = np.linspace(-length / 2, length / 2, max(int(length * 4), 8))
    a = np.deg2rad(angle_deg)
    xs, ys = n + t * np.cos(a), n - t * np.sin(a)
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - x0, ys - y0
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(k, (np.clip(y0 + dy, 0, size - 1), np.clip(x0 + dx, 0, size - 1)), w)
    return k / k.sum()


def motion_blur(x: np.ndarray, length: float, angle_deg: float) -> np.ndarray:
    if length <= 1:
        return x.copy()
    return linear_to_srgb(_filter_rgb(srgb_to_linear(x), motion_kernel(length, angle_deg)))


def sensor_noise(x: np.ndarray, level: float, seed: int, chroma: float = 0.5) -> np.ndarray:
    """Signal-dependent (shot + read) noise in linear light, plus colour (chroma) noise.

    ``level`` scales the shot-noise std at full white.  The noise is lightly correlated
    (demosaicking spreads it over ~1 px), and a share ``chroma`` of it is independent per
    channel, the rest common to the three channels (luminance noise).
    """
    if level <= 0:
        return x.copy()
    rng = _rng(seed, 11)
    lin = srgb_to_linear(x)
    var = level**2 * lin + (0.12 * level) ** 2  # Poisson-Gaussian: a*x + b
    h, w = x.shape[:2]
    lum = rng.standard_normal((h, w, 1)).astype(np.float32)
    col = rng.standard_normal((h, w, 3)).astype(np.float32)
    n = np.sqrt(1 - chroma) * lum + np.sqrt(chroma) * col
    n = ndimage.gaussian_filter(n, sigma=(0.6, 0.6, 0), mode="reflect")
    n /= n.std() + 1e-8
    return linear_to_srgb(lin + np.sqrt(var) * n)


def jpeg(x: np.ndarray, quality: int, subsampling: int = 2) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(to_uint8(x)).save(buf, "JPEG", quality=int(quality), subsampling=subsampling, optimize=False)
    buf.seek(0)
    return to_float(Image.open(buf))


def exposure(x: np.ndarray, ev: float) -> np.ndarray:
    """Scale linear light by 2**ev, clip, and re-quantise to 8 bits (crushed shadows /
    blown highlights are really lost, as in a camera file)."""
    out = linear_to_srgb(srgb_to_linear(x) * (2.0**ev))
    return to_float(to_uint8(out))


def haze(x: np.ndarray, t: float, airlight) -> np.ndarray:
    """Low contrast: blend towards a flat veil (haze, flare) with weight ``t``."""
    a = np.asarray(airlight, np.float32).reshape(1, 1, -1)
    return to_float(to_uint8(x * (1 - t) + a * t))


def resample(x: np.ndarray, factor: float) -> np.ndarray:
    """Resolution loss: down-sample by ``factor`` and back up (bicubic)."""
    if factor <= 1:
        return x.copy()
    h, w = x.shape[:2]
    im = Image.fromarray(to_uint8(x))
    small = im.resize((max(8, round(w / factor)), max(8, round(h / factor))), Image.Resampling.BICUBIC,
                      reducing_gap=None)
    return to_float(small.resize((w, h), Image.Resampling.BICUBIC))


def colour_shift(x: np.ndarray, saturation: float, cast=(1.0, 1.0, 1.0)) -> np.ndarray:
    """Scale the saturation around the luminance and apply white-balance gains."""
    y = (x @ np.array([0.2126, 0.7152, 0.0722], np.float32))[..., None]
    out = y + saturation * (x - y)
    lin = srgb_to_linear(np.clip(out, 0, 1)) * np.asarray(cast, np.float32).reshape(1, 1, 3)
    return to_float(to_uint8(linear_to_srgb(lin)))


# --- one entry point per family, driven by a severity in [0, 1] ---------------------------

def family_params(family: str, s: float, seed: int) -> dict:
    """The concrete parameters of ``family`` at severity ``s`` for a given seed."""
    rng = _rng(seed, FAMILIES.index(family))
    if family == "blur":
        kind = "gaussian" if rng.random() < 0.5 else "defocus"
        return {"kind": kind, "sigma": 0.6 + 4.4 * s} if kind == "gaussian" else {"kind": kind, "radius": 1.0 + 8.0 * s}
    if family == "motion":
        return {"length": 3.0 + 27.0 * s, "angle": float(rng.uniform(0, 180))}
    if family == "noise":
        return {"level": 0.03 + 0.22 * s, "chroma": float(rng.uniform(0.3, 0.8))}
    if family == "compression":
        return {"quality": int(round(45 - 41 * s)), "subsampling": 2 if rng.random() < 0.8 else 0}
    if family == "dark":
        return {"ev": -(0.8 + 3.2 * s)}
    if family == "bright":
        return {"ev": 0.6 + 2.4 * s}
    if family == "contrast":
        grey = float(rng.uniform(0.55, 0.9))
        tint = rng.uniform(-0.04, 0.04, 3)
        return {"t": 0.15 + 0.6 * s, "airlight": [grey + float(v) for v in tint]}
    if family == "lowres":
        return {"factor": 2.5 * (12.0 / 2.5) ** s}  # 2.5x .. 12x below a 512 px frame
    if family == "colour":
        direction = rng.choice(["over", "under", "cast"])
        hue = rng.normal(size=3)
        hue -= hue.mean()
        hue /= np.linalg.norm(hue) + 1e-8
        if direction == "over":
            return {"saturation": 1.0 + 2.2 * s, "cast": [1.0, 1.0, 1.0]}
        if direction == "under":
            gains = np.exp(hue * 0.25 * s)
            return {"saturation": 1.0 - 0.85 * s, "cast": [float(g) for g in gains]}
        gains = np.exp(hue * (0.15 + 0.75 * s))
        return {"saturation": 1.0 + 0.3 * s, "cast": [float(g) for g in gains]}
    raise ValueError(f"unknown degradation family {family!r}")


def apply(x: np.ndarray, family: str, s: float, seed: int = 0) -> np.ndarray:
    """Degrade ``x`` (float [0, 1] RGB) by ``family`` at severity ``s`` in [0, 1]."""
    s = float(np.clip(s, 0.0, 1.0))
    if s == 0:
        return x.copy()
    p = family_params(family, s, seed)
    u = _unit(x)
    if family == "blur":
        return gaussian_blur(x, p["sigma"] * u) if p["kind"] == "gaussian" else defocus_blur(x, p["radius"] * u)
    if family == "motion":
        return motion_blur(x, p["length"] * u, p["angle"])
    if family == "noise":
        # noise is per pixel: keep its look in a 512 px frame (averaging u x u pixels
        # divides its std by about u)
        return sensor_noise(x, p["level"] * u, seed, p["chroma"])
    if family == "compression":
        return jpeg(x, p["quality"], p["subsampling"])
    if family in ("dark", "bright"):
        return exposure(x, p["ev"])
    if family == "contrast":
        return haze(x, p["t"], p["airlight"])
    if family == "lowres":
        return resample(x, p["factor"] * u)
    if family == "colour":
        return colour_shift(x, p["saturation"], p["cast"])
    raise ValueError(f"unknown degradation family {family!r}")


def can_mix(a: str, b: str) -> bool:
    return a != b and not any({a, b} <= ex for ex in _EXCLUSIVE)


def apply_mix(x: np.ndarray, parts: list[tuple[str, float]], seed: int = 0) -> np.ndarray:
    """Apply several (family, severity) pairs in camera-pipeline order."""
    for fam, s in sorted(parts, key=lambda p: _PIPELINE.index(p[0])):
        x = apply(x, fam, s, seed)
    return x


def shallow_dof(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """A *clean* photo with a sharp subject and a soft background.

    Keeps an ellipse (off-centre, of random size) sharp and blurs the rest with a
    defocus disk, blended with a smooth mask: what a fast lens does on purpose.  It is
    a good photo, not a blurry one, and is labelled clean.
    """
    rng = _rng(seed, 101)
    h, w = x.shape[:2]
    u = _unit(x)
    cy, cx = h * rng.uniform(0.4, 0.6), w * rng.uniform(0.4, 0.6)
    ry, rx = h * rng.uniform(0.22, 0.35), w * rng.uniform(0.18, 0.3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    mask = np.clip((d - 0.85) / 0.5, 0.0, 1.0)[..., None]  # 0 inside the subject
    back = defocus_blur(x, rng.uniform(4.0, 9.0) * u)
    return (x * (1 - mask) + back * mask).astype(np.float32)


def random_spec(rng: np.random.Generator, mix: bool = False) -> list[tuple[str, float]]:
    """A random single degradation (or a mixture of two) with severities in (0, 1]."""
    fams = list(FAMILIES)
    a = str(rng.choice(fams))
    parts = [(a, float(rng.uniform(0.05, 1.0)))]
    if mix:
        b = str(rng.choice([f for f in fams if can_mix(a, f)]))
        parts.append((b, float(rng.uniform(0.05, 0.8))))
    return parts
