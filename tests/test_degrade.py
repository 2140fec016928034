"""Degradations: deterministic, shaped right, and getting worse with severity."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage import data

from photocull.training import degrade as D
from photocull.model.spec import FAMILIES


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return D.to_float(data.astronaut()[::2, ::2])  # 256 x 256 keeps the tests quick


def _sharpness(x: np.ndarray) -> float:
    return float(ndimage.laplace(x.mean(2)).var())


def _rmse(a, b) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


@pytest.mark.parametrize("family", FAMILIES)
def test_deterministic_shape_and_range(photo, family):
    a = D.apply(photo, family, 0.6, seed=5)
    b = D.apply(photo, family, 0.6, seed=5)
    assert a.shape == photo.shape and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert 0.0 <= a.min() and a.max() <= 1.0
    assert _rmse(a, photo) > 0.005  # it did something
    assert np.array_equal(D.apply(photo, family, 0.0, seed=5), photo)


@pytest.mark.parametrize("family", FAMILIES)
def test_distance_from_clean_grows_with_severity(photo, family):
    d = [_rmse(D.apply(photo, family, s, seed=3), photo) for s in D.LEVELS]
    assert all(b > a * 0.98 for a, b in zip(d, d[1:])), d
    assert d[-1] > d[0] * 1.5


@pytest.mark.parametrize("family", ["blur", "motion", "lowres"])
def test_blur_families_lose_sharpness(photo, family):
    s = [_sharpness(D.apply(photo, family, lv, seed=1)) for lv in D.LEVELS]
    assert s[0] < _sharpness(photo)
    assert all(b < a for a, b in zip(s, s[1:])), s


def test_both_blur_kinds_are_used(photo):
    kinds = {D.family_params("blur", 0.5, seed)["kind"] for seed in range(20)}
    assert kinds == {"gaussian", "defocus"}


def test_motion_blur_follows_its_angle():
    k = D.motion_kernel(15, 0.0)
    assert k.sum() == pytest.approx(1.0)
    rows, cols = np.nonzero(k > 1e-3)
    assert np.ptp(cols) >= 12 and np.ptp(rows) <= 2  # horizontal streak
    k90 = D.motion_kernel(15, 90.0)
    rows, cols = np.nonzero(k90 > 1e-3)
    assert np.ptp(rows) >= 12 and np.ptp(cols) <= 2


def test_noise_is_signal_dependent_and_coloured():
    flat = np.concatenate([np.full((64, 64, 3), 0.15, np.float32), np.full((64, 64, 3), 0.8, np.float32)], 1)
    n = D.sensor_noise(flat, 0.2, seed=0) - flat
    dark_std, bright_std = n[:, :64].std(), n[:, 64:].std()
    assert bright_std > 0 and dark_std > 0
    # in linear light the noise grows with the signal; sRGB's gamma compresses it, so
    # both halves must be clearly noisy and the chroma part must decorrelate channels
    corr = np.corrcoef(n[..., 0].ravel(), n[..., 2].ravel())[0, 1]
    assert corr < 0.9
    assert np.array_equal(D.sensor_noise(flat, 0.2, seed=0), D.sensor_noise(flat, 0.2, seed=0))
    assert not np.array_equal(D.sensor_noise(flat, 0.2, seed=0), D.sensor_noise(flat, 0.2, seed=1))


def test_exposure_clips(photo):
    dark = D.apply(photo, "dark", 1.0)
    bright = D.apply(photo, "bright", 1.0)
    assert dark.mean() < photo.mean() * 0.5
    assert (dark < 2 / 255).mean() > (photo < 2 / 255).mean() + 0.05  # crushed shadows
    assert (bright > 253 / 255).mean() > (photo > 253 / 255).mean() + 0.2  # blown highlights


def test_contrast_and_colour(photo):
    hazy = D.apply(photo, "contrast", 1.0, seed=2)
    assert hazy.std() < photo.std() * 0.5
    sat = [np.abs(D.apply(photo, "colour", s, seed=s_) - photo).mean() for s_, s in enumerate([0.2, 1.0])]
    assert sat[1] > sat[0]


def test_jpeg_quality_drops(photo):
    q = [D.family_params("compression", s, 0)["quality"] for s in D.LEVELS]
    assert q == sorted(q, reverse=True) and q[-1] <= 10


def test_scale_invariance_of_blur():
    """A degradation looks the same relative to the frame whatever the resolution."""
    big = D.to_float(data.astronaut())
    small = D.to_float(data.astronaut()[::2, ::2])
    from PIL import Image
    b = D.to_float(Image.fromarray(D.to_uint8(D.apply(big, "blur", 0.6, seed=0))).resize((256, 256)))
    s = D.apply(small, "blur", 0.6, seed=0)
    assert abs(_sharpness(b) - _sharpness(s)) < 0.35 * _sharpness(s)


def test_mixture_applies_both_in_pipeline_order(photo):
    m = D.apply_mix(photo, [("noise", 0.5), ("blur", 0.5)], seed=4)
    manual = D.apply(D.apply(photo, "blur", 0.5, 4), "noise", 0.5, 4)
    assert np.array_equal(m, manual)  # blur before noise, whatever the order given
    rng = np.random.default_rng(0)
    for _ in range(50):
        parts = D.random_spec(rng, mix=True)
        assert len(parts) == 2 and D.can_mix(parts[0][0], parts[1][0])


def test_shallow_dof_keeps_a_sharp_subject(photo):
    out = D.shallow_dof(photo, seed=0)
    h, w = photo.shape[:2]
    centre = (slice(h * 47 // 100, h * 53 // 100), slice(w * 47 // 100, w * 53 // 100))
    border = (slice(0, h // 8), slice(None))
    assert _rmse(out[centre], photo[centre]) < 0.01
    assert _sharpness(out[border]) < 0.6 * _sharpness(photo[border])
