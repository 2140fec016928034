"""The pixels' evidence for "too dark", "too bright" and "noisy" (photocull/analysis/exposure.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from photocull import scoring
from photocull.analysis.exposure import (BRIGHT_LOW, BRIGHT_WHITE, DARK_TOP, NOISE_SIGMA, ExposureReport,
                                         analyse_exposure, flat_noise)
from photocull.model.reasons import FAULTS, THRESHOLD, THRESHOLDS, explain, faults
from photocull.model.spec import FAMILIES, REASONS

W, H = 640, 427
DARK, BRIGHT, NOISY = REASONS["dark"], REASONS["bright"], REASONS["noise"]


# --- generated photos ----------------------------------------------------------------------------
def night_sky(seed: int = 0) -> np.ndarray:
    """A night sky: dark blue glow, a few hundred stars, the moon, a black hill."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    img = np.zeros((H, W, 3)) + (6 + 10 * y / H)[..., None] * np.array([0.7, 0.8, 1.0])
    stars = np.zeros((H, W))
    stars[rng.integers(0, H, 300), rng.integers(0, W, 300)] = rng.uniform(0.3, 1.0, 300) ** 3 * 4000
    img += ndimage.gaussian_filter(stars, 0.8)[..., None]
    moon = np.clip(34 - np.hypot(x - 0.72 * W, y - 0.3 * H) + 1, 0, 1)
    craters = 1 - 0.25 * (ndimage.gaussian_filter(rng.standard_normal((H, W)), 4) > 0.05)
    img = img * (1 - moon[..., None]) + (moon * craters * 235)[..., None] * np.array([1.0, 0.98, 0.9])
    img[y > H * (0.82 + 0.06 * np.sin(x / W * 7))] = 3
    return img.clip(0, 255).astype(np.uint8)


def scene(seed: int = 1) -> np.ndarray:
    """A daylight scene with its whole tonal range: sky, clouds, a textured field, a house."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    img = np.zeros((H, W, 3))
    sky = y < H * 0.45
    img[sky] = np.array([110, 160, 235])[None] + (40 * y[sky] / H)[:, None]
    tex = ndimage.gaussian_filter(rng.standard_normal((H, W)), 2.0) * 60
    img[~sky] = np.array([70, 140, 50])[None] + tex[~sky][:, None] * np.array([0.5, 1, 0.4])[None]
    img[(x > 200) & (x < 380) & (y > 150) & (y < 330)] = np.array([235, 225, 210])
    img[(x > 240) & (x < 280) & (y > 200) & (y < 250)] = 20
    img[(x > 300) & (x < 340) & (y > 250) & (y < 330)] = np.array([90, 40, 20])
    for _ in range(4):
        cx, cy = rng.uniform(0, W), rng.uniform(0, 0.35 * H)
        img[((x - cx) / 70) ** 2 + ((y - cy) / 22) ** 2 < 1] = 250
    return img.clip(0, 255).astype(np.uint8)


def brick(seed: int = 2) -> np.ndarray:
    """A brick wall filling the frame: bricks of varied tone with a fine grain, light mortar."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W]
    bh, bw, m = 22, 48, 4
    row = y // bh
    off = np.where(row % 2, bw // 2, 0)
    tone = rng.uniform(0.75, 1.15, (H // bh + 2, W // bw + 3))
    img = np.array([165, 75, 55])[None, None] * tone[row, (x + off) // bw][..., None]
    grain = ndimage.gaussian_filter(rng.standard_normal((H, W)), 1.2) * 40
    img = img + grain[..., None] * np.array([1, 0.8, 0.7])
    mortar = ((y % bh) < m) | (((x + off) % bw) < m)
    img[mortar] = np.array([200, 195, 185]) + grain[mortar][:, None] * 0.3
    return img.clip(0, 255).astype(np.uint8)


def gradient(sigma: float = 12.0, seed: int = 3) -> np.ndarray:
    """A flat grey-beige gradient, with Gaussian noise of ``sigma`` per channel."""
    rng = np.random.default_rng(seed)
    g = np.broadcast_to(60 + 140 * np.arange(W) / W, (H, W))
    img = np.stack([g, g * 0.95, g * 0.85], -1) + rng.normal(0, sigma, (H, W, 3))
    return img.clip(0, 255).astype(np.uint8)


# --- the facts ------------------------------------------------------------------------------------
def test_facts_of_a_night_sky_an_underexposed_frame_and_a_bright_one():
    night, day = analyse_exposure(night_sky()), analyse_exposure(scene())
    under = analyse_exposure((scene() * 0.15).astype(np.uint8))
    over = analyse_exposure(np.clip(scene().astype(np.float64) * 1.8 + 30, 0, 255).astype(np.uint8))
    # the night keeps bright points (stars, the moon); the underexposed frame has none
    assert night.top > DARK_TOP + 20 and under.top < DARK_TOP - 60
    assert night.black > 0.3 and night.mid < 0.05          # mostly black, few mid-tones
    assert day.mid > 0.5 and day.low < day.high
    assert over.white > day.white + 0.2 and over.low > day.low + 20
    assert under.high < 0.3 * day.high


def test_noise_is_read_in_the_flattest_blocks_so_texture_is_not_noise():
    noisy, clean = analyse_exposure(gradient(12.0)).noise, analyse_exposure(gradient(0.0)).noise
    wall = analyse_exposure(brick()).noise
    assert noisy > NOISE_SIGMA > wall and clean < 0.2
    assert noisy > 2 * wall
    # more noise reads as more
    assert analyse_exposure(gradient(20.0)).noise > noisy > analyse_exposure(gradient(6.0)).noise
    assert flat_noise(np.zeros((4, 4), np.float32)) == 0.0  # too small to judge


def test_odd_inputs_never_raise():
    assert analyse_exposure(np.zeros((0, 0, 3), np.uint8)).black == 1.0
    assert analyse_exposure(np.full((30, 40), 128, np.uint8)).noise == 0.0  # grey, tiny
    assert analyse_exposure(Image.new("L", (64, 48), 255)).white == 1.0
    big = analyse_exposure(Image.fromarray(scene()).resize((2000, 1334)))  # reduced to 640 first
    assert big.mid > 0.5
    with pytest.raises(ValueError):
        analyse_exposure(np.zeros((4, 4, 4, 4)))


def test_the_rule():
    base = dict(black=0.0, white=0.0, low=10.0, high=220.0, top=250.0, mid=0.6, noise=0.5)
    r = ExposureReport(**base)
    assert not r.supports("dark") and not r.supports("bright") and not r.supports("noise")
    assert all(r.supports(f) for f in FAMILIES if f not in ("dark", "bright", "noise"))
    assert ExposureReport(**{**base, "top": DARK_TOP - 1}).supports("dark")
    assert ExposureReport(**{**base, "noise": NOISE_SIGMA + 0.1}).supports("noise")
    # too bright: a large area clipped to white and no true black left, not either alone (snow)
    assert ExposureReport(**{**base, "white": BRIGHT_WHITE, "low": BRIGHT_LOW + 1}).supports("bright")
    assert not ExposureReport(**{**base, "white": 0.5, "low": BRIGHT_LOW - 1}).supports("bright")
    assert not ExposureReport(**{**base, "white": 0.0, "low": 120.0}).supports("bright")


def test_report_round_trips_and_refuses_junk():
    r = analyse_exposure(night_sky())
    assert ExposureReport.from_json(r.to_json()) == r  # made rounded as stored: the same rule after reopening
    for bad in ("", "[]", "{}", '{"v": 2}', json.dumps({**json.loads(r.to_json()), "top": 300}),
                json.dumps({**json.loads(r.to_json()), "noise": "x"}), b"\xff"):
        with pytest.raises(ValueError):
            ExposureReport.from_json(bad)


def test_reasons_and_faults_are_silenced_only_where_the_pixels_disagree():
    fams = list(FAMILIES)
    sev = np.zeros(len(fams))
    sev[fams.index("dark")] = 0.95
    sev[fams.index("noise")] = 0.65  # (margins: dark 0.23, blur 0.08, noise 0.05)
    sev[fams.index("blur")] = 0.80
    night = ExposureReport(black=0.5, white=0.0, low=2.0, high=120.0, top=255.0, mid=0.05, noise=0.3)
    assert explain(sev, fams) == f"{DARK}, {REASONS['blur']}"     # no evidence: as before
    assert explain(sev, fams, evidence=night) == REASONS["blur"]   # blur is never gated
    assert explain(sev, fams, most=3, evidence=None).count(",") == 2
    assert faults(sev, fams) == (REASONS["blur"], DARK) and faults(sev, fams, night) == (REASONS["blur"],)
    under = ExposureReport(black=0.1, white=0.0, low=1.0, high=40.0, top=45.0, mid=0.0, noise=2.5)
    assert explain(sev, fams, most=3, evidence=under) == f"{DARK}, {REASONS['blur']}, {NOISY}"
    assert THRESHOLDS["noise"] < 0.65 < THRESHOLD < 0.80 and FAULTS["dark"] < 0.95  # what the margins assume


# --- the whole pipeline, with the shipped technical model ----------------------------------------
@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    from photocull.model.checkpoint import load_default_model

    folder = tmp_path_factory.mktemp("exposure")
    images = {"night": night_sky(), "under": (scene() * 0.15).astype(np.uint8), "brick": brick(),
              "noisy": gradient(12.0)}
    paths = []
    for name, a in images.items():
        paths.append(folder / f"{name}.png")
        Image.fromarray(a).save(paths[-1])
    loaded = load_default_model()
    results = scoring.score_all(paths, loaded, analyses=(scoring.EXPOSURE,), want_features=False)
    return {r.path.stem: r for r in results}, list(loaded.cfg.families)


def sev(r, fams, family: str) -> float:
    return float(r.severities[fams.index(family)])


def test_a_night_sky_is_not_too_dark_an_underexposed_frame_is(scored):
    res, fams = scored
    night, under = res["night"], res["under"]
    assert night.exposure is not None and under.exposure is not None
    # the head reads both as dark ...
    assert sev(night, fams, "dark") > THRESHOLD + 0.05 and sev(under, fams, "dark") > THRESHOLD + 0.05
    assert DARK in explain(night.severities, fams)
    # ... the pixels agree only for the underexposed frame
    assert DARK not in night.why.split(", ")
    assert DARK in under.why.split(", ")
    assert DARK not in faults(night.severities, fams, night.exposure)


def test_brick_is_not_noisy_noise_on_a_gradient_is(scored):
    res, fams = scored
    wall, noisy = res["brick"], res["noisy"]
    assert sev(noisy, fams, "noise") > THRESHOLDS["noise"] + 0.05
    assert NOISY not in wall.why.split(", ")
    assert NOISY in noisy.why.split(", ")
    assert noisy.exposure.noise > 2 * wall.exposure.noise


def test_the_report_is_kept_in_the_catalog_and_not_measured_again(tmp_path, tiny_model, monkeypatch):
    from photocull.cull.catalog import Catalog
    from photocull.scoring import iter_scores_cached
    from conftest import make_photo

    files = [make_photo(tmp_path / f"p{i}.jpg", seed=i) for i in range(3)]
    with Catalog(tmp_path / "cat.db") as cat:
        first = [r for prog in iter_scores_cached(files, tiny_model, cat, analyses=(scoring.EXPOSURE,))
                 for r in prog.results]
        assert all(isinstance(r.exposure, ExposureReport) for r in first)
        calls = []
        monkeypatch.setattr("photocull.analysis.exposure.analyse_exposure",
                            lambda im, **kw: calls.append(im) or analyse_exposure(im, **kw))
        again = [r for prog in iter_scores_cached(files, tiny_model, cat, analyses=(scoring.EXPOSURE,))
                 for r in prog.results]
        assert calls == []  # reopening: from the catalog
        by = {r.path: r.exposure for r in first}
        assert all(r.exposure == by[r.path] for r in again)
    assert scoring.EXPOSURE in scoring.ANALYSES and scoring.EXPOSURE.side == 0


def test_stars_too_small_for_the_models_view_are_found_on_the_large_decode(tmp_path):
    """A 24 MP night sky with stars 2-3 px wide: at 448 px they are averaged into the sky
    (nothing bright: it would read as underexposed), on the decode the pipeline makes for
    faces and focus they are there, so the pixels do not agree with "too dark"."""
    rng = np.random.default_rng(7)
    h, w = 4000, 6000
    a = np.full((h, w, 3), 6, np.uint8)
    a += rng.integers(0, 4, size=(h, w, 1), dtype=np.uint8)
    ys, xs = rng.integers(2, h - 3, 400), rng.integers(2, w - 3, 400)
    for y, x in zip(ys, xs):
        a[y - 1:y + 2, x - 1:x + 1] = 235
    p = tmp_path / "stars.jpg"
    Image.fromarray(a).save(p, quality=92)
    del a
    small_only = scoring.decode(p, (), (scoring.EXPOSURE,)).found["exposure"]
    assert small_only.top < DARK_TOP - 60 and small_only.supports("dark")
    full = scoring.decode(p, (), scoring.ANALYSES).found["exposure"]
    assert full.top >= DARK_TOP and not full.supports("dark")
    # an underexposed frame has no highlight at any size: still "too dark"
    dark = (scene()[..., :3].astype(np.float32) * 0.15).astype(np.uint8)
    big = Image.fromarray(dark).resize((3000, 2000))
    rep = analyse_exposure(np.asarray(big.resize((448, 299))), large=big)
    assert rep.top < DARK_TOP and rep.supports("dark")


def test_a_photo_scored_before_the_check_gets_its_reasons_redone_and_stored(tmp_path):
    """A night sky scored before the exposure check existed kept "too dark"; reopening runs the
    check on it (its scores kept) and the reasons it allows replace the stored ones."""
    from photocull.cull.catalog import Catalog
    from photocull.model.checkpoint import load_default_model
    from photocull.scoring import iter_scores_cached

    p = tmp_path / "night.png"
    Image.fromarray(night_sky()).save(p)
    loaded = load_default_model()
    with Catalog(tmp_path / "cat.db") as cat:
        old = [r for prog in iter_scores_cached([p], loaded, cat, analyses=()) for r in prog.results]
        assert DARK in old[0].why.split(", ")  # what an older version stored
        new = [r for prog in iter_scores_cached([p], loaded, cat, analyses=(scoring.EXPOSURE,))
               for r in prog.results]
        assert new[0].exposure is not None and DARK not in new[0].why.split(", ")
        np.testing.assert_array_equal(new[0].probs, old[0].probs)  # the scores were kept
        assert DARK not in cat.lookup([p], loaded.model_id)[str(p)].why.split(", ")
